"""Tests for posetransfer.ops.warp: conventions, exact cases, reference agreement, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from posetransfer.conventions import Visibility
from posetransfer.ops.warp import (
    flip_flow,
    flow_pyramid,
    flow_to_grid,
    masked_epe,
    pixel_grid,
    resize_flow,
    visibility_pyramid,
    warp,
    warp_reference,
)

VIS, INV, BG = int(Visibility.VISIBLE), int(Visibility.INVISIBLE), int(Visibility.BACKGROUND)


def _random_flow(rng: np.random.Generator, shape: tuple[int, ...], scale: float) -> torch.Tensor:
    return torch.from_numpy(rng.uniform(-scale, scale, size=shape).astype(np.float32))


# --- grids -------------------------------------------------------------------------------------


def test_pixel_grid_holds_pixel_centres() -> None:
    grid = pixel_grid(2, 3, dtype=torch.float64)
    assert grid.shape == (1, 2, 2, 3) and grid.dtype == torch.float64
    assert grid[0, 0].tolist() == [[0.5, 1.5, 2.5], [0.5, 1.5, 2.5]]  # x = j + 0.5
    assert grid[0, 1].tolist() == [[0.5, 0.5, 0.5], [1.5, 1.5, 1.5]]  # y = i + 0.5


def test_flow_to_grid_normalises_by_source_size() -> None:
    flow = torch.zeros(1, 2, 2, 3)
    flow[:, 0] = 1.0  # dx
    flow[:, 1] = -0.5  # dy
    grid = flow_to_grid(flow, src_size=(4, 6))
    assert grid.shape == (1, 2, 3, 2)
    expected_x = [2 * (j + 0.5 + 1.0) / 6 - 1 for j in range(3)]
    expected_y = [2 * (i + 0.5 - 0.5) / 4 - 1 for i in range(2)]
    torch.testing.assert_close(grid[0, 0, :, 0], torch.tensor(expected_x))
    torch.testing.assert_close(grid[0, :, 0, 1], torch.tensor(expected_y))


def test_flow_to_grid_zero_flow_spans_pixel_centres_of_target() -> None:
    grid = flow_to_grid(torch.zeros(1, 2, 4, 8))
    # align_corners=False: the centre of the first pixel is half a pixel inside the -1 edge.
    assert grid[0, 0, 0].tolist() == [-1 + 1 / 8, -1 + 1 / 4]
    assert grid[0, -1, -1].tolist() == [1 - 1 / 8, 1 - 1 / 4]


def test_flow_to_grid_keeps_float32_precision_for_half_flow() -> None:
    assert flow_to_grid(torch.zeros(1, 2, 4, 4, dtype=torch.float16)).dtype == torch.float32


# --- exact cases -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
def test_zero_flow_returns_input_exactly(mode: str) -> None:
    # Power-of-two sizes: every normalised coordinate is exact (see the module docstring).
    x = torch.randn(2, 3, 16, 8)
    out = warp(x, torch.zeros(2, 2, 16, 8), mode=mode)
    assert torch.equal(out, x)


def test_zero_flow_is_identity_to_rounding_for_other_sizes() -> None:
    x = torch.randn(1, 3, 24, 22)
    torch.testing.assert_close(warp(x, torch.zeros(1, 2, 24, 22)), x, atol=1e-5, rtol=0)


def test_integer_shift_moves_pixels_exactly() -> None:
    x = torch.randn(2, 3, 8, 16)
    flow = torch.zeros(2, 2, 8, 16)
    flow[:, 0], flow[:, 1] = 2.0, -1.0  # target(i, j) = source(i - 1, j + 2)
    out = warp(x, flow)
    expected = torch.roll(x, shifts=(1, -2), dims=(2, 3))
    expected[:, :, 0, :] = 0  # row -1 of the source is outside
    expected[:, :, :, -2:] = 0  # columns W and W + 1 are outside
    assert torch.equal(out, expected)


def test_src_size_samples_a_higher_resolution_source() -> None:
    x = torch.randn(1, 3, 4, 8)
    x_hi = F.interpolate(x, scale_factor=2, mode="nearest")  # (1, 3, 8, 16)
    out = warp(x_hi, torch.zeros(1, 2, 4, 8), src_size=(4, 8))
    assert torch.equal(out, x)


# --- reference, gradients, dtypes --------------------------------------------------------------


def test_matches_reference_including_out_of_bounds(rng: np.random.Generator) -> None:
    x = torch.from_numpy(rng.standard_normal((2, 3, 7, 10)).astype(np.float32))
    flow = _random_flow(rng, (2, 2, 9, 13), scale=6.0)  # target larger than source, many outside
    out = warp(x, flow)
    assert out.shape == (2, 3, 9, 13)
    assert (out == 0).any()  # some samples fall fully outside
    torch.testing.assert_close(out, warp_reference(x, flow), atol=1e-5, rtol=0)


def test_gradcheck_x_and_flow(rng: np.random.Generator) -> None:
    shape = (1, 2, 4, 5)
    integer = rng.integers(-2, 3, size=shape)
    fraction = rng.uniform(0.2, 0.8, size=shape)  # away from the kinks at integer positions
    flow = torch.tensor(integer + fraction, dtype=torch.float64, requires_grad=True)
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, f: warp(a, f), (x, flow))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_source_samples_at_full_precision(dtype: torch.dtype) -> None:
    # A wide noise image: a low-precision grid would misplace samples by up to 0.25 px here, but
    # the only allowed error is the final rounding of the output to the source's dtype.
    x = torch.randn(1, 3, 4, 256).to(dtype)
    flow = torch.rand(1, 2, 4, 256) * 3 - 1.5
    out = warp(x, flow)
    assert out.dtype == dtype
    expected = warp(x.float(), flow)
    torch.testing.assert_close(out.float(), expected, atol=1e-2, rtol=1e-2)
    assert torch.equal(out, expected.to(dtype))


def test_runs_under_cpu_autocast() -> None:
    x = torch.randn(1, 3, 8, 8)
    flow = torch.rand(1, 2, 8, 8) * 3 - 1.5
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = warp(x.bfloat16(), flow.bfloat16())
    expected = warp(x.bfloat16().float(), flow.bfloat16().float())
    torch.testing.assert_close(out.float(), expected, atol=2e-2, rtol=1e-2)


@pytest.mark.gpu
def test_cuda_matches_cpu_and_runs_under_autocast() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    x, flow = torch.randn(2, 3, 16, 12), torch.randn(2, 2, 16, 12) * 3
    expected = warp(x, flow)
    torch.testing.assert_close(warp(x.cuda(), flow.cuda()).cpu(), expected, atol=1e-5, rtol=0)
    with torch.autocast("cuda", dtype=torch.float16):
        out = warp(x.cuda().half(), flow.cuda().half())
    torch.testing.assert_close(out.float().cpu(), expected, atol=0.05, rtol=0.05)


# --- errors ------------------------------------------------------------------------------------


def test_shape_errors_name_the_argument() -> None:
    x, flow = torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 4)
    with pytest.raises(ValueError, match=r"flow\.shape=\(1, 3, 4, 4\)"):
        warp(x, torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match=r"x\.shape=\(3, 4, 4\)"):
        warp(torch.zeros(3, 4, 4), flow)
    with pytest.raises(ValueError, match="batch sizes differ"):
        warp(torch.zeros(2, 3, 4, 4), flow)
    with pytest.raises(ValueError, match=r"x\.dtype=torch\.int64"):
        warp(torch.zeros(1, 3, 4, 4, dtype=torch.long), flow)
    with pytest.raises(ValueError, match=r"flow\.dtype"):
        warp(x, torch.zeros(1, 2, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="mode"):
        warp(x, flow, mode="area")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="padding_mode"):
        warp(x, flow, padding_mode="wrap")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="src_size"):
        flow_to_grid(flow, src_size=(0, 4))


# --- pyramids ----------------------------------------------------------------------------------


def test_flow_pyramid_of_constant_flow_is_divided_by_stride() -> None:
    flow = torch.empty(2, 2, 8, 16)
    flow[:, 0], flow[:, 1] = 1.5, -3.25
    pyramid = flow_pyramid(flow, levels=4)
    assert len(pyramid) == 4 and pyramid[0] is flow
    for level, coarse in enumerate(pyramid):
        stride = 2**level
        assert coarse.shape == (2, 2, 8 // stride, 16 // stride)
        assert torch.equal(coarse[:, 0], torch.full_like(coarse[:, 0], 1.5 / stride))
        assert torch.equal(coarse[:, 1], torch.full_like(coarse[:, 1], -3.25 / stride))


def test_flow_pyramid_averages_blocks() -> None:
    flow = torch.zeros(1, 2, 2, 4)
    flow[0, 0] = torch.tensor([[4.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    level1 = flow_pyramid(flow, 2)[1]
    assert level1[0, 0].tolist() == [[0.5, 0.5]]  # block means 1 and 1, halved


def test_pyramids_reject_indivisible_sizes() -> None:
    with pytest.raises(ValueError, match=r"flow spatial size \(H, W\)=\(6, 8\).*=4 for levels=3"):
        flow_pyramid(torch.zeros(1, 2, 6, 8), levels=3)
    with pytest.raises(ValueError, match="vis spatial size"):
        visibility_pyramid(torch.zeros(1, 6, 6, dtype=torch.long), levels=3)
    with pytest.raises(ValueError, match="levels"):
        flow_pyramid(torch.zeros(1, 2, 4, 4), levels=0)


@pytest.mark.parametrize("dtype", [torch.long, torch.uint8])
def test_visibility_pyramid_background_then_invisible_win(dtype: torch.dtype) -> None:
    vis = torch.full((1, 4, 4), VIS, dtype=dtype)
    vis[0, 0, 1] = BG  # top-left block: one background pixel
    vis[0, 1, 3] = INV  # top-right block: one invisible pixel
    vis[0, 2, 0], vis[0, 3, 1] = INV, BG  # bottom-left block: both
    pyramid = visibility_pyramid(vis, levels=3)
    assert pyramid[0] is vis
    assert pyramid[1].dtype == dtype
    assert pyramid[1][0].tolist() == [[BG, INV], [BG, VIS]]
    assert pyramid[2][0].tolist() == [[BG]]


def test_visibility_pyramid_rejects_float_codes() -> None:
    with pytest.raises(ValueError, match=r"vis\.dtype=torch\.float32"):
        visibility_pyramid(torch.zeros(1, 4, 4), levels=2)


# --- resize, flip, epe -------------------------------------------------------------------------


def test_resize_flow_scales_constant_flow_per_axis() -> None:
    flow = torch.empty(1, 2, 8, 12)
    flow[:, 0], flow[:, 1] = 3.0, -2.0
    for mode in ("bilinear", "nearest"):
        out = resize_flow(flow, (4, 18), mode=mode)  # type: ignore[arg-type]
        assert out.shape == (1, 2, 4, 18)
        torch.testing.assert_close(out[:, 0], torch.full((1, 4, 18), 3.0 * 18 / 12))
        torch.testing.assert_close(out[:, 1], torch.full((1, 4, 18), -2.0 * 4 / 8))


def test_resize_flow_halving_an_affine_flow() -> None:
    # F(u) = A u + b on pixel centres; resized by s = 1/2 it must be F'(u') = A u' + b / 2.
    a = torch.tensor([[0.1, -0.2], [0.3, 0.05]])
    b = torch.tensor([1.0, -2.0])
    centres = pixel_grid(8, 12)[0]  # (2, H, W)

    def affine(grid: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        return (torch.einsum("ck,khw->chw", a, grid) + offset.view(2, 1, 1)).unsqueeze(0)

    out = resize_flow(affine(centres, b), (4, 6))
    torch.testing.assert_close(out, affine(pixel_grid(4, 6)[0], b / 2))


def test_resize_flow_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="size"):
        resize_flow(torch.zeros(1, 2, 4, 4), (4,))
    with pytest.raises(ValueError, match="mode"):
        resize_flow(torch.zeros(1, 2, 4, 4), (2, 2), mode="bicubic")  # type: ignore[arg-type]


@pytest.mark.parametrize("src_width", [12, 20])
def test_flip_flow_commutes_with_mirroring(rng: np.random.Generator, src_width: int) -> None:
    src = torch.from_numpy(rng.standard_normal((2, 3, 8, src_width)).astype(np.float32))
    flow = _random_flow(rng, (2, 2, 8, 12), scale=5.0)
    mirrored = warp(torch.flip(src, dims=(-1,)), flip_flow(flow, src_width=src_width))
    torch.testing.assert_close(mirrored, torch.flip(warp(src, flow), dims=(-1,)), atol=1e-5, rtol=0)


def test_flip_flow_is_an_involution_and_negates_dx() -> None:
    flow = torch.randn(1, 2, 3, 5)
    flipped = flip_flow(flow)
    assert torch.equal(flipped[:, 0], -torch.flip(flow[:, 0], dims=(-1,)))
    assert torch.equal(flipped[:, 1], torch.flip(flow[:, 1], dims=(-1,)))
    assert torch.equal(flip_flow(flipped), flow)


def test_masked_epe_hand_computed() -> None:
    gt = torch.zeros(1, 2, 1, 3)
    pred = gt.clone()
    pred[0, :, 0, 0] = torch.tensor([3.0, 4.0])  # EPE 5
    pred[0, :, 0, 2] = torch.tensor([1.0, 0.0])  # EPE 1
    assert masked_epe(pred, gt, torch.tensor([[[True, True, False]]])).item() == 2.5
    assert masked_epe(pred, gt, torch.tensor([[[[1.0, 0.0, 1.0]]]])).item() == 3.0
    assert masked_epe(pred, gt, torch.zeros(1, 1, 3, dtype=torch.bool)).item() == 0.0


def test_masked_epe_gradient_is_finite_at_zero_error() -> None:
    pred = torch.zeros(1, 2, 2, 2, requires_grad=True)
    masked_epe(pred, torch.zeros(1, 2, 2, 2), torch.ones(1, 2, 2)).backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()


def test_masked_epe_shape_errors() -> None:
    flow = torch.zeros(1, 2, 2, 2)
    with pytest.raises(ValueError, match=r"mask\.shape=\(1, 3, 2\)"):
        masked_epe(flow, flow, torch.ones(1, 3, 2))
    with pytest.raises(ValueError, match=r"flow_gt\.shape"):
        masked_epe(flow, torch.zeros(1, 2, 2, 3), torch.ones(1, 2, 2))
