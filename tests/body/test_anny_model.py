"""Tests for posetransfer.body.anny_model (the shared model comes from conftest)."""

from __future__ import annotations

import math
import socket
from pathlib import Path

import pytest
import roma
import torch

from posetransfer.body import BodyModel, BodyParams, load_body_model, make_camera, project
from posetransfer.body.anny_model import (
    ANNY_CACHE_ENV,
    BodyModelCacheError,
    _build_anny,
    prune_build_cache,
    resolve_cache_dir,
)
from posetransfer.body.poses import sample_phenotype, sample_pose
from posetransfer.body.priors import ELBOW_STRAIGHT, KNEE_STRAIGHT
from posetransfer.conventions import Keypoint as K


def test_model_basics(body_model: BodyModel) -> None:
    assert body_model.anny.dtype == torch.float32
    assert body_model.num_vertices == 13718
    assert body_model.faces.shape == (27420, 3) and body_model.faces.dtype == torch.int64
    assert int(body_model.faces.min()) == 0 and int(body_model.faces.max()) < 13718
    assert body_model.regressor.shape == (18, 13718)
    torch.testing.assert_close(body_model.regressor.sum(1), torch.ones(18), atol=1e-4, rtol=0)
    verts = body_model(BodyParams.identity(2))
    assert verts.shape == (2, 13718, 3) and verts.dtype == torch.float32
    assert body_model.texture_coordinates.shape[1] == 2
    assert body_model.face_texture_indices.shape == (27420, 3)


def test_load_is_cached(body_model: BodyModel, body_cache_dir: Path) -> None:
    assert load_body_model(body_cache_dir) is body_model


def test_loading_needs_no_network(
    body_model: BodyModel, body_cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh model loads from the cache with every socket connection refused."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access is disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    fresh = BodyModel(_build_anny(resolve_cache_dir(body_cache_dir)))
    assert fresh is not body_model and fresh.num_vertices == body_model.num_vertices


def test_world_axes(body_model: BodyModel) -> None:
    """Metres, Z up, the body facing -Y, the person's left towards +X, pelvis at the origin."""
    verts = body_model(BodyParams.identity(1))[0]
    kp = body_model.keypoints18(verts[None])[0]
    height = verts[:, 2].max() - verts[:, 2].min()
    assert 1.5 < height < 1.8
    assert kp[K.NOSE, 1] < kp[K.L_EAR, 1] - 0.05  # the face points to -Y
    assert kp[K.L_SHOULDER, 0] > 0.1 and kp[K.R_SHOULDER, 0] < -0.1
    assert kp[[K.L_HIP, K.R_HIP]].mean(0).norm() < 0.05


def test_keypoint_order_in_a_frontal_image(body_model: BodyModel) -> None:
    kp3 = body_model.keypoints18(body_model(BodyParams.identity(1)))
    xy = project(kp3, make_camera(120.0, 88.0, 128.0)[None])[0, :, :2]
    x, y = xy[:, 0], xy[:, 1]
    for part in ("SHOULDER", "HIP", "EYE", "ANKLE", "WRIST"):
        right, left = K[f"R_{part}"], K[f"L_{part}"]
        assert x[right] < x[left]  # the person's right appears on the image left
    assert y[K.R_EYE] < y[K.NOSE] < y[K.NECK] < y[K.R_HIP] < y[K.R_KNEE] < y[K.R_ANKLE]
    assert y[[K.R_ANKLE, K.L_ANKLE]].min() == y.max()  # ankles lowest
    torch.testing.assert_close(xy[K.NECK], xy[[K.R_SHOULDER, K.L_SHOULDER]].mean(0))


def test_fast_keypoints_match_full_mesh(body_model: BodyModel) -> None:
    gen = torch.Generator().manual_seed(0)
    params = BodyParams.cat([sample_pose(gen, 3, kind) for kind in ("walking", "fashion")])
    camera = make_camera(torch.full((6,), 150.0), 88.0, 128.0)
    for phenotype in (None, sample_phenotype(gen, 6)):
        p = params.with_phenotype(phenotype)
        full = project(body_model.keypoints18(body_model(p)), camera)
        fast = project(body_model.fast_keypoints18(p), camera)
        assert (full - fast)[..., :2].abs().max() < 1e-3  # pixels


def test_global_orient_rotates_about_vertical(body_model: BodyModel) -> None:
    params = sample_pose(torch.Generator().manual_seed(1), 1, "walking", yaw=(0.0, 0.0))
    base = body_model(params.with_phenotype(None))[0]
    yaw = torch.tensor([0.0, 0.0, 1.1])
    turned_root = roma.rotvec_to_rotmat(yaw) @ roma.rotvec_to_rotmat(params.global_orient)
    turned = BodyParams(roma.rotmat_to_rotvec(turned_root), params.body_pose, params.hinge)
    expected = base @ roma.rotvec_to_rotmat(yaw).T
    torch.testing.assert_close(body_model(turned)[0], expected, atol=1e-5, rtol=0)


def _angle(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> float:
    u, v = b - a, c - b
    return math.degrees(math.acos(float((u @ v) / (u.norm() * v.norm()))))


def test_hinges_flex_and_straighten(body_model: BodyModel) -> None:
    params = BodyParams.identity(3)
    params.hinge[1] = torch.tensor([ELBOW_STRAIGHT, ELBOW_STRAIGHT, KNEE_STRAIGHT, KNEE_STRAIGHT])
    params.hinge[2] = torch.tensor([1.0, 1.0, 1.0, 1.0])
    kp = body_model.keypoints18(body_model(params))
    for sho, elb, wri in [
        (K.L_SHOULDER, K.L_ELBOW, K.L_WRIST),
        (K.R_SHOULDER, K.R_ELBOW, K.R_WRIST),
    ]:
        assert _angle(kp[1, sho], kp[1, elb], kp[1, wri]) < 8.0  # straight at the lower limit
        reach = [(kp[i, wri] - kp[i, sho]).norm() for i in range(3)]
        assert reach[2] < reach[0] < reach[1]  # flexion brings the wrist towards the shoulder
    for hip, knee, ankle in [(K.L_HIP, K.L_KNEE, K.L_ANKLE), (K.R_HIP, K.R_KNEE, K.R_ANKLE)]:
        assert _angle(kp[1, hip], kp[1, knee], kp[1, ankle]) < 4.0
        assert kp[2, ankle, 1] > kp[0, ankle, 1] + 0.2  # the foot swings back (+Y)


def test_mirrored_pose_gives_mirrored_keypoints(body_model: BodyModel) -> None:
    from posetransfer.body.params import BALL_BONES, mirror_rotvec
    from posetransfer.conventions import FLIP_PERMUTATION

    params = sample_pose(torch.Generator().manual_seed(2), 4, "fashion")
    other_side = {"L": "R", "R": "L"}
    swap = [
        BALL_BONES.index(b[:-1] + other_side[b[-1]] if b[-2:] in (".L", ".R") else b)
        for b in BALL_BONES
    ]
    mirrored = BodyParams(
        mirror_rotvec(params.global_orient),
        mirror_rotvec(params.body_pose[:, swap]),
        params.hinge[:, [1, 0, 3, 2]],
    )
    kp, kp_m = body_model.fast_keypoints18(params), body_model.fast_keypoints18(mirrored)
    flipped = kp[:, list(FLIP_PERMUTATION)] * torch.tensor([-1.0, 1.0, 1.0])
    assert (kp_m - flipped).abs().max() < 0.005  # metres: Anny is left-right symmetric


def test_resolve_cache_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ANNY_CACHE_ENV, str(tmp_path / "from_env"))
    assert resolve_cache_dir(tmp_path / "explicit") == (tmp_path / "explicit").resolve()
    assert resolve_cache_dir() == (tmp_path / "from_env").resolve()
    assert (tmp_path / "from_env").is_dir()
    monkeypatch.delenv(ANNY_CACHE_ENV)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_cache_dir() == (tmp_path / "home/.cache/posetransfer/anny").resolve()


def test_resolve_cache_dir_error_names_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(BodyModelCacheError, match="a_file"):
        resolve_cache_dir(blocker / "anny")


def test_prune_build_cache(tmp_path: Path) -> None:
    version = tmp_path / "v14"
    version.mkdir()
    big = [version / "load_data_1.safetensors", version / "build_model_data_2.safetensors"]
    for f in big:
        f.write_bytes(b"x" * 100)
    assert prune_build_cache(tmp_path) == 0  # no compact model yet: keep everything
    assert all(f.exists() for f in big)
    compact = version / "build_compact_model_data_3.safetensors"
    compact.write_bytes(b"y")
    assert prune_build_cache(tmp_path) == 200
    assert not any(f.exists() for f in big) and compact.exists()
