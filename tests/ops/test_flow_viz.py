"""Tests for posetransfer.ops.flow_viz: colour coding, palettes, panels, PNG, value conversion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from posetransfer.conventions import Visibility
from posetransfer.io import save_png, tensor_to_uint8, uint8_to_tensor
from posetransfer.ops.flow_viz import (
    VISIBILITY_COLORS,
    flow_to_color,
    flow_wheel_legend,
    make_panel,
    visibility_to_color,
)


def _vectors(*uv: tuple[float, float]) -> np.ndarray:
    """A ``(2, 1, N)`` flow holding the given ``(dx, dy)`` vectors side by side."""
    return np.array(uv, dtype=np.float64).T[:, None, :]


# --- flow colours ------------------------------------------------------------------------------


def test_zero_flow_is_white() -> None:
    assert (flow_to_color(np.zeros((2, 3, 4))) == 255).all()
    assert (flow_to_color(torch.zeros(3, 4, 2), max_magnitude=5.0) == 255).all()


def test_plus_x_at_max_magnitude_is_pure_red() -> None:
    # Middlebury wheel: direction +x is the first wheel entry (255, 0, 0).
    colors = flow_to_color(_vectors((2.0, 0.0), (4.0, 0.0)), max_magnitude=2.0)
    assert colors[0, 0].tolist() == [255, 0, 0]
    assert colors[0, 1].tolist() == [255, 0, 0]  # beyond the maximum: saturated, not darker


def test_saturation_grows_with_magnitude_up_to_max() -> None:
    direction = np.array([0.6, 0.8])
    flow = _vectors(*(tuple(direction * m) for m in (0.5, 1.0, 2.0, 3.0)))
    colors = flow_to_color(flow, max_magnitude=2.0)[0].astype(int)
    whiteness = colors.sum(axis=1)
    assert whiteness[0] > whiteness[1] > whiteness[2]
    assert colors[2].tolist() == colors[3].tolist()


def test_opposite_directions_have_different_hues() -> None:
    angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    forward = _vectors(*[(np.cos(a), np.sin(a)) for a in angles])
    colors = flow_to_color(forward, max_magnitude=1.0).astype(int)
    opposite = flow_to_color(-forward, max_magnitude=1.0).astype(int)
    assert (np.abs(colors - opposite).sum(axis=-1) > 150).all()


def test_color_depends_on_direction_and_relative_magnitude_only(rng: np.random.Generator) -> None:
    flow = rng.normal(size=(2, 5, 6))
    assert np.array_equal(flow_to_color(flow), flow_to_color(flow * 8.0))
    assert np.array_equal(flow_to_color(flow, 3.0), flow_to_color(flow * 0.25, 0.75))


def test_default_max_is_largest_magnitude(rng: np.random.Generator) -> None:
    flow = rng.normal(size=(2, 5, 6))
    largest = float(np.hypot(flow[0], flow[1]).max())
    assert np.array_equal(flow_to_color(flow), flow_to_color(flow, largest))


def test_channel_layouts_and_types_agree(rng: np.random.Generator) -> None:
    flow = rng.normal(size=(2, 4, 5)).astype(np.float32)
    chw = flow_to_color(flow)
    assert chw.shape == (4, 5, 3) and chw.dtype == np.uint8
    assert np.array_equal(chw, flow_to_color(flow.transpose(1, 2, 0)))
    assert np.array_equal(chw, flow_to_color(torch.from_numpy(flow)))


def test_non_finite_vectors_are_black() -> None:
    colors = flow_to_color(_vectors((np.nan, 0.0), (1.0, np.inf), (1.0, 0.0)))
    assert colors[0, :2].tolist() == [[0, 0, 0], [0, 0, 0]]
    assert colors[0, 2].tolist() == [255, 0, 0]


def test_flow_to_color_errors() -> None:
    with pytest.raises(ValueError, match=r"flow\.shape=\(3, 4, 5\)"):
        flow_to_color(np.zeros((3, 4, 5)))
    with pytest.raises(ValueError, match="max_magnitude"):
        flow_to_color(np.zeros((2, 4, 5)), max_magnitude=0.0)


def test_wheel_legend() -> None:
    legend = flow_wheel_legend(32)
    assert legend.shape == (32, 32, 3) and legend.dtype == np.uint8
    assert legend[0, 0].tolist() == [255, 255, 255]  # outside the disc
    assert legend[16, 16].min() > 230  # near the centre: almost no motion, almost white
    right = legend[16, 31].astype(int)  # rim, pointing +x: almost pure red
    assert right[0] == 255 and right[1] < 40 and right[2] < 40
    assert not np.array_equal(legend[16, 31], legend[16, 0])


# --- visibility --------------------------------------------------------------------------------


def test_visibility_palette() -> None:
    vis = torch.tensor([[0, 1], [2, 0]])
    colors = visibility_to_color(vis)
    assert colors.shape == (2, 2, 3) and colors.dtype == np.uint8
    assert colors[0, 0].tolist() == list(VISIBILITY_COLORS[Visibility.VISIBLE])
    assert colors[0, 1].tolist() == list(VISIBILITY_COLORS[Visibility.INVISIBLE])
    assert colors[1, 0].tolist() == list(VISIBILITY_COLORS[Visibility.BACKGROUND])
    assert np.array_equal(colors, visibility_to_color(vis.numpy().astype(np.uint8)))
    assert len({VISIBILITY_COLORS[v] for v in Visibility}) == len(Visibility)


def test_visibility_errors() -> None:
    with pytest.raises(ValueError, match=r"\[3, 7\]"):
        visibility_to_color(np.array([[0, 3], [7, 1]]))
    with pytest.raises(ValueError, match="integer"):
        visibility_to_color(np.zeros((2, 2), dtype=np.float32))


# --- panels and files --------------------------------------------------------------------------


def test_panel_layout_without_labels() -> None:
    a = np.full((5, 3, 3), 10, dtype=np.uint8)
    b = np.full((7, 4, 3), 20, dtype=np.uint8)
    panel = make_panel([a, b], pad=2)
    assert panel.shape == (2 + 7 + 2, 3 + 4 + 3 * 2, 3)
    assert np.array_equal(panel[2:7, 2:5], a)
    assert np.array_equal(panel[2:9, 7:11], b)
    assert (panel[7:, 2:5] == 255).all()  # below the shorter image
    assert (panel[:, :2] == 255).all() and (panel[:, 5:7] == 255).all()


def test_panel_labels_add_a_band_with_text() -> None:
    images = [np.zeros((8, 40, 3), dtype=np.uint8), np.zeros((8, 30, 3), dtype=np.uint8)]
    plain = make_panel(images, pad=4)
    labelled = make_panel(images, labels=["src", "tgt"], pad=4)
    assert labelled.shape[1] == plain.shape[1] == 40 + 30 + 3 * 4
    band = labelled.shape[0] - plain.shape[0]
    assert band > 4
    assert (labelled[4 : 4 + band - 4, 4:44] < 128).any()  # dark text pixels above image 0
    assert np.array_equal(labelled[band + 4 : band + 12, 4:44], images[0])


def test_panel_errors() -> None:
    good = np.zeros((4, 4, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"images\[1\] must be uint8"):
        make_panel([good, good.astype(np.float32)])
    with pytest.raises(ValueError, match=r"images\[0\] must be an \(H, W, 3\)"):
        make_panel([good[..., 0]])
    with pytest.raises(ValueError, match="2 labels for 1 images"):
        make_panel([good], labels=["a", "b"])
    with pytest.raises(ValueError, match="at least one"):
        make_panel([])


def test_save_png_round_trip(tmp_path: Path, rng: np.random.Generator) -> None:
    image = rng.integers(0, 256, size=(6, 9, 3), dtype=np.uint8)
    path = tmp_path / "sub" / "panel.png"
    save_png(path, image)
    with Image.open(path) as loaded:
        assert np.array_equal(np.asarray(loaded.convert("RGB")), image)
    assert sorted(p.name for p in path.parent.iterdir()) == ["panel.png"]  # no temp leftovers
    with pytest.raises(ValueError, match="image must be uint8"):
        save_png(tmp_path / "bad.png", image.astype(np.int64))
    assert not (tmp_path / "bad.png").exists()


# --- value convention --------------------------------------------------------------------------


def test_uint8_round_trip_is_exact_for_every_value() -> None:
    values = np.arange(256, dtype=np.uint8)
    image = np.stack([values, values[::-1], np.roll(values, 7)], axis=-1).reshape(16, 16, 3)
    tensor = uint8_to_tensor(image)
    assert tensor.shape == (3, 16, 16) and tensor.dtype == torch.float32
    assert tensor.min().item() == -1.0 and tensor.max().item() == 1.0
    assert np.array_equal(tensor_to_uint8(tensor), image)
    assert torch.equal(uint8_to_tensor(tensor_to_uint8(tensor)), tensor)


def test_read_only_and_strided_images_convert_without_warnings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    frozen = image.copy()
    frozen.flags.writeable = False  # as np.asarray(PIL image)
    from_numpy = torch.from_numpy

    def writable_only(array: np.ndarray) -> torch.Tensor:
        # torch warns (once per process) on read-only arrays; never hand it one
        assert array.flags.writeable and array.flags.c_contiguous
        return from_numpy(array)

    monkeypatch.setattr(torch, "from_numpy", writable_only)
    assert np.array_equal(tensor_to_uint8(uint8_to_tensor(frozen)), image)
    assert np.array_equal(tensor_to_uint8(uint8_to_tensor(image[:, ::2])), image[:, ::2])
    assert not frozen.flags.writeable  # the caller's array is untouched


def test_tensor_to_uint8_maps_range_and_clips() -> None:
    img = torch.tensor([-1.0, 0.0, 1.0, -3.0, 2.0]).view(1, 1, 5).expand(3, 1, 5)
    assert tensor_to_uint8(img)[0, :, 0].tolist() == [0, 128, 255, 0, 255]  # 127.5 rounds to 128


def test_conversion_errors() -> None:
    with pytest.raises(ValueError, match=r"img\.shape=\(1, 4, 4\)"):
        tensor_to_uint8(torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="floating point"):
        tensor_to_uint8(torch.zeros(3, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="img must be uint8"):
        uint8_to_tensor(np.zeros((4, 4, 3), dtype=np.float32))
