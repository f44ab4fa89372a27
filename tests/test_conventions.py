"""Tests for posetransfer.conventions."""

from __future__ import annotations

from posetransfer.conventions import (
    FLIP_PERMUTATION,
    KEYPOINT_NAMES,
    LIMBS,
    NUM_KEYPOINTS,
    Keypoint,
    Visibility,
)


def test_keypoint_order_is_openpose_coco18():
    assert NUM_KEYPOINTS == 18
    assert KEYPOINT_NAMES[:5] == ("nose", "neck", "r_shoulder", "r_elbow", "r_wrist")
    assert KEYPOINT_NAMES[14:] == ("r_eye", "l_eye", "r_ear", "l_ear")


def test_flip_permutation_swaps_sides_and_is_an_involution():
    for k in Keypoint:
        partner = Keypoint(FLIP_PERMUTATION[k])
        if k.name.startswith(("R_", "L_")):
            assert partner.name[2:] == k.name[2:] and partner.name[0] != k.name[0]
        else:
            assert partner == k
        assert FLIP_PERMUTATION[partner] == k


def test_limbs_connect_valid_indices():
    assert len(LIMBS) == 19
    assert all(0 <= a < 18 and 0 <= b < 18 and a != b for a, b in LIMBS)
    assert (Keypoint.R_SHOULDER, Keypoint.R_ELBOW) in LIMBS


def test_visibility_codes_match_the_original_corr_files():
    assert (Visibility.VISIBLE, Visibility.INVISIBLE, Visibility.BACKGROUND) == (0, 1, 2)
