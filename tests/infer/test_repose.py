"""Tests for re-posing photos of any size (posetransfer.infer.repose) with the tiny 32x32 run of
tests/fixtures/old_run (generator + refiner + flow regressor)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posetransfer.conventions import Visibility
from posetransfer.infer.pipeline import PoseInputError, PoseTransferPipeline
from posetransfer.infer.repose import RePoseOptions, RePoser
from posetransfer.pose.keypoints import Pose

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "old_run"
REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real"


@pytest.fixture(scope="module")
def pipeline() -> PoseTransferPipeline:
    return PoseTransferPipeline.from_run(FIXTURE / "gen_run")


def _frame_pose() -> Pose:
    """The fixture's target pose, in the 32x32 model frame."""
    xy = np.asarray(json.loads((FIXTURE / "target_pose.json").read_text()), np.float32) + 0.5
    return Pose(xy, np.ones(18, bool))


def _photo(size: tuple[int, int] = (90, 70), seed: int = 0) -> tuple[np.ndarray, Pose]:
    """A textured photo of ``size`` with a person-sized pose in its middle."""
    rng = np.random.default_rng(seed)
    image = (rng.random((*size, 3)) * 255).astype(np.uint8)
    pose = _frame_pose().transform((2.0, 2.0), (size[1] / 2 - 32, size[0] / 2 - 32))
    return image, pose


def test_any_photo_size_gives_a_model_frame_or_the_pasted_photo(pipeline) -> None:
    image, pose = _photo((90, 70))
    reposer = RePoser(pipeline)
    result = reposer(image, _frame_pose(), source_pose=pose)
    assert result.frame.shape == (32, 32, 3) and result.image is result.frame
    assert result.flow.shape == (32, 32, 2) and result.visibility.shape == (32, 32)
    # the target mask is the flow's non-background pixels, one pixel in from the edge
    body = result.visibility != int(Visibility.BACKGROUND)
    padded = np.pad(body, 1, constant_values=True)  # outside the frame does not erode
    h, w = body.shape
    inner = np.all([padded[i : i + h, j : j + w] for i in range(3) for j in range(3)], axis=0)
    np.testing.assert_array_equal(result.mask, inner.astype(np.float32))
    assert 0 < result.mask.sum() < body.sum()

    pasted = RePoser(pipeline, RePoseOptions(paste=True))(image, _frame_pose(), source_pose=pose)
    assert pasted.image.shape == image.shape
    source = RePoser(pipeline).source(image, pose)
    rows, cols = source.frame.image_region
    outside = np.ones(image.shape[:2], bool)
    outside[rows, cols] = False
    np.testing.assert_array_equal(pasted.image[outside], image[outside])
    assert not np.array_equal(pasted.image[rows, cols], image[rows, cols])


def test_source_is_framed_around_the_person_with_a_person_free_plate(pipeline) -> None:
    image, pose = _photo((120, 60))
    person = RePoser(pipeline).source(image, pose)
    assert person.crop.shape == person.plate.shape == (32, 32, 3)
    assert person.mask.shape == (32, 32) and 0 < person.mask.mean() < 1
    # the keypoints map into the frame and back to the photo
    back = person.frame.to_image(person.pose)
    np.testing.assert_allclose(back.xy[back.valid], pose.xy[back.valid], atol=1e-3)
    # the plate differs from the crop only where the (dilated) person was
    changed = (person.plate != person.crop).any(axis=2)
    assert changed[person.mask > 0.5].any()
    assert (changed <= (person.mask > 0) | _dilated(person.mask, 3)).all()


def _dilated(mask: np.ndarray, radius: int) -> np.ndarray:
    from posetransfer.infer.background import dilate_mask

    return dilate_mask(mask, radius)


def test_white_and_image_backgrounds(pipeline, tmp_path: Path) -> None:
    image, pose = _photo()
    white = RePoser(pipeline, RePoseOptions(background="white", feather=0))
    result = white(image, _frame_pose(), source_pose=pose)
    assert (result.frame[result.mask == 0] == 255).all()
    backdrop = tmp_path / "bg.png"
    Image.new("RGB", (50, 20), (0, 0, 255)).save(backdrop)
    blue = RePoser(pipeline, RePoseOptions(background=str(backdrop), feather=0))
    result = blue(image, _frame_pose(), source_pose=pose)
    assert (result.frame[result.mask == 0] == (0, 0, 255)).all()


def test_the_clean_background_changes_only_what_the_generator_sees(pipeline) -> None:
    image, pose = _photo()
    on = RePoser(pipeline, RePoseOptions(feather=0))(image, _frame_pose(), source_pose=pose)
    off_options = RePoseOptions(feather=0, clean_background=False)
    off = RePoser(pipeline, off_options)(image, _frame_pose(), source_pose=pose)
    np.testing.assert_array_equal(on.visibility, off.visibility)
    assert not np.array_equal(on.generated, off.generated)


def test_batches_render_like_single_targets(pipeline) -> None:
    image, pose = _photo()
    reposer = RePoser(pipeline)
    person = reposer.source(image, pose)
    targets = [_frame_pose(), _frame_pose().transform((1.0, 1.0), (2.0, 0.0))]
    batch = reposer.render(person, targets)
    single = [reposer.render(person, [t])[0] for t in targets]
    for a, b in zip(batch, single, strict=True):
        assert np.abs(a.generated.astype(int) - b.generated.astype(int)).max() <= 1


def test_bad_inputs_are_clear(pipeline, tmp_path: Path) -> None:
    image, pose = _photo()
    with pytest.raises(ValueError, match="paste=True needs background='source'"):
        RePoseOptions(paste=True, background="white")
    with pytest.raises(ValueError, match="background must be"):
        RePoseOptions(background=str(tmp_path / "missing.png"))
    with pytest.raises(ValueError, match="flow must be"):
        RePoseOptions(flow="magic")  # type: ignore[arg-type]
    with pytest.raises(PoseInputError, match="source pose"):
        RePoser(pipeline).source(image, Pose.missing())
    with pytest.raises(ValueError, match="source"):
        RePoser(pipeline).source(image[..., 0:2], pose)


def test_flow_3d_uses_the_fitted_body(pipeline, body_cache_dir: Path) -> None:
    image, pose = _photo()
    reposer = RePoser(pipeline, RePoseOptions(flow="3d"), body_cache_dir=body_cache_dir)
    result = reposer(image, _frame_pose(), source_pose=pose)
    assert result.frame.shape == (32, 32, 3)
    body = result.visibility != int(Visibility.BACKGROUND)
    assert 0.05 < body.mean() < 0.9  # a body silhouette, not all or nothing


def test_detected_source_and_target_from_real_photos(pipeline) -> None:
    pytest.importorskip("mediapipe")
    from posetransfer.infer.images import load_image

    source = load_image(REAL / "single_cam01_f050.jpg")
    target = load_image(REAL / "single_cam03_f060.jpg")
    with RePoser(pipeline, RePoseOptions(paste=True)) as reposer:
        person = reposer.source(source, name="single_cam01_f050.jpg")
        assert person.pose.num_valid >= 12 and person.mask.mean() > 0.05
        result = reposer(source, target)
    assert result.image.shape == source.shape


def test_letterbox_framing_fits_the_whole_photo(pipeline) -> None:
    image, pose = _photo((90, 40))
    person = RePoser(pipeline, RePoseOptions(framing="letterbox")).source(image, pose)
    left, top, right, bottom = person.frame.box
    assert left <= 0 and top <= 0 and right >= 40 and bottom >= 90
    assert min(right - left, bottom - top) == pytest.approx(90)  # the long side fits exactly
    with pytest.raises(ValueError, match="framing must be"):
        RePoseOptions(framing="zoom")  # type: ignore[arg-type]
