"""Tests for garment placement on the body surface (posetransfer.synth.garments)."""

from __future__ import annotations

import torch

from posetransfer.synth.garments import (
    Cut,
    Garment,
    Region,
    garment_labels,
    pixel_garments,
    surface_map,
    vertex_garments,
)


def _labels(region: Region, along: float, cut: Cut, across: float = 0.0, behind: float = -0.1):
    t = torch.tensor
    return int(garment_labels(t([int(region)]), t([along]), t([across]), t([behind]), cut)[0])


def test_sleeves_hems_waist_and_shoes() -> None:
    cut = Cut(sleeve=0.4, hem=0.5, waist=0.3, neckline=1.0, hair_front=0.7, hair_back=0.2)
    assert _labels(Region.ARM, 0.2, cut) == Garment.TOP
    assert _labels(Region.ARM, 0.6, cut) == Garment.SKIN
    assert _labels(Region.HAND, 0.0, cut) == Garment.SKIN
    assert _labels(Region.LEG, 0.3, cut) == Garment.BOTTOM
    assert _labels(Region.LEG, 0.8, cut) == Garment.SKIN
    assert _labels(Region.FOOT, 0.9, cut) == Garment.SHOES
    assert _labels(Region.TORSO, 0.2, cut) == Garment.BOTTOM  # below the waist
    assert _labels(Region.TORSO, 0.6, cut) == Garment.TOP
    assert _labels(Region.TORSO, 0.99, cut) == Garment.TOP  # just under the neckline
    assert _labels(Region.TORSO, 1.05, cut) == Garment.SKIN  # front midline above it
    assert _labels(Region.TORSO, 1.05, cut, behind=0.1) == Garment.TOP  # the back is higher


def test_v_neck_is_lower_at_the_midline_only() -> None:
    cut = Cut(neckline=1.0, v_depth=0.2)
    assert _labels(Region.TORSO, 0.9, cut, across=0.0) == Garment.SKIN
    assert _labels(Region.TORSO, 0.9, cut, across=0.4) == Garment.TOP


def test_hair_line_and_bald_heads() -> None:
    cut = Cut(hair_front=0.7, hair_back=0.1)
    assert _labels(Region.HEAD, 0.8, cut, across=0.1) == Garment.HAIR  # top of the forehead
    assert _labels(Region.HEAD, 0.5, cut, across=0.1) == Garment.SKIN  # face
    assert _labels(Region.HEAD, 0.3, cut, across=0.9) == Garment.HAIR  # back of the head
    bald = Cut(hair_front=2.0, hair_back=2.0)
    assert _labels(Region.HEAD, 0.95, bald, across=0.5) == Garment.SKIN
    long_hair = Cut(hair_front=0.7, hair_back=-1.0, hair_length=0.7)
    assert _labels(Region.TORSO, 0.8, long_hair, across=0.2, behind=0.1) == Garment.HAIR
    assert _labels(Region.TORSO, 0.8, long_hair, across=0.2, behind=-0.1) == Garment.TOP
    assert _labels(Region.TORSO, 0.8, long_hair, across=0.6, behind=0.1) == Garment.TOP  # rounded


def test_surface_map_regions_and_coordinates(body_model) -> None:
    surface = surface_map(body_model)
    assert surface is surface_map(body_model)  # cached
    regions = set(surface.region.tolist())
    assert regions == {int(r) for r in Region}
    arm = surface.region == Region.ARM
    leg = surface.region == Region.LEG
    # shoulder joint 0 -> wrist 1; hip joint 0 -> ankle 1 (a little slack for the joint caps)
    assert surface.along[arm].min() > -0.3 and surface.along[arm].max() < 1.2
    assert surface.along[leg].min() > -0.2 and surface.along[leg].max() < 1.1
    head = surface.region == Region.HEAD
    assert torch.isclose(surface.along[head].max(), torch.tensor(1.0))
    assert surface.across[head].min() == 0 and surface.across[head].max() == 1


def test_pixel_garments_agree_with_vertices_at_corners(body_model) -> None:
    surface = surface_map(body_model)
    cut = Cut(sleeve=0.45, hem=0.3, waist=0.35, v_depth=0.1)
    faces = body_model.faces
    face = torch.arange(0, len(faces), 7)
    per_vertex = vertex_garments(surface, cut)
    for corner in range(3):
        bary = torch.zeros(len(face), 3)
        bary[:, corner] = 1.0
        got = pixel_garments(surface, cut, faces, face, bary)
        uniform = (surface.region[faces[face]] == surface.region[faces[face, :1]]).all(1)
        expected = per_vertex[faces[face, corner]]
        assert torch.equal(got[uniform], expected[uniform])
    # straddling faces take their vertices' majority label at any point inside
    centre = torch.full((len(face), 3), 1 / 3)
    labels = per_vertex[faces[face]]
    majority = (labels[:, 0] == labels[:, 1]) | (labels[:, 0] == labels[:, 2])
    straddle = ~(surface.region[faces[face]] == surface.region[faces[face, :1]]).all(1)
    got = pixel_garments(surface, cut, faces, face, centre)
    assert torch.equal(got[straddle & majority], labels[straddle & majority, 0])


def test_every_garment_appears_on_a_clothed_body(body_model) -> None:
    labels = vertex_garments(surface_map(body_model), Cut(sleeve=0.4, hem=1.0))
    counts = torch.bincount(labels, minlength=len(Garment))
    assert (counts > 100).all(), counts
