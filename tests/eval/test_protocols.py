"""Named evaluation protocols: definitions and their descriptions."""

from __future__ import annotations

import pytest

from posetransfer.eval.protocols import EVAL_PROTOCOLS, get_eval_protocol, list_eval_protocols
from posetransfer.eval.ssim import GAUSSIAN_GEN_RANGE, UNIFORM_51


def test_required_protocols_exist() -> None:
    for name in ("deepfashion-256x176-crop", "deepfashion-256x256", "deepfashion-resize"):
        assert name in EVAL_PROTOCOLS
    assert "market-128x64" in list_eval_protocols()
    assert list_eval_protocols() == sorted(EVAL_PROTOCOLS)


def test_patn_legacy_pads_white_and_uses_gen_range() -> None:
    p = get_eval_protocol("deepfashion-256x176-crop")
    assert (p.size, p.resize, p.ssim_pad_white) == ((256, 176), False, 40)
    assert p.ssim[0] == ("ssim", GAUSSIAN_GEN_RANGE) and p.unpadded_key == "ssim_unpadded"
    assert not p.masks


def test_gfla_and_resize_report_both_ssims() -> None:
    for name, size, resize in (
        ("deepfashion-256x256", (256, 256), False),
        ("deepfashion-resize", (256, 176), True),
    ):
        p = get_eval_protocol(name)
        assert (p.size, p.resize) == (size, resize)
        assert dict(p.ssim) == {"ssim": UNIFORM_51, "ssim_256": GAUSSIAN_GEN_RANGE}


def test_market_has_masks() -> None:
    p = get_eval_protocol("market-128x64")
    assert (p.size, p.resize, p.masks) == ((128, 64), False, True)
    assert p.ssim[0] == ("ssim", GAUSSIAN_GEN_RANGE)


@pytest.mark.parametrize("name", sorted(EVAL_PROTOCOLS))
def test_describe_states_every_definition(name: str) -> None:
    p = EVAL_PROTOCOLS[name]
    text = p.describe()
    assert text.startswith(f"{name}: ")
    for key, spec in p.ssim:
        assert f"  {key}: {spec.describe()}" in text
    for fragment in ("psnr:", "[0, 1] scale", "lpips:", "[-1, 1]", "fid, kid:", "files:"):
        assert fragment in text
    assert ("white" in text) == bool(p.ssim_pad_white)
    assert ("mask_*" in text) == p.masks
    if p.size is not None:
        assert ("other sizes are resized" in text) == p.resize
        assert ("other sizes are an error" in text) == (not p.resize)


def test_unknown_protocol_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="market-128x64"):
        get_eval_protocol("deepfashion")
    p = EVAL_PROTOCOLS["native"]
    assert get_eval_protocol(p) is p
