"""Where each garment sits on the Anny body: surface regions and garment labels.

Clothing in the synthetic data is painted on the skin-tight body surface (there is no cloth or hair
geometry). Garments are placed with per-vertex attributes computed once per model on the average
body in its rest pose (the A-pose):

- the **region** (:class:`Region`), from the dominant skinning bone: head, torso (with the
  neck), arm, hand, leg or foot;
- a **coordinate** along that region, normalised so that one number means the same place on
  every body: arms run from 0 at the shoulder joint to 1 at the wrist, legs from 0 at the hip
  joint to 1 at the ankle, the torso from 0 at hip-joint height to 1 at shoulder-joint height
  (the neck lies above 1), the head from 0 at the head joint to 1 at the crown;
- a second coordinate: the head's front-to-back position (0 at the face, 1 at the back), or the
  torso's distance from the midline (0 at the centre, 1 at the shoulder joint);
- the rest-pose distance behind the pelvis, which tells the back from the front.

A :class:`Cut` (sleeve length, hem, waist, neckline, hair line) turns these into a garment. At
a rendered point (face and barycentrics) inside a face whose three vertices share a region, the
coordinates are interpolated and the cut applied at the point, so hems and necklines are smooth
curves; a face straddling two regions takes the majority garment of its vertices, so those edges
follow mesh edges. Either way the label is a function of the surface point, never of the pose,
which keeps the texture glued to the body and the ground-truth flow exact.

Limitations (honest): skirts and dresses are tight, painted on the thighs, with nothing between
the legs; long hair is painted on the neck and upper back.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from posetransfer.body.anny_model import BodyModel

__all__ = [
    "Cut",
    "Garment",
    "Region",
    "SurfaceMap",
    "garment_labels",
    "pixel_garments",
    "surface_map",
    "vertex_garments",
]


class Garment(IntEnum):
    """Garment label of a mesh face."""

    SKIN = 0
    TOP = 1
    BOTTOM = 2
    SHOES = 3
    HAIR = 4


class Region(IntEnum):
    """Body region of a vertex, from its dominant skinning bone."""

    HEAD = 0
    TORSO = 1
    ARM = 2
    HAND = 3
    LEG = 4
    FOOT = 5


_REGION_PREFIXES: tuple[tuple[Region, tuple[str, ...]], ...] = (
    (Region.HEAD, ("neck03", "head", "eye")),
    (Region.ARM, ("shoulder01", "upperarm", "lowerarm")),
    (Region.HAND, ("wrist", "finger", "metacarpal")),
    (Region.LEG, ("upperleg", "lowerleg")),
    (Region.FOOT, ("foot", "toe")),
)


@dataclass(frozen=True)
class Cut:
    """Shape of an outfit on the body, in the normalised coordinates of the module docstring.

    Attributes:
        sleeve: Arm coordinate where sleeves end (< 0: sleeveless; ~0.4 short; 1 long).
        hem: Leg coordinate where the bottom ends (~0.25 shorts, ~0.5 knee, 1 trousers).
        waist: Torso coordinate of the waistline between top and bottom.
        neckline: Torso coordinate of the neckline at the midline, front.
        v_depth: How much lower the front neckline is at the midline than at the shoulders.
        hair_front: Head coordinate of the hair line on the forehead (> 1: no hair).
        hair_back: Head coordinate of the hair line at the nape.
        hair_length: Torso coordinate down to which hair covers the upper back (> 1: short).
    """

    sleeve: float = 1.0
    hem: float = 1.0
    waist: float = 0.3
    neckline: float = 1.0
    v_depth: float = 0.0
    hair_front: float = 0.75
    hair_back: float = 0.2
    hair_length: float = 2.0


@dataclass(frozen=True)
class SurfaceMap:
    """Per-vertex body regions and normalised coordinates (see the module docstring).

    Attributes:
        region: ``(V,)`` long :class:`Region` of each vertex.
        along: ``(V,)`` float coordinate along the region.
        across: ``(V,)`` float: head front (0) to back (1); torso distance from the midline.
        behind: ``(V,)`` float rest-pose distance behind the pelvis (metres, > 0 on the back).
    """

    region: Tensor
    along: Tensor
    across: Tensor
    behind: Tensor


def _bone_regions(labels: tuple[str, ...]) -> Tensor:
    out = torch.full((len(labels),), int(Region.TORSO), dtype=torch.long)
    for i, label in enumerate(labels):
        for region, prefixes in _REGION_PREFIXES:
            if label.startswith(prefixes):
                out[i] = int(region)
    return out


def _segment_coordinate(points: Tensor, start: Tensor, end: Tensor) -> Tensor:
    """Projection of ``(N, 3)`` points on the segment ``start -> end``: 0 at start, 1 at end."""
    axis = end - start
    return ((points - start) @ axis) / axis.dot(axis)


def _build_surface_map(model: BodyModel) -> SurfaceMap:
    anny = model.anny
    with torch.no_grad():
        out = anny()
    rest = out["rest_vertices"][0].float()
    heads = out["rest_bone_heads"][0].float()
    idx = model.bone_labels.index
    weights, bones = anny.vertex_bone_weights, anny.vertex_bone_indices
    dominant = bones.gather(1, weights.argmax(1, keepdim=True))[:, 0].long()
    region = _bone_regions(model.bone_labels)[dominant]
    x, y, z = rest.unbind(-1)
    along = torch.zeros_like(x)
    across = torch.zeros_like(x)
    for side, mask in (("L", x >= 0), ("R", x < 0)):
        shoulder, wrist = heads[idx(f"upperarm01.{side}")], heads[idx(f"wrist.{side}")]
        hip, ankle = heads[idx(f"upperleg01.{side}")], heads[idx(f"foot.{side}")]
        arm = mask & (region == Region.ARM)
        leg = mask & ((region == Region.LEG) | (region == Region.FOOT))
        along[arm] = _segment_coordinate(rest[arm], shoulder, wrist)
        along[leg] = _segment_coordinate(rest[leg], hip, ankle)
    hip_z = heads[idx("upperleg01.L"), 2]
    shoulder = heads[idx("upperarm01.L")]
    trunk = region == Region.TORSO
    along[trunk] = (z[trunk] - hip_z) / (shoulder[2] - hip_z)
    across[trunk] = x[trunk].abs() / shoulder[0]
    head = region == Region.HEAD
    head_z = heads[idx("head"), 2]
    along[head] = (z[head] - head_z) / (z[head].max() - head_z)
    front, back = y[head].min(), y[head].max()
    across[head] = (y[head] - front) / (back - front)
    behind = y - heads[idx("root"), 1]
    return SurfaceMap(region=region, along=along, across=across, behind=behind)


@functools.lru_cache(maxsize=2)
def _cached_surface_map(model: BodyModel) -> SurfaceMap:
    return _build_surface_map(model)


def surface_map(model: BodyModel) -> SurfaceMap:
    """Regions and normalised coordinates of every vertex of ``model`` (computed once, cached).

    Args:
        model: The body model.

    Returns:
        The :class:`SurfaceMap` of the average body's rest pose.
    """
    return _cached_surface_map(model)


def garment_labels(
    region: Tensor, along: Tensor, across: Tensor, behind: Tensor, cut: Cut
) -> Tensor:
    """Garment at surface points given their region and coordinates (any matching shapes).

    Args:
        region: Long :class:`Region` codes.
        along: Coordinate along the region.
        across: Head front-to-back / torso distance from the midline.
        behind: Distance behind the pelvis in the rest pose (metres).
        cut: The outfit's shape.

    Returns:
        Long :class:`Garment` labels, shaped like ``region``.
    """
    out = torch.full_like(region, int(Garment.SKIN))
    trunk = region == Region.TORSO
    # neckline: lowest at the front midline (deeper for a V), rising round the neck base
    spread = across.clamp(0, 1)
    rise = 0.8 * spread**2
    front = cut.neckline - cut.v_depth * (1 - spread / 0.35).clamp(min=0) + rise
    neck = torch.where(behind > 0, cut.neckline + 0.12 + rise, front)
    out[trunk & (along < neck)] = int(Garment.TOP)
    out[trunk & (along < cut.waist)] = int(Garment.BOTTOM)
    out[(region == Region.ARM) & (along < cut.sleeve)] = int(Garment.TOP)
    out[(region == Region.LEG) & (along < cut.hem)] = int(Garment.BOTTOM)
    out[(region == Region.FOOT) | ((region == Region.LEG) & (along > 0.97))] = int(Garment.SHOES)
    head = region == Region.HEAD
    # the hair line keeps its forehead height over the face, then drops behind the ears
    hairline = torch.lerp(
        torch.full_like(along, cut.hair_front),
        torch.full_like(along, cut.hair_back),
        ((spread - 0.4) / 0.25).clamp(0, 1),
    )
    out[head & (along > hairline)] = int(Garment.HAIR)
    # long hair hangs down the upper back, its ends rounded
    long_hair = trunk & (behind > 0) & (along > cut.hair_length + 0.6 * spread**2)
    out[long_hair] = int(Garment.HAIR)
    return out


def vertex_garments(surface: SurfaceMap, cut: Cut) -> Tensor:
    """Garment of every vertex for one outfit cut: ``(V,)`` long :class:`Garment` labels."""
    return garment_labels(surface.region, surface.along, surface.across, surface.behind, cut)


def pixel_garments(
    surface: SurfaceMap, cut: Cut, faces: Tensor, face: Tensor, bary: Tensor
) -> Tensor:
    """Garment at rendered surface points (fragments).

    Inside faces whose three vertices share a region, the region's coordinates are interpolated
    and the cut applied at the point itself, so hems and necklines are smooth curves. Faces that
    straddle two regions take the majority garment of their vertices (the first vertex's when all
    three differ). Either way the label depends on the surface point only, not on the pose.

    Args:
        surface: From :func:`surface_map`.
        cut: The outfit's shape.
        faces: ``(F, 3)`` mesh faces.
        face: ``(N,)`` face index of each point.
        bary: ``(N, 3)`` barycentric coordinates of each point in its face.

    Returns:
        ``(N,)`` long :class:`Garment` labels.
    """
    corners = faces.long()[face]  # (N, 3)
    region = surface.region[corners]
    a, b, c = vertex_garments(surface, cut)[corners].unbind(-1)
    majority = torch.where((b == c) & (a != b), b, a)
    uniform = (region == region[:, :1]).all(1)

    def lerp(values: Tensor) -> Tensor:
        return (bary * values[corners]).sum(-1)

    smooth = garment_labels(
        region[:, 0], lerp(surface.along), lerp(surface.across), lerp(surface.behind), cut
    )
    return torch.where(uniform, smooth, majority)
