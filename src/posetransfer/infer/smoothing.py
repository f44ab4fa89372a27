"""Temporal smoothing of detected keypoints with the One-Euro filter (Casiez et al., CHI 2012).

A pose detector run frame by frame jitters by a pixel or two even when the person stands still,
and an animation driven by those poses shimmers. The One-Euro filter is an exponential low-pass
filter whose cutoff frequency rises with the speed of the signal::

    alpha(fc)  = 1 / (1 + fps / (2 pi fc))          smoothing factor of a cutoff fc (Hz)
    dx_hat_t   = dx_hat_{t-1} + alpha(d_cutoff) (fps (x_t - x_hat_{t-1}) - dx_hat_{t-1})
    fc_t       = min_cutoff + beta * |dx_hat_t| / scale
    x_hat_t    = x_hat_{t-1} + alpha(fc_t) (x_t - x_hat_{t-1})

so a still point is filtered hard (``min_cutoff``) and a fast one lightly (little lag). Here each
keypoint is filtered as a 2D point: the cutoff uses the length of its velocity, and x and y share
it, so a point's path is not distorted. Speeds are measured in ``scale`` pixels per second;
by default ``scale`` is the sequence's median person height (vertical extent of the valid
points), so ``beta`` does not depend on the video's resolution; ``scale=1`` gives the paper's
per-pixel ``beta``.

Gaps: a keypoint missing in a frame (or a whole missing frame, ``None``) holds its last filtered
value and is reported in :class:`SmoothedPoses`; a point that reappears restarts its filter at
the new detection (no smoothing across the gap). Before a point's first detection it takes that
first detection's value (back-filled); a point never detected stays invalid.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final, overload

import numpy as np

from posetransfer.conventions import NUM_KEYPOINTS
from posetransfer.pose.keypoints import Pose

__all__ = [
    "DEFAULT_BETA",
    "DEFAULT_D_CUTOFF",
    "DEFAULT_MIN_CUTOFF",
    "SmoothedPoses",
    "one_euro_alpha",
    "smooth_poses",
]

#: Cutoff (Hz) of a still point. With :data:`DEFAULT_BETA` at 30 fps, a still person's 1.5 px
#: jitter drops 3.5x and a point moving at one person height per second lags 3.5% of the height.
DEFAULT_MIN_CUTOFF: Final[float] = 0.5
#: Cutoff increase per unit speed (Hz per person height per second).
DEFAULT_BETA: Final[float] = 2.0
#: Cutoff (Hz) of the speed estimate (the paper's 1 Hz).
DEFAULT_D_CUTOFF: Final[float] = 1.0


@dataclass(frozen=True)
class SmoothedPoses(Sequence[Pose]):
    """Smoothed poses (a sequence of :class:`Pose`, one per input frame) and what was filled in.

    Attributes:
        poses: One pose per input frame. A point is valid from the frame where it is first
            detected (and, back-filled, before it); a point never detected stays invalid.
        held_frames: Indices of frames with no detection at all (``None`` or no valid point)
            after the first detection; every point in them holds its last value.
        backfilled_frames: Indices of the leading frames before the first detection, filled
            with the first detected pose.
        held_points: ``(T, 18)`` bool, True where an output point is valid but was not detected
            in that frame (held or back-filled).
        restarts: ``(T, 18)`` bool, True where a point reappeared after a gap and its filter
            restarted.
        scale: Pixels per speed unit used for ``beta`` (see the module docstring).
    """

    poses: list[Pose]
    held_frames: tuple[int, ...]
    backfilled_frames: tuple[int, ...]
    held_points: np.ndarray = field(repr=False)
    restarts: np.ndarray = field(repr=False)
    scale: float = 1.0

    def __len__(self) -> int:
        return len(self.poses)

    @overload
    def __getitem__(self, index: int) -> Pose: ...

    @overload
    def __getitem__(self, index: slice) -> list[Pose]: ...

    def __getitem__(self, index: int | slice) -> Pose | list[Pose]:
        return self.poses[index]

    def __iter__(self) -> Iterator[Pose]:
        return iter(self.poses)


def one_euro_alpha(cutoff: np.ndarray | float, fps: float) -> np.ndarray:
    """Smoothing factor of a first-order low-pass filter with cutoff ``cutoff`` Hz at ``fps``.

    Args:
        cutoff: Cutoff frequency in Hz, positive (any shape).
        fps: Sampling rate in frames per second.

    Returns:
        ``1 / (1 + tau * fps)`` with ``tau = 1 / (2 pi cutoff)``, in ``(0, 1)``, same shape.
    """
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau * fps)


def smooth_poses(
    poses: Sequence[Pose | None],
    fps: float,
    min_cutoff: float = DEFAULT_MIN_CUTOFF,
    beta: float = DEFAULT_BETA,
    d_cutoff: float = DEFAULT_D_CUTOFF,
    *,
    scale: float | None = None,
) -> SmoothedPoses:
    """One-Euro filter every keypoint of a pose sequence; hold points through gaps.

    Args:
        poses: ``T`` poses, one per video frame; ``None`` for a frame with no detection.
        fps: Frame rate of the sequence, positive.
        min_cutoff: Cutoff in Hz of a still point; lower removes more jitter.
        beta: Cutoff increase in Hz per unit speed (``scale`` pixels per second); higher
            lags less behind fast motion.
        d_cutoff: Cutoff in Hz of the speed estimate.
        scale: Pixels per speed unit; None uses the median person height (see the module
            docstring); 1.0 for the paper's per-pixel ``beta``.

    Returns:
        The smoothed poses with the summary of held and back-filled frames and points.

    Raises:
        ValueError: If no frame holds a valid point, or a parameter is out of range.
        TypeError: If an element is neither a :class:`Pose` nor ``None``.
    """
    _check_positive(fps, "fps")
    _check_positive(min_cutoff, "min_cutoff")
    _check_positive(d_cutoff, "d_cutoff")
    if not (isinstance(beta, int | float) and math.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
    xy_in, observed = _stack(poses)
    if not observed.any():
        raise ValueError(
            f"smooth_poses: no keypoint detected in any of the {len(poses)} frames; "
            "nothing to smooth (is the person in the video?)"
        )
    if scale is None:
        scale = _median_height(xy_in, observed)
    else:
        _check_positive(scale, "scale")

    num_frames = len(xy_in)
    alpha_d = float(one_euro_alpha(d_cutoff, fps))
    x_hat = np.zeros((NUM_KEYPOINTS, 2))
    dx_hat = np.zeros((NUM_KEYPOINTS, 2))
    active = np.zeros(NUM_KEYPOINTS, bool)  # seen before and filtering
    seen = np.zeros(NUM_KEYPOINTS, bool)
    out = np.zeros((num_frames, NUM_KEYPOINTS, 2))
    out_valid = np.zeros((num_frames, NUM_KEYPOINTS), bool)
    restarts = np.zeros((num_frames, NUM_KEYPOINTS), bool)
    for t in range(num_frames):
        obs, x = observed[t], xy_in[t]
        start = obs & ~active
        restarts[t] = start & seen
        x_hat[start], dx_hat[start] = x[start], 0.0
        go = obs & active
        if go.any():
            dx = (x[go] - x_hat[go]) * fps
            dx_hat[go] += alpha_d * (dx - dx_hat[go])
            speed = np.linalg.norm(dx_hat[go], axis=1) / scale
            alpha = one_euro_alpha(min_cutoff + beta * speed, fps)[:, None]
            x_hat[go] += alpha * (x[go] - x_hat[go])
        active, seen = obs.copy(), seen | obs
        out[t], out_valid[t] = x_hat, seen

    first = np.argmax(observed, axis=0)  # (18,) first detection of each point
    for k in np.flatnonzero(observed.any(axis=0)):
        out[: first[k], k] = xy_in[first[k], k]
        out_valid[: first[k], k] = True
    frame_seen = observed.any(axis=1)
    first_frame = int(np.argmax(frame_seen))
    held_frames = tuple(int(t) for t in np.flatnonzero(~frame_seen) if t > first_frame)
    return SmoothedPoses(
        poses=[Pose(out[t], out_valid[t]) for t in range(num_frames)],
        held_frames=held_frames,
        backfilled_frames=tuple(range(first_frame)),
        held_points=out_valid & ~observed,
        restarts=restarts,
        scale=float(scale),
    )


# --------------------------------------------------------------------------------- helpers


def _stack(poses: Sequence[Pose | None]) -> tuple[np.ndarray, np.ndarray]:
    """``(T, 18, 2)`` float64 coordinates and ``(T, 18)`` detections of a pose sequence."""
    if isinstance(poses, Pose) or not isinstance(poses, Sequence):
        raise TypeError(f"poses must be a sequence of Pose or None, got {type(poses).__name__}")
    xy = np.zeros((len(poses), NUM_KEYPOINTS, 2))
    valid = np.zeros((len(poses), NUM_KEYPOINTS), bool)
    for t, pose in enumerate(poses):
        if pose is None:
            continue
        if not isinstance(pose, Pose):
            raise TypeError(f"poses[{t}] must be a Pose or None, got {type(pose).__name__}")
        xy[t], valid[t] = pose.xy, pose.valid
    return xy, valid


def _median_height(xy: np.ndarray, valid: np.ndarray) -> float:
    """Median over frames of the vertical extent of the valid points (>= 1 pixel)."""
    heights = [np.ptp(xy[t, valid[t], 1]) for t in range(len(xy)) if valid[t].sum() >= 2]
    return max(float(np.median(heights)), 1.0) if heights else 1.0


def _check_positive(value: object, name: str) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and value > 0)
    ):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
