"""Anny body model, weak-perspective camera and batched 2D-keypoint fitting (flow synthesis).

Importing this package does not import ``anny``; :func:`load_body_model` does, once per process.

Typical use::

    model = load_body_model()                      # cached; honours $ANNY_CACHE_DIR
    fit = fit_keypoints(model, keypoints_xy, confidence, image_size=(256, 176))
    verts = model(fit.params)                      # (B, V, 3) world, metres
    image_space = project(verts, fit.camera)       # (B, V, 3) (x, y, depth) pixels
"""

from posetransfer.body.anny_model import (
    BodyModel,
    BodyModelCacheError,
    load_body_model,
    prune_build_cache,
    resolve_cache_dir,
)
from posetransfer.body.camera import camera_scale, make_camera, project, rescale_camera
from posetransfer.body.fit_result import FitResult
from posetransfer.body.fitting import FitConfig, fit_keypoints
from posetransfer.body.params import (
    ACTIVE_BONES,
    BALL_BONES,
    HINGE_BONES,
    PHENOTYPE_LABELS,
    BodyParams,
)
from posetransfer.body.poses import POSE_KINDS, sample_phenotype, sample_pose

__all__ = [
    "ACTIVE_BONES",
    "BALL_BONES",
    "HINGE_BONES",
    "PHENOTYPE_LABELS",
    "POSE_KINDS",
    "BodyModel",
    "BodyModelCacheError",
    "BodyParams",
    "FitConfig",
    "FitResult",
    "camera_scale",
    "fit_keypoints",
    "load_body_model",
    "make_camera",
    "project",
    "prune_build_cache",
    "rescale_camera",
    "resolve_cache_dir",
    "sample_phenotype",
    "sample_pose",
]
