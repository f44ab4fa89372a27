"""posetransfer: human pose transfer with dense intrinsic appearance flow.

A reimplementation of "Dense Intrinsic Appearance Flow for Human Pose Transfer" (Li, Huang, Loy,
CVPR 2019) with the free Anny body model in place of SMPL. See ``posetransfer.conventions`` for the
shared tensor, keypoint, flow and visibility conventions.
"""

__version__ = "0.1.0"
