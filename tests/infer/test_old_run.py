"""Runs written by older code still load: the fixture ``tests/fixtures/old_run`` was made by
commit 33dcd0b (before the package restructure; see its README.md) and holds a ``train-flow``
run, a ``train`` run (both stages) referencing it, their tiny dataset and the old code's outputs.
Inference must reproduce those outputs exactly, and both runs must resume training."""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from posetransfer.cli import main
from posetransfer.infer.inputs import prepare_source, read_pose
from posetransfer.infer.pipeline import PoseTransferPipeline
from posetransfer.io import tensor_to_uint8
from posetransfer.pose.keypoints import stack_poses
from posetransfer.pose.maps import pose_maps
from posetransfer.train.flow_stage import load_flow_regressor

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "old_run"
SOURCE = "data/test/fashionTOYSid0000000300_1front.jpg"
SOURCE_POSE = "data/fasion-resize-annotation-test.csv#fashionTOYSid0000000300_1front.jpg"
TARGET_POSE = "target_pose.json"
PAIRS = "data/fasion-resize-pairs-test.csv"


@pytest.fixture(autouse=True)
def _single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def old_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the fixture, as the working directory: the runs' configs name ``data`` and
    ``flow_run`` relative to it, as the commands were given (see the README)."""
    copy = tmp_path / "old_run"
    shutil.copytree(FIXTURE, copy, ignore=shutil.ignore_patterns("*.py", "*.md", "__pycache__"))
    monkeypatch.chdir(copy)
    return copy


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    with np.load(FIXTURE / "expected" / "outputs.npz") as arrays:
        return dict(arrays)


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.array(image)


def _cli(*args: str) -> tuple[int, str]:
    """``posetransfer ARGS`` in-process: the exit code and what it printed."""
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = main(list(args))
    return code, out.getvalue()


def _inputs(pipeline: PoseTransferPipeline):
    """The fixed source image and both poses in the run's protocol, read from the fixture."""
    with Image.open(FIXTURE / SOURCE) as img:
        image = np.array(img.convert("RGB"))
    pose_src = read_pose(str(FIXTURE / SOURCE_POSE))
    pose_tgt = read_pose(FIXTURE / TARGET_POSE)
    return prepare_source(image, pose_src, pose_tgt, pipeline.cfg.data.protocol)


def test_pipeline_reproduces_the_old_output(expected: dict[str, np.ndarray]) -> None:
    # loads from the fixture itself, from another working directory: inference reads only the
    # run folder (config.yaml, flow_model.yaml, checkpoints/best), never the flow run or data
    pipeline = PoseTransferPipeline.from_run(FIXTURE / "gen_run")
    assert pipeline.nets.refiner is not None  # best/ is after the coarse stage
    assert pipeline.nets.flow_net is not None
    out = pipeline(*_inputs(pipeline))
    assert out.warped_src is not None and out.mask is not None
    np.testing.assert_array_equal(
        tensor_to_uint8(out.image[0]), _png(FIXTURE / "expected" / "infer.png")
    )
    for name in ("image", "coarse", "warped_src", "mask"):
        got = getattr(out, name)[0].float().numpy()
        np.testing.assert_allclose(got, expected[name], rtol=0, atol=1e-6, err_msg=name)
    # the refiner changed the image: the comparison above covers the second stage too
    assert np.abs(expected["image"] - expected["coarse"]).max() > 1e-3


def test_flow_run_regressor_reproduces_the_old_flow(expected: dict[str, np.ndarray]) -> None:
    net, cfg = load_flow_regressor(FIXTURE / "flow_run", "best")
    pipeline = PoseTransferPipeline.from_run(FIXTURE / "gen_run")
    x, pose_src, pose_tgt = _inputs(pipeline)
    (src_xy, src_valid), (tgt_xy, tgt_valid) = stack_poses([pose_src]), stack_poses([pose_tgt])
    size = tuple(x.shape[-2:])
    with torch.no_grad():
        pred = net(
            pose_maps(src_xy, src_valid, size, cfg.data.pose_map),
            pose_maps(tgt_xy, tgt_valid, size, cfg.data.pose_map),
        )
    for got, name in (
        (pred.flows[0], "flow_run_flow"),
        (pred.vis_logits[0], "flow_run_vis_logits"),
    ):
        np.testing.assert_allclose(got[0].numpy(), expected[name], rtol=0, atol=1e-6, err_msg=name)
    # the generator run's frozen copy of the regressor is the flow run's best/
    frozen = pipeline.nets.flow_net.state_dict()
    for key, value in net.state_dict().items():
        assert torch.equal(frozen[key].contiguous(), value.contiguous()), key


def test_infer_command_writes_the_old_image(old_run: Path) -> None:
    code, _ = _cli(
        "infer", "--checkpoint", "gen_run", "--source", SOURCE, "--source-pose", SOURCE_POSE,
        "--target-pose", TARGET_POSE, "--out", "out.png", "--device", "cpu",
    )  # fmt: skip
    assert code == 0
    np.testing.assert_array_equal(_png(old_run / "out.png"), _png(FIXTURE / "expected/infer.png"))


def test_infer_command_pair_list_writes_the_old_images(old_run: Path) -> None:
    code, _ = _cli(
        "infer", "--checkpoint", "gen_run", "--data", "data", "--pairs", PAIRS,
        "--out", "pairs", "--device", "cpu",
    )  # fmt: skip
    assert code == 0
    want = sorted((FIXTURE / "expected" / "pairs").glob("*.png"))
    assert len(want) == 6
    assert sorted(p.name for p in (old_run / "pairs").iterdir()) == [p.name for p in want]
    for path in want:
        np.testing.assert_array_equal(_png(old_run / "pairs" / path.name), _png(path), path.name)


def _same(got, want) -> bool:
    if isinstance(want, float) and isinstance(got, float):
        return math.isclose(got, want, rel_tol=0, abs_tol=1e-6)
    return got == want


def test_evaluate_flow_on_the_old_flow_run(old_run: Path) -> None:
    code, table = _cli(
        "evaluate-flow", "--checkpoint", "flow_run", "--data", "data", "--out", "flow.json",
        "device=cpu",
    )  # fmt: skip
    assert code == 0 and "epe_fg" in table
    got = json.loads((old_run / "flow.json").read_text())
    want = json.loads((FIXTURE / "expected" / "evaluate_flow.json").read_text())
    assert set(got) == set(want)
    differ = {k: (got[k], want[k]) for k in want if k != "seconds" and not _same(got[k], want[k])}
    assert not differ


@pytest.mark.parametrize("paths", ["stored", "flags"])
def test_generator_run_resumes_for_one_step(
    old_run: Path, paths: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_config = yaml.safe_load((old_run / "gen_run/config.yaml").read_text())
    # the old config names the flow run and the data as given, relative to the working directory
    assert (old_config["flow"]["checkpoint"], old_config["data"]["root"]) == ("flow_run", "data")
    run = old_run / "gen_run"
    args = ["train", "--config", str(run / "config.yaml"), "--out", str(run), "--max-steps", "5"]
    if paths == "flags":  # from elsewhere, naming the moved flow run and data
        monkeypatch.chdir(old_run.parent)
        args += ["--data", str(old_run / "data"), "--flow-checkpoint", str(old_run / "flow_run")]
    code, out = _cli(*args)
    assert code == 0
    summary = json.loads(out.strip().splitlines()[-1])
    assert (summary["resumed_from"], summary["step"]) == (4, 5)
    meta = json.loads((run / "checkpoints/ckpt-000005/meta.json").read_text())
    assert "pixel_warp" in meta["modules"]
    steps = [json.loads(line)["step"] for line in (run / "stats.jsonl").open()]
    assert steps[-1] == 5 and steps.count(4) == 2  # the old lines are kept (train + val)
    # the resumed run loads for inference at its new step
    pipeline = PoseTransferPipeline.from_run(run, "latest")
    assert pipeline.nets.refiner is not None


def test_generator_run_resume_needs_the_flow_run_relative_to_the_working_directory(
    old_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(old_run.parent)  # the stored 'flow_run' is not found from here
    run = old_run / "gen_run"
    code, _ = _cli("train", "--config", str(run / "config.yaml"), "--out", str(run),
                   "--max-steps", "5")  # fmt: skip
    assert code == 2
    assert "flow_run: not a train-flow run folder" in capsys.readouterr().err


def test_flow_run_resumes_for_one_step(old_run: Path) -> None:
    code, out = _cli("train-flow", "--config", "flow_run/config.yaml", "--data", "data",
                     "--out", "flow_run", "--max-steps", "3")  # fmt: skip
    assert code == 0
    summary = json.loads(out.strip().splitlines()[-1])
    assert (summary["resumed_from"], summary["step"]) == (2, 3)
