"""Rendering for flow synthesis: z-buffer rasterization and dense target -> source correspondence.

``rasterize(verts, faces, size) -> Fragments`` (face id, barycentrics, depth per pixel), then
``correspondence(frag_tgt, verts_src, faces, frag_src) -> FlowField`` (flow and visibility);
``render_pair`` does both for a mesh seen in two views.
"""

from posetransfer.render.correspondence import (
    DEFAULT_DEPTH_TOLERANCE_M,
    FlowField,
    correspondence,
    correspondence_reference,
    depth_tolerance_pixels,
    render_pair,
)
from posetransfer.render.raster_reference import rasterize_reference
from posetransfer.render.rasterize import Fragments, barycentric, rasterize

__all__ = [
    "DEFAULT_DEPTH_TOLERANCE_M",
    "FlowField",
    "Fragments",
    "barycentric",
    "correspondence",
    "correspondence_reference",
    "depth_tolerance_pixels",
    "rasterize",
    "rasterize_reference",
    "render_pair",
]
