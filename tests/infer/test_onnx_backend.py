"""The onnxruntime backend (posetransfer.infer.onnx_backend) against the torch networks it was
exported from: the tiny 32x32 fixture run, on synthetic inputs and on the real frames through
RePoser, for the regressor's flow and a flow fed in (the ``--flow 3d`` path)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from posetransfer.infer.images import load_image
from posetransfer.infer.pipeline import PoseTransferPipeline, body_flow
from posetransfer.infer.repose import RePoseOptions, RePoser, RePoseResult
from posetransfer.models.generator import GeneratorOutput
from posetransfer.pose.keypoints import Pose
from tests.infer.onnx_model import RUN, exported
from tests.infer.real_frames import FIXTURES, REFERENCES

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

#: Largest difference allowed between the backends (images in [-1, 1], flow in pixels).
TOLERANCE = 1e-3

FIELDS = ("image", "coarse", "warped_src", "mask")


@pytest.fixture(scope="module")
def torch_pipeline() -> PoseTransferPipeline:
    return PoseTransferPipeline.from_run(RUN)


@pytest.fixture(scope="module")
def onnx_pipeline() -> PoseTransferPipeline:
    result = exported()
    assert result.code == 0, result
    return PoseTransferPipeline.from_run(result.path, backend="onnxruntime", threads=1)


def _max_diff(a: GeneratorOutput, b: GeneratorOutput) -> float:
    diffs = []
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert x is not None and y is not None, name
        assert x.shape == y.shape and x.dtype == y.dtype == torch.float32, name
        diffs.append(float((x - y).abs().max()))
    return max(diffs)


def _inputs(batch: int, seed: int) -> dict[str, torch.Tensor]:
    """Random images in [-1, 1], keypoints in the 32x32 frame (some invalid), a flow of a few
    pixels with all three visibility classes, a background."""
    gen = torch.Generator().manual_seed(seed)
    valid = torch.rand(batch, 18, generator=gen) > 0.2
    valid[:, :6] = True
    return {
        "x_src": torch.rand(batch, 3, 32, 32, generator=gen) * 2 - 1,
        "src_xy": torch.rand(batch, 18, 2, generator=gen) * 24 + 4,
        "src_valid": valid,
        "tgt_xy": torch.rand(batch, 18, 2, generator=gen) * 24 + 4,
        "tgt_valid": valid.roll(1, dims=1) | (torch.arange(18) < 6),
        "flow": (torch.rand(batch, 2, 32, 32, generator=gen) - 0.5) * 6,
        "vis": torch.randint(0, 3, (batch, 32, 32), generator=gen),
        "background": torch.rand(batch, 3, 32, 32, generator=gen) * 2 - 1,
    }


def _poses(x: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    return x["src_xy"], x["src_valid"], x["tgt_xy"], x["tgt_valid"]


def test_the_pipeline_reports_its_backend(torch_pipeline, onnx_pipeline) -> None:
    assert torch_pipeline.engine is None and onnx_pipeline.engine is not None
    assert onnx_pipeline.nets.generator is None  # nothing of torch's runs
    assert onnx_pipeline.image_size == torch_pipeline.image_size == (32, 32)
    assert onnx_pipeline.cfg == torch_pipeline.cfg  # from the model's metadata
    assert onnx_pipeline.engine.threads == 1


@pytest.mark.parametrize("batch", [1, 5])
def test_regressor_path_matches_torch(torch_pipeline, onnx_pipeline, batch: int) -> None:
    x = _inputs(batch, seed=batch)
    want = torch_pipeline.run(x["x_src"], *_poses(x))
    got = onnx_pipeline.run(x["x_src"], *_poses(x))
    assert _max_diff(want, got) < TOLERANCE
    # not a trivial match: the targets give different images, the refiner changed them
    assert float((want.image - want.coarse).abs().max()) > 1e-2
    if batch > 1:
        assert float((got.image[0] - got.image[1]).abs().max()) > 1e-2
    flow_t, vis_t = torch_pipeline.predict_flow(*_poses(x))
    flow_o, vis_o = onnx_pipeline.predict_flow(*_poses(x))
    assert vis_o.dtype == torch.int64 and torch.equal(vis_t, vis_o)
    assert float((flow_t - flow_o).abs().max()) < TOLERANCE
    assert float(flow_t.abs().max()) > 0.1


@pytest.mark.parametrize("with_background", [False, True], ids=["plain", "background"])
def test_given_flow_path_matches_torch(torch_pipeline, onnx_pipeline, with_background) -> None:
    """The ``--flow 3d`` path: a flow and visibility fed in (the ``render`` graph)."""
    x = _inputs(3, seed=7)
    background = x["background"] if with_background else None
    flow = (x["flow"], x["vis"])
    want = torch_pipeline.run(x["x_src"], *_poses(x), flow=flow, background=background)
    got = onnx_pipeline.run(x["x_src"], *_poses(x), flow=flow, background=background)
    assert _max_diff(want, got) < TOLERANCE
    regressed = torch_pipeline.run(x["x_src"], *_poses(x), background=background)
    assert float((regressed.image - got.image).abs().max()) > 1e-2  # the given flow was used
    if with_background:  # and the background too
        plain = torch_pipeline.run(x["x_src"], *_poses(x), flow=flow)
        assert float((plain.image - got.image).abs().max()) > 1e-3


def test_a_background_without_a_flow_runs_the_regressor_first(torch_pipeline, onnx_pipeline):
    x = _inputs(2, seed=3)
    want = torch_pipeline.run(x["x_src"], *_poses(x), background=x["background"])
    got = onnx_pipeline.run(x["x_src"], *_poses(x), background=x["background"])
    assert _max_diff(want, got) < TOLERANCE


class _Recorder:
    """A pipeline stand-in that keeps the float outputs RePoser gets."""

    def __init__(self, pipeline: PoseTransferPipeline) -> None:
        self.pipeline, self.outputs = pipeline, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pipeline, name)

    def __call__(self, *args: Any, **kwargs: Any) -> GeneratorOutput:
        out = self.pipeline(*args, **kwargs)
        self.outputs.append(out)
        return out


def _reference(file: str, person: int = 0) -> Pose:
    points = REFERENCES[(file, person)]
    xy = np.array([p if p is not None else (0.0, 0.0) for p in points], np.float32)
    return Pose(xy, np.array([p is not None for p in points]))


SOURCES = ("single_cam02_f030.jpg", "multi_cam04_f005.jpg")
TARGETS = ("single_cam04_f070.jpg", "sports2d_f115.jpg", "multi_cam04_f065.jpg")


@pytest.mark.parametrize("flow", ["regressor", "3d"])
def test_real_frames_through_reposer_match_torch(
    torch_pipeline, onnx_pipeline, flow: str, request: pytest.FixtureRequest
) -> None:
    body_model = request.getfixturevalue("body_model") if flow == "3d" else None
    worst = 0.0
    for source in SOURCES:
        results: list[list[RePoseResult]] = []
        floats: list[GeneratorOutput] = []
        for pipeline in (torch_pipeline, onnx_pipeline):
            recorder = _Recorder(pipeline)
            reposer = RePoser(recorder, RePoseOptions(flow=flow))  # type: ignore[arg-type]
            person = reposer.source(load_image(FIXTURES / source), _reference(source))
            targets = [reposer.framed_pose(_reference(t)) for t in TARGETS]
            if flow == "3d":  # the same fitted-body flow for both backends
                flows = body_flow(body_model, [person.pose] * len(targets), targets, (32, 32))
            else:
                flows = reposer.flows(person, targets)
            results.append(reposer.render(person, targets, flows))
            (out,) = recorder.outputs
            floats.append(out)
        worst = max(worst, _max_diff(*floats))
        for want, got in zip(*results, strict=True):
            np.testing.assert_array_equal(want.visibility, got.visibility)
            np.testing.assert_allclose(want.flow, got.flow, rtol=0, atol=TOLERANCE)
            # 1e-3 in [-1, 1] is 0.13 of a grey level: rounding moves a pixel by one at most
            diff = np.abs(want.image.astype(int) - got.image.astype(int))
            assert diff.max() <= 1, (source, diff.max())
    assert worst < TOLERANCE


def test_threads_reach_every_session(onnx_pipeline) -> None:
    engine = PoseTransferPipeline.from_run(exported().path, backend="onnxruntime", threads=2).engine
    assert engine is not None
    engine.predict_flow(*_poses(_inputs(1, 0)))
    for kind in ("full", "flow"):
        assert engine._session(kind).get_session_options().intra_op_num_threads == 2


def test_errors_are_clear(tmp_path, torch_pipeline, onnx_pipeline, monkeypatch) -> None:
    path = exported().path
    with pytest.raises(ValueError, match="use the onnxruntime backend"):
        PoseTransferPipeline.from_run(path)
    with pytest.raises(ValueError, match="runs on the CPU"):
        PoseTransferPipeline.from_run(path, backend="onnxruntime", device="cuda")
    with pytest.raises(ValueError, match="backend must be one of"):
        PoseTransferPipeline.from_run(path, backend="tensorrt")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not the main graph"):
        PoseTransferPipeline.from_run(path.with_name("model.flow.onnx"), backend="onnxruntime")
    with pytest.raises(FileNotFoundError, match="not found"):
        PoseTransferPipeline.from_run(tmp_path / "none.onnx", backend="onnxruntime")
    with pytest.raises(ValueError, match=r"takes \(B, 3, 32, 32\)"):
        onnx_pipeline.run(torch.zeros(1, 3, 32, 16), *_poses(_inputs(1, 0)))
    # the sibling graphs are found by the names in model.onnx's metadata
    lonely = tmp_path / "model.onnx"
    lonely.write_bytes(path.read_bytes())
    engine = PoseTransferPipeline.from_run(lonely, backend="onnxruntime").engine
    assert engine is not None
    with pytest.raises(FileNotFoundError, match="keep the files"):
        engine.predict_flow(*_poses(_inputs(1, 0)))
    # a missing extra names the install command
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r"pip install 'posetransfer\[onnx\]'"):
        PoseTransferPipeline.from_run(path, backend="onnxruntime")
