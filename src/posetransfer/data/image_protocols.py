"""Image protocols: the fixed image geometries of published numbers, and the map each one plans.

Published numbers on DeepFashion and Market-1501 come from a few fixed image geometries
(``reference/peers.md`` §2). An :class:`ImageProtocol` names one of them (:data:`PROTOCOLS`,
:func:`get_protocol`); :func:`plan_transform` turns it into an :class:`Affine` for a given input
size. :mod:`posetransfer.data.transforms` carries images, keypoints and flow through that map.

Convention:
    Continuous pixel coordinates with pixel ``(i, j)`` centred at ``(j + 0.5, i + 0.5)``
    (``posetransfer.conventions``). An :class:`Affine` maps input to output coordinates,
    ``x' = sx * x + ox`` and ``y' = sy * y + oy``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

__all__ = [
    "PROTOCOLS",
    "Affine",
    "ImageProtocol",
    "Size",
    "format_size",
    "get_protocol",
    "plan_transform",
]

Size = tuple[int, int]


@dataclass(frozen=True)
class ImageProtocol:
    """A named image geometry: the output size and how inputs of known sizes reach it.

    Attributes:
        name: Key in :data:`PROTOCOLS`.
        size: ``(H, W)`` of the output, or None to keep every input as it is.
        crop: ``(left, top, right, bottom)`` box in input pixels, applied (then resized to
            ``size`` if it differs) when the input is ``crop_input_size``.
        crop_input_size: ``(H, W)`` of the inputs that get ``crop``.
        keypoint_frame: ``(H, W)`` frame the annotated keypoints live in when it is not the
            image's own (it covers the same field of view as the image); None: the image's frame.
        resize: If True, inputs of any other size are resized straight to ``size``; if False
            they are an error.
        source: Where the protocol comes from.
    """

    name: str
    size: Size | None
    crop: tuple[int, int, int, int] | None = None
    crop_input_size: Size | None = None
    keypoint_frame: Size | None = None
    resize: bool = False
    source: str = ""

    def __post_init__(self) -> None:
        for field in ("size", "crop_input_size", "keypoint_frame"):
            value = getattr(self, field)
            if value is not None and (len(value) != 2 or min(value) <= 0):
                raise ValueError(f"ImageProtocol {self.name!r}: {field} must be (H, W) > 0")
        if (self.crop is None) != (self.crop_input_size is None):
            raise ValueError(f"ImageProtocol {self.name!r}: crop needs crop_input_size and back")
        if self.crop is not None and self.crop_input_size is not None:
            left, top, right, bottom = self.crop
            height, width = self.crop_input_size
            if not (0 <= left < right <= width and 0 <= top < bottom <= height):
                raise ValueError(
                    f"ImageProtocol {self.name!r}: crop {self.crop} does not fit inside "
                    f"crop_input_size {self.crop_input_size}"
                )
        if self.size is None and (self.crop is not None or self.resize):
            raise ValueError(f"ImageProtocol {self.name!r}: crop/resize need an output size")

    def accepted_sizes(self) -> str:
        """Human-readable list of the input sizes this protocol takes."""
        if self.size is None:
            return "any size"
        sizes = [format_size(self.size)]
        if self.crop_input_size is not None:
            sizes.append(f"{format_size(self.crop_input_size)} (cropped to {self.crop})")
        return "any size (resized)" if self.resize else " or ".join(sizes)


#: The named protocols (``reference/peers.md`` §2.1-2.2).
PROTOCOLS: dict[str, ImageProtocol] = {
    p.name: p
    for p in (
        ImageProtocol(
            name="deepfashion-256x176",
            size=(256, 176),
            crop=(40, 0, 216, 256),
            crop_input_size=(256, 256),
            source="PATN legacy protocol: the 256x256 low-res DeepFashion images (white side "
            "margins) are cropped to x in [40, 216) by tool/generate_fashion_datasets.py; the "
            "'fasion-resize-*' 256x176 images and annotations are used as they are.",
        ),
        ImageProtocol(
            name="deepfashion-256x256",
            size=(256, 256),
            keypoint_frame=(256, 176),
            resize=True,
            source="GFLA protocol: high-res DeepFashion images resized straight to 256x256 "
            "(data/base_dataset.py); its 'fasion-annotation-*' keypoints live in a 256x176 frame "
            "(old_size=(256, 176)) and are rescaled with the image.",
        ),
        ImageProtocol(
            name="market-128x64",
            size=(128, 64),
            source="Market-1501 at its native 128x64 (PATN/GFLA and Intr-Flow).",
        ),
        ImageProtocol(
            name="native",
            size=None,
            source="No geometric change; keypoints are in the image frame (DIAF layout, "
            "synthetic data).",
        ),
    )
}


def get_protocol(name: str | ImageProtocol) -> ImageProtocol:
    """Look up a protocol by name (an :class:`ImageProtocol` is returned as is).

    Raises:
        ValueError: For an unknown name; the message lists the valid ones.
    """
    if isinstance(name, ImageProtocol):
        return name
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(
            f"unknown image protocol {name!r}; valid protocols: {', '.join(sorted(PROTOCOLS))}"
        ) from None


@dataclass(frozen=True)
class Affine:
    """Axis-aligned map from input to output pixel coordinates, ``x' = s * x + o`` per axis.

    Attributes:
        scale: ``(sx, sy)``, positive.
        offset: ``(ox, oy)`` in output pixels.
        in_size: ``(H, W)`` of the input frame.
        out_size: ``(H, W)`` of the output frame.
    """

    scale: tuple[float, float]
    offset: tuple[float, float]
    in_size: Size
    out_size: Size

    @classmethod
    def identity(cls, size: Size) -> Affine:
        """The identity on an ``(H, W)`` frame."""
        return cls((1.0, 1.0), (0.0, 0.0), cast(Size, tuple(size)), cast(Size, tuple(size)))

    @classmethod
    def from_box(
        cls, box: tuple[float, float, float, float], in_size: Size, out_size: Size
    ) -> Affine:
        """Map the input box ``(left, top, right, bottom)`` onto the whole output frame."""
        left, top, right, bottom = box
        sx, sy = out_size[1] / (right - left), out_size[0] / (bottom - top)
        in_size, out_size = cast(Size, tuple(in_size)), cast(Size, tuple(out_size))
        return cls((sx, sy), (-left * sx, -top * sy), in_size, out_size)

    @property
    def crop_box(self) -> tuple[float, float, float, float]:
        """``(left, top, right, bottom)``: the input region that maps onto the output frame."""
        (sx, sy), (ox, oy), (height, width) = self.scale, self.offset, self.out_size
        return (-ox / sx, -oy / sy, (width - ox) / sx, (height - oy) / sy)

    @property
    def is_identity(self) -> bool:
        """True if the map changes nothing."""
        return (
            self.scale == (1.0, 1.0) and self.offset == (0.0, 0.0) and self.in_size == self.out_size
        )

    def rebase(self, frame: Size) -> Affine:
        """The same map read from ``frame``, another resolution of the same field of view.

        A point at ``x`` in ``frame`` sits at ``x * W_in / W_frame`` in the input, so the result
        is this map composed with that rescaling.
        """
        rx, ry = self.in_size[1] / frame[1], self.in_size[0] / frame[0]
        (sx, sy), offset = self.scale, self.offset
        return Affine((sx * rx, sy * ry), offset, cast(Size, tuple(frame)), self.out_size)


def plan_transform(protocol: ImageProtocol | str, image_size: Size) -> Affine:
    """The map that brings an image of ``image_size`` into ``protocol``'s geometry.

    Args:
        protocol: A protocol or its name.
        image_size: ``(H, W)`` of the input image.

    Returns:
        Identity for inputs already at the protocol size (or for ``native``), the crop (then
        resize) for ``crop_input_size`` inputs, a plain resize if the protocol allows it.

    Raises:
        ValueError: If the protocol does not take inputs of this size (names both).
    """
    protocol = get_protocol(protocol)
    image_size = (int(image_size[0]), int(image_size[1]))
    if protocol.size is None or image_size == protocol.size:
        return Affine.identity(image_size)
    if protocol.crop is not None and image_size == protocol.crop_input_size:
        return Affine.from_box(protocol.crop, image_size, protocol.size)
    if protocol.resize:
        return Affine.from_box((0, 0, image_size[1], image_size[0]), image_size, protocol.size)
    raise ValueError(
        f"image protocol {protocol.name!r} expects inputs of {protocol.accepted_sizes()}, "
        f"got {format_size(image_size)}"
    )


def format_size(size: Size | tuple[int, ...]) -> str:
    """``"HxW"`` for an ``(H, W)`` size, as in error messages."""
    return f"{size[0]}x{size[1]}"
