"""Tests for posetransfer.console."""

from __future__ import annotations

from posetransfer.console import echo


def test_echo_writes_a_line_to_stdout(capsys):
    echo("a | b")
    echo("")
    captured = capsys.readouterr()
    assert captured.out == "a | b\n\n"
    assert captured.err == ""
