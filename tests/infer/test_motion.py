"""Tests for motion transfer (posetransfer.infer.motion): real frames of the BSD-3 demo videos as a
short driving video, the tiny 32x32 run of tests/fixtures/old_run as the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from posetransfer.conventions import Visibility
from posetransfer.infer.images import load_image
from posetransfer.infer.motion import MotionOptions, animate, body_flows, driving_poses
from posetransfer.infer.pipeline import PoseTransferPipeline
from posetransfer.infer.repose import RePoseOptions, RePoser
from posetransfer.infer.video import VideoWriter, iter_frames, video_info
from posetransfer.pose.keypoints import Pose

pytest.importorskip("av")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REAL = FIXTURES / "real"
DRIVING = ["single_cam02_f030.jpg", "single_cam03_f060.jpg", "single_cam04_f070.jpg"]


@pytest.fixture(scope="module")
def pipeline() -> PoseTransferPipeline:
    return PoseTransferPipeline.from_run(FIXTURES / "old_run" / "gen_run")


@pytest.fixture(scope="module")
def driving_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12-frame 10 fps video: three real frames, each shown four times, plus one blank."""
    path = tmp_path_factory.mktemp("motion") / "driving.mp4"
    frames = [load_image(REAL / name) for name in DRIVING]
    size = frames[0].shape[:2]
    with VideoWriter(path, 10) as writer:
        for frame in frames:
            for _ in range(4):
                writer.write(np.asarray(frame[: size[0], : size[1]]))
    return path


def _source(reposer: RePoser):
    return reposer.source(load_image(REAL / "single_cam01_f050.jpg"), name="source")


def test_driving_poses_detects_each_used_frame(driving_video: Path) -> None:
    pytest.importorskip("mediapipe")
    poses, fps, size = driving_poses(driving_video, every=2)
    assert len(poses) == 6 and fps == pytest.approx(5.0)
    assert all(p is not None and p.num_valid >= 12 for p in poses)
    info = video_info(driving_video)
    assert size == (info.height, info.width)


def test_animate_writes_a_video_with_the_right_frame_count_and_fps(
    pipeline, driving_video: Path, tmp_path: Path
) -> None:
    pytest.importorskip("mediapipe")
    with RePoser(pipeline, RePoseOptions(paste=True)) as reposer:
        source = _source(reposer)
        out = tmp_path / "out.mp4"
        seen = []
        report = animate(
            reposer,
            source,
            driving_video,
            out,
            MotionOptions(every=2, batch_size=4, side_by_side=True),
            progress=lambda done, total: seen.append((done, total)),
        )
    info = video_info(out)
    assert info.frame_count == report.frames == 6
    assert info.fps == pytest.approx(5.0)
    assert seen[-1] == (6, 6)
    # side by side: the source photo's size on the right, the driving frame scaled beside it
    photo = source.image.shape
    assert info.height == photo[0] + photo[0] % 2 and info.width > photo[1]
    # the streaming loop (the default): its stages, each with wall and CPU seconds
    stages = {"detect", "smooth", "flow", "generator", "composite", "encode"}
    assert set(report.seconds) == stages and set(report.cpu_seconds) == stages | {"process"}
    assert report.elapsed >= report.seconds["encode"] > 0
    frames = [f for _, f in iter_frames(out)]
    assert not np.array_equal(frames[0], frames[-1])  # the pose changes across the video


def test_a_video_without_people_is_a_clear_error(pipeline, tmp_path: Path) -> None:
    pytest.importorskip("mediapipe")
    blank = tmp_path / "blank.mp4"
    with VideoWriter(blank, 10) as writer:
        for _ in range(3):
            writer.write(np.full((64, 48, 3), 128, np.uint8))
    with RePoser(pipeline) as reposer:
        source = _source(reposer)
        with pytest.raises(ValueError, match=r"blank\.mp4: no person found in any of its 3"):
            animate(reposer, source, blank, tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists()


def test_body_flows_fits_the_source_once_and_reports_failed_targets(body_model) -> None:
    size = (32, 32)
    xy = np.array(
        [[16, 6], [16, 9], [12, 9], [12, 14], [12, 18], [20, 9], [22, 13], [23, 17], [14, 17],
         [13, 22], [12, 27], [18, 17], [19, 22], [20, 27], [15, 5], [17, 5], [14, 5], [18, 5]],
        np.float32,
    ) + 0.5  # fmt: skip
    pose = Pose(xy, np.ones(18, bool))
    moved = pose.transform((1.0, 1.0), (2.0, 0.0))
    flow, vis, failed, fit = body_flows(body_model, pose, [pose, Pose.missing(), moved], size)
    assert flow.shape == (3, 2, 32, 32) and vis.shape == (3, 32, 32)
    assert failed == [1]
    assert (vis[1] == int(Visibility.BACKGROUND)).all() and (flow[1] == 0).all()
    assert (vis[0] != int(Visibility.BACKGROUND)).float().mean() > 0.05
    # reusing the source fit gives the same flows
    again, vis_again, _, _ = body_flows(body_model, pose, [moved], size, source_fit=fit)
    np.testing.assert_allclose(again[0].numpy(), flow[2].numpy(), atol=1e-4)
    assert (vis_again[0] == vis[2]).all()


def test_motion_options_are_checked() -> None:
    with pytest.raises(ValueError, match="every and batch_size"):
        MotionOptions(every=0)
    with pytest.raises(ValueError, match="workers >= 0"):
        MotionOptions(workers=-1)
    with pytest.raises(ValueError, match="detect_workers must be >= 1"):
        MotionOptions(detect_workers=0)
    with pytest.raises(ValueError, match="max_frames"):
        MotionOptions(max_frames=0)
