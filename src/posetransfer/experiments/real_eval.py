"""Score methods on real test pairs: prepare the pairs, render every method, score per pair.

:func:`prepare_pairs` turns a ``make-dataset`` folder into :class:`RealTestSet` (the test
split, the chosen pairs, their fitted-body flows, the images left out because their body fit
failed). :func:`render_methods` renders ``copy_source``, ``warp_3d`` and any trained runs
(:class:`RunMethod`: one run for every source, or one per source as a personalised run is) with
:mod:`~posetransfer.experiments.real_render`, and :func:`score_methods` scores both renderings
of each with :mod:`~posetransfer.experiments.real_scores` against the real target frames.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from posetransfer.experiments.real_data import (
    RealImage,
    RealPair,
    choose_pairs,
    fit_images,
    load_split,
    pair_flows,
    person_crop,
)
from posetransfer.experiments.real_render import (
    Rendered,
    copy_source,
    regressor_flows,
    render_run,
    warp_3d,
)
from posetransfer.experiments.real_scores import pair_scores
from posetransfer.infer.pipeline import PoseTransferPipeline
from posetransfer.io import PathLike

if TYPE_CHECKING:
    from posetransfer.body.anny_model import BodyModel

__all__ = [
    "BASELINE_NOTES",
    "RENDERINGS",
    "NoPairsError",
    "RealTestSet",
    "RunMethod",
    "prepare_pairs",
    "render_methods",
    "score_methods",
]

#: The two renderings of every method (:mod:`~posetransfer.experiments.real_render`).
RENDERINGS = ("composited", "raw")

#: What the baselines are.
BASELINE_NOTES = {
    "copy_source": "the source crop unchanged",
    "warp_3d": "the source warped by the fitted-body flow",
}


class NoPairsError(ValueError):
    """A dataset split without a usable test pair (too few images, poses or body fits)."""


@dataclass
class RealTestSet:
    """Real test pairs ready to render.

    Attributes:
        images: The test split by name.
        pairs: The pairs, grouped by source.
        flows: ``(flow (N, 2, H, W), visibility (N, H, W))``, the pairs' fitted-body flows.
        left_out: Images left out of the pairs, with why (failed body fits).
    """

    images: dict[str, RealImage]
    pairs: list[RealPair]
    flows: tuple[torch.Tensor, torch.Tensor]
    left_out: dict[str, str] = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)`` of the images."""
        first = next(iter(self.images.values()))
        return int(first.image.shape[0]), int(first.image.shape[1])

    @property
    def sources(self) -> list[str]:
        """The distinct sources, in pair order."""
        return list(dict.fromkeys(p.source for p in self.pairs))

    def kinds(self) -> np.ndarray:
        """``(N,)`` the pairs' kinds (``"pose"`` or ``"view"``)."""
        return np.array([p.kind for p in self.pairs])


@dataclass(frozen=True)
class RunMethod:
    """A trained method: the run for a source (``run(source_name)``) and its flow."""

    run: Callable[[str], PoseTransferPipeline]
    flow: Literal["3d", "regressor"] = "3d"


def prepare_pairs(
    model: BodyModel,
    root: PathLike,
    *,
    split: str = "test",
    sources_per_origin: int = 1,
    max_sources: int | None = None,
    pairs_per_source: int | None = None,
    min_change: float = 8.0,
) -> RealTestSet:
    """The test split of a ``make-dataset`` folder, its pairs and their fitted-body flows.

    Args:
        model: The body model.
        root: The dataset folder.
        split: Which split.
        sources_per_origin: Sources per video (:func:`~.real_data.choose_pairs`).
        max_sources: At most this many sources (None: all).
        pairs_per_source: At most this many pairs per source, pose and view changes
            alternately (None: all).
        min_change: Least pose change of a pair in crop pixels.

    Raises:
        NoPairsError: No pair left.
    """
    images = load_split(root, split)
    if not images:
        raise NoPairsError(f"{root}: no {split} images")
    size = next(iter(images.values())).image.shape[:2]
    fits, names, failed = fit_images(model, images, (int(size[0]), int(size[1])))
    pairs = choose_pairs(
        images, sources_per_origin=sources_per_origin, max_sources=max_sources,
        pairs_per_source=pairs_per_source, min_change=min_change, exclude=list(failed),
    )  # fmt: skip
    if not pairs:
        raise NoPairsError(
            f"{root}: no {split} pair of one person whose pose changes by {min_change} px "
            f"(images left out for their body fit: {len(failed)})"
        )
    flows = pair_flows(model, fits, names, [(p.source, p.target) for p in pairs],
                       (int(size[0]), int(size[1])))  # fmt: skip
    return RealTestSet(images, pairs, flows, failed)


def render_methods(
    test: RealTestSet, runs: Mapping[str, RunMethod], *, baselines: bool = True
) -> dict[str, Rendered]:
    """Every method's images for every pair, in pair order.

    Args:
        test: The pairs.
        runs: Method name -> trained run and flow.
        baselines: Also ``copy_source`` and ``warp_3d`` (first).
    """
    names = [*(BASELINE_NOTES if baselines else ()), *runs]
    out = {name: Rendered([], []) for name in names}
    flow, vis = test.flows
    for source in test.sources:
        index = [i for i, p in enumerate(test.pairs) if p.source == source]
        person = person_crop(test.images[source])
        targets = [test.images[test.pairs[i].target].pose for i in index]
        flows_3d = (flow[index], vis[index])
        if baselines:
            out["copy_source"].extend(copy_source(person, len(index)))
            out["warp_3d"].extend(warp_3d(person, flows_3d))
        for name, method in runs.items():
            pipeline = method.run(source)
            flows = flows_3d if method.flow == "3d" else regressor_flows(pipeline, person, targets)
            out[name].extend(render_run(pipeline, person, targets, flows))
    return out


def score_methods(
    test: RealTestSet,
    rendered: Mapping[str, Rendered],
    lpips: torch.nn.Module | None = None,
    renderings: Sequence[str] = RENDERINGS,
) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """Per-pair scores: method -> rendering -> metric -> ``(N,)``."""
    truth = [test.images[p.target].image for p in test.pairs]
    masks = [test.images[p.target].mask for p in test.pairs]
    return {
        name: {r: pair_scores(getattr(images, r), truth, masks, lpips) for r in renderings}
        for name, images in rendered.items()
    }
