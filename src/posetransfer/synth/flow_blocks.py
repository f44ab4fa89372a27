"""Render blocks of ``synth-flow``: a block prepared ahead, and its rasterizations shared.

:class:`Block` is what the posing thread hands the renderer for one block of pairs (fits and
posed vertices); :class:`BlockRenders` rasterizes each image of a block once and serves its
fragments to all the block's pairs that use it (see :mod:`posetransfer.synth.flow_pipeline`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor

from posetransfer.body.fit_result import FitResult
from posetransfer.render.correspondence import FlowField, correspondence, render_pair
from posetransfer.render.rasterize import Fragments, rasterize
from posetransfer.synth.flow_plan import PairItem

__all__ = ["Block", "BlockRenders"]


class BlockRenders:
    """Each image of a render block rasterized once, on first use, dropped after its last pair.

    An image is always rendered at one size in a run (``--size``, else its own, which a pair's
    other image must share), so its key names one rasterization.
    """

    def __init__(self, faces: Tensor, uses: Counter[str]) -> None:
        self.faces = faces
        self.uses = uses  # pairs of the block still to render, per image key
        self.fragments: dict[str, Fragments | None] = {}

    def get(self, key: str, verts: Tensor, size: tuple[int, int]) -> Fragments | None:
        """Fragments ``(1, H, W)`` of ``verts`` ``(1, V, 3)``; None when rasterizing failed."""
        if key not in self.fragments:
            try:
                self.fragments[key] = rasterize(verts, self.faces, size)
            except (ValueError, RuntimeError):
                self.fragments[key] = None  # render_pair raises the error for each pair
        return self.fragments[key]

    def render(
        self, keys: tuple[str, str], v_src: Tensor, v_tgt: Tensor, size: tuple[int, int], tol: float
    ) -> FlowField:
        """:func:`render_pair` of ``(1, V, 3)`` vertices, rasterizing each image once."""
        frag_src, frag_tgt = self.get(keys[0], v_src, size), self.get(keys[1], v_tgt, size)
        if frag_src is None or frag_tgt is None:
            return render_pair(v_src, v_tgt, self.faces, size, tol)  # raises as it always did
        return correspondence(frag_tgt, v_src, self.faces, frag_src, depth_tolerance=tol)

    def done(self, keys: tuple[str, str]) -> None:
        """One pair of these images is finished: drop the fragments nothing else needs."""
        for key in keys:
            self.uses[key] -= 1
            if self.uses[key] <= 0:
                self.fragments.pop(key, None)


@dataclass(frozen=True)
class Block:
    """A render block prepared ahead by the posing thread, for the renderer.

    Attributes:
        pairs: The block's pairs, in plan order.
        pending: Indices into ``pairs`` of those to render (no problem, no flow file yet).
        status: Image name -> fit or why there is none (empty when nothing is pending).
        verts: Fit key -> image-space vertices ``(V, 3)`` of each usable fit.
    """

    pairs: Sequence[PairItem]
    pending: set[int]
    status: dict[str, FitResult | str]
    verts: dict[str, Tensor]
