"""Synthetic people from Anny: sampling, framing and rendering with exact ground-truth flow.

One *person* is a random adult body shape (:func:`~posetransfer.body.sample_phenotype`), an
outfit, a light and a backdrop, seen in ``K`` random poses (standing, walking or fashion poses at
front, side and back yaws; :func:`~posetransfer.body.sample_pose`). Everything random about
person ``i`` comes from its own generator seeded with ``seed * 1_000_003 + i``
(:func:`person_seed`), so any subset of people renders to the same bytes in any process, which
is what makes sharding by person exact.

Rendering a person (:func:`render_person`):

1. pose the ``K`` bodies and frame each one like a DeepFashion photo (weak perspective, the body
   ~85-95% of the image height, centred with a small jitter, never cut off);
2. rasterize each pose once; the same fragments give the images, the keypoint occlusion test and
   the flow of every ordered pair ``(source, target)``;
3. colour each body pixel from its *rest-pose* surface point (:mod:`~posetransfer.synth.appearance`)
   so the texture moves with the body; shade it with a two-sided Lambert light unless unlit;
4. regress the 18 keypoints from the posed mesh and project them. Points outside the image are
   invalid; the face points (nose, eyes, ears) are also invalid where the head hides them, as a
   detector would miss them (e.g. the nose in a back view).

Pairs are all ordered pairs of distinct poses, with flow and visibility from
:func:`~posetransfer.render.correspondence` (depth in metres, one occlusion tolerance).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import torch
from torch import Tensor

from posetransfer.body.camera import make_camera, project
from posetransfer.body.params import BodyParams
from posetransfer.body.poses import POSE_KINDS, sample_phenotype, sample_pose
from posetransfer.conventions import Keypoint
from posetransfer.pose.keypoints import Pose
from posetransfer.render.correspondence import FlowField, correspondence
from posetransfer.render.rasterize import Fragments, rasterize
from posetransfer.synth.appearance import (
    Backdrop,
    Lighting,
    Outfit,
    backdrop_image,
    sample_backdrop,
    sample_lighting,
    sample_outfit,
    shade,
    surface_albedo,
)
from posetransfer.synth.garments import pixel_garments, surface_map

if TYPE_CHECKING:
    from posetransfer.body.anny_model import BodyModel

__all__ = [
    "VIEWS",
    "PersonRender",
    "PersonSpec",
    "frame_cameras",
    "image_stem",
    "person_seed",
    "render_person",
    "sample_person",
    "view_of_yaw",
]

PERSON_SEED_STRIDE: Final[int] = 1_000_003
#: View names used in image names, by ``|yaw|``: front < 45 deg <= side < 135 deg <= back.
VIEWS: Final[tuple[str, ...]] = ("front", "side", "back")
_VIEW_RANGES: Final[tuple[tuple[float, float], ...]] = (
    (0.0, math.pi / 4),
    (math.pi / 4, 3 * math.pi / 4),
    (3 * math.pi / 4, math.pi),
)
#: Keypoints a detector misses when the head hides them.
_FACE_POINTS: Final[tuple[int, ...]] = (
    Keypoint.NOSE, Keypoint.R_EYE, Keypoint.L_EYE, Keypoint.R_EAR, Keypoint.L_EAR,
)  # fmt: skip
#: How far (metres) behind the visible surface a face keypoint may lie and still count as seen.
FACE_POINT_TOLERANCE_M: Final[float] = 0.04


def person_seed(seed: int, index: int) -> int:
    """Seed of person ``index``'s generator: ``seed * 1_000_003 + index`` (no hashing)."""
    return seed * PERSON_SEED_STRIDE + index


def view_of_yaw(yaw: float) -> str:
    """``"front"``, ``"side"`` or ``"back"`` for a yaw in radians (0 faces the camera)."""
    angle = abs(math.remainder(yaw, 2 * math.pi))
    return next(
        (v for v, (_, high) in zip(VIEWS, _VIEW_RANGES, strict=True) if angle < high), VIEWS[-1]
    )


def image_stem(person: int, pose: int, yaw: float) -> str:
    """DeepFashion-like image name without extension: ``synthPERSONid00000012_3side``.

    Args:
        person: Person index.
        pose: 0-based pose index (written 1-based, as DeepFashion numbers its shots).
        yaw: Body yaw in radians, for the view suffix.
    """
    return f"synthPERSONid{person:08d}_{pose + 1}{view_of_yaw(yaw)}"


@dataclass(frozen=True)
class PersonSpec:
    """Everything random about one person, drawn before any rendering.

    Attributes:
        index: Person index.
        params: ``K`` poses sharing the person's phenotype.
        yaw: ``(K,)`` body yaw of each pose (radians, 0 faces the camera).
        framing: ``(K, 3)``: body height as a fraction of the image height, then horizontal
            and vertical offsets in ``[-1, 1]`` (fractions of the free margins).
        outfit: Clothes, skin and hair.
        lighting: The light.
        backdrop: The background.
    """

    index: int
    params: BodyParams
    yaw: Tensor
    framing: Tensor
    outfit: Outfit
    lighting: Lighting
    backdrop: Backdrop

    @property
    def stems(self) -> list[str]:
        """Image names without extension, in pose order."""
        return [image_stem(self.index, k, y) for k, y in enumerate(self.yaw.tolist())]


def _sample_yaw(gen: torch.Generator, view_mix: tuple[float, float, float]) -> float:
    view = int(
        torch.multinomial(torch.tensor(view_mix, dtype=torch.float64), 1, generator=gen).item()
    )
    low, high = _VIEW_RANGES[view]
    u = torch.rand(2, generator=gen).tolist()
    return (1.0 if u[0] < 0.5 else -1.0) * (low + (high - low) * u[1])


def sample_person(
    index: int,
    *,
    seed: int,
    poses: int,
    pose_mix: tuple[float, float, float] = (0.35, 0.3, 0.35),
    view_mix: tuple[float, float, float] = (0.55, 0.25, 0.2),
    height_fraction: tuple[float, float] = (0.85, 0.95),
    textured_background: bool = False,
) -> PersonSpec:
    """Draw person ``index`` (deterministic in ``(seed, index)`` and the other arguments).

    Args:
        index: Person index, ``>= 0``.
        seed: Dataset seed, ``>= 0``.
        poses: Number of poses ``K``.
        pose_mix: Odds of each pose kind of :data:`~posetransfer.body.POSE_KINDS`.
        view_mix: Odds of a front, side and back view.
        height_fraction: Range of the body height as a fraction of the image height.
        textured_background: Textured instead of plain backdrop.

    Returns:
        The person's :class:`PersonSpec`.
    """
    gen = torch.Generator().manual_seed(person_seed(seed, index))
    # the look first, so a person looks the same whatever the number of poses
    phenotype = sample_phenotype(gen, 1)
    outfit = sample_outfit(gen, float(phenotype[0, 0]))
    lighting = sample_lighting(gen)
    backdrop = sample_backdrop(gen, textured_background)
    kinds = torch.multinomial(
        torch.tensor(pose_mix, dtype=torch.float64), poses, replacement=True, generator=gen
    )
    yaws, bodies = [], []
    for kind in kinds.tolist():
        yaw = _sample_yaw(gen, view_mix)
        yaws.append(yaw)
        bodies.append(sample_pose(gen, 1, POSE_KINDS[kind], (yaw, yaw)))
    params = BodyParams.cat(bodies).with_phenotype(phenotype.expand(poses, -1).contiguous())
    low, high = height_fraction
    framing = torch.rand(poses, 3, generator=gen) * 2 - 1
    framing[:, 0] = low + (high - low) * (framing[:, 0] + 1) / 2
    return PersonSpec(
        index=index,
        params=params,
        yaw=torch.tensor(yaws),
        framing=framing,
        outfit=outfit,
        lighting=lighting,
        backdrop=backdrop,
    )


def frame_cameras(vertices: Tensor, size: tuple[int, int], framing: Tensor) -> Tensor:
    """Weak-perspective cameras framing each body like a DeepFashion photo.

    The scale makes the body's projected height ``framing[:, 0] * H`` (less if its width would
    not fit in 96% of ``W``); the body is centred, then shifted by ``framing[:, 1:]`` times 80%
    of the free margin on each axis, so it is never cut off.

    Args:
        vertices: ``(K, V, 3)`` posed world vertices (metres).
        size: ``(H, W)``.
        framing: ``(K, 3)`` height fraction, x and y offsets in ``[-1, 1]``.

    Returns:
        ``(K, 3)`` cameras ``(log s, tx, ty)``.
    """
    height, width = size
    x, y = vertices[..., 0], -vertices[..., 2]
    x_lo, x_hi = x.min(1).values, x.max(1).values
    y_lo, y_hi = y.min(1).values, y.max(1).values
    scale = torch.minimum(framing[:, 0] * height / (y_hi - y_lo), 0.96 * width / (x_hi - x_lo))
    margin_x = (width - scale * (x_hi - x_lo)) / 2
    margin_y = (height - scale * (y_hi - y_lo)) / 2
    tx = width / 2 + 0.8 * framing[:, 1] * margin_x - scale * (x_lo + x_hi) / 2
    ty = height / 2 + 0.8 * framing[:, 2] * margin_y - scale * (y_lo + y_hi) / 2
    return make_camera(scale, tx, ty)


@dataclass(frozen=True)
class PersonRender:
    """One person's images, keypoints and pair flows.

    Attributes:
        images: ``(K, H, W, 3)`` uint8 RGB.
        foreground: ``(K, H, W)`` bool body masks.
        poses: ``K`` keypoint sets (continuous pixel coordinates).
        cameras: ``(K, 3)`` cameras used.
        keypoints: ``(K, 18, 2)`` projected keypoints before invalidation.
        pairs: ``(source, target)`` pose indices, all ordered pairs of distinct poses.
        flow: Flow and visibility of each pair, batch in the order of ``pairs``.
    """

    images: Tensor
    foreground: Tensor
    poses: list[Pose]
    cameras: Tensor
    keypoints: Tensor
    pairs: list[tuple[int, int]]
    flow: FlowField


def _image_space(points: Tensor, cameras: Tensor) -> Tensor:
    """World points -> ``(x, y)`` pixels and depth in metres (as ``render.bodies``)."""
    projected = project(points, cameras)
    scale = cameras[:, 0].exp()[:, None, None]
    return torch.cat([projected[..., :2], projected[..., 2:] / scale], dim=-1)


def _vertex_normals(vertices: Tensor, faces: Tensor) -> Tensor:
    """``(K, V, 3)`` area-weighted vertex normals in camera axes (x right, y down, z depth)."""
    tri = vertices[:, faces]
    normal = torch.linalg.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0])
    out = torch.zeros_like(vertices)
    for corner in range(3):
        out.index_add_(1, faces[:, corner], normal)
    return torch.stack([out[..., 0], -out[..., 2], out[..., 1]], dim=-1)


def _interpolate(
    values: Tensor, faces: Tensor, face: Tensor, bary: Tensor, batch: Tensor
) -> Tensor:
    """Barycentric interpolation of per-vertex ``values`` ``(K, V, C)`` at ``N`` fragments."""
    corners = values[batch[:, None], faces[face]]  # (N, 3, C)
    return (bary[..., None] * corners).sum(1)


def _keypoint_poses(keypoints: Tensor, frags: Fragments, size: tuple[int, int]) -> list[Pose]:
    """Poses from ``(K, 18, 3)`` image-space keypoints: out-of-frame points and hidden face
    points are invalid."""
    height, width = size
    xy, depth = keypoints[..., :2], keypoints[..., 2]
    inside = (xy[..., 0] >= 0) & (xy[..., 0] < width) & (xy[..., 1] >= 0) & (xy[..., 1] < height)
    col = xy[..., 0].floor().long().clamp(0, width - 1)
    row = xy[..., 1].floor().long().clamp(0, height - 1)
    surface = frags.depth[torch.arange(len(xy))[:, None], row, col]
    seen = depth <= surface + FACE_POINT_TOLERANCE_M
    face = torch.zeros(keypoints.shape[1], dtype=torch.bool)
    face[list(_FACE_POINTS)] = True
    valid = inside & (seen | ~face)
    return [Pose(xy[k].numpy(), valid[k].numpy()) for k in range(len(xy))]


def _colour(
    model: BodyModel, spec: PersonSpec, world: Tensor, cameras: Tensor, frags: Fragments, lit: bool
) -> Tensor:
    """``(K, H, W, 3)`` uint8 images: body pixels coloured from their rest-pose surface point,
    shaded when ``lit``, over the person's backdrop."""
    faces = model.faces
    batch, row, col = torch.nonzero(frags.foreground, as_tuple=True)
    face, bary = frags.face_ids[batch, row, col], frags.bary[batch, row, col]
    phenotype = spec.params.phenotype
    assert phenotype is not None, "a sampled person always carries its phenotype"
    with torch.no_grad():
        rest = model.rest_vertices(phenotype[:1])[0]
    points = (bary[..., None] * rest[faces[face]]).sum(1)
    footprint = (-cameras[:, 0]).exp()[batch]  # metres per pixel
    garments = pixel_garments(surface_map(model), spec.outfit.cut, faces, face, bary)
    colour = surface_albedo(garments, points, spec.outfit, footprint)
    if lit:
        normals = _interpolate(_vertex_normals(world, faces), faces, face, bary, batch)
        colour = shade(colour, normals, spec.lighting)
    size = frags.size
    images = backdrop_image(spec.backdrop, size).expand(len(world), *size, 3).clone()
    images[batch, row, col] = colour
    return (images * 255).round().clamp(0, 255).to(torch.uint8)


def _select(frags: Fragments, index: Tensor) -> Fragments:
    return Fragments(frags.face_ids[index], frags.bary[index], frags.depth[index])


def _pair_flows(
    frags: Fragments, verts: Tensor, faces: Tensor, depth_tolerance_m: float
) -> tuple[list[tuple[int, int]], FlowField]:
    """Flow of every ordered pair ``(source, target)`` of the ``K`` renders, one batched call."""
    pairs = list(itertools.permutations(range(len(verts)), 2))
    src = torch.tensor([s for s, _ in pairs], dtype=torch.long)
    tgt = torch.tensor([t for _, t in pairs], dtype=torch.long)
    flow = correspondence(
        _select(frags, tgt), verts[src], faces, _select(frags, src),
        depth_tolerance=depth_tolerance_m,
    )  # fmt: skip
    return pairs, flow


def render_person(
    model: BodyModel,
    spec: PersonSpec,
    size: tuple[int, int],
    *,
    lit: bool = True,
    depth_tolerance_m: float = 0.015,
) -> PersonRender:
    """Render one person's poses, keypoints and the flow of every ordered pair of poses.

    Each pose is rasterized once; its fragments serve the image, the keypoint occlusion test
    and every pair it belongs to.

    Args:
        model: The body model.
        spec: The person (:func:`sample_person`).
        size: ``(H, W)`` of the images.
        lit: Shade with the person's light; False gives the pure albedo (exact warping).
        depth_tolerance_m: Occlusion tolerance of the visibility test, metres.

    Returns:
        The :class:`PersonRender`.
    """
    with torch.no_grad():
        world = model(spec.params)
        cameras = frame_cameras(world, size, spec.framing)
        verts = _image_space(world, cameras)
        keypoints = _image_space(model.keypoints18(world), cameras)
    frags = rasterize(verts, model.faces, size)
    pairs, flow = _pair_flows(frags, verts, model.faces, depth_tolerance_m)
    return PersonRender(
        images=_colour(model, spec, world, cameras, frags, lit),
        foreground=frags.foreground,
        poses=_keypoint_poses(keypoints, frags, size),
        cameras=cameras,
        keypoints=keypoints[..., :2],
        pairs=pairs,
        flow=flow,
    )
