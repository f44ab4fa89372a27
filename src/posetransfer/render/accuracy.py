"""Accuracy of flow synthesis on synthetic ground truth (shared by the tests and the benchmark).

The truth: Anny bodies in plausible poses (:func:`posetransfer.body.sample_pose`) at yaws
spread over the full circle, framed in the image by a weak-perspective camera. Their 18
keypoints are projected and fitted from the keypoints alone; the flow of each pair rendered
from the fitted bodies is compared with the flow of the true bodies (:func:`fit_accuracy`).

A second check needs no fit: the *true* flow must carry the appearance of the source onto the
target. :func:`textured_warp_error` paints both renders with a smooth texture of the rest-pose
surface position (so the texture sticks to the body), warps the source by the flow and compares
with the target on VISIBLE pixels.

Pairs are ``(k, k + 1 mod B)`` over the ``B`` sampled bodies: two different poses (and yaws) of
the same average body shape, as a pose-transfer pair shows one person twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from posetransfer.body.anny_model import BodyModel
from posetransfer.body.camera import project
from posetransfer.body.fitting import FitConfig, fit_keypoints
from posetransfer.body.params import BodyParams
from posetransfer.body.poses import POSE_KINDS, sample_pose
from posetransfer.conventions import Visibility
from posetransfer.ops.warp import warp
from posetransfer.render.bodies import body_image_vertices
from posetransfer.render.correspondence import DEFAULT_DEPTH_TOLERANCE_M, FlowField, render_pair
from posetransfer.render.rasterize import Fragments, rasterize

__all__ = [
    "AccuracyReport",
    "SyntheticViews",
    "fit_accuracy",
    "flow_agreement",
    "rest_texture",
    "synthetic_views",
    "textured_warp_error",
]


@dataclass(frozen=True)
class SyntheticViews:
    """True bodies, their cameras and keypoints.

    Attributes:
        params: ``B`` true bodies.
        camera: ``(B, 3)`` cameras ``(log s, tx, ty)``.
        keypoints: ``(B, 18, 2)`` projected keypoints (pixels).
        size: ``(H, W)`` of the images.
    """

    params: BodyParams
    camera: Tensor
    keypoints: Tensor
    size: tuple[int, int]


def synthetic_views(
    model: BodyModel,
    generator: torch.Generator,
    batch: int,
    size: tuple[int, int] = (256, 176),
    *,
    kinds: tuple[str, ...] = POSE_KINDS,
    fill: float = 0.8,
) -> SyntheticViews:
    """Sample bodies at yaws spread evenly over 360 degrees and frame each in the image.

    Args:
        model: The body model.
        generator: Randomness (reproducible when seeded).
        batch: Number of bodies ``B``; body ``k`` has kind ``kinds[k % len(kinds)]`` and a yaw
            drawn in one of ``B`` equal sectors of the circle (a random permutation of the
            sectors, so consecutive bodies differ in yaw by random amounts).
        size: ``(H, W)``.
        fill: Fraction of the image height the body's vertical extent covers (0.8 +- 0.05).

    Returns:
        The views; every body lies inside the image with a margin.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    height, width = size
    sectors = torch.randperm(batch, generator=generator).tolist()
    items = []
    for k in range(batch):
        low = -math.pi + 2 * math.pi * sectors[k] / batch
        kind = kinds[k % len(kinds)]
        items.append(sample_pose(generator, 1, kind, (low, low + 2 * math.pi / batch)))  # type: ignore[arg-type]
    params = BodyParams.cat(items)
    with torch.no_grad():
        verts = model(params)
    x, z = verts[..., 0], verts[..., 2]
    extent = (z.amax(1) - z.amin(1)).clamp(min=1e-3)
    jitter = torch.rand(batch, 3, generator=generator) * 2 - 1
    scale = (fill + 0.05 * jitter[:, 0]) * height / extent
    tx = width / 2 - scale * (x.amax(1) + x.amin(1)) / 2 + 0.03 * width * jitter[:, 1]
    ty = height / 2 + scale * (z.amax(1) + z.amin(1)) / 2 + 0.02 * height * jitter[:, 2]
    camera = torch.stack([scale.log(), tx, ty], dim=1)
    keypoints = project(model.keypoints18(verts), camera)[..., :2]
    return SyntheticViews(params, camera, keypoints, (int(height), int(width)))


def flow_agreement(fitted: FlowField, true: FlowField) -> dict[str, Tensor]:
    """Per-pair agreement of a flow field with the true one.

    Args:
        fitted: ``B`` flows rendered from fitted bodies.
        true: ``B`` flows of the true bodies, same size.

    Returns:
        ``(B,)`` tensors: ``epe_mean`` and ``epe_median`` (pixels, over pixels that are body in
        both targets), ``visibility_agreement`` (fraction of the true target's body pixels
        with the same 3-class code; fitted background counts as a disagreement) and
        ``silhouette_iou`` of the two target silhouettes.
    """
    if fitted.flow.shape != true.flow.shape:
        raise ValueError(
            f"flow shapes differ: {tuple(fitted.flow.shape)} vs {tuple(true.flow.shape)}"
        )
    fg_true = true.visibility != Visibility.BACKGROUND
    fg_fit = fitted.visibility != Visibility.BACKGROUND
    both = fg_true & fg_fit
    epe = (fitted.flow - true.flow).norm(dim=1)
    out: dict[str, list[Tensor]] = {k: [] for k in ("epe_mean", "epe_median")}
    for b in range(len(epe)):
        values = epe[b][both[b]]
        out["epe_mean"].append(values.mean() if values.numel() else epe.new_tensor(math.nan))
        out["epe_median"].append(values.median() if values.numel() else epe.new_tensor(math.nan))
    same = (fitted.visibility == true.visibility) & fg_true
    return {
        "epe_mean": torch.stack(out["epe_mean"]),
        "epe_median": torch.stack(out["epe_median"]),
        "visibility_agreement": same.sum((1, 2)) / fg_true.sum((1, 2)).clamp(min=1),
        "silhouette_iou": both.sum((1, 2)) / (fg_true | fg_fit).sum((1, 2)).clamp(min=1),
    }


@dataclass(frozen=True)
class AccuracyReport:
    """Fitted-vs-true accuracy over synthetic views.

    Attributes:
        reprojection_error_px: ``(B,)`` mean keypoint error of each fit.
        converged: ``(B,)`` bool.
        epe_mean: ``(P,)`` per-pair mean end-point error (pixels).
        epe_median: ``(P,)`` per-pair median end-point error.
        visibility_agreement: ``(P,)`` per-pair 3-class agreement on the true body pixels.
        silhouette_iou: ``(P,)`` per-pair target silhouette IoU.
        true_flow_magnitude: ``(P,)`` mean true flow magnitude on the body (for scale).
    """

    reprojection_error_px: Tensor
    converged: Tensor
    epe_mean: Tensor
    epe_median: Tensor
    visibility_agreement: Tensor
    silhouette_iou: Tensor
    true_flow_magnitude: Tensor

    def summary(self) -> dict[str, float]:
        """Scalar figures: medians and means over images or pairs."""
        return {
            "reprojection_median_px": float(self.reprojection_error_px.median()),
            "reprojection_max_px": float(self.reprojection_error_px.max()),
            "converged_fraction": float(self.converged.float().mean()),
            "epe_mean_px": float(self.epe_mean.mean()),
            "epe_median_px": float(self.epe_median.median()),
            "visibility_agreement_mean": float(self.visibility_agreement.mean()),
            "visibility_agreement_median": float(self.visibility_agreement.median()),
            "silhouette_iou_mean": float(self.silhouette_iou.mean()),
            "silhouette_iou_median": float(self.silhouette_iou.median()),
            "true_flow_magnitude_px": float(self.true_flow_magnitude.mean()),
        }


def fit_accuracy(
    model: BodyModel,
    views: SyntheticViews,
    cfg: FitConfig | None = None,
    *,
    depth_tolerance_m: float = DEFAULT_DEPTH_TOLERANCE_M,
) -> AccuracyReport:
    """Fit the views' keypoints and compare the fitted pairs' flows with the true ones.

    Args:
        model: The body model.
        views: True bodies (:func:`synthetic_views`), ``B >= 2``.
        cfg: Fit settings.
        depth_tolerance_m: Occlusion tolerance of both renders.

    Returns:
        The report over the ``B`` images and the ``B`` pairs ``(k, k + 1 mod B)``.
    """
    batch = views.params.batch_size
    if batch < 2:
        raise ValueError(f"need at least 2 views to make pairs, got {batch}")
    fit = fit_keypoints(model, views.keypoints, None, views.size, cfg)
    if not bool(fit.attempted.all()):
        raise ValueError(f"some views could not be fitted: {fit.reason}")
    true_verts = body_image_vertices(model, views.params, views.camera)
    fit_verts = body_image_vertices(model, fit.params, fit.camera)
    source = torch.arange(batch)
    target = (source + 1) % batch
    metrics: dict[str, list[Tensor]] = {}
    magnitude = []
    for s, t in zip(source.tolist(), target.tolist(), strict=True):
        fields = [
            render_pair(v[s : s + 1], v[t : t + 1], model.faces, views.size, depth_tolerance_m)
            for v in (true_verts, fit_verts)
        ]
        for key, value in flow_agreement(fields[1], fields[0]).items():
            metrics.setdefault(key, []).append(value)
        body = fields[0].visibility != Visibility.BACKGROUND
        magnitude.append(fields[0].flow.norm(dim=1)[body].mean())
    stacked = {key: torch.cat(values) for key, values in metrics.items()}
    return AccuracyReport(
        reprojection_error_px=fit.reprojection_error,
        converged=fit.converged,
        true_flow_magnitude=torch.stack(magnitude),
        **stacked,
    )


def rest_texture(model: BodyModel, fragments: Fragments, wavelength_m: float = 0.25) -> Tensor:
    """Paint renders with a smooth colour field of the rest-pose surface position.

    Each channel is ``0.5 + 0.5 sin(2 pi (p . d_c) / wavelength + phase_c)`` of the rest-pose
    position ``p`` (average body) interpolated at the pixel centre, for three fixed directions
    ``d_c``; the colour of a surface point is the same in every pose.

    Args:
        model: The body model.
        fragments: ``(B, H, W)`` renders of posed bodies (average shape).
        wavelength_m: Period of the pattern in metres.

    Returns:
        ``(B, 3, H, W)`` float32 in ``[0, 1]``, 0 on background.
    """
    rest = model.rest_vertices()[0].to(torch.float32)  # (V, 3)
    fg = fragments.foreground
    face = fragments.face_ids.clamp(min=0)
    corners = rest[model.faces[face]]  # (B, H, W, 3 corners, 3 xyz)
    position = (fragments.bary[..., None] * corners).sum(-2)  # (B, H, W, 3)
    directions = torch.tensor([[1.0, 0.3, 0.2], [0.2, 1.0, -0.4], [-0.3, 0.4, 1.0]])
    phase = torch.tensor([0.0, 1.3, 2.6])
    colour = 0.5 + 0.5 * torch.sin(2 * math.pi * position @ directions.T / wavelength_m + phase)
    return (colour * fg[..., None]).permute(0, 3, 1, 2).contiguous()


def _erode(mask: Tensor) -> Tensor:
    """``(B, H, W)`` bool: pixels whose 3x3 neighbourhood is all inside ``mask``."""
    inside = -F.max_pool2d(-mask[:, None].float(), 3, stride=1, padding=1)
    return inside[:, 0] > 0.5


def textured_warp_error(
    model: BodyModel, verts_src: Tensor, verts_tgt: Tensor, field: FlowField
) -> tuple[Tensor, Tensor]:
    """Warp a textured source render by ``field`` and compare with the textured target.

    Args:
        model: The body model.
        verts_src: ``(B, V, 3)`` image-space vertices of the source bodies.
        verts_tgt: ``(B, V, 3)`` image-space vertices of the target bodies.
        field: Flow and visibility target -> source, ``(B, 2, H, W)``.

    Returns:
        ``error`` ``(B, H, W)``: mean absolute colour difference (colours in ``[0, 1]``), and
        ``region`` ``(B, H, W)`` bool: where it is meaningful, i.e. VISIBLE target pixels off
        the 1-pixel silhouette band whose bilinear source footprint lies on the body.
    """
    size = (field.flow.shape[-2], field.flow.shape[-1])
    frag_src = rasterize(verts_src, model.faces, size)
    frag_tgt = rasterize(verts_tgt, model.faces, size)
    tex_src, tex_tgt = rest_texture(model, frag_src), rest_texture(model, frag_tgt)
    warped = warp(tex_src, field.flow)
    coverage = warp(frag_src.foreground[:, None].float(), field.flow)[:, 0]
    region = (
        (field.visibility == Visibility.VISIBLE) & _erode(frag_tgt.foreground) & (coverage > 0.999)
    )
    error = (warped - tex_tgt).abs().mean(1)
    return error, region
