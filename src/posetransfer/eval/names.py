"""Names of the metrics in reports, validation results and tables, defined once.

The evaluation report (:mod:`posetransfer.eval.evaluate`), the generator stage's validation, the
flow evaluation, the baselines and the demo's tables all key their values by these names. SSIM
variants that a protocol adds (``ssim_256``, ``ssim_unpadded``) are named by the protocol
(:mod:`posetransfer.eval.protocols`).
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "EPE_FG",
    "EPE_VISIBLE",
    "FID",
    "INCEPTION_SCORE",
    "KID",
    "KID_STD",
    "L1",
    "LPIPS",
    "MASKED_METRICS",
    "MASK_L1",
    "MASK_LPIPS",
    "MASK_SSIM",
    "PSNR",
    "SSIM",
    "VIS_ACCURACY",
]

# Image metrics (evaluate, generator validation, baselines).
SSIM: Final = "ssim"
PSNR: Final = "psnr"
L1: Final = "l1"
MASK_SSIM: Final = "mask_ssim"
MASK_L1: Final = "mask_l1"
LPIPS: Final = "lpips"
MASK_LPIPS: Final = "mask_lpips"
FID: Final = "fid"
KID: Final = "kid"
KID_STD: Final = "kid_std"
INCEPTION_SCORE: Final = "inception_score"

#: The metrics computed inside the targets' keypoint masks (they need the targets' keypoints).
MASKED_METRICS: Final = (MASK_SSIM, MASK_L1, MASK_LPIPS)

# Flow metrics (flow-stage validation and evaluate-flow).
EPE_FG: Final = "epe_fg"
EPE_VISIBLE: Final = "epe_visible"
VIS_ACCURACY: Final = "vis_accuracy"
