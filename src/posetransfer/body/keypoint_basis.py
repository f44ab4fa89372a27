"""Exact keypoints of a posed body from the posed bones only (no mesh skinning).

Linear blend skinning and the keypoint regressor are both linear in the rest vertices, so a
keypoint is a fixed combination of bone transforms::

    p_k = sum_v w_kv sum_b W_vb T_b [x_v; 1] = sum_b T_b A_kb,    A_kb = sum_v w_kv W_vb [x_v; 1]

with ``T_b = W_b P_b^-1`` (posed pose times inverse rest pose). When only a few *active* bones
carry a non-identity delta, every other bone moves rigidly with its nearest active ancestor and
folds into it, so forward kinematics runs over the active bones only. In Anny's ``local-ref``
parameterisation a delta ``D_c`` (world-aligned axes) enters as ``W_c = W_a C_c [U_c^T D_c U_c]``
(``a`` the active parent, ``C_c`` constant, ``U_c`` the reference orientation); absorbing the
``U`` factors into the constants gives the chain used here::

    F_c = Wt_a Ct_c          (the bone's frame before its own delta; Wt_root's parent = I)
    Wt_c = F_c [D_c | 0]
    p_k = sum_c Wt_c At_c[k]

A left perturbation ``D_c <- exp([delta]x) D_c`` moves every point of the bone's subtree by
``(R_F delta) x (p - o_F)``, which gives the analytic Jacobian of
:func:`basis_keypoints_and_jacobian`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "KeypointBasis",
    "SkinnedRegressor",
    "basis_keypoints",
    "basis_keypoints_and_jacobian",
    "build_keypoint_basis",
    "skinned_regressor",
]


@dataclass(frozen=True)
class SkinnedRegressor:
    """Sparse product of a keypoint regressor and the skinning weights.

    Entry ``e`` says that keypoint ``keypoint[e]`` takes ``weight[e]`` of rest vertex
    ``vertex[e]`` moved by bone ``bone[e]``. All tensors are ``(E,)``.
    """

    keypoint: Tensor
    vertex: Tensor
    bone: Tensor
    weight: Tensor
    num_keypoints: int
    num_bones: int


def skinned_regressor(
    regressor: Tensor, bone_weights: Tensor, bone_indices: Tensor, num_bones: int
) -> SkinnedRegressor:
    """Combine a dense keypoint regressor with sparse skinning weights.

    Args:
        regressor: ``(K, V)`` keypoint weights over the vertices (rows sum to 1).
        bone_weights: ``(V, J)`` skinning weights of each vertex's ``J`` bone slots.
        bone_indices: ``(V, J)`` bone index of each slot.
        num_bones: Number of bones of the rig.

    Returns:
        The non-zero entries as a :class:`SkinnedRegressor`.
    """
    k, v = regressor.nonzero(as_tuple=True)
    coef = regressor[k, v, None] * bone_weights[v]  # (E0, J)
    slot_entry, slot = coef.nonzero(as_tuple=True)
    return SkinnedRegressor(
        keypoint=k[slot_entry],
        vertex=v[slot_entry],
        bone=bone_indices[v[slot_entry], slot].long(),
        weight=coef[slot_entry, slot],
        num_keypoints=regressor.shape[0],
        num_bones=num_bones,
    )


@dataclass(frozen=True)
class KeypointBasis:
    """Keypoints as a function of the active bones' delta rotations, for one or B body shapes.

    Active bones are stored in *chain order* (parents before children).

    Attributes:
        chain_to_param: ``(A,)`` for each chain position, the index of the bone in the caller's
            parameter order (the order of the ``rotations`` argument).
        parents: Chain position of each bone's active parent (-1 for the root).
        frame_rot: ``(S, A, 3, 3)`` rotation of ``Ct`` (``S`` = 1 or the batch size).
        frame_trans: ``(S, A, 3)`` translation of ``Ct``.
        weights: ``(S, A, K, 4)`` ``At``: homogeneous weighted rest points per bone.
        subtree: ``(A, A)`` float, ``subtree[c, e] = 1`` when ``e`` is ``c`` or below it.
    """

    chain_to_param: Tensor
    parents: tuple[int, ...]
    frame_rot: Tensor
    frame_trans: Tensor
    weights: Tensor
    subtree: Tensor

    @property
    def num_keypoints(self) -> int:
        """Number of keypoints ``K``."""
        return self.weights.shape[2]


def _inverse_rigid(transforms: Tensor) -> Tensor:
    """Inverse of ``(..., 4, 4)`` rigid transforms."""
    rot_t = transforms[..., :3, :3].transpose(-1, -2)
    out = torch.zeros_like(transforms)
    out[..., :3, :3] = rot_t
    out[..., :3, 3] = -(rot_t @ transforms[..., :3, 3:4])[..., 0]
    out[..., 3, 3] = 1.0
    return out


def _chain_order(bone_parents: Sequence[int], active: Sequence[int]) -> tuple[list[int], list[int]]:
    """Sort active bones parents-first; return (chain -> param index, chain parent positions)."""
    depth = [0] * len(bone_parents)
    for b in range(1, len(bone_parents)):
        depth[b] = depth[bone_parents[b]] + 1
    order = sorted(range(len(active)), key=lambda i: (depth[active[i]], i))
    position = {active[i]: pos for pos, i in enumerate(order)}
    parents = []
    for i in order:
        b = bone_parents[active[i]]
        while b >= 0 and b not in position:
            b = bone_parents[b]
        parents.append(position[b] if b >= 0 else -1)
    return order, parents


def _bone_weighted_points(rest_vertices: Tensor, regressor: SkinnedRegressor) -> Tensor:
    """``A_kb = sum_v w_kv W_vb [x_v; 1]``, shape ``(S, K, N, 4)``, float64."""
    shapes, num_bones = rest_vertices.shape[0], regressor.num_bones
    x = rest_vertices.to(torch.float64)[:, regressor.vertex]  # (S, E, 3)
    xh = torch.cat([x, torch.ones_like(x[..., :1])], -1) * regressor.weight.to(x.dtype)[:, None]
    flat = regressor.keypoint * num_bones + regressor.bone
    A = x.new_zeros(shapes, regressor.num_keypoints * num_bones, 4).index_add_(1, flat, xh)
    return A.view(shapes, regressor.num_keypoints, num_bones, 4)


def _fold_into_active(
    A: Tensor, rest_poses: Tensor, ref_poses: Tensor, owner: list[int], owner_pos: list[int]
) -> Tensor:
    """``At_c = sum_{f: owner(f) = c} (W0_c^-1 W0_f) P_f^-1 A_f``, shape ``(S, A, K, 4)``.

    A bone ``f`` without a delta of its own moves rigidly with its nearest active ancestor-or-self
    ``c = owner(f)``: ``W_f = W_c (W0_c^-1 W0_f)``, ``W0`` being the identity-delta poses.
    """
    G = _inverse_rigid(ref_poses[:, owner]) @ ref_poses @ _inverse_rigid(rest_poses)
    Y = torch.einsum("sfij,skfj->skfi", G, A)
    onehot = A.new_zeros(len(owner), max(owner_pos) + 1)
    onehot[torch.arange(len(owner)), torch.tensor(owner_pos)] = 1.0
    return torch.einsum("fc,skfi->scki", onehot, Y)


def _active_frames(ref_chain: Tensor, U: Tensor, parents: list[int]) -> Tensor:
    """``Ct_c = [U_a | 0] W0_a^-1 W0_c [U_c^T | 0]`` (``W0_a = U_a = I`` above the root).

    Args:
        ref_chain: ``(S, A, 4, 4)`` identity-delta poses of the active bones (chain order).
        U: ``(A, 3, 3)`` their reference orientations.
        parents: Chain position of each bone's active parent (-1 for the root).

    Returns:
        ``(S, A, 4, 4)``.
    """
    eye4 = torch.eye(4, dtype=ref_chain.dtype, device=ref_chain.device)
    shapes = ref_chain.shape[0]
    W0_parent = torch.stack(
        [ref_chain[:, p] if p >= 0 else eye4.expand(shapes, 4, 4) for p in parents], 1
    )
    Uh, Uh_parent = eye4.repeat(len(parents), 1, 1), eye4.repeat(len(parents), 1, 1)
    Uh[:, :3, :3] = U.transpose(-1, -2)
    Uh_parent[:, :3, :3] = torch.stack([U[p] if p >= 0 else eye4[:3, :3] for p in parents])
    return Uh_parent @ _inverse_rigid(W0_parent) @ ref_chain @ Uh


def _subtree_matrix(parents: list[int]) -> Tensor:
    """``(A, A)`` float32, ``[c, e] = 1`` when ``e`` is ``c`` or one of its descendants."""
    subtree = torch.eye(len(parents))
    for pos in range(len(parents) - 1, -1, -1):  # children come after their parents
        if parents[pos] >= 0:
            subtree[parents[pos]] = torch.maximum(subtree[parents[pos]], subtree[pos])
    return subtree


def build_keypoint_basis(
    rest_vertices: Tensor,
    rest_bone_poses: Tensor,
    reference_bone_poses: Tensor,
    reference_orientations: Tensor,
    bone_parents: Sequence[int],
    active_bones: Sequence[int],
    regressor: SkinnedRegressor,
) -> KeypointBasis:
    """Fold the rig into its active bones (exact; computed in float64).

    Args:
        rest_vertices: ``(S, V, 3)`` rest vertices of ``S`` body shapes.
        rest_bone_poses: ``(S, N, 4, 4)`` rest bone poses ``P``.
        reference_bone_poses: ``(S, N, 4, 4)`` posed bone poses ``W0`` for identity deltas.
        reference_orientations: ``(N, 3, 3)`` reference orientations ``U`` (``local-ref``).
        bone_parents: Parent of each of the ``N`` bones (-1 for the root, which must be bone 0).
        active_bones: Indices of the posed bones in the caller's parameter order; must contain 0.
        regressor: Skinned keypoint regressor (:func:`skinned_regressor`).

    Returns:
        The basis, float32, on the device of ``rest_vertices``.
    """
    if 0 not in active_bones:
        raise ValueError("active_bones must contain the root bone (index 0)")
    f64 = torch.float64
    order, parents = _chain_order(bone_parents, active_bones)
    chain_bones = [active_bones[i] for i in order]
    position = {b: pos for pos, b in enumerate(chain_bones)}
    owner = []
    for f in range(len(bone_parents)):
        while f not in position:
            f = bone_parents[f]
        owner.append(f)
    ref_poses = reference_bone_poses.to(f64)
    A = _bone_weighted_points(rest_vertices, regressor)
    owner_pos = [position[c] for c in owner]
    At = _fold_into_active(A, rest_bone_poses.to(f64), ref_poses, owner, owner_pos)
    U = reference_orientations.to(f64)[chain_bones]
    Ct = _active_frames(ref_poses[:, chain_bones], U, parents)
    At_xyz = torch.einsum("cij,sckj->scki", U, At[..., :3])  # [U_c | 0] At_c
    f32 = torch.float32
    return KeypointBasis(
        chain_to_param=torch.tensor(order, device=rest_vertices.device),
        parents=tuple(parents),
        frame_rot=Ct[..., :3, :3].to(f32),
        frame_trans=Ct[..., :3, 3].to(f32),
        weights=torch.cat([At_xyz, At[..., 3:]], -1).to(f32),
        subtree=_subtree_matrix(parents).to(rest_vertices.device),
    )


def _chain_frames(basis: KeypointBasis, rotations: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Forward kinematics over the active bones.

    Returns:
        ``frame_rot`` ``(B, A, 3, 3)`` (rotation of ``F_c``), ``bone_rot`` ``(B, A, 3, 3)``
        (rotation of ``Wt_c``) and ``origin`` ``(B, A, 3)`` (translation of both).
    """
    D = rotations[:, basis.chain_to_param]
    batch = rotations.shape[0]
    Cr = basis.frame_rot.expand(batch, -1, -1, -1)
    Ct = basis.frame_trans.expand(batch, -1, -1)
    frames: list[Tensor] = []
    bones: list[Tensor] = []
    origins: list[Tensor] = []
    for c, p in enumerate(basis.parents):
        if p < 0:
            rf, of = Cr[:, c], Ct[:, c]
        else:
            rf = bones[p] @ Cr[:, c]
            of = (bones[p] @ Ct[:, c, :, None])[..., 0] + origins[p]
        frames.append(rf)
        bones.append(rf @ D[:, c])
        origins.append(of)
    return torch.stack(frames, 1), torch.stack(bones, 1), torch.stack(origins, 1)


def _bone_contributions(basis: KeypointBasis, bone_rot: Tensor, origin: Tensor) -> Tensor:
    """``(B, A, K, 3)``: the part of each keypoint carried by each active bone."""
    At = basis.weights
    return torch.einsum(
        "bcij,bckj->bcki", bone_rot, At[..., :3].expand(bone_rot.shape[0], -1, -1, -1)
    ) + (origin[:, :, None, :] * At[..., 3:])


def _check_rotations(basis: KeypointBasis, rotations: Tensor) -> None:
    shape = (len(basis.parents), 3, 3)
    if rotations.ndim != 4 or tuple(rotations.shape[1:]) != shape:
        raise ValueError(
            f"rotations must have shape (B, {shape[0]}, 3, 3), got {tuple(rotations.shape)}"
        )
    if basis.weights.shape[0] not in (1, rotations.shape[0]):
        raise ValueError(
            f"basis holds {basis.weights.shape[0]} body shapes but rotations hold "
            f"{rotations.shape[0]} items"
        )


def basis_keypoints(basis: KeypointBasis, rotations: Tensor) -> Tensor:
    """Posed 3D keypoints.

    Args:
        basis: Basis of one shape or of B shapes.
        rotations: ``(B, A, 3, 3)`` delta rotations of the active bones in parameter order.

    Returns:
        ``(B, K, 3)`` keypoints in world coordinates (metres).
    """
    _check_rotations(basis, rotations)
    _, bone_rot, origin = _chain_frames(basis, rotations)
    return _bone_contributions(basis, bone_rot, origin).sum(1)


def basis_keypoints_and_jacobian(basis: KeypointBasis, rotations: Tensor) -> tuple[Tensor, Tensor]:
    """Posed 3D keypoints and their derivative with respect to each bone's delta rotation.

    The derivative is taken for a left perturbation ``D_c <- exp([delta_c]x) D_c`` of each
    bone's delta rotation (``delta_c`` in the delta's world-aligned axes).

    Args:
        basis: Basis of one shape or of B shapes.
        rotations: ``(B, A, 3, 3)`` delta rotations of the active bones in parameter order.

    Returns:
        keypoints ``(B, K, 3)`` and jacobian ``(B, K, 3, A, 3)`` (bones in parameter order).
    """
    _check_rotations(basis, rotations)
    frame_rot, bone_rot, origin = _chain_frames(basis, rotations)
    contrib = _bone_contributions(basis, bone_rot, origin)  # (B, A, K, 3)
    sub = basis.subtree.to(contrib.dtype)
    subtree_points = torch.einsum("ce,beki->bcki", sub, contrib)
    subtree_weight = torch.einsum("ce,sek->sck", sub, basis.weights[..., 3])
    lever = subtree_points - origin[:, :, None, :] * subtree_weight[..., None]  # (B, A, K, 3)
    # d p / d delta_j = (R_F e_j) x lever
    axes = frame_rot.transpose(-1, -2)[:, :, None]  # (B, A, 1, 3(j), 3)
    jac = torch.linalg.cross(
        axes, lever[:, :, :, None, :].expand_as(axes.expand(-1, -1, lever.shape[2], -1, -1))
    )
    jac = jac.permute(0, 2, 4, 1, 3)  # (B, K, 3(i), A, 3(j)) in chain order
    inverse = torch.argsort(basis.chain_to_param)
    return contrib.sum(1), jac[:, :, :, inverse]
