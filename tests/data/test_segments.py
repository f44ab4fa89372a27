"""posetransfer.data.segments: time-disjoint and person-disjoint splits."""

from __future__ import annotations

import pytest

from posetransfer.data.segments import person_split, time_segments


def test_time_segments_every_second_frame() -> None:
    indices = list(range(0, 100, 2))  # 50 kept frames of a 100-frame video
    segments = time_segments(indices, 0.2, gap=15)
    test = [i for i, s in zip(indices, segments, strict=True) if s == "test"]
    train = [i for i, s in zip(indices, segments, strict=True) if s == "train"]
    gap = [i for i, s in zip(indices, segments, strict=True) if s == "gap"]
    assert test == list(range(80, 100, 2))  # round(0.2 * 50) = 10 frames
    assert train == list(range(0, 65, 2)) and gap == list(range(66, 80, 2))
    assert test[0] - train[-1] - 1 >= 15  # at least `gap` frames strictly between
    assert test[0] - (train[-1] + 2) - 1 < 15  # and the next kept frame would be too close
    assert segments == sorted(segments, key=["train", "gap", "test"].index)


@pytest.mark.parametrize("gap", [0, 1, 7, 30])
def test_gap_is_always_respected(gap: int) -> None:
    indices = list(range(3, 300, 7))
    segments = time_segments(indices, 0.3, gap)
    train = [i for i, s in zip(indices, segments, strict=True) if s == "train"]
    test = [i for i, s in zip(indices, segments, strict=True) if s == "test"]
    assert test and train and test[0] - train[-1] - 1 >= gap


def test_short_and_trainonly_sequences() -> None:
    assert time_segments([0, 1, 2], 0.0, 5) == ["train"] * 3
    assert time_segments([4], 0.5, 0) == ["train"]
    assert time_segments([0, 1], 0.1, 0) == ["train", "test"]  # at least one test frame
    assert time_segments([], 0.2, 3) == []


def test_time_segments_refuse_bad_input() -> None:
    with pytest.raises(ValueError, match="increasing"):
        time_segments([0, 4, 4], 0.2, 0)
    with pytest.raises(ValueError, match="test_fraction"):
        time_segments([0, 1], 1.0, 0)
    with pytest.raises(ValueError, match="gap"):
        time_segments([0, 1], 0.5, -1)


def test_person_split() -> None:
    names = ["dan", "ann", "cat", "bob", "ann"]
    assert person_split(names, 0.5) == {"ann": "train", "bob": "train", "cat": "test",
                                        "dan": "test"}  # fmt: skip
    assert person_split(["a", "b"], 0.01) == {"a": "train", "b": "test"}  # at least one
    assert person_split(["a", "b"], 0.99) == {"a": "train", "b": "test"}  # never all
    assert person_split(names, 0.5, ["ann"])["ann"] == "test"
    with pytest.raises(ValueError, match="at least two"):
        person_split(["a", "a"], 0.5)
    with pytest.raises(ValueError, match="not among"):
        person_split(["a", "b"], 0.5, ["zed"])
    with pytest.raises(ValueError, match="none left"):
        person_split(["a", "b"], 0.5, ["a", "b"])
    with pytest.raises(ValueError, match="test_fraction"):
        person_split(["a", "b"], 0.0)
