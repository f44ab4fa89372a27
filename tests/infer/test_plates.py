"""Tests of posetransfer.infer.plates: person-free plates from a make-dataset folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posetransfer.data.formats import FormatError
from posetransfer.data.person_masks import mask_path, mask_to_uint8, write_mask
from posetransfer.infer.background import dilate_mask
from posetransfer.infer.plates import make_plates, plate_of
from posetransfer.synth.backgrounds import list_plates

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "real" / "single_cam01_f050.jpg"
SIZE = (64, 48)


def _mask(box: tuple[int, int, int, int]) -> np.ndarray:
    top, left, bottom, right = box
    mask = np.zeros(SIZE, np.float32)
    mask[top:bottom, left:right] = 1.0
    return mask


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """A make-dataset-like folder: three crops of a real frame in train, one in test, masks."""
    root = tmp_path / "data"
    frame = Image.open(FIXTURE).convert("RGB")
    boxes = {"a": (10, 15, 50, 30), "b": (5, 5, 60, 44), "c": (20, 10, 40, 20)}
    for k, (name, box) in enumerate(boxes.items()):
        crop = frame.crop((10 * k, 20, 10 * k + 96, 148)).resize((48, 64))
        (root / "train").mkdir(parents=True, exist_ok=True)
        crop.save(root / "train" / f"person_{name}.png")
        write_mask(mask_path(root, "train", f"person_{name}.png"), mask_to_uint8(_mask(box)))
    (root / "test").mkdir()
    frame.crop((0, 0, 96, 128)).resize((48, 64)).save(root / "test" / "person_t.png")
    write_mask(mask_path(root, "test", "person_t.png"), mask_to_uint8(_mask((0, 0, 5, 5))))
    return root


def test_plate_keeps_the_frame_outside_the_grown_mask() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8)
    mask = _mask((10, 15, 50, 30))
    plate, share = plate_of(image, mask, dilation=2)
    hole = dilate_mask(mask, 2)
    assert share == pytest.approx(44 * 19 / (64 * 48))
    assert np.array_equal(plate[~hole], image[~hole])
    inside = plate[hole].astype(int)
    assert inside.min() >= image[~hole].min() and inside.max() <= image[~hole].max()
    assert inside.std() < image.astype(int).std() / 2  # a smooth fill, not the person


def test_make_plates_from_a_dataset(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "plates"
    summary = make_plates(dataset, out, max_hole=0.6)
    names = sorted(p.name for p in summary.written)
    assert names == ["train_person_a.png", "train_person_c.png"]
    assert [p.name for p, _ in summary.skipped] == ["person_b.png"]  # the person covers ~90%
    assert "covers" in summary.skipped[0][1]
    assert [p.name for p in list_plates(out)] == names  # make-synthetic takes them as plates
    image = np.asarray(Image.open(dataset / "train" / "person_a.png").convert("RGB"))
    plate = np.asarray(Image.open(out / "train_person_a.png"))
    hole = dilate_mask(_mask((10, 15, 50, 30)), 3)
    assert np.array_equal(plate[~hole], image[~hole])
    assert not np.array_equal(plate[hole], image[hole])
    again = make_plates(dataset, tmp_path / "again", max_hole=0.6)
    assert [p.read_bytes() for p in again.written] == [p.read_bytes() for p in summary.written]


def test_make_plates_options(dataset: Path, tmp_path: Path) -> None:
    every = make_plates(dataset, tmp_path / "every", every=2, max_hole=1.0)
    assert [p.name for p in every.written] == ["train_person_a.png", "train_person_c.png"]
    both = make_plates(dataset, tmp_path / "both", splits=("train", "test"), max_hole=1.0)
    assert len(both.written) == 4 and both.written[-1].name == "test_person_t.png"


def test_make_plates_errors_name_the_file(dataset: Path, tmp_path: Path) -> None:
    mask_path(dataset, "train", "person_c.png").unlink()
    with pytest.raises(FormatError, match=r"person_c\.png.*no person mask"):
        make_plates(dataset, tmp_path / "p")
    write_mask(mask_path(dataset, "train", "person_c.png"), np.zeros((10, 10), np.uint8))
    with pytest.raises(FormatError, match=r"person_c\.png.*mask is \(10, 10\)"):
        make_plates(dataset, tmp_path / "p")
    with pytest.raises(FileNotFoundError, match="val"):
        make_plates(dataset, tmp_path / "p", splits=("val",))
    with pytest.raises(ValueError, match="max_hole"):
        make_plates(dataset, tmp_path / "p", max_hole=0.0)
