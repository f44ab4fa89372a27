"""Tests for ``posetransfer serve``: the default run, the messages when there is none, and the
command itself serving on a free port of 127.0.0.1 until Ctrl-C."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import pytest
import yaml

from posetransfer.cli import main

RUN = Path(__file__).resolve().parents[1] / "fixtures" / "old_run" / "gen_run"

Capture = pytest.CaptureFixture[str]


def _demo_run(root: Path, *parts: str) -> Path:
    run = root.joinpath(*parts)
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("{}\n")
    return run


def test_without_a_run_the_message_says_make_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("posetransfer serve: error: no run to serve: give --checkpoint RUN")
    assert "`make demo`" in err and "demo_out/runs/full" in err


def test_the_demo_run_is_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    monkeypatch.chdir(tmp_path)
    _demo_run(tmp_path, "demo_out", "work", "runs", "full")
    assert main(["serve", "--dry-run"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["checkpoint"] == "demo_out/work/runs/full"
    assert printed["host"] == "127.0.0.1" and printed["port"] == 7860
    assert main(["serve", "--checkpoint", str(RUN), "--port", "0", "--dry-run"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["checkpoint"] == str(RUN) and printed["port"] == 0


def test_bad_values_are_one_line_errors(tmp_path: Path, capsys: Capture) -> None:
    assert main(["serve", "--checkpoint", str(tmp_path)]) == 2
    assert "not a `posetransfer train` run folder" in capsys.readouterr().err
    assert main(["serve", "--checkpoint", str(RUN), "--port", "70000", "--dry-run"]) == 2
    assert "port must be in 0..65535" in capsys.readouterr().err
    assert main(["serve", "--checkpoint", str(RUN), "queue_size=0", "--dry-run"]) == 2
    assert "queue_size must be >= 1" in capsys.readouterr().err


def test_without_the_app_extra_the_message_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    monkeypatch.setitem(sys.modules, "posetransfer.app.server", None)  # import fails
    assert main(["serve", "--checkpoint", str(RUN)]) == 2
    assert "pip install 'posetransfer[app]'" in capsys.readouterr().err


def test_serve_runs_until_ctrl_c_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    """The command in this process; a helper thread visits the page once the command waits,
    then sends Ctrl-C."""
    pytest.importorskip("gradio")
    pytest.importorskip("mediapipe")
    httpx = pytest.importorskip("httpx")
    from posetransfer.app.server import AppServer, free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    waiting = threading.Event()
    original_wait = AppServer.wait

    def wait(self: AppServer) -> None:
        waiting.set()
        original_wait(self)

    monkeypatch.setattr(AppServer, "wait", wait)
    seen: dict[str, object] = {}

    def visit_then_interrupt() -> None:
        if waiting.wait(60):
            seen["status"] = httpx.get(url, timeout=30).status_code
            seen["folders"] = len(list(tmp_path.iterdir()))
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, caught by serve inside main()

    helper = threading.Thread(target=visit_then_interrupt)
    helper.start()
    try:
        code = main(
            ["serve", "--checkpoint", str(RUN), "--port", str(port), f"temp_dir={tmp_path}"]
        )
    finally:
        helper.join()
    out = capsys.readouterr().out
    assert code == 0
    assert seen == {"status": 200, "folders": 1}  # the page, and the server's temporary folder
    assert f"posetransfer serve: {RUN} at {url} (Ctrl-C stops it)" in out
    assert "stopped; temporary files deleted" in out
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=5)
