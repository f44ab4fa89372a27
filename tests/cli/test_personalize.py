"""``posetransfer personalize``: a photo and a trained run in, a run that ``infer`` takes out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posetransfer.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RUN = FIXTURES / "old_run" / "gen_run"
REAL = FIXTURES / "real"
TINY = ["body.count=0", "train.batch_size=2", "train.device=cpu", "pairs.per_epoch=4",
        "pairs.val_pairs=2", "--threads", "1", "-q"]  # fmt: skip


@pytest.fixture(autouse=True)
def _single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


def test_personalize_then_infer(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("mediapipe")
    photo, target = REAL / "single_cam01_f050.jpg", REAL / "single_cam03_f060.jpg"
    run = tmp_path / "me"
    args = ["personalize", "--checkpoint", str(RUN), "--source", str(photo), "--out", str(run)]
    assert main([*args, "--steps", "2", *TINY]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["step"] == 2 and summary["resumed_from"] is None
    assert "infer --checkpoint" in summary["next"]
    out = tmp_path / "out.png"
    infer = ["infer", "--checkpoint", str(run), "--source", str(photo), "--target", str(target)]
    assert main([*infer, "--out", str(out), "-q"]) == 0
    assert np.asarray(Image.open(out)).shape == (32, 32, 3)


def test_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["personalize", "--checkpoint", str(RUN), "--source", "x.jpg"]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["personalize", "--source", "x.jpg", "--out", str(tmp_path / "o")]) == 2
    assert "--checkpoint" in capsys.readouterr().err
    missing = tmp_path / "missing.jpg"
    assert main(["personalize", "--checkpoint", str(RUN), "--source", str(missing),
                 "--out", str(tmp_path / "o")]) == 2  # fmt: skip
    assert "missing.jpg" in capsys.readouterr().err
