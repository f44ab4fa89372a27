"""The result of a batched keypoint fit, its serialisation and its rescaling."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from posetransfer.body.camera import rescale_camera
from posetransfer.body.params import BodyParams
from posetransfer.io import atomic_write_bytes, read_npz, write_npz

__all__ = ["FitResult"]

_ARRAY_KEYS = ("camera", "reprojection_error", "converged", "num_valid", "keypoints_xy")


@dataclass(frozen=True, eq=False)
class FitResult:
    """Fitted bodies and cameras for a batch of images.

    Items for which no fit was attempted (NaN input, too few keypoints) hold NaN parameters,
    camera, keypoints and error, ``converged = False`` and a ``reason``.

    Attributes:
        params: ``B`` fitted bodies (phenotype None unless the shape was fitted).
        camera: ``(B, 3)`` weak-perspective cameras ``(log s, tx, ty)`` for ``image_size``.
        reprojection_error: ``(B,)`` mean distance in pixels between the fitted and the given
            keypoints over the valid keypoints.
        converged: ``(B,)`` bool, error below the configured threshold with enough keypoints.
        reason: Why each item failed, or None: ``"fewer than 4 valid keypoints"``,
            ``"NaN in keypoints"``, ``"did not converge: error X px"``.
        image_size: ``(H, W)`` of the images the keypoints refer to.
        keypoints_xy: ``(B, 18, 2)`` fitted keypoints projected to the image (pixels).
        num_valid: ``(B,)`` int64, number of valid keypoints used.
    """

    params: BodyParams
    camera: Tensor
    reprojection_error: Tensor
    converged: Tensor
    reason: list[str | None]
    image_size: tuple[int, int]
    keypoints_xy: Tensor
    num_valid: Tensor

    def __post_init__(self) -> None:
        batch = self.params.batch_size
        checks = {
            "camera": (batch, 3),
            "reprojection_error": (batch,),
            "converged": (batch,),
            "keypoints_xy": (batch, 18, 2),
            "num_valid": (batch,),
        }
        for name, shape in checks.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"FitResult.{name} must have shape {shape}, got {got}")
        if len(self.reason) != batch:
            raise ValueError(f"FitResult.reason must have {batch} entries, got {len(self.reason)}")
        if len(self.image_size) != 2 or min(self.image_size) <= 0:
            raise ValueError(f"FitResult.image_size must be (H, W) > 0, got {self.image_size}")

    def __len__(self) -> int:
        return self.params.batch_size

    @property
    def attempted(self) -> Tensor:
        """``(B,)`` bool, True where a fit was run."""
        return ~self.reprojection_error.isnan()

    def select(self, index: Sequence[int] | Tensor) -> FitResult:
        """Rows ``index`` of the batch."""
        index = torch.as_tensor(index, dtype=torch.long).reshape(-1)
        return FitResult(
            params=self.params.select(index),
            camera=self.camera[index],
            reprojection_error=self.reprojection_error[index],
            converged=self.converged[index],
            reason=[self.reason[i] for i in index.tolist()],
            image_size=self.image_size,
            keypoints_xy=self.keypoints_xy[index],
            num_valid=self.num_valid[index],
        )

    def rescaled(self, factor: float) -> FitResult:
        """The same fits for the images resized by ``factor`` (e.g. 2.0: 256x176 -> 512x352).

        Bodies are unchanged; the camera, keypoints, error and image size scale with ``factor``.
        """
        height, width = self.image_size
        return FitResult(
            params=self.params,
            camera=rescale_camera(self.camera, factor),
            reprojection_error=self.reprojection_error * factor,
            converged=self.converged,
            reason=list(self.reason),
            image_size=(round(height * factor), round(width * factor)),
            keypoints_xy=self.keypoints_xy * factor,
            num_valid=self.num_valid,
        )

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, np.ndarray]:
        """Numpy arrays only (npz / safetensors friendly; ``reason`` as a unicode array, "" = None).

        Body parameters are stored under ``params.<field>``.
        """
        out: dict[str, np.ndarray] = {f"params.{k}": v for k, v in self.params.to_dict().items()}
        for key in _ARRAY_KEYS:
            out[key] = getattr(self, key).detach().cpu().numpy()
        out["reason"] = np.array([r or "" for r in self.reason], dtype=np.str_)
        out["image_size"] = np.array(self.image_size, dtype=np.int64)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> FitResult:
        """Inverse of :meth:`to_dict`; also accepts nested lists (e.g. parsed JSON)."""
        missing = {*_ARRAY_KEYS, "reason", "image_size"} - set(data)
        if missing:
            raise ValueError(f"FitResult.from_dict: missing keys {sorted(missing)}")
        params = BodyParams.from_dict(
            {k.removeprefix("params."): v for k, v in data.items() if k.startswith("params.")}
        )
        height, width = (int(v) for v in np.asarray(data["image_size"]).reshape(-1))
        return cls(
            params=params,
            camera=torch.as_tensor(np.asarray(data["camera"], dtype=np.float32)),
            reprojection_error=torch.as_tensor(
                np.asarray(data["reprojection_error"], dtype=np.float32)
            ),
            converged=torch.as_tensor(np.asarray(data["converged"], dtype=bool)),
            reason=[str(r) or None for r in np.asarray(data["reason"]).reshape(-1)],
            image_size=(height, width),
            keypoints_xy=torch.as_tensor(np.asarray(data["keypoints_xy"], dtype=np.float32)),
            num_valid=torch.as_tensor(np.asarray(data["num_valid"], dtype=np.int64)),
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write an ``.npz`` file atomically (no pickles)."""
        buffer = io.BytesIO()
        write_npz(buffer, **self.to_dict())
        atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FitResult:
        """Read a file written by :meth:`save`."""
        try:
            return cls.from_dict(read_npz(path))
        except (OSError, ValueError, KeyError) as err:
            raise ValueError(f"cannot read a FitResult from {path}: {err}") from err
