"""The Anny body model: loading (with its on-disk cache), posing and 18 OpenPose keypoints.

Anny (PyPI ``anny``, Apache-2.0) builds its model data on first use: about 60 s, 1.7 GB of RAM,
and ~790 MB written to its cache folder. Later loads read one ~51 MB file in about 0.3 s. The
cache folder is chosen by :func:`resolve_cache_dir`. Only the default rig and topology are used,
which are built offline (the ``smpl``/``smplx`` topologies download non-commercial data and are
never used here). The model runs in float32.

Nothing is imported from ``anny`` until :func:`load_body_model` is called.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final

import roma
import torch
from torch import Tensor, nn

from posetransfer.body.keypoint_basis import (
    KeypointBasis,
    basis_keypoints,
    build_keypoint_basis,
    skinned_regressor,
)
from posetransfer.body.params import (
    ACTIVE_BONES,
    NUM_PHENOTYPES,
    PHENOTYPE_LABELS,
    BodyParams,
)
from posetransfer.conventions import NUM_KEYPOINTS

if TYPE_CHECKING:
    import anny

__all__ = [
    "ANNY_CACHE_ENV",
    "COCO17_TO_OPENPOSE18",
    "BodyModel",
    "BodyModelCacheError",
    "load_body_model",
    "prune_build_cache",
    "resolve_cache_dir",
]

logger = logging.getLogger(__name__)

#: Environment variable naming the Anny cache folder (also read by anny itself).
ANNY_CACHE_ENV: Final[str] = "ANNY_CACHE_DIR"
DEFAULT_CACHE_DIR: Final[Path] = Path("~/.cache/posetransfer/anny")
_COMPACT_GLOB: Final[str] = "v*/build_compact_model_data_*.safetensors"
_INTERMEDIATE_GLOBS: Final[tuple[str, ...]] = (
    "v*/load_data_*.safetensors",
    "v*/build_model_data_*.safetensors",
)

#: COCO-17 names (Anny's regressor labels) for each OpenPose-18 keypoint; the neck is the
#: midpoint of the shoulders.
COCO17_TO_OPENPOSE18: Final[tuple[tuple[str, ...], ...]] = (
    ("nose",), ("left_shoulder", "right_shoulder"), ("right_shoulder",), ("right_elbow",),
    ("right_wrist",), ("left_shoulder",), ("left_elbow",), ("left_wrist",), ("right_hip",),
    ("right_knee",), ("right_ankle",), ("left_hip",), ("left_knee",), ("left_ankle",),
    ("right_eye",), ("left_eye",), ("right_ear",), ("left_ear",),
)  # fmt: skip


class BodyModelCacheError(ValueError):
    """The Anny cache folder cannot be used."""


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The Anny cache folder to use, created if needed.

    Order: ``cache_dir``, else ``$ANNY_CACHE_DIR``, else ``~/.cache/posetransfer/anny``. The
    folder must be writable unless it already holds a built model.

    Raises:
        BodyModelCacheError: The folder cannot be created, or is read-only and holds no model.
    """
    if cache_dir is None:
        cache_dir = os.environ.get(ANNY_CACHE_ENV) or DEFAULT_CACHE_DIR
    path = Path(cache_dir).expanduser().resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BodyModelCacheError(f"cannot create the Anny cache folder {path}: {err}") from err
    if not any(path.glob(_COMPACT_GLOB)):
        try:
            with tempfile.TemporaryFile(dir=path):
                pass
        except OSError as err:
            raise BodyModelCacheError(
                f"the Anny cache folder {path} is not writable and holds no built model "
                f"(the first load writes ~790 MB there); set {ANNY_CACHE_ENV} or pass cache_dir"
            ) from err
    return path


def prune_build_cache(cache_dir: str | os.PathLike[str] | None = None) -> int:
    """Delete Anny's two large build intermediates (~777 MB) once the compact model exists.

    Loading the default model only reads the compact file; the intermediates are needed again
    only to build another rig, topology or phenotype set. Nothing is deleted when no compact file
    is present.

    Returns:
        Number of bytes freed.
    """
    path = resolve_cache_dir(cache_dir)
    if not any(path.glob(_COMPACT_GLOB)):
        return 0
    freed = 0
    for pattern in _INTERMEDIATE_GLOBS:
        for file in path.glob(pattern):
            with contextlib.suppress(FileNotFoundError):
                size = file.stat().st_size
                file.unlink()
                freed += size
    logger.info("pruned %.0f MB of Anny build intermediates from %s", freed / 2**20, path)
    return freed


def _quiet_warp(cache_dir: Path) -> None:
    """Silence Warp's start-up banner and keep its kernel cache next to Anny's, unless set."""
    try:
        import warp
    except ImportError:  # anny falls back to torch skinning
        return
    warp.config.log_level = max(warp.config.log_level, warp.LOG_WARNING)
    if warp.config.kernel_cache_dir is None and "WARP_CACHE_PATH" not in os.environ:
        warp.config.kernel_cache_dir = str(cache_dir.parent / "warp")


def _build_anny(cache_dir: Path) -> anny.Anny:
    """Construct the default float32 Anny model with its cache in ``cache_dir``."""
    _quiet_warp(cache_dir)
    import anny
    import anny.paths

    previous = anny.paths.get_anny_cache_path()
    anny.paths.set_anny_cache_path(cache_dir)
    try:
        if not any(cache_dir.glob(_COMPACT_GLOB)):
            logger.warning(
                "building the Anny model in %s (one-off: ~60 s, 1.7 GB RAM, ~790 MB disk)",
                cache_dir,
            )
        model = anny.Anny(rig="anny", topology="anny")
    finally:
        anny.paths.set_anny_cache_path(previous)
    return model.to(torch.float32).requires_grad_(False)


@functools.lru_cache(maxsize=2)
def _load_cached(cache_dir: str) -> BodyModel:
    start = time.perf_counter()
    model = BodyModel(_build_anny(Path(cache_dir)))
    logger.info("loaded the Anny body model in %.2f s", time.perf_counter() - start)
    return model


def load_body_model(
    cache_dir: str | os.PathLike[str] | None = None, *, prune_intermediates: bool = False
) -> BodyModel:
    """Load the Anny body model once per process (later calls return the same object).

    Args:
        cache_dir: Anny's cache folder; default ``$ANNY_CACHE_DIR``, else
            ``~/.cache/posetransfer/anny`` (see :func:`resolve_cache_dir`).
        prune_intermediates: After loading, delete the ~777 MB of build intermediates that the
            default model no longer needs (:func:`prune_build_cache`).

    Returns:
        The shared :class:`BodyModel` (treat it as read-only).
    """
    folder = resolve_cache_dir(cache_dir)
    model = _load_cached(str(folder))
    if prune_intermediates:
        prune_build_cache(folder)
    return model


def _openpose18_regressor(model: anny.Anny) -> Tensor:
    """``(18, V)`` OpenPose-18 regressor from Anny's COCO keypoint regressor."""
    import anny

    coco = anny.KeypointsRegressor.coco(model)
    weights = coco.regression_weights
    rows = [
        torch.stack([weights[coco.labels.index(n)] for n in names]).mean(0)
        for names in COCO17_TO_OPENPOSE18
    ]
    return torch.stack(rows).to(torch.float32)


class BodyModel(nn.Module):
    """Thin wrapper around an ``anny.Anny`` model (default rig and topology, float32, CPU).

    The keypoint basis of the average body is precomputed at construction; the model is meant
    to be shared read-only (see :func:`load_body_model`) and used on the CPU.

    Attributes:
        anny: The wrapped Anny model (104 bones, 13 718 vertices).
        faces: ``(F, 3)`` int64 triangles (F = 27 420).
        regressor: ``(18, V)`` OpenPose-18 keypoint weights over the vertices.
        hinge_axes: ``(4, 3)`` unit rotation axes of :data:`HINGE_BONES` (world, A-pose);
            a positive angle flexes the joint.
    """

    active_bone_ids: Tensor
    regressor: Tensor
    hinge_axes: Tensor

    def __init__(self, anny_model: anny.Anny) -> None:
        super().__init__()
        if list(anny_model.phenotype_labels) != list(PHENOTYPE_LABELS):
            raise ValueError(f"unexpected Anny phenotypes {anny_model.phenotype_labels}")
        if anny_model.pose_parameterization != "local-ref":
            raise ValueError("BodyModel needs Anny's 'local-ref' pose parameterisation")
        self.anny = anny_model
        self.faces: Tensor = anny_model.faces
        labels = list(anny_model.bone_labels)
        self.bone_labels: tuple[str, ...] = tuple(labels)
        self.register_buffer(
            "active_bone_ids", torch.tensor([labels.index(b) for b in ACTIVE_BONES])
        )
        self.register_buffer("regressor", _openpose18_regressor(anny_model))
        with torch.no_grad():
            reference = anny_model()
        self.register_buffer("hinge_axes", self._derive_hinge_axes(reference["bone_poses"][0]))
        self._regressor_entries = skinned_regressor(
            self.regressor,
            anny_model.vertex_bone_weights,
            anny_model.vertex_bone_indices,
            anny_model.bone_count,
        )
        self._default_basis = self._basis_from_output(reference)

    # ----------------------------------------------------------------------------- geometry
    @property
    def num_vertices(self) -> int:
        """Number of mesh vertices ``V``."""
        return self.anny.template_vertices.shape[0]

    @property
    def texture_coordinates(self) -> Tensor:
        """``(T, 2)`` UV coordinates."""
        return self.anny.texture_coordinates

    @property
    def face_texture_indices(self) -> Tensor:
        """``(F, 3)`` indices into :attr:`texture_coordinates` for each face corner."""
        return self.anny.face_texture_coordinate_indices

    def _derive_hinge_axes(self, bone_poses: Tensor) -> Tensor:
        """Elbow axes from the A-pose arm plane (sign: flexion brings the wrist closer to the
        shoulder); knee axes = world +X (flexion moves the foot backwards, +Y)."""
        heads = bone_poses[:, :3, 3]
        idx = self.bone_labels.index
        axes = []
        for side in "LR":
            shoulder = heads[idx(f"upperarm01.{side}")]
            elbow = heads[idx(f"lowerarm01.{side}")]
            wrist = heads[idx(f"wrist.{side}")]
            axis = torch.linalg.cross(elbow - shoulder, wrist - elbow)
            axis = axis / axis.norm()
            bent = elbow + roma.rotvec_to_rotmat(0.1 * axis) @ (wrist - elbow)
            if (bent - shoulder).norm() > (wrist - shoulder).norm():
                axis = -axis
            axes.append(axis)
        knee = torch.tensor([1.0, 0.0, 0.0], dtype=heads.dtype)
        return torch.stack([*axes, knee, knee]).to(torch.float32)

    def active_rotations(self, params: BodyParams) -> Tensor:
        """``(B, 25, 3, 3)`` delta rotations of :data:`ACTIVE_BONES` (root, ball bones, hinges)."""
        hinge_rotvec = params.hinge[..., None] * self.hinge_axes.to(params.dtype)
        rotvecs = torch.cat([params.global_orient[:, None], params.body_pose, hinge_rotvec], 1)
        return roma.rotvec_to_rotmat(rotvecs)

    def pose_deltas(self, params: BodyParams) -> Tensor:
        """``(B, 104, 4, 4)`` Anny ``local-ref`` pose parameters (identity for unposed bones)."""
        batch = params.batch_size
        deltas = torch.eye(4, dtype=self.anny.dtype).repeat(batch, self.anny.bone_count, 1, 1)
        deltas[:, self.active_bone_ids, :3, :3] = self.active_rotations(params).to(deltas.dtype)
        return deltas

    def _phenotype_tensor(self, phenotype: Tensor | None, batch: int) -> Tensor:
        if phenotype is None:
            return torch.full((batch, NUM_PHENOTYPES), 0.5, dtype=self.anny.dtype)
        if phenotype.ndim != 2 or phenotype.shape[1] != NUM_PHENOTYPES:
            raise ValueError(f"phenotype must have shape (B, 6), got {tuple(phenotype.shape)}")
        return phenotype.to(self.anny.dtype)

    def forward(self, params: BodyParams) -> Tensor:
        """Posed mesh vertices.

        Args:
            params: ``B`` bodies.

        Returns:
            ``(B, V, 3)`` vertices in world coordinates: metres, Z up, the body facing -Y at zero
            global orientation, the person's left towards +X, the pelvis at the origin.
        """
        out = self.anny(
            pose_parameters=self.pose_deltas(params),
            phenotype_kwargs=self._phenotype_tensor(params.phenotype, params.batch_size),
        )
        return out["vertices"]

    def rest_vertices(self, phenotype: Tensor | None = None) -> Tensor:
        """``(B, V, 3)`` unposed vertices of each body shape (``B = 1`` for None)."""
        batch = 1 if phenotype is None else phenotype.shape[0]
        return self.anny(phenotype_kwargs=self._phenotype_tensor(phenotype, batch))["rest_vertices"]

    def keypoints18(self, vertices: Tensor) -> Tensor:
        """OpenPose-18 keypoints regressed from posed vertices.

        Args:
            vertices: ``(B, V, 3)`` posed vertices (output of :meth:`forward`).

        Returns:
            ``(B, 18, 3)`` keypoints in the order of ``conventions.Keypoint``.
        """
        if vertices.ndim != 3 or vertices.shape[1:] != (self.num_vertices, 3):
            raise ValueError(
                f"vertices must have shape (B, {self.num_vertices}, 3), got {tuple(vertices.shape)}"
            )
        return torch.einsum("kv,bvd->bkd", self.regressor.to(vertices.dtype), vertices)

    # ------------------------------------------------------------------- fast keypoints
    def _basis_from_output(self, out: dict[str, Tensor]) -> KeypointBasis:
        return build_keypoint_basis(
            rest_vertices=out["rest_vertices"],
            rest_bone_poses=out["rest_bone_poses"],
            reference_bone_poses=out["bone_poses"],
            reference_orientations=self.anny.reference_bone_orientations,
            bone_parents=self.anny.bone_parents,
            active_bones=self.active_bone_ids.tolist(),
            regressor=self._regressor_entries,
        )

    @torch.no_grad()
    def keypoint_basis(self, phenotype: Tensor | None = None) -> KeypointBasis:
        """Exact keypoint shortcut for ``B`` body shapes (shared basis for None)."""
        if phenotype is None:
            return self._default_basis
        phen = self._phenotype_tensor(phenotype, phenotype.shape[0])
        return self._basis_from_output(self.anny(phenotype_kwargs=phen))

    def fast_keypoints18(self, params: BodyParams, basis: KeypointBasis | None = None) -> Tensor:
        """``(B, 18, 3)`` keypoints equal to ``keypoints18(forward(params))`` without skinning.

        Args:
            params: ``B`` bodies.
            basis: Precomputed basis for ``params.phenotype``; built when None.
        """
        if basis is None:
            basis = self.keypoint_basis(params.phenotype)
        return basis_keypoints(basis, self.active_rotations(params))

    def extra_repr(self) -> str:
        return (
            f"vertices={self.num_vertices}, faces={self.faces.shape[0]}, keypoints={NUM_KEYPOINTS}"
        )
