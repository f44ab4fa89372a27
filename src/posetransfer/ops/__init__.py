"""Tensor operations on flow: backward warping, pyramids, resizing, and visualisation.

- :mod:`posetransfer.ops.warp`: the differentiable math, pure torch functions (``warp``,
  ``flow_to_grid``, ``flow_pyramid``, ``visibility_pyramid``, ``resize_flow``, ``flip_flow``,
  ``masked_epe``, ...).
- :mod:`posetransfer.ops.flow_viz`: flows, visibility maps and images to ``uint8`` pictures and
  PNG panels.

Import from the submodules (``from posetransfer.ops.warp import warp``). Nothing is re-exported
here on purpose: re-exporting the function ``warp`` would shadow the submodule of the same name,
so ``import posetransfer.ops.warp as m`` would silently yield the function.
"""
