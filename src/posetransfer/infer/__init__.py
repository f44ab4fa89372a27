"""Inference: a trained run turned into pictures of people in new poses.

- :mod:`~posetransfer.infer.pipeline`: :class:`~posetransfer.infer.pipeline.PoseTransferPipeline`
  (flow regressor or fitted-body flow, generator, refiner) loaded from a run folder;
- :mod:`~posetransfer.infer.inputs`: pose files, source images and pair lists for ``infer``.

This package imports nothing itself.
"""
