"""Keypoints and pose maps."""
