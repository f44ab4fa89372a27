"""Retarget a driving video's skeletons to the person of a source photo.

Two steps, both pure numpy on :class:`~posetransfer.pose.keypoints.Pose`:

1. **Global pose normalisation** (Everybody Dance Now, Chan et al., ICCV 2019): one
   scale and one translation per sequence map the driving person's height and foot position onto
   the source's, so a tall dancer far from the camera drives a short person filling the photo.
   The paper interpolates the scale between the closest and farthest frames of *both* videos;
   here the source is a single photo, so the rule is (:func:`fit_global_normalisation`):

   - per driving frame, an anchor ``a_t`` (feet: mean ankle x, lowest ankle y) and a height
     ``h_t = |a_t - neck_t|``;
   - the *farthest* frames are those whose anchor y lies in the lowest ``quantile`` of the
     sequence, the *closest* those in the highest; in each group the frame at the 90th
     percentile of height (standing tall, not crouching) gives a point ``(y, h)``;
   - the reference height ``h_ref`` is read at the median anchor y ``y_ref`` on the line through
     those two points (the paper's linear interpolation of size with depth);
   - ``scale = h_source / h_ref`` and ``offset = a_source - scale * (median anchor x, y_ref)``.

   The driving person's motion in depth (growing as they approach) is kept, scaled. When the
   source photo or the driving video shows no ankle, the neck-to-mid-hip torso and the hips
   replace height and feet (:data:`MEASURES`).
2. **Bone-length retargeting** (:func:`retarget_bones`, optional): walking the kinematic tree
   (:data:`KINEMATIC_TREE`, rooted at the neck), each bone keeps the driving bone's direction
   and takes the source's length (its mirror partner's when the source lacks it; the driving
   length when both lack it). A point whose parent is missing keeps its normalised position and
   roots its own subtree. ``anchor="feet"`` then shifts the pose so its feet stay where the
   normalised driving feet were (no sliding or floating from longer or shorter legs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from posetransfer.conventions import FLIP_PERMUTATION, Keypoint
from posetransfer.pose.keypoints import Pose

__all__ = [
    "KINEMATIC_TREE",
    "MEASURES",
    "GlobalNormalisation",
    "bone_lengths",
    "fit_global_normalisation",
    "retarget_bones",
    "retarget_sequence",
]

_K = Keypoint
#: ``(parent, child)`` bones in breadth-first order from the neck: the skeleton's limbs without
#: the two shoulder-ear links, which would close loops.
KINEMATIC_TREE: Final[tuple[tuple[int, int], ...]] = (
    (_K.NECK, _K.R_SHOULDER), (_K.NECK, _K.L_SHOULDER), (_K.NECK, _K.R_HIP),
    (_K.NECK, _K.L_HIP), (_K.NECK, _K.NOSE),
    (_K.R_SHOULDER, _K.R_ELBOW), (_K.L_SHOULDER, _K.L_ELBOW), (_K.R_HIP, _K.R_KNEE),
    (_K.L_HIP, _K.L_KNEE), (_K.NOSE, _K.R_EYE), (_K.NOSE, _K.L_EYE),
    (_K.R_ELBOW, _K.R_WRIST), (_K.L_ELBOW, _K.L_WRIST), (_K.R_KNEE, _K.R_ANKLE),
    (_K.L_KNEE, _K.L_ANKLE), (_K.R_EYE, _K.R_EAR), (_K.L_EYE, _K.L_EAR),
)  # fmt: skip

#: Anchor keypoints of the size measures, best first: feet (height), then hips (torso).
MEASURES: Final[dict[str, tuple[int, int]]] = {
    "feet": (_K.R_ANKLE, _K.L_ANKLE),
    "hips": (_K.R_HIP, _K.L_HIP),
}


@dataclass(frozen=True)
class GlobalNormalisation:
    """The map ``xy -> scale * xy + offset`` from driving to source image pixels.

    Attributes:
        scale: Ratio of the source person's size to the driving person's reference size.
        offset: ``(2,)`` translation in source pixels.
        measure: Which size measure was used: ``"feet"`` (neck to feet) or ``"hips"`` (torso).
    """

    scale: float
    offset: np.ndarray
    measure: str = "feet"

    def apply(self, pose: Pose) -> Pose:
        """Map one driving pose into the source image (points outside it are kept)."""
        return pose.transform((self.scale, self.scale), (self.offset[0], self.offset[1]))


def bone_lengths(pose: Pose) -> np.ndarray:
    """Lengths of the :data:`KINEMATIC_TREE` bones.

    Args:
        pose: Any pose.

    Returns:
        ``(17,)`` float64 pixel lengths in :data:`KINEMATIC_TREE` order; NaN where an end is
        missing.
    """
    parent, child = np.asarray(KINEMATIC_TREE).T
    lengths = np.linalg.norm(pose.xy[child].astype(np.float64) - pose.xy[parent], axis=1)
    return np.where(pose.valid[parent] & pose.valid[child], lengths, np.nan)


def fit_global_normalisation(
    source: Pose, driving: Sequence[Pose | None], *, quantile: float = 0.1
) -> GlobalNormalisation:
    """Fit the per-sequence scale and translation of the module docstring's rule.

    Args:
        source: The pose of the person in the source photo.
        driving: The driving video's poses (``None`` for frames without one).
        quantile: Fraction of the anchor-y range's lowest/highest frames taken as the
            farthest/closest ones, in ``(0, 0.5]``.

    Returns:
        The normalisation to apply to every driving pose.

    Raises:
        ValueError: If the source and the driving frames share no measure (the neck plus an
            ankle, or the neck plus a hip, in the source and in at least one driving frame).
    """
    if not 0 < quantile <= 0.5:
        raise ValueError(f"quantile must be in (0, 0.5], got {quantile!r}")
    if not isinstance(source, Pose):
        raise TypeError(f"source must be a Pose, got {type(source).__name__}")
    frames = [p for p in driving if p is not None]
    for name in MEASURES:
        src = _measure(source, name)
        found = [m for m in (_measure(p, name) for p in frames) if m is not None]
        if src is None or not found:
            continue
        anchors = np.array([m[0] for m in found])
        heights = np.array([m[1] for m in found])
        y_ref = float(np.median(anchors[:, 1]))
        h_ref = _reference_height(anchors[:, 1], heights, y_ref, quantile)
        scale = src[1] / h_ref
        offset = src[0] - scale * np.array([np.median(anchors[:, 0]), y_ref])
        return GlobalNormalisation(float(scale), offset, name)
    raise ValueError(
        "cannot normalise the driving poses: the source pose and the driving poses must both "
        "show the neck plus an ankle or a hip (source has "
        f"{[_K(int(k)).name.lower() for k in np.flatnonzero(source.valid)]}, "
        f"{len(frames)} driving frames with a pose)"
    )


def retarget_bones(pose: Pose, source: Pose, *, anchor: Literal["neck", "feet"] = "neck") -> Pose:
    """Give a (globally normalised) driving pose the source person's bone lengths.

    Args:
        pose: A driving pose, already in the source image's pixels.
        source: The source photo's pose (its bone lengths are used).
        anchor: ``"neck"`` keeps the neck where it is; ``"feet"`` then translates the result so
            the mean of its valid ankles lands on ``pose``'s (the neck when no ankle is valid).

    Returns:
        The retargeted pose: same validity as ``pose``; each bone with a valid parent has the
        driving direction and the source length.
    """
    if anchor not in ("neck", "feet"):
        raise ValueError(f"anchor must be 'neck' or 'feet', got {anchor!r}")
    target = _source_lengths(source)
    xy_in = pose.xy.astype(np.float64)
    xy = xy_in.copy()
    for b, (parent, child) in enumerate(KINEMATIC_TREE):
        if not (pose.valid[parent] and pose.valid[child]):
            continue  # a child without its parent keeps its position and roots its subtree
        bone = xy_in[child] - xy_in[parent]
        length = float(np.linalg.norm(bone))
        want = target[b] if np.isfinite(target[b]) else length
        direction = bone / length if length > 0 else np.zeros(2)
        xy[child] = xy[parent] + direction * want
    if anchor == "feet":
        feet = [k for k in MEASURES["feet"] if pose.valid[k]]
        keep = feet or ([_K.NECK] if pose.valid[_K.NECK] else [])
        if keep:
            xy += xy_in[keep].mean(axis=0) - xy[keep].mean(axis=0)
    return Pose(xy, pose.valid)


def retarget_sequence(
    source: Pose,
    driving: Sequence[Pose | None],
    *,
    bones: bool = True,
    anchor: Literal["neck", "feet"] = "feet",
    quantile: float = 0.1,
) -> tuple[list[Pose | None], GlobalNormalisation]:
    """Map a driving sequence onto the source person: global normalisation, then bone lengths.

    Args:
        source: The source photo's pose.
        driving: The driving poses, ``None`` for frames without one (kept as ``None``).
        bones: Also retarget bone lengths (:func:`retarget_bones`).
        anchor: The bone-retargeting anchor (``"feet"`` keeps ground contact).
        quantile: See :func:`fit_global_normalisation`.

    Returns:
        The retargeted poses (one per driving frame) and the fitted normalisation.
    """
    norm = fit_global_normalisation(source, driving, quantile=quantile)
    out: list[Pose | None] = []
    for pose in driving:
        if pose is None:
            out.append(None)
            continue
        mapped = norm.apply(pose)
        out.append(retarget_bones(mapped, source, anchor=anchor) if bones else mapped)
    return out, norm


# --------------------------------------------------------------------------------- helpers


def _measure(pose: Pose, name: str) -> tuple[np.ndarray, float] | None:
    """``(anchor (2,), size)`` of a pose under measure ``name``, or None if it lacks the points.

    ``feet``: anchor ``(mean ankle x, lowest ankle y)``; ``hips``: the mean of the valid hips;
    size: the distance from the neck to the anchor.
    """
    points = [k for k in MEASURES[name] if pose.valid[k]]
    if not points or not pose.valid[_K.NECK]:
        return None
    xy = pose.xy[points].astype(np.float64)
    anchor = np.array([xy[:, 0].mean(), xy[:, 1].max() if name == "feet" else xy[:, 1].mean()])
    size = float(np.linalg.norm(anchor - pose.xy[_K.NECK]))
    return (anchor, size) if size > 0 else None


def _reference_height(ys: np.ndarray, heights: np.ndarray, y_ref: float, quantile: float) -> float:
    """Height at ``y_ref`` on the line through the farthest and closest standing frames."""
    y_far, y_close = np.quantile(ys, [quantile, 1.0 - quantile])
    points = [_tall_frame(ys, heights, group) for group in (ys <= y_far, ys >= y_close)]
    (y0, h0), (y1, h1) = points
    if abs(y1 - y0) <= 1e-6:
        return max(h0, h1)
    h_ref = h0 + (y_ref - y0) / (y1 - y0) * (h1 - h0)
    return h_ref if h_ref > 0 else float(np.median(heights))


def _tall_frame(ys: np.ndarray, heights: np.ndarray, group: np.ndarray) -> tuple[float, float]:
    """``(y, height)`` of the group's frame at the 90th height percentile (nearest rank)."""
    order = np.flatnonzero(group)[np.argsort(heights[group], kind="stable")]
    pick = order[max(int(np.ceil(0.9 * len(order))) - 1, 0)]
    return float(ys[pick]), float(heights[pick])


def _source_lengths(source: Pose) -> np.ndarray:
    """Source bone lengths, a missing bone taking its mirror partner's length (NaN if none)."""
    own = bone_lengths(source)
    index = {(int(p), int(c)): b for b, (p, c) in enumerate(KINEMATIC_TREE)}
    flip = FLIP_PERMUTATION
    mirror = [index[flip[parent], flip[child]] for parent, child in KINEMATIC_TREE]
    return np.where(np.isnan(own), own[mirror], own)
