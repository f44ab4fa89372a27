"""Tests for posetransfer.infer.smoothing: One-Euro filtering of keypoint sequences with gaps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from posetransfer.infer.smoothing import SmoothedPoses, one_euro_alpha, smooth_poses
from posetransfer.pose.keypoints import Pose

FPS = 30.0
#: A standing person 150 px tall (y from 20 to 170), every point valid.
BASE = np.stack([np.linspace(100, 140, 18), np.linspace(20, 170, 18)], axis=1)
ALL = np.ones(18, bool)


def _xy(poses) -> np.ndarray:
    return np.stack([p.xy for p in poses]).astype(np.float64)


def _still_with_jitter(rng: np.random.Generator, frames: int, sigma: float) -> list[Pose]:
    return [Pose(BASE + rng.normal(0.0, sigma, BASE.shape), ALL) for _ in range(frames)]


def test_alpha_matches_the_paper_formula() -> None:
    # alpha = 1 / (1 + tau / Te), tau = 1 / (2 pi fc), Te = 1 / fps
    assert float(one_euro_alpha(1.0, 30.0)) == pytest.approx(1 / (1 + 30 / (2 * math.pi)))
    assert np.all(np.diff(one_euro_alpha(np.array([0.1, 1.0, 10.0]), 30.0)) > 0)


def test_still_person_jitter_drops_without_bias(rng: np.random.Generator) -> None:
    noisy = _still_with_jitter(rng, 600, sigma=1.5)
    out = smooth_poses(noisy, FPS)
    settled = slice(60, None)  # after the filter's start-up (2 s)
    raw_err, out_err = _xy(noisy)[settled] - BASE, _xy(out)[settled] - BASE
    assert raw_err.std() / out_err.std() >= 3.0
    # no bias: over the whole sequence the output averages where the person stands, per point
    # and overall, as closely as the raw detections do (their sample mean errs by ~0.07 px)
    assert np.abs(out_err.mean(axis=0) - raw_err.mean(axis=0)).max() < 0.1
    assert abs(out_err.mean()) < 0.05
    assert abs(out.scale - 150.0) < 5.0  # the median person height


def test_lower_min_cutoff_smooths_more(rng: np.random.Generator) -> None:
    noisy = _still_with_jitter(rng, 300, sigma=1.5)
    stds = [(_xy(smooth_poses(noisy, FPS, min_cutoff=c))[60:] - BASE).std() for c in (0.3, 3.0)]
    assert stds[0] < stds[1] / 1.5


def _steady_state_lag(speed: float, min_cutoff: float, beta: float, scale: float) -> float:
    """Lag of a One-Euro filter behind a ramp of ``speed`` px/s, by fixed-point iteration.

    At steady state the filter lags by e, steps s = speed / fps per frame, and s = a (e + s);
    its speed estimate is (e + s) fps = speed / a, so a = alpha(min_cutoff + beta speed/(a scale)).
    """
    a = 0.5
    for _ in range(200):
        a = float(one_euro_alpha(min_cutoff + beta * speed / (a * scale), FPS))
    return speed / FPS * (1 - a) / a


@pytest.mark.parametrize("direction", [(1.0, 0.0), (0.6, -0.8)])
def test_moving_point_lags_by_the_predicted_bounded_amount(direction) -> None:
    speed = 150.0  # px/s: one person height per second
    velocity = speed * np.asarray(direction)
    moving = [Pose(BASE + velocity * t / FPS, ALL) for t in range(240)]
    out = smooth_poses(moving, FPS, min_cutoff=0.5, beta=2.0, d_cutoff=1.0, scale=150.0)
    lag = _xy(moving)[-1] - _xy(out)[-1]  # (18, 2), after 8 s: steady state
    expected = _steady_state_lag(speed, 0.5, 2.0, 150.0)
    np.testing.assert_allclose(lag, np.broadcast_to(expected * np.asarray(direction), lag.shape),
                               atol=0.01)  # fmt: skip
    assert expected < 0.04 * 150  # under 4% of the person's height
    # beta is what keeps it small: a plain low-pass at min_cutoff lags several times more
    plain = smooth_poses(moving, FPS, min_cutoff=0.5, beta=0.0, scale=150.0)
    assert np.linalg.norm(_xy(moving)[-1] - _xy(plain)[-1], axis=1).min() > 4 * expected


def test_default_scale_makes_beta_resolution_independent(rng: np.random.Generator) -> None:
    poses = [
        Pose(BASE + np.array([3.0 * t, 0.0]) + rng.normal(0, 1, BASE.shape), ALL) for t in range(90)
    ]
    small = smooth_poses(poses, FPS)
    large = smooth_poses([Pose(p.xy * 4, p.valid) for p in poses], FPS)
    np.testing.assert_allclose(_xy(large), 4 * _xy(small), rtol=1e-5, atol=1e-3)


def test_missing_frames_and_points_are_held_and_reported() -> None:
    moving = [Pose(BASE + np.array([2.0 * t, 0.0]), ALL) for t in range(12)]
    wrist_gone = ALL.copy()
    wrist_gone[4] = False
    sequence: list[Pose | None] = list(moving)
    sequence[5] = None
    sequence[6] = Pose.missing()
    sequence[8] = Pose(moving[8].xy, wrist_gone)
    out = smooth_poses(sequence, FPS)
    assert isinstance(out, SmoothedPoses) and len(out) == 12
    assert out.held_frames == (5, 6) and out.backfilled_frames == ()
    assert out[5] == out[4] and out[6] == out[4]  # whole frames hold the last value
    assert np.array_equal(out[8].xy[4], out[7].xy[4])  # the wrist holds
    assert not np.array_equal(out[8].xy[3], out[7].xy[3])  # the elbow moves on
    assert all(p.valid.all() for p in out)
    assert out.held_points[5].all() and out.held_points[6].all()
    assert np.flatnonzero(out.held_points[8]).tolist() == [4]
    assert out.held_points.sum() == 18 * 2 + 1


def test_reappearing_point_restarts_at_its_detection() -> None:
    moving = [Pose(BASE + np.array([5.0 * t, 0.0]), ALL) for t in range(20)]
    sequence: list[Pose | None] = list(moving)
    for t in (10, 11, 12):
        sequence[t] = None
    out = smooth_poses(sequence, FPS)
    assert out.restarts[13].all() and out.restarts.sum() == 18
    assert out[13] == moving[13]  # no smoothing across the gap: starts at the detection
    assert out[9] != moving[9]  # it was smoothing (lagging) before the gap


def test_leading_missing_frames_are_backfilled_per_point() -> None:
    first = Pose(BASE, ALL)
    late_valid = ALL.copy()
    late_valid[0] = False  # the nose shows up one frame later
    second = Pose(BASE + 1.0, late_valid)
    third = Pose(BASE + 2.0, ALL)
    out = smooth_poses([None, Pose.missing(), second, third], FPS)
    assert out.backfilled_frames == (0, 1) and out.held_frames == ()
    assert out[0] == out[1] and out[0].valid.all()
    np.testing.assert_allclose(out[0].xy[1:], BASE[1:] + 1.0, atol=1e-4)  # from frame 2
    np.testing.assert_allclose(out[0].xy[0], BASE[0] + 2.0, atol=1e-4)  # nose from frame 3
    assert out.held_points[:2].all() and out.held_points[2].tolist() == [True] + [False] * 17
    assert smooth_poses([first], FPS)[0] == first


def test_never_detected_point_stays_invalid() -> None:
    valid = ALL.copy()
    valid[17] = False
    out = smooth_poses([Pose(BASE, valid)] * 3, FPS)
    assert [p.valid[17] for p in out] == [False] * 3
    assert not out.held_points[:, 17].any()


def test_no_pose_at_all_is_an_error() -> None:
    with pytest.raises(ValueError, match="no keypoint detected in any of the 3 frames"):
        smooth_poses([None, Pose.missing(), None], FPS)
    with pytest.raises(ValueError, match="any of the 0 frames"):
        smooth_poses([], FPS)


def test_bad_arguments() -> None:
    poses = [Pose(BASE, ALL)]
    for name in ("fps", "min_cutoff", "d_cutoff", "scale"):
        for value in (0, -1.0, float("nan"), float("inf")):
            kwargs = {"fps": FPS, name: value}
            with pytest.raises(ValueError, match=name):
                smooth_poses(poses, **kwargs)
    with pytest.raises(ValueError, match="beta"):
        smooth_poses(poses, FPS, beta=-0.1)
    with pytest.raises(TypeError, match=r"poses\[1\] must be a Pose or None, got ndarray"):
        smooth_poses([poses[0], BASE], FPS)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="sequence of Pose"):
        smooth_poses(poses[0], FPS)  # type: ignore[arg-type]
