"""Matching prediction files to ground truth: GFLA names, identical names, pair lists."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from posetransfer.eval.matching import MatchError, match_predictions, strip_extension


def touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    gt = tmp_path / "gt"
    touch(gt, "a.jpg", "b.jpg", "c_2_d.jpg", "d.jpg", "notes.txt")
    return tmp_path / "pred", gt


def test_gfla_names(dirs: tuple[Path, Path]) -> None:
    pred, gt = dirs
    touch(pred, "a_2_b.png", "b_2_a_vis.png", "x_y_2_d.png")
    matches = match_predictions(pred, gt)
    found = {(m.pred.name, m.gt.name, m.source, m.naming) for m in matches}
    assert found == {
        ("a_2_b.png", "b.jpg", "a", "gfla"),
        ("b_2_a_vis.png", "a.jpg", "b", "gfla"),
        ("x_y_2_d.png", "d.jpg", "x_y", "gfla"),
    }
    assert [m.pred.name for m in matches] == sorted(m.pred.name for m in matches)
    assert matches[0].target == matches[0].gt.name


def test_identical_names(dirs: tuple[Path, Path]) -> None:
    pred, gt = dirs
    touch(pred, "a.png", "d.png")
    matches = match_predictions(pred, gt)
    assert [(m.gt.name, m.source, m.naming) for m in matches] == [
        ("a.jpg", None, "identical"),
        ("d.jpg", None, "identical"),
    ]


def test_gt_name_containing_2_wins_over_a_split(dirs: tuple[Path, Path]) -> None:
    pred, gt = dirs
    touch(pred, "c_2_d.png")  # is the ground truth c_2_d.jpg, not "c -> d"
    (match,) = match_predictions(pred, gt)
    assert (match.gt.name, match.naming) == ("c_2_d.jpg", "identical")


def test_unmatched_predictions_are_listed(dirs: tuple[Path, Path]) -> None:
    pred, gt = dirs
    touch(pred, "a_2_b.png", "a_2_zzz.png", "lonely.png")
    with pytest.raises(MatchError, match=r"2 prediction\(s\).*a_2_zzz\.png, lonely\.png"):
        match_predictions(pred, gt)


def test_ambiguous_and_duplicate_names(tmp_path: Path) -> None:
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    touch(gt, "b.jpg", "2_b.jpg", "x.jpg", "x.png")
    touch(pred, "a_2_2_b.png")  # "a" -> "2_b" or "a_2" -> "b"
    with pytest.raises(MatchError, match=r"ambiguous.*a_2_2_b\.png"):
        match_predictions(pred, gt)
    touch(pred, "y_2_x.png")
    (pred / "a_2_2_b.png").unlink()
    with pytest.raises(MatchError, match=r"ambiguous.*x\.jpg / x\.png"):
        match_predictions(pred, gt)
    touch(pred, "y_2_x.jpg")
    with pytest.raises(MatchError, match="differ only by extension"):
        match_predictions(pred, gt)


def test_pairs_restrict_and_check(
    dirs: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    pred, gt = dirs
    touch(pred, "a_2_b.png")
    pairs = [("a.jpg", "b.jpg"), ("b.jpg", "a.jpg")]
    with pytest.raises(MatchError, match=r"1 listed pair\(s\) have no prediction: b_2_a"):
        match_predictions(pred, gt, pairs)
    with caplog.at_level(logging.WARNING):
        assert len(match_predictions(pred, gt, pairs, allow_missing=True)) == 1
    assert "b_2_a" in caplog.text
    touch(pred, "d_2_a.png")  # a valid GFLA name, but not a listed pair
    with pytest.raises(MatchError, match=r"listed in the pair file.*d_2_a\.png"):
        match_predictions(pred, gt, pairs, allow_missing=True)


def test_empty_or_missing_folders(tmp_path: Path) -> None:
    touch(tmp_path / "gt", "a.jpg")
    touch(tmp_path / "pred", "readme.txt")
    with pytest.raises(MatchError, match="no prediction images"):
        match_predictions(tmp_path / "pred", tmp_path / "gt")
    with pytest.raises(NotADirectoryError, match="nothere"):
        match_predictions(tmp_path / "nothere", tmp_path / "gt")


def test_strip_extension() -> None:
    assert strip_extension("a.b.JPG") == "a.b"
    assert strip_extension("a.b") == "a.b"
