"""Tests for the streaming video loop (posetransfer.infer.motion_stream): its frames against the
plain loop's (RePoser.render, animate with workers=0), the source-feature memo, errors. Model:
the tiny 32x32 run of tests/fixtures/old_run; source and driving frames: the real fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from posetransfer.infer import motion
from posetransfer.infer.images import load_image
from posetransfer.infer.motion import MotionOptions, animate
from posetransfer.infer.motion_stream import SourceFeatureMemo, StreamRenderer, render_stream
from posetransfer.infer.pipeline import PoseTransferPipeline
from posetransfer.infer.repose import RePoseOptions, RePoser
from posetransfer.infer.video import VideoWriter, iter_frames
from posetransfer.models.residual_unet import ResidualEncoder
from posetransfer.pose.keypoints import Pose

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REAL = FIXTURES / "real"
SOURCE = REAL / "single_cam01_f050.jpg"
DRIVING = ["single_cam02_f030.jpg", "single_cam03_f060.jpg", "single_cam04_f070.jpg"]


@pytest.fixture(scope="module")
def pipeline() -> PoseTransferPipeline:
    torch.set_num_threads(1)
    return PoseTransferPipeline.from_run(FIXTURES / "old_run" / "gen_run")


def _targets(reposer: RePoser, count: int) -> list[Pose]:
    """``count`` different target poses in the model's frame (a source pose moved about)."""
    pose = reposer.source(load_image(SOURCE), name="source").pose
    return [
        pose.transform((1.0, 1.0), (float(i % 5) - 2.0, float(i % 3) - 1.0)) for i in range(count)
    ]


def test_memo_answers_a_repeated_image_from_one_encoding() -> None:
    torch.manual_seed(0)
    encoder = ResidualEncoder(3, (4, 8, 8), 1, "batch").eval()
    memo = SourceFeatureMemo(encoder)
    image = torch.rand(1, 3, 16, 16)
    batch = image.expand(5, -1, -1, -1)
    with torch.no_grad():
        want_bottom, want_skips = encoder(batch.contiguous())
        for _ in range(2):
            bottom, skips = memo(batch)
            torch.testing.assert_close(bottom, want_bottom, atol=1e-5, rtol=1e-5)
            for got_level, want_level in zip(skips, want_skips, strict=True):
                for got, want in zip(got_level, want_level, strict=True):
                    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
            skips[0] = []  # the caller replaces levels (the generator does): the memo keeps its own
        assert memo.hits == 1
        # a batch of different images, or another image, is not answered from the memo
        mixed = torch.cat([image, torch.rand(1, 3, 16, 16)])
        torch.testing.assert_close(memo(mixed)[0], encoder(mixed)[0])
        other = torch.rand(1, 3, 16, 16).expand(3, -1, -1, -1)
        torch.testing.assert_close(
            memo(other)[0], encoder(other.contiguous())[0], atol=1e-5, rtol=1e-5
        )
        assert memo.hits == 1


@pytest.mark.parametrize("paste", [False, True])
def test_stream_renderer_gives_the_frames_of_reposer_render(
    pipeline: PoseTransferPipeline, paste: bool
) -> None:
    with RePoser(pipeline, RePoseOptions(paste=paste)) as reposer:
        source = reposer.source(load_image(SOURCE), name="source")
        targets = _targets(reposer, 6)
        want = [r.image for r in reposer.render(source, targets[:3])]
        want += [r.image for r in reposer.render(source, targets[3:])]
        renderer = StreamRenderer(reposer, source)
        encoder = pipeline.nets.generator.app_encoder
        with renderer.source_features() as memo:
            got = renderer(targets[:3]) + renderer(targets[3:])
            assert memo is not None and memo.hits >= 2  # the source and plate came from the memo
        assert pipeline.nets.generator.app_encoder is encoder  # put back
    assert set(renderer.clock.wall) == {"flow", "generator", "composite"}
    assert len(got) == 6 and not np.array_equal(got[0], got[4])
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and g.dtype == np.uint8
        assert int(np.abs(g.astype(np.int16) - w).max()) <= 1  # float rounding at most


def test_stream_renderer_refuses_the_3d_flow(pipeline: PoseTransferPipeline) -> None:
    with RePoser(pipeline, RePoseOptions(flow="3d")) as reposer:
        source = reposer.source(load_image(SOURCE), name="source")
        with pytest.raises(ValueError, match="regressor flow, not '3d'"):
            StreamRenderer(reposer, source)


def test_render_stream_writes_in_order_and_stops_at_a_failed_batch() -> None:
    def renderer(batch: list[int]) -> list[np.ndarray]:
        if batch[0] == 6:
            raise RuntimeError("batch at frame 6 failed")
        return [np.full((2, 2, 3), i, np.uint8) for i in batch]

    written: list[int] = []
    counts: list[int] = []
    batches = [[0, 1, 2], [3, 4, 5], [6, 7], [8]]
    with pytest.raises(RuntimeError, match="frame 6 failed"):
        render_stream(
            renderer, batches, lambda f: written.append(int(f[0, 0, 0])), on_batch=counts.append
        )
    assert written == [0, 1, 2, 3, 4, 5] and counts == [3, 6]
    written.clear()
    assert render_stream(renderer, batches[:2], lambda f: written.append(int(f[0, 0, 0]))) == 6
    assert written == list(range(6))


@pytest.fixture(scope="module")
def driving_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 9-frame 10 fps video of three real frames, each shown three times."""
    path = tmp_path_factory.mktemp("stream") / "driving.mp4"
    frames = [load_image(REAL / name) for name in DRIVING]
    height, width = frames[0].shape[:2]
    with VideoWriter(path, 10) as writer:
        for frame in frames:
            for _ in range(3):
                writer.write(np.asarray(frame[:height, :width]))
    return path


class _FrameList:
    """Stands in for ``VideoWriter``: keeps the frames (H.264 would blur the comparison)."""

    written: dict[str, list[np.ndarray]] = {}  # noqa: RUF012  # one per output path

    def __init__(self, path: Path, fps: float) -> None:
        self.frames = _FrameList.written.setdefault(str(path), [])

    def __enter__(self) -> _FrameList:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def write(self, frame: np.ndarray) -> None:
        self.frames.append(np.array(frame))


def test_animate_streaming_and_plain_loops_write_the_same_frames(
    pipeline: PoseTransferPipeline,
    driving_video: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("mediapipe")
    pytest.importorskip("av")
    # The same driving poses for both loops (MediaPipe's may differ slightly from one call to
    # the next) and the frames before encoding: what is compared is the rendering.
    detected = motion.driving_poses(driving_video)
    monkeypatch.setattr(motion, "driving_poses", lambda *args, **kwargs: detected)
    monkeypatch.setattr(motion, "VideoWriter", _FrameList)
    reports = {}
    with RePoser(pipeline, RePoseOptions()) as reposer:
        source = reposer.source(load_image(SOURCE), name="source")
        for workers in (0, 2):
            out = tmp_path / f"w{workers}.mp4"
            options = MotionOptions(batch_size=2, workers=workers, side_by_side=True)
            reports[workers] = animate(reposer, source, driving_video, out, options)
    videos = [_FrameList.written[str(tmp_path / f"w{w}.mp4")] for w in (0, 2)]
    assert len(videos[0]) == len(videos[1]) == reports[2].frames == 9
    assert "render" in reports[0].seconds and "generator" in reports[2].seconds
    for plain, stream in zip(*videos, strict=True):
        assert plain.shape == stream.shape and plain.dtype == np.uint8
        assert int(np.abs(plain.astype(np.int16) - stream).max()) <= 1  # float rounding


def test_default_batches_are_small_when_streaming_and_bf16_streams_too(
    pipeline: PoseTransferPipeline, driving_video: Path, tmp_path: Path
) -> None:
    pytest.importorskip("mediapipe")
    pytest.importorskip("av")
    fast = PoseTransferPipeline.from_run(FIXTURES / "old_run" / "gen_run", precision="bf16")
    counts: dict[str, list[int]] = {}
    for name, pipe, workers in (("plain", pipeline, 0), ("stream", pipeline, 2), ("bf16", fast, 2)):
        with RePoser(pipe, RePoseOptions()) as reposer:
            source = reposer.source(load_image(SOURCE), name="source")
            seen = counts.setdefault(name, [])
            options = MotionOptions(workers=workers)
            out = tmp_path / f"{name}.mp4"
            animate(
                reposer,
                source,
                driving_video,
                out,
                options,
                progress=lambda d, _t, s=seen: s.append(d),
            )
            assert len(list(iter_frames(out))) == 9
    assert counts["plain"] == [8, 9]  # PLAIN_BATCH
    assert counts["stream"] == counts["bf16"] == [2, 4, 6, 8, 9]  # STREAM_BATCH

    frames = {}
    for name, pipe in (("fp32", pipeline), ("bf16", fast)):
        with RePoser(pipe, RePoseOptions()) as reposer:
            source = reposer.source(load_image(SOURCE), name="source")
            targets = _targets(reposer, 8)
            renderer = StreamRenderer(reposer, source)
            with renderer.source_features():
                pairs = [renderer(targets[i : i + 2]) for i in range(0, 8, 2)]
                frames[name] = np.stack([f for pair in pairs for f in pair]).astype(np.int16)
                whole = np.stack(renderer(targets)).astype(np.int16)
        assert int(np.abs(frames[name] - whole).max()) <= 1  # any batch: float rounding at most
    diff = np.abs(frames["bf16"] - frames["fp32"])
    assert diff.max() > 0 and diff.mean() < 4  # bfloat16 rounding, not another image
    with pytest.raises(ValueError, match="every and batch_size"):
        MotionOptions(batch_size=0)
