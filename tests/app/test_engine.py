"""Tests for the model side of the web app (posetransfer.app.engine), without Gradio: the tiny
32x32 run, real photos, a short driving video."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posetransfer.app.config import AppInputError
from posetransfer.app.engine import Engine, display_size
from posetransfer.app.poses import load_library, to_canvas
from posetransfer.infer.images import load_image
from posetransfer.infer.pipeline import PoseTransferPipeline
from posetransfer.infer.repose import RePoseOptions, RePoser
from posetransfer.ops.flow_viz import flow_to_color
from tests.app.conftest import MODEL_SIZE, PHOTO, RUN, TARGET_PHOTO, small_config
from tests.infer.real_frames import REFERENCES

pytest.importorskip("mediapipe")


@pytest.fixture(scope="module")
def pipeline() -> PoseTransferPipeline:
    return PoseTransferPipeline.from_run(RUN)


@pytest.fixture(scope="module")
def engine(pipeline: PoseTransferPipeline, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    tmp = tmp_path_factory.mktemp("engine")
    engine = Engine(pipeline, small_config(tmp), tmp)
    yield engine
    engine.close()


def _pose():
    return next(p.pose for p in load_library() if p.name == "hand raised")


def test_display_size_enlarges_by_a_whole_factor() -> None:
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    big = display_size(image, min_height=5)
    assert big.shape == (6, 9, 3)
    np.testing.assert_array_equal(big[::3, ::3], image)
    assert display_size(np.zeros((300, 10, 3), np.uint8)).shape == (300, 10, 3)


def test_repose_pastes_into_the_photo_and_shows_flow_and_visibility(engine: Engine) -> None:
    out = engine.repose(PHOTO, "me.jpg", _pose(), "regressor", paste=True)
    photo = np.asarray(Image.open(PHOTO))
    assert out.image.shape == photo.shape and out.image.dtype == np.uint8
    for picture in (out.flow, out.visibility):
        assert picture.shape[0] >= 256 and picture.shape[0] % MODEL_SIZE[0] == 0
        assert picture.shape[:2] == (picture.shape[0], picture.shape[0] * MODEL_SIZE[1] // 32)
    colours = {tuple(c) for c in out.visibility.reshape(-1, 3)}
    assert colours <= {(60, 180, 75), (245, 130, 48), (235, 235, 235)}
    assert out.message.startswith("me.jpg: re-posed with the regressor flow")
    # the engine is RePoser with the app's options: the same pixels
    with RePoser(engine.pipeline, RePoseOptions(paste=True)) as reposer:
        source = reposer.source(load_image(PHOTO))
        expected = reposer.render(source, [reposer.framed_pose(_pose())])[0]
    np.testing.assert_array_equal(out.image, expected.image)
    np.testing.assert_array_equal(out.flow, display_size(flow_to_color(expected.flow)))


def test_repose_without_paste_is_the_model_frame(engine: Engine) -> None:
    out = engine.repose(PHOTO, "me.jpg", _pose(), "regressor", paste=False)
    assert out.image.shape == (*MODEL_SIZE, 3)


def test_the_same_photo_is_detected_once(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = RePoser.source

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(RePoser, "source", counting)
    first = engine.repose(TARGET_PHOTO, "a.jpg", _pose(), paste=True)
    second = engine.repose(TARGET_PHOTO, "b.jpg", _pose(), paste=True)
    assert len(calls) == 1
    np.testing.assert_array_equal(first.image, second.image)


def test_target_from_photo_is_the_detected_pose_in_the_canvas(engine: Engine) -> None:
    pose = engine.target_from_photo(TARGET_PHOTO, "pose.jpg")
    ref = REFERENCES[("single_cam02_f030.jpg", 0)]
    assert pose.num_valid == sum(p is not None for p in ref)
    expected = to_canvas(
        type(pose)(
            np.array([p if p else (0, 0) for p in ref], np.float32),
            np.array([p is not None for p in ref]),
        )
    )
    # 3 px in the 256-px photo is at most ~5 px in the canvas (the person fills it)
    assert np.abs(pose.xy[pose.valid] - expected.xy[expected.valid]).max() < 8


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_malformed_photos_get_a_message_naming_the_upload(engine: Engine, tmp_path: Path) -> None:
    text = _write(tmp_path / "upload_1.jpg", b"this is not a picture\n" * 10)
    with pytest.raises(AppInputError, match=r"holiday\.jpg: not an image") as err:
        engine.repose(text, "holiday.jpg", _pose())
    assert str(tmp_path) not in str(err.value)
    half = _write(tmp_path / "half.jpg", PHOTO.read_bytes()[:1500])
    with pytest.raises(AppInputError, match=r"half\.jpg"):
        engine.repose(half, "half.jpg", _pose())
    empty = _write(tmp_path / "empty.png", b"")
    with pytest.raises(AppInputError, match="empty file"):
        engine.target_from_photo(empty, "empty.png")


def test_oversized_photo_is_refused(pipeline, tmp_path: Path) -> None:
    engine = Engine(pipeline, small_config(tmp_path, max_upload_mb=0.01), tmp_path)
    with pytest.raises(
        AppInputError, match=r"photo is 10\.4 KiB; this server accepts at most 10\.2 KiB"
    ):
        engine.repose(PHOTO, "big.jpg", _pose())
    engine.close()


def test_large_photos_are_shrunk_while_read(pipeline, tmp_path: Path) -> None:
    engine = Engine(pipeline, small_config(tmp_path, max_photo_pixels=20_000), tmp_path)
    out = engine.repose(PHOTO, "me.jpg", _pose(), paste=True)
    height, width = out.image.shape[:2]
    assert height * width <= 20_000 and abs(width / height - 144 / 256) < 0.02
    engine.close()


def test_a_photo_without_a_person_says_so(engine: Engine, tmp_path: Path) -> None:
    blank = tmp_path / "wall.png"
    Image.new("RGB", (120, 200), (200, 190, 180)).save(blank)
    with pytest.raises(AppInputError, match=r"wall\.png.*no person"):
        engine.repose(blank, "wall.png", _pose())
    with pytest.raises(AppInputError, match=r"wall\.png.*no person"):
        engine.target_from_photo(blank, "wall.png")


def test_from_config_loads_the_run_at_the_configured_precision(tmp_path: Path) -> None:
    fast = Engine.from_config(small_config(tmp_path, precision="bf16"), tmp_path, RUN)
    plain = Engine.from_config(small_config(tmp_path), tmp_path, RUN)
    try:
        assert (fast.pipeline.precision, plain.pipeline.precision) == ("bf16", "fp32")
    finally:
        fast.close()
        plain.close()


def test_bad_flow_choice(engine: Engine) -> None:
    with pytest.raises(AppInputError, match="flow must be 'regressor' or '3d'"):
        engine.repose(PHOTO, "me.jpg", _pose(), "optical")


def test_animate_cuts_long_videos_and_reports_progress(engine: Engine, driving_video: Path) -> None:
    from posetransfer.infer.video import video_info

    seen: list[tuple[int, int, str]] = []
    out = engine.animate(
        PHOTO, "me.jpg", driving_video, "dance.mp4", progress=lambda *a: seen.append(a)
    )
    info = video_info(out.path)
    assert info.frame_count == 6 and info.fps == pytest.approx(10.0)
    assert (info.height, info.width) == (256, 144)  # pasted into the photo
    assert "dance.mp4: 6 frames at 10 fps" in out.message
    assert "cut to the first 6 of 9 frames" in out.message
    assert seen[0][2].startswith("finding the pose") and seen[-1] == (6, 6, "rendering")
    assert out.path.parent == engine.results


def test_animate_every_other_frame_side_by_side(engine: Engine, driving_video: Path) -> None:
    from posetransfer.infer.video import video_info

    out = engine.animate(PHOTO, "me.jpg", driving_video, "d.mp4", side_by_side=True, every=2.0)
    info = video_info(out.path)
    assert info.frame_count == 5 and info.fps == pytest.approx(5.0)
    assert info.width == 2 * 144 and "cut" not in out.message


def test_animate_bad_inputs_get_messages(
    engine: Engine, driving_video: Path, tmp_path: Path
) -> None:
    with pytest.raises(AppInputError, match="'every' must be a whole number"):
        engine.animate(PHOTO, "me.jpg", driving_video, "d.mp4", every=1.5)
    not_video = _write(tmp_path / "clip_x.mp4", b"\x00\x01 not a video" * 100)
    with pytest.raises(AppInputError, match=r"clip\.mp4") as err:
        engine.animate(PHOTO, "me.jpg", not_video, "clip.mp4")
    assert str(tmp_path) not in str(err.value)
    from posetransfer.infer.video import VideoWriter

    nobody = tmp_path / "nobody.mp4"
    with VideoWriter(nobody, 10) as writer:
        for _ in range(3):
            writer.write(np.full((64, 48, 3), 128, np.uint8))
    with pytest.raises(AppInputError, match=r"empty\.mp4: no person found in any of its 3"):
        engine.animate(PHOTO, "me.jpg", nobody, "empty.mp4")


def test_old_results_are_pruned(engine: Engine, driving_video: Path) -> None:
    old = engine.results / "old.mp4"
    old.write_bytes(b"x")
    past = time.time() - engine.config.keep_minutes * 60 - 10
    os.utime(old, (past, past))
    fresh = engine.results / "fresh.mp4"
    fresh.write_bytes(b"x")
    engine.animate(PHOTO, "me.jpg", driving_video, "d.mp4", every=3)
    assert not old.exists() and fresh.exists()


def test_pool_has_one_reposer_per_concurrent_job(pipeline, tmp_path: Path) -> None:
    engine = Engine(pipeline, small_config(tmp_path, concurrency=3), tmp_path)
    assert len(engine._reposers) == 3 and engine._pool.qsize() == 3
    assert {id(r.pipeline) for r in engine._reposers} == {id(pipeline)}  # networks shared
    with engine._reposer() as one, engine._reposer() as two:
        assert one is not two and engine.active == 2
    assert engine.active == 0 and engine.peak_active == 2 and engine._pool.qsize() == 3
    engine.close()


def test_repose_with_the_3d_body_flow(
    pipeline: PoseTransferPipeline, body_model: object, body_cache_dir: Path, tmp_path: Path
) -> None:
    """The 3D path: the body model (the suite's shared one) fitted to both poses."""
    engine = Engine(pipeline, small_config(tmp_path), tmp_path, body_cache_dir=body_cache_dir)
    out = engine.repose(PHOTO, "me.jpg", _pose(), "3d", paste=False)
    engine.close()
    assert out.image.shape == (*MODEL_SIZE, 3)
    assert "3D body flow" in out.message
    colours = {tuple(c) for c in out.visibility.reshape(-1, 3)}
    assert (60, 180, 75) in colours  # some of the target body is seen in the photo
