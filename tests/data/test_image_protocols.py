"""Tests for posetransfer.data.image_protocols: the named protocols and the maps they plan."""

from __future__ import annotations

import pytest

from posetransfer.data.image_protocols import (
    PROTOCOLS,
    Affine,
    ImageProtocol,
    get_protocol,
    plan_transform,
)


def test_get_protocol_lists_valid_names_on_unknown() -> None:
    with pytest.raises(ValueError, match=r"deepfashion-256x176.*market-128x64.*native"):
        get_protocol("deepfashion-512")
    assert get_protocol("native") is PROTOCOLS["native"]
    assert all(p.source for p in PROTOCOLS.values())


def test_protocol_rejects_inconsistent_definitions() -> None:
    with pytest.raises(ValueError, match="crop_input_size"):
        ImageProtocol("bad", size=(8, 8), crop=(0, 0, 8, 8))
    with pytest.raises(ValueError, match="does not fit"):
        ImageProtocol("bad", size=(8, 8), crop=(0, 0, 9, 8), crop_input_size=(8, 8))


def test_plan_patn_crops_256x256_and_keeps_256x176() -> None:
    affine = plan_transform("deepfashion-256x176", (256, 256))
    assert affine.scale == (1.0, 1.0) and affine.offset == (-40.0, 0.0)
    assert affine.out_size == (256, 176)
    assert affine.crop_box == (40.0, 0.0, 216.0, 256.0)
    assert plan_transform("deepfashion-256x176", (256, 176)).is_identity


def test_plan_gfla_resizes_any_input() -> None:
    affine = plan_transform("deepfashion-256x256", (512, 352))
    assert affine.scale == pytest.approx((256 / 352, 0.5))
    assert affine.offset == (0.0, 0.0) and affine.out_size == (256, 256)


@pytest.mark.parametrize(
    ("name", "size"), [("market-128x64", (128, 66)), ("deepfashion-256x176", (256, 200))]
)
def test_plan_refuses_unexpected_sizes_naming_them(name: str, size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match=rf"{name}.*{size[0]}x{size[1]}"):
        plan_transform(name, size)


def test_native_is_identity_for_any_size() -> None:
    assert plan_transform("native", (17, 5)) == Affine.identity((17, 5))
