"""Re-pose a person in a photo: any photo in, the same photo with the person in a new pose out.

:class:`RePoser` wraps a trained run (:class:`~posetransfer.infer.pipeline.PoseTransferPipeline`)
with everything between a photo and the networks:

1. the source person is found (:mod:`~posetransfer.infer.detect`, or a given pose), framed at the
   model's size (:class:`~posetransfer.infer.framing.Frame`), and removed from a copy of the
   frame (:func:`~posetransfer.infer.background.inpaint`): the *plate*;
2. the target pose comes from another photo (detected and framed the same way), a pose already in
   the model's frame, or a driving video (:mod:`~posetransfer.infer.motion`);
3. flow comes from the run's regressor or from the fitted 3D body (``flow="3d"``);
4. the generator takes the plate as its background (no ghost of the source person), and the
   person it draws is composited over the chosen background through the target mask (the flow's
   non-background pixels), with soft edges; with ``paste`` the frame goes back into the photo.

Example::

    from posetransfer.infer.repose import RePoser
    with RePoser.from_run("demo_out/work/runs/full") as reposer:
        result = reposer(load_image("me.jpg"), load_image("pose.jpg"))
    save_png("out.png", result.image)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np
import torch

from posetransfer.conventions import Visibility
from posetransfer.eval.masks import pose_mask
from posetransfer.infer.background import composite, dilate_mask, inpaint, solid_background
from posetransfer.infer.framing import Frame, box_from_pose
from posetransfer.infer.images import as_rgb
from posetransfer.infer.pipeline import PoseTransferPipeline, body_flow, check_pose
from posetransfer.io import tensor_to_uint8, uint8_to_tensor
from posetransfer.pose.keypoints import Pose, stack_poses

__all__ = ["FlowMode", "RePoseOptions", "RePoseResult", "RePoser", "SourcePerson"]

logger = logging.getLogger(__name__)

FlowMode = Literal["regressor", "3d"]


@dataclass(frozen=True)
class RePoseOptions:
    """How a photo is re-posed.

    Attributes:
        flow: ``"regressor"`` (the run's flow network) or ``"3d"`` (fit the body model to both
            poses and render the flow; slower, steadier on real poses).
        background: ``"source"`` (the photo's own background, the person removed), ``"white"``,
            or the path of an image (resized to cover the frame).
        paste: Put the result back into the full source photo (``background="source"`` only);
            otherwise the output is the model-sized frame.
        framing: ``"crop"`` (a box around the person, with ``margin``) or ``"letterbox"``
            (the whole photo fitted into the frame with padding; for photos that are already
            a person crop).
        margin: Fraction of a person's box added on every side before framing.
        feather: Soft-edge width in pixels of the compositing masks.
        person: Which person of the source photo (0 = the largest).
        hole_dilation: Pixels (in the frame) the source person's mask grows before inpainting.
        clean_background: Give the generator the person-free plate for its background.
    """

    flow: FlowMode = "regressor"
    background: str = "source"
    paste: bool = False
    framing: Literal["crop", "letterbox"] = "crop"
    margin: float = 0.1
    feather: float = 1.5
    person: int = 0
    hole_dilation: int = 3
    clean_background: bool = True

    def __post_init__(self) -> None:
        if self.flow not in ("regressor", "3d"):
            raise ValueError(f"flow must be 'regressor' or '3d', got {self.flow!r}")
        if self.background not in ("source", "white") and not Path(self.background).is_file():
            raise ValueError(
                f"background must be 'source', 'white' or an image file, got {self.background!r}"
            )
        if self.framing not in ("crop", "letterbox"):
            raise ValueError(f"framing must be 'crop' or 'letterbox', got {self.framing!r}")
        if self.paste and self.background != "source":
            raise ValueError("paste=True needs background='source' (the photo's own background)")
        for name in ("margin", "feather", "hole_dilation", "person"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")


@dataclass(frozen=True, eq=False)
class SourcePerson:
    """The source person, ready for any number of targets.

    Attributes:
        image: ``(H, W, 3)`` uint8 source photo.
        frame: Where the model's frame sits in the photo.
        crop: ``(h, w, 3)`` uint8 the frame's pixels (what the networks see).
        pose: Source keypoints in the frame's pixels.
        mask: ``(h, w)`` float32 person mask in the frame (the detector's, else keypoint limbs).
        plate: ``(h, w, 3)`` uint8 the frame with the person removed (inpainted).
    """

    image: np.ndarray
    frame: Frame
    crop: np.ndarray
    pose: Pose
    mask: np.ndarray
    plate: np.ndarray


@dataclass(frozen=True, eq=False)
class RePoseResult:
    """One re-posed image.

    Attributes:
        image: The output: the photo with the new pose pasted (``paste``), else :attr:`frame`.
        frame: ``(h, w, 3)`` uint8 the model's frame, composited over the background.
        generated: ``(h, w, 3)`` uint8 the networks' output before compositing.
        flow: ``(h, w, 2)`` float32 target -> source flow in frame pixels.
        visibility: ``(h, w)`` uint8 visibility codes (``conventions.Visibility``).
        mask: ``(h, w)`` float32 target person mask used for compositing: the flow's
            non-background pixels, one pixel in from the silhouette's edge.
        target_pose: The target keypoints in the frame's pixels.
    """

    image: np.ndarray
    frame: np.ndarray
    generated: np.ndarray
    flow: np.ndarray
    visibility: np.ndarray
    mask: np.ndarray
    target_pose: Pose


@dataclass
class _Resources:
    detector: Any = None
    body_model: Any = None
    background: np.ndarray | None = None
    extras: dict[str, Any] = field(default_factory=dict)


class RePoser:
    """A trained run plus the photo plumbing; use it in a ``with`` block (closes the detector).

    Args:
        pipeline: The trained networks.
        options: How photos are re-posed.
        body_cache_dir: Anny's cache folder for ``flow="3d"`` (default: ``$ANNY_CACHE_DIR``).
        detector_config: Settings of the pose detector (``posetransfer.infer.detect``).
    """

    def __init__(
        self,
        pipeline: PoseTransferPipeline,
        options: RePoseOptions | None = None,
        *,
        body_cache_dir: str | Path | None = None,
        detector_config: Any = None,
    ) -> None:
        self.pipeline = pipeline
        self.options = options or RePoseOptions()
        self.body_cache_dir = body_cache_dir
        self.detector_config = detector_config
        self._res = _Resources()

    @classmethod
    def from_run(
        cls, run_dir: str | Path, options: RePoseOptions | None = None, **kwargs: Any
    ) -> RePoser:
        """Load a ``posetransfer train`` run folder (its best checkpoint)."""
        return cls(PoseTransferPipeline.from_run(run_dir), options, **kwargs)

    @property
    def model_size(self) -> tuple[int, int]:
        """``(h, w)`` of the model's frame."""
        return self.pipeline.image_size

    def __enter__(self) -> RePoser:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the pose detector (idempotent)."""
        if self._res.detector is not None:
            self._res.detector.close()
            self._res.detector = None

    # ------------------------------------------------------------------------------ inputs

    def detector(self) -> Any:
        """The (lazily opened) photo-mode pose detector."""
        if self._res.detector is None:
            from posetransfer.infer.detect import PoseDetector

            self._res.detector = PoseDetector(self.detector_config).__enter__()
        return self._res.detector

    def source(self, image: Any, pose: Pose | None = None, name: str = "source") -> SourcePerson:
        """Find, frame and cut out the source person.

        Args:
            image: The photo: an ``(H, W, 3)`` array or a PIL image (see ``as_rgb``).
            pose: The person's keypoints in the photo's pixels; None detects them.
            name: What to call the photo in messages (a file name).

        Returns:
            The framed source person with its mask and person-free plate.

        Raises:
            NoPersonError: If no person (or not the requested one) is found.
            PoseInputError: If the pose has too few keypoints.
        """
        image = as_rgb(image, name=name)
        size = image.shape[:2]
        if pose is None:
            found = self.detector().detect(image, name=name, person=self.options.person)
            pose, full_mask, bounds = found.pose, found.mask, found.bounds
        else:
            check_pose(pose, f"{name} pose")
            full_mask, bounds = None, box_from_pose(pose)
        frame = self._frame(bounds, size)
        pose_f = check_pose(frame.to_frame(pose, drop_outside=True), f"{name} pose in the frame")
        crop = frame.crop(image)
        if full_mask is None:
            mask = pose_mask(pose_f, self.model_size, radius=max(4.0, self.model_size[0] / 24))
            mask = mask.astype(np.float32)
        else:
            mask = _crop_mask(frame, full_mask)
        hole = dilate_mask(mask, self.options.hole_dilation)
        plate = (
            inpaint(crop, hole) if not hole.all() else solid_background(self.model_size, (255,) * 3)
        )
        return SourcePerson(image, frame, crop, pose_f, mask, plate)

    def target_pose(self, target: Any, name: str = "target") -> Pose:
        """The target keypoints in the model's frame.

        Args:
            target: A :class:`Pose` already in the model's frame, or a photo (array or PIL
                image) whose person is detected and framed like a source.
            name: What to call it in messages.
        """
        if isinstance(target, Pose):
            return check_pose(target, f"{name} pose")
        image = as_rgb(target, name=name)
        found = self.detector().detect(image, name=name, person=self.options.person)
        frame = self._frame(found.bounds, image.shape[:2])
        return check_pose(frame.to_frame(found.pose, drop_outside=True), f"{name} pose")

    def framed_pose(self, pose: Pose, name: str = "target") -> Pose:
        """A pose in any image's pixels moved into the model's frame by its own box.

        The box around the valid keypoints, with the margin, is framed like a detected person,
        so a pose file from an image of any size (a dataset annotation, a pose from another
        tool) gives a person of the usual size in the frame.
        """
        check_pose(pose, f"{name} pose")
        box = box_from_pose(pose)
        size = (max(1, int(np.ceil(box[3]))), max(1, int(np.ceil(box[2]))))
        frame = Frame.from_box(box, size, self.model_size, margin=self.options.margin)
        return check_pose(frame.to_frame(pose), f"{name} pose")

    # ------------------------------------------------------------------------------ render

    def flows(
        self, source: SourcePerson, targets: Sequence[Pose]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Flow ``(B, 2, h, w)`` and visibility codes ``(B, h, w)`` for ``targets``."""
        if self.options.flow == "3d":
            return body_flow(
                self._body_model(), [source.pose] * len(targets), targets, self.model_size
            )
        (src_xy, src_valid), (tgt_xy, tgt_valid) = (
            stack_poses(p) for p in ([source.pose] * len(targets), list(targets))
        )
        flow, vis = self.pipeline.predict_flow(src_xy, src_valid, tgt_xy, tgt_valid)
        return flow.cpu(), vis.cpu()

    def render(
        self,
        source: SourcePerson,
        targets: Sequence[Pose],
        flows: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> list[RePoseResult]:
        """Render the source person in each target pose (one batch).

        Args:
            source: From :meth:`source`.
            targets: Target poses in the model's frame.
            flows: Precomputed ``(flow, visibility)`` for the batch (default: :meth:`flows`).
        """
        if not targets:
            return []
        flow, vis = flows if flows is not None else self.flows(source, targets)
        count = len(targets)
        x_src = uint8_to_tensor(source.crop)[None].expand(count, -1, -1, -1)
        background = None
        if self.options.clean_background and self._uses_background():
            background = uint8_to_tensor(source.plate)[None].expand(count, -1, -1, -1)
        out = self.pipeline(x_src, [source.pose] * count, list(targets), (flow, vis), background)
        plate = self._plate(source)
        results = []
        for i, pose in enumerate(targets):
            generated = tensor_to_uint8(out.image[i].cpu())
            codes = vis[i].to(torch.uint8).numpy()
            # one pixel in from the silhouette: the generator's edge pixels are half background
            mask = (~dilate_mask(codes == int(Visibility.BACKGROUND), 1)).astype(np.float32)
            frame_img = composite(generated, plate, mask, self.options.feather)
            image = frame_img
            if self.options.paste:
                where = np.maximum(mask, dilate_mask(source.mask, self.options.hole_dilation))
                image = source.frame.paste(source.image, frame_img, where, self.options.feather)
            flow_i = flow[i].permute(1, 2, 0).numpy().astype(np.float32)
            results.append(RePoseResult(image, frame_img, generated, flow_i, codes, mask, pose))
        return results

    def __call__(
        self, source: Any, target: Any, *, source_pose: Pose | None = None
    ) -> RePoseResult:
        """Re-pose the person of the ``source`` photo into the pose of ``target``.

        Args:
            source: The source photo (array or PIL image).
            target: A photo whose pose is taken, or a :class:`Pose` in the model's frame.
            source_pose: The source keypoints in the photo (default: detected).
        """
        person = self.source(source, source_pose)
        return self.render(person, [self.target_pose(target)])[0]

    # ------------------------------------------------------------------------------ helpers

    def _frame(self, bounds: tuple[float, float, float, float], size: tuple[int, int]) -> Frame:
        mode = self.options.framing
        return Frame.from_box(
            bounds, size, self.model_size, mode, margin=self.options.margin if mode == "crop" else 0
        )

    def _uses_background(self) -> bool:
        cfg = self.pipeline.cfg.generator
        return bool(cfg.dual_encoder and cfg.use_flow and cfg.visibility != "none")

    def _plate(self, source: SourcePerson) -> np.ndarray:
        choice = self.options.background
        if choice == "source":
            return source.plate
        if choice == "white":
            return solid_background(self.model_size, (255, 255, 255))
        if self._res.background is None:
            from posetransfer.infer.images import load_image

            image = load_image(choice)
            frame = Frame.from_box(
                (0, 0, image.shape[1], image.shape[0]), image.shape[:2], self.model_size
            )
            self._res.background = _cover(image, frame, self.model_size)
        return self._res.background

    def _body_model(self) -> Any:
        if self._res.body_model is None:
            from posetransfer.body import load_body_model

            self._res.body_model = load_body_model(self.body_cache_dir)
        return self._res.body_model


def _crop_mask(frame: Frame, mask: np.ndarray) -> np.ndarray:
    """A full-image ``(H, W)`` mask in ``[0, 1]`` resampled into the frame, zero outside."""
    gray = np.clip(np.rint(np.asarray(mask, np.float32) * 255), 0, 255).astype(np.uint8)
    rgb = np.repeat(gray[..., None], 3, axis=2)
    return frame.crop(rgb, fill=(0, 0, 0))[..., 0].astype(np.float32) / 255.0


def _cover(image: np.ndarray, frame: Frame, size: tuple[int, int]) -> np.ndarray:
    """``image`` resized to cover ``size`` (centre crop at the frame's aspect)."""
    height, width = image.shape[:2]
    aspect = size[1] / size[0]
    if width / height > aspect:  # too wide: crop the sides
        w = height * aspect
        box = ((width - w) / 2, 0.0, (width + w) / 2, float(height))
    else:
        h = width / aspect
        box = (0.0, (height - h) / 2, float(width), (height + h) / 2)
    return Frame(box, (height, width), size).crop(image)
