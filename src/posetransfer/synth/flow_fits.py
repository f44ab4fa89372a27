"""The fit stage of ``synth-flow``: images checked, fitted a chunk at a time or loaded, cached.

:func:`check_image` checks that an image can be fitted without decoding pixels: its file must
exist, its header must be readable, and every valid keypoint must lie inside it (``0 <= x < W``,
``0 <= y < H``). :class:`ImageFits` holds one shard's fits: it loads stored ``fits/<key>.npz``
files or fits a whole chunk of the plan in one batch per image size (so an image is always fitted
with the same companions), keeps recent fits in memory for the render stage, and counts each
image's outcome, recording failures in the run's manifest.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator

import numpy as np
import torch
from PIL import Image

from posetransfer.body.anny_model import BodyModel
from posetransfer.body.fit_result import FitResult
from posetransfer.body.fitting import fit_keypoints
from posetransfer.conventions import Keypoint
from posetransfer.synth.flow_output import ManifestEntry, SynthFlowConfig, SynthOutput
from posetransfer.synth.flow_plan import ImageItem, SynthPlan

__all__ = ["ImageFits", "check_image"]

logger = logging.getLogger(__name__)

_FIT_CACHE_SIZE = 4096


def check_image(item: ImageItem) -> tuple[tuple[int, int] | None, str | None]:
    """Check that an image can be fitted, reading its header only.

    Args:
        item: A planned image.

    Returns:
        ``((H, W), None)`` when it can be fitted, else ``(None or (H, W), reason)``.
    """
    if item.problem is not None or item.pose is None:
        return None, item.problem or "no keypoints"
    if item.path is None:
        return None, f"image file not found: {item.name!r} in {item.image_dir}"
    try:
        with Image.open(item.path) as image:
            width, height = image.size
    except OSError as exc:
        return None, f"unreadable image: {item.path}: {exc}"
    return (height, width), _outside(item, height, width)


def _outside(item: ImageItem, height: int, width: int) -> str | None:
    """Why the valid keypoints of ``item`` do not all lie in a ``height x width`` image."""
    assert item.pose is not None
    xy, valid = item.pose.xy, item.pose.valid
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < width) & (xy[:, 1] >= 0) & (xy[:, 1] < height)
    bad = np.flatnonzero(valid & ~inside)
    if len(bad) == 0:
        return None
    k = int(bad[0])
    return (
        f"keypoints outside the image: {Keypoint(k).name.lower()} at ({xy[k, 0]:.1f}, "
        f"{xy[k, 1]:.1f}) and {len(bad) - 1} more, image {item.path} is {width}x{height} (WxH)"
    )


class ImageFits:
    """The fits of one shard's run: loaded or fitted per chunk, cached, and each image's outcome.

    Attributes:
        images: Counts of images ``total``, ``fitted`` (now), ``skipped`` (stored fit), ``failed``.
        errors: Mean reprojection error (pixels) of every attempted fit.
        manifest: The run's failure list; failed images are appended to it.
    """

    def __init__(
        self,
        model: BodyModel,
        plan: SynthPlan,
        out: SynthOutput,
        cfg: SynthFlowConfig,
        refit: bool,
        manifest: list[ManifestEntry],
    ) -> None:
        self.model, self.plan, self.out, self.cfg = model, plan, out, cfg
        self.refit = refit
        self.manifest = manifest
        self.images = Counter(total=0, fitted=0, skipped=0, failed=0)
        self.errors: list[float] = []
        self._fits: OrderedDict[str, FitResult | str] = OrderedDict()
        self._checks: dict[str, tuple[tuple[int, int] | None, str | None]] = {}

    def check_image(self, item: ImageItem) -> tuple[tuple[int, int] | None, str | None]:
        """:func:`check_image`, once per image."""
        if item.key not in self._checks:
            self._checks[item.key] = check_image(item)
        return self._checks[item.key]

    def _load_fit(self, item: ImageItem) -> FitResult | None:
        path = self.out.fit_path(item)
        if not path.is_file():
            return None
        try:
            fit = FitResult.load(path)
        except ValueError as exc:
            logger.warning("ignoring an unreadable fit file: %s", exc)
            return None
        if len(fit) != 1:
            logger.warning("ignoring %s: it holds %d fits, not 1", path, len(fit))
            return None
        return fit

    def fit_chunk(self, index: int) -> tuple[dict[str, FitResult | str], set[str]]:
        """Fit (or load) the images of chunk ``index``.

        Missing fit files are written. Whenever one is missing, the whole chunk is fitted, so an
        image's batch never depends on what was already on disk. Without ``refit`` only stored
        fits are loaded and no image is read.

        Returns:
            Key -> fit or failure reason, and the keys fitted now.
        """
        items = self.plan.chunk(index)
        results: dict[str, FitResult | str] = {}
        groups: dict[tuple[int, int], list[ImageItem]] = {}
        for item in items:
            if not self.refit:
                stored = self._load_fit(item) if item.problem is None else None
                if stored is not None:
                    results[item.key] = stored
                else:
                    results[item.key] = (
                        item.problem or f"no stored fit: {self.out.fit_path(item)} does not exist"
                    )
                continue
            size, problem = self.check_image(item)
            if problem is not None or size is None:
                results[item.key] = problem or "unreadable image"
            else:
                groups.setdefault(size, []).append(item)
        loaded = {g.key: self._load_fit(g) for group in groups.values() for g in group}
        fitted: set[str] = set()
        if any(fit is None for fit in loaded.values()):
            for size in sorted(groups):
                group = groups[size]
                poses = [g.pose for g in group if g.pose is not None]
                xy = torch.from_numpy(np.stack([p.xy for p in poses]))
                valid = torch.from_numpy(np.stack([p.valid for p in poses])).float()
                fits = fit_keypoints(self.model, xy, valid, size, self.cfg.fit)
                for k, item in enumerate(group):
                    if loaded[item.key] is None:
                        loaded[item.key] = fits.select([k])
                        loaded[item.key].save(self.out.fit_path(item))  # type: ignore[union-attr]
                        fitted.add(item.key)
        results.update({key: fit for key, fit in loaded.items() if fit is not None})
        return results, fitted

    def fit_of(self, item: ImageItem) -> FitResult | str:
        """The fit of an image (loaded, or fitted with its chunk), or why there is none."""
        cached = self._fits.get(item.key)
        if cached is not None:
            self._fits.move_to_end(item.key)
            return cached
        fit: FitResult | str | None = self._load_fit(item)
        if fit is None:
            results, _ = self.fit_chunk(self.plan.chunk_of(item.name))
            fit = results[item.key]
        return self._remember(item.key, fit)

    def _remember(self, key: str, fit: FitResult | str) -> FitResult | str:
        """Cache an image's fit (a non-converged one as its reason) and return that."""
        if isinstance(fit, FitResult) and not bool(fit.converged[0]):
            fit = fit.reason[0] or "did not converge"
        self._fits[key] = fit
        self._fits.move_to_end(key)
        if len(self._fits) > _FIT_CACHE_SIZE:
            self._fits.popitem(last=False)
        return fit

    def fit_stage(self, chunks: Iterable[int]) -> Iterator[int]:
        """Fit this shard's chunks and record their images' outcomes; yields chunk sizes."""
        for index in chunks:
            results, fitted = self.fit_chunk(index)
            for item in self.plan.chunk(index):
                value = results[item.key]
                # kept for the render stage: a fit made now as its file reads back (no re-read)
                if isinstance(value, FitResult) and item.key in fitted:
                    self._remember(item.key, FitResult.from_dict(value.to_dict()))
                else:
                    self._remember(item.key, value)
                self.images["total"] += 1
                if isinstance(value, FitResult):
                    if bool(value.attempted[0]):
                        self.errors.append(float(value.reprojection_error[0]))
                    if bool(value.converged[0]):
                        self.images["fitted" if item.key in fitted else "skipped"] += 1
                    else:
                        self._fail_image(item, value.reason[0] or "did not converge", "fit")
                else:
                    self._fail_image(item, value, "plan" if item.problem else "fit")
            yield len(self.plan.chunk(index))

    def _fail_image(self, item: ImageItem, reason: str, stage: str) -> None:
        logger.debug("image %s failed (%s): %s", item.name, stage, reason)
        self.images["failed"] += 1
        self.manifest.append(ManifestEntry("image", item.name, stage, reason))
