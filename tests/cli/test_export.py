"""``posetransfer export`` and ``infer --backend onnxruntime`` on the tiny fixture run
(tests/fixtures/old_run): the files and their metadata, and the old run's images reproduced by
ONNX Runtime from the command line."""

from __future__ import annotations

import contextlib
import io
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from posetransfer.cli import main
from posetransfer.infer import onnx_backend
from posetransfer.infer.onnx_export import ExportedModel
from tests.infer.onnx_model import RUN, exported

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

FIXTURE = RUN.parent
SOURCE = FIXTURE / "data/test/fashionTOYSid0000000300_1front.jpg"
SOURCE_POSE = f"{FIXTURE}/data/fasion-resize-annotation-test.csv#fashionTOYSid0000000300_1front.jpg"
TARGET_POSE = FIXTURE / "target_pose.json"


def _cli(*args: object) -> tuple[int, str]:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = main([str(a) for a in args])
    return code, out.getvalue()


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.array(image).astype(int)


def test_export_writes_three_verified_graphs_with_a_dynamic_batch() -> None:
    result = exported()
    assert result.code == 0
    summary = result.summary
    files = {kind: Path(path) for kind, path in summary["files"].items()}
    assert files == {
        "full": result.path,
        "flow": result.path.with_name("model.flow.onnx"),
        "render": result.path.with_name("model.render.onnx"),
    }
    assert summary["opset"] == 18 and summary["image_size"] == [32, 32]
    assert summary["batch"] == "dynamic"
    assert set(summary["max_abs_diff"]) == set(files)
    assert max(summary["max_abs_diff"].values()) < 1e-3
    inputs = {
        "full": ["x_src", "src_xy", "src_valid", "tgt_xy", "tgt_valid"],
        "flow": ["src_xy", "src_valid", "tgt_xy", "tgt_valid"],
        "render": ["x_src", "tgt_xy", "tgt_valid", "flow", "visibility", "background"],
    }
    outputs = {
        "full": ["image", "coarse", "warped_src", "mask", "flow", "visibility"],
        "flow": ["flow", "visibility"],
        "render": ["image", "coarse", "warped_src", "mask"],
    }
    for kind, path in files.items():
        model = onnx.load(path)
        assert [i.name for i in model.graph.input] == inputs[kind]
        assert [o.name for o in model.graph.output] == outputs[kind]
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta["posetransfer.graph"] == kind and meta["posetransfer.opset"] == "18"
        assert str(RUN) in meta["posetransfer.source"]
        for value in [*model.graph.input, *model.graph.output]:
            dims = value.type.tensor_type.shape.dim
            assert dims[0].dim_param and not dims[0].dim_value, (kind, value.name)  # batch
            assert all(d.dim_value for d in dims[1:]), (kind, value.name)  # fixed sizes
        assert path.stat().st_size < 5_000_000
    # the main graph holds all three networks: the others are cut out of it
    sizes = {kind: path.stat().st_size for kind, path in files.items()}
    assert sizes["full"] > sizes["render"] > sizes["flow"]


def test_infer_with_onnxruntime_reproduces_the_old_image(tmp_path: Path) -> None:
    model = exported().path
    code, _ = _cli(
        "infer", "--checkpoint", model, "--backend", "onnxruntime", "--threads", "1",
        "--source", SOURCE, "--source-pose", SOURCE_POSE, "--target-pose", TARGET_POSE,
        "--out", tmp_path / "out.png",
    )  # fmt: skip
    assert code == 0
    diff = np.abs(_png(tmp_path / "out.png") - _png(FIXTURE / "expected/infer.png"))
    assert diff.max() <= 1  # 1e-3 in [-1, 1] moves a rounded pixel by one level at most


def test_infer_pair_list_with_onnxruntime(tmp_path: Path) -> None:
    code, _ = _cli(
        "infer", "--checkpoint", exported().path, "--backend", "onnxruntime",
        "--data", FIXTURE / "data", "--pairs", FIXTURE / "data/fasion-resize-pairs-test.csv",
        "--out", tmp_path / "pairs", "--batch-size", "4",
    )  # fmt: skip
    assert code == 0
    want = sorted((FIXTURE / "expected" / "pairs").glob("*.png"))
    assert sorted(p.name for p in (tmp_path / "pairs").iterdir()) == [p.name for p in want]
    for path in want:
        assert np.abs(_png(tmp_path / "pairs" / path.name) - _png(path)).max() <= 1, path.name


def test_infer_on_a_run_folder_exports_it_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The export itself is replaced by a copy of the shared one (a trace takes seconds): this
    checks the plumbing, a temporary folder whose graphs outlive it in the sessions."""
    made: list[Path] = []

    def fake_export(cfg, nets, out, *, source=""):  # type: ignore[no-untyped-def]
        paths = {}
        for kind, name in (("full", ""), ("flow", ".flow"), ("render", ".render")):
            paths[kind] = Path(out).with_name(f"model{name}.onnx")
            shutil.copy(exported().path.with_name(f"model{name}.onnx"), paths[kind])
        made.append(Path(out).parent)
        assert str(RUN) in source
        return ExportedModel(paths, 18, (32, 32), 0.0)

    monkeypatch.setattr(onnx_backend, "export_onnx", fake_export)
    code, _ = _cli(
        "infer", "--checkpoint", RUN, "--backend", "onnxruntime", "--source", SOURCE,
        "--source-pose", SOURCE_POSE, "--target-pose", TARGET_POSE, "--out", tmp_path / "o.png",
    )  # fmt: skip
    assert code == 0 and len(made) == 1 and not made[0].exists()
    diff = np.abs(_png(tmp_path / "o.png") - _png(FIXTURE / "expected/infer.png"))
    assert diff.max() <= 1


def test_a_missing_extra_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    code, _ = _cli(
        "infer", "--checkpoint", exported().path, "--backend", "onnxruntime", "--source",
        SOURCE, "--source-pose", SOURCE_POSE, "--target-pose", TARGET_POSE,
        "--out", tmp_path / "o.png",
    )  # fmt: skip
    assert code == 2
    assert "pip install 'posetransfer[onnx]'" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    code, _ = _cli("export", "--checkpoint", RUN, "--out", tmp_path / "m.onnx")
    assert code == 2
    assert "pip install 'posetransfer[onnx]'" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


def test_export_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli("export", "--checkpoint", RUN, "--out", tmp_path / "m.txt")[0] == 2
    assert "must end in .onnx" in capsys.readouterr().err
    assert _cli("export", "--out", tmp_path / "m.onnx")[0] == 2
    assert "--checkpoint" in capsys.readouterr().err
    assert _cli("export", "--checkpoint", RUN, "--out", tmp_path / "m.onnx", "opset=15")[0] == 2
    assert "opset must be >= 16" in capsys.readouterr().err
    code, _ = _cli("infer", "--checkpoint", exported().path, "--source", SOURCE,
                   "--source-pose", SOURCE_POSE, "--target-pose", TARGET_POSE,
                   "--out", tmp_path / "o.png")  # fmt: skip
    assert code == 2
    assert "use the onnxruntime backend" in capsys.readouterr().err


def test_dry_run_folds_the_flags() -> None:
    code, out = _cli("infer", "--backend", "onnxruntime", "--dry-run")
    assert code == 0 and yaml.safe_load(out)["backend"] == "onnxruntime"
    code, out = _cli("export", "--no-verify", "--which", "latest", "--dry-run")
    assert code == 0
    assert yaml.safe_load(out) == {
        "which": "latest",
        "opset": 18,
        "verify": False,
        "tolerance": 1e-3,
    }
