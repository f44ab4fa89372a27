"""Tests of posetransfer.data.splits: identities from names and the held-out carve."""

from __future__ import annotations

import itertools

import pytest

from posetransfer.data.splits import PairSubset, carve_validation, identity_of


@pytest.mark.parametrize(
    ("name", "person"),
    [
        ("fashionMENDenimid0000008001_1front.jpg", "fashionMENDenimid00000080"),
        ("fashionWOMENDressesid0000726602_7additional.jpg", "fashionWOMENDressesid00007266"),
        ("synthPERSONid00000012_3side.png", "synthPERSONid00000012"),
        ("0002_c1s1_000451_03.jpg", "0002"),
        ("1501_c6s4_001877_01.jpg", "1501"),
        ("image.png", None),
        ("_c1s1.jpg", None),
    ],
)
def test_identity_of(name: str, person: str | None) -> None:
    assert identity_of(name) == person


def _pairs(people: int, poses: int, fmt: str = "{p:04d}_c1s1_{k:06d}_01.jpg") -> list:
    names = [[fmt.format(p=p, k=k) for k in range(poses)] for p in range(people)]
    return [pair for group in names for pair in itertools.permutations(group, 2)]


def test_validation_people_are_disjoint_from_training_people() -> None:
    pairs = _pairs(people=40, poses=3)
    split = carve_validation(pairs, 0.1, seed=5)
    assert sorted(split.train + split.val) == list(range(len(pairs)))
    val_people = {identity_of(pairs[i][0]) for i in split.val}
    train_people = {identity_of(pairs[i][0]) for i in split.train}
    assert len(val_people) == 4 and not val_people & train_people
    assert sorted(val_people) == split.val_groups and split.num_groups == 40
    assert len(split.val) == 4 * 6  # all ordered pairs of the held-out people
    assert split.image_grouped == 0


def test_the_carve_depends_on_the_seed_only() -> None:
    pairs = _pairs(people=30, poses=2)
    a = carve_validation(pairs, 0.2, seed=1)
    assert carve_validation(list(reversed(pairs)), 0.2, seed=1).val_groups == a.val_groups
    assert carve_validation(pairs, 0.2, seed=2).val_groups != a.val_groups


def test_cap_draws_a_subset_and_keeps_the_rest_out_of_training() -> None:
    pairs = _pairs(people=20, poses=4)  # 12 pairs per person
    full = carve_validation(pairs, 0.25, seed=0)
    capped = carve_validation(pairs, 0.25, seed=0, max_pairs=7)
    assert len(full.val) == 60 and len(capped.val) == 7
    assert set(capped.val) < set(full.val)
    assert capped.train == full.train  # the dropped validation pairs do not return


def test_names_without_identity_fall_back_to_the_source_image() -> None:
    pairs = [(f"img{i}.png", f"img{i + 1}.png") for i in range(10)]
    split = carve_validation(pairs, 0.2, by="identity")
    assert split.image_grouped == 10 and split.num_groups == 10 and len(split.val) == 2
    by_image = carve_validation(_pairs(people=5, poses=2), 0.5, by="image")
    assert by_image.num_groups == 10 and by_image.image_grouped == 0


def test_zero_fraction_keeps_everything_for_training() -> None:
    split = carve_validation(_pairs(people=3, poses=2), 0.0)
    assert split.val == [] and split.train == list(range(6))


def test_bad_arguments() -> None:
    pairs = _pairs(people=3, poses=2)
    with pytest.raises(ValueError, match="fraction must be in"):
        carve_validation(pairs, 1.0)
    with pytest.raises(ValueError, match="grouping must be"):
        carve_validation(pairs, 0.1, by="person")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max validation pairs"):
        carve_validation(pairs, 0.1, max_pairs=0)
    with pytest.raises(ValueError, match="form 1 group"):
        carve_validation(_pairs(people=1, poses=3), 0.5)


def test_at_least_one_group_is_held_out_and_one_kept() -> None:
    pairs = _pairs(people=3, poses=2)
    assert len(carve_validation(pairs, 0.01).val_groups) == 1
    assert len(carve_validation(pairs, 0.99).val_groups) == 2


class _Data:
    def __init__(self) -> None:
        self.epochs: list[int] = []

    def __getitem__(self, i: int) -> int:
        return 10 * i

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)


def test_pair_subset_maps_indices_and_forwards_epochs() -> None:
    base = _Data()
    subset = PairSubset(base, [3, 1])
    assert len(subset) == 2 and [subset[0], subset[1]] == [30, 10]
    subset.set_epoch(4)
    assert base.epochs == [4]
    PairSubset([1, 2, 3], [0]).set_epoch(1)  # a base without set_epoch is fine
