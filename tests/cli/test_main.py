"""Tests for the command-line entry point (posetransfer.cli), run in-process via ``main``."""

from __future__ import annotations

import argparse
import runpy
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from posetransfer import __version__
from posetransfer.cli import COMMANDS, Command, main
from posetransfer.data.toy import make_toy_dataset

Capture = pytest.CaptureFixture[str]


def test_help_lists_commands(capsys: Capture) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: posetransfer" in out
    for name in COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_subcommand_help(name: str, capsys: Capture) -> None:
    assert main([name, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"usage: posetransfer {name}" in out
    for option in ("--config", "--dry-run", "--verbose", "KEY=VALUE"):
        assert option in out
    assert "config keys and defaults" in out


def test_version(capsys: Capture) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"posetransfer {__version__}"


def test_no_command_is_a_usage_error(capsys: Capture) -> None:
    assert main([]) == 2
    assert "required" in capsys.readouterr().err


# ------------------------------------------------------------------------- config handling


def dry_run(capsys: Capture, *args: str) -> dict:
    assert main(["demo", "--dry-run", *args]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# posetransfer demo: resolved config\n")
    return yaml.safe_load(out)


def test_dry_run_prints_yaml_with_overrides(capsys: Capture) -> None:
    defaults = dry_run(capsys)
    assert defaults["synthetic"]["num_people"] == 200
    cfg = dry_run(capsys, "synthetic.num_people=7", "--out", "x", "synthetic.seed=2")
    assert cfg["synthetic"]["num_people"] == 7  # positional override
    assert cfg["synthetic"]["seed"] == 2  # override after an option
    untouched = ("num_people", "seed")
    assert {k: v for k, v in cfg["synthetic"].items() if k not in untouched} == {
        k: v for k, v in defaults["synthetic"].items() if k not in untouched
    }
    mix = dry_run(capsys, "--synthetic.pose_mix=[0.5, 0.25, 0.25]")["synthetic"]["pose_mix"]
    assert mix == [0.5, 0.25, 0.25]


def test_config_file_then_overrides(tmp_path: Path, capsys: Capture) -> None:
    path = tmp_path / "demo.yaml"
    path.write_text("synthetic:\n  seed: 5\n  image_format: jpg\n")
    cfg = dry_run(capsys, "--config", str(path), "synthetic.seed=6")
    assert cfg["synthetic"]["seed"] == 6  # the override wins over the file
    assert cfg["synthetic"]["image_format"] == "jpg"
    # the printed config is itself a valid config file
    path.write_text(yaml.safe_dump(cfg))
    assert dry_run(capsys, "--config", str(path)) == cfg


def test_unknown_override_key_exits_2(capsys: Capture) -> None:
    assert main(["demo", "--dry-run", "synthetic.bogus_key=1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.strip().splitlines()  # one line, no traceback
    assert line.startswith("posetransfer demo: error:")
    assert "synthetic.bogus_key" in line and "num_people" in line  # names the valid keys too


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["synthetic.num_people=many"], ["synthetic.num_people", "int"]),
        (["just_a_word"], ["just_a_word", "key=value"]),
        (["synthetic.image_format=gif"], ["synthetic.image_format", "gif"]),
    ],
)
def test_bad_overrides_exit_2(args: list[str], words: list[str], capsys: Capture) -> None:
    assert main(["demo", "--dry-run", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("posetransfer demo: error:")
    for word in words:
        assert word in err


def test_bad_config_file_exits_2(tmp_path: Path, capsys: Capture) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("synthetic:\n  colour: red\n")
    assert main(["demo", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "colour" in err
    assert main(["demo", "--config", str(tmp_path / "absent.yaml")]) == 2
    assert "absent.yaml" in capsys.readouterr().err


def test_unknown_option_exits_2(capsys: Capture) -> None:
    assert main(["demo", "--frobnicate"]) == 2
    assert (
        "posetransfer demo: error: unrecognized arguments: --frobnicate" in capsys.readouterr().err
    )


def test_verbose_error_shows_traceback(tmp_path: Path, capsys: Capture) -> None:
    assert main(["inspect-data", str(tmp_path / "absent")]) == 2
    err = capsys.readouterr().err
    assert "absent: dataset folder not found" in err and "Traceback" not in err
    assert main(["inspect-data", str(tmp_path / "absent"), "-v"]) == 2
    assert "Traceback" in capsys.readouterr().err


# ---------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class _EchoConfig:
    word: str = "hello"
    times: int = 1


@dataclass(frozen=True)
class _NestedConfig:
    echo: _EchoConfig = field(default_factory=_EchoConfig)


def test_command_in_the_table_gets_resolved_config(
    monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    seen = {}

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("target")

    def run(args: argparse.Namespace, cfg: _NestedConfig) -> int:
        seen.update(target=args.target, cfg=cfg)
        return 7

    command = Command("echo-test", "test verb", _NestedConfig, add_arguments, run)
    monkeypatch.setitem(COMMANDS, command.name, command)
    assert main(["echo-test", "there", "echo.word=bye", "-q", "echo.times=3"]) == 7
    assert seen == {"target": "there", "cfg": _NestedConfig(_EchoConfig("bye", 3))}
    assert main(["--help"]) == 0
    assert "echo-test" in capsys.readouterr().out


# ------------------------------------------------------------------------------- commands


def test_inspect_data_clean_toy_dataset(tmp_path: Path, capsys: Capture) -> None:
    root = make_toy_dataset(tmp_path / "toy", num_people=5, poses_per_person=3)
    assert main(["inspect-data", str(root)]) == 0
    out = capsys.readouterr().out
    rows = {
        line.split()[0]: line.split()[1:4]
        for line in out.splitlines()
        if line[:5] in ("train", "test ")
    }
    assert rows == {"train": ["12", "12", "24"], "test": ["3", "3", "6"]}  # images poses pairs


def test_logging_levels(tmp_path: Path, capsys: Capture) -> None:
    root = make_toy_dataset(tmp_path / "toy", num_people=3, poses_per_person=2)
    assert main(["inspect-data", str(root), "--json", str(tmp_path / "a.json")]) == 0
    assert "INFO posetransfer" in capsys.readouterr().err
    assert main(["inspect-data", str(root), "-q", "--json", str(tmp_path / "b.json")]) == 0
    assert capsys.readouterr().err == ""


def test_python_dash_m(monkeypatch: pytest.MonkeyPatch, capsys: Capture) -> None:
    monkeypatch.setattr(sys, "argv", ["posetransfer", "--version"])
    with pytest.raises(SystemExit) as exc:
        runpy.run_module("posetransfer", run_name="__main__")
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_installed_console_script() -> None:
    script = Path(sys.executable).parent / "posetransfer"
    assert script.is_file(), f"console script not installed next to {sys.executable}"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "inspect-data" in result.stdout
