"""Render real test pairs with the baselines and trained runs, two ways.

Every method gives two images per pair:

- **composited**, as ``infer`` writes a photo (:class:`posetransfer.infer.repose.RePoser`): the
  source's person-free plate (its mask grown by 3 px, inpainted) is the background; a trained
  run gets the plate for its background skips (``photo.clean_background``) and its output is
  laid over the plate through the target silhouette (the flow's non-background pixels, one pixel
  in, feathered by 1.5 px); ``warp_3d`` lays the warped source over the plate the same way;
- **raw**, as ``infer --data ROOT --pairs CSV`` writes it (the networks' output, no plate) and
  as :func:`posetransfer.experiments.baselines.write_baselines` warps (flow 0 on background:
  the source's own pixels there).

``copy_source`` is the source crop in both. Flows are given (the fitted-body flow of
:func:`posetransfer.experiments.real_data.pair_flows`, or a run's regressor via
:func:`regressor_flows`), so every method sees the same pairs and silhouettes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from posetransfer.conventions import Visibility
from posetransfer.infer.background import composite, dilate_mask
from posetransfer.infer.framing import Frame
from posetransfer.infer.pipeline import PoseTransferPipeline
from posetransfer.infer.repose import RePoseOptions, RePoser, SourcePerson
from posetransfer.io import tensor_to_uint8, uint8_to_tensor
from posetransfer.ops.warp import warp
from posetransfer.pose.keypoints import Pose, stack_poses
from posetransfer.train.person_crop import PersonCrop

__all__ = ["Rendered", "copy_source", "regressor_flows", "render_run", "warp_3d"]

Flows = tuple[torch.Tensor, torch.Tensor]


@dataclass
class Rendered:
    """One method's images for a list of pairs (``(H, W, 3)`` uint8 each).

    ``warp_share`` (trained runs with a pixel-warp refiner): per pair, the mean of the
    refiner's mask ``m`` over the target silhouette, i.e. how much of the person is the warped
    source rather than the generator's image (1 would be ``warp_3d``'s person).
    """

    composited: list[np.ndarray]
    raw: list[np.ndarray]
    warp_share: list[float] = field(default_factory=list)

    def extend(self, other: Rendered) -> None:
        """Append another batch's images."""
        self.composited += other.composited
        self.raw += other.raw
        self.warp_share += other.warp_share


def _silhouette(vis: torch.Tensor) -> np.ndarray:
    """The compositing mask of ``RePoser.render``: non-background, one pixel in."""
    codes = vis.to(torch.uint8).numpy()
    return (~dilate_mask(codes == int(Visibility.BACKGROUND), 1)).astype(np.float32)


def copy_source(person: PersonCrop, count: int) -> Rendered:
    """The source crop, ``count`` times."""
    return Rendered([person.image] * count, [person.image] * count)


def warp_3d(person: PersonCrop, flows: Flows, feather: float = 1.5) -> Rendered:
    """The source warped by the given flows: over its plate, and as the baseline writes it."""
    flow, vis = flows
    x = uint8_to_tensor(person.image)[None].expand(len(flow), -1, -1, -1)
    warped = warp(x, flow.float())
    raw = [tensor_to_uint8(w) for w in warped]
    composited = [
        composite(image, person.plate, _silhouette(v), feather)
        for image, v in zip(raw, vis, strict=True)
    ]
    return Rendered(composited, raw)


def regressor_flows(
    pipeline: PoseTransferPipeline, person: PersonCrop, targets: Sequence[Pose]
) -> Flows:
    """The run's flow regressor's flow and visibility for the person and each target pose."""
    (src_xy, src_valid), (tgt_xy, tgt_valid) = (
        stack_poses(p) for p in ([person.pose] * len(targets), list(targets))
    )
    flow, vis = pipeline.predict_flow(src_xy, src_valid, tgt_xy, tgt_valid)
    return flow.cpu(), vis.cpu()


def render_run(
    pipeline: PoseTransferPipeline,
    person: PersonCrop,
    targets: Sequence[Pose],
    flows: Flows,
    batch: int = 16,
) -> Rendered:
    """A trained run on the person and target poses with the given flows (both renderings)."""
    height, width = person.size
    frame = Frame((0.0, 0.0, float(width), float(height)), (height, width), (height, width))
    source = SourcePerson(person.image, frame, person.image, person.pose, person.mask,
                          person.plate)  # fmt: skip
    out = Rendered([], [])
    with RePoser(pipeline, RePoseOptions()) as reposer:
        for start in range(0, len(targets), batch):
            chunk = list(targets[start : start + batch])
            flow, vis = (f[start : start + batch] for f in flows)
            results = reposer.render(source, chunk, (flow, vis))
            x = uint8_to_tensor(person.image)[None].expand(len(chunk), -1, -1, -1)
            net = pipeline(x, [person.pose] * len(chunk), chunk, (flow, vis))
            raw = [tensor_to_uint8(im) for im in net.image.cpu()]
            share = []
            if net.mask is not None:
                person_px = (vis != int(Visibility.BACKGROUND)).float()
                m = net.mask[:, 0].cpu() * person_px
                share = (m.flatten(1).sum(1) / person_px.flatten(1).sum(1).clamp_min(1)).tolist()
            out.extend(Rendered([r.frame for r in results], raw, share))
    return out
