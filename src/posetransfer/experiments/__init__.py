"""Experiments on top of training and inference: baselines, variant comparisons, the demo.

- :mod:`~posetransfer.experiments.baselines`: copy-the-source and warping baselines;
- :mod:`~posetransfer.experiments.compare`: train variants from one config and score them;
- :mod:`~posetransfer.experiments.demo`: the whole pipeline on synthetic data to a report, with
  a real-people section (:mod:`~posetransfer.experiments.demo_real`);
- real people on video: :mod:`~posetransfer.experiments.real_videos` (the BSD-3 demo videos,
  fetched and checked), :mod:`~posetransfer.experiments.real_data` (test pairs of a
  ``make-dataset`` folder and their fitted-body flows),
  :mod:`~posetransfer.experiments.real_render`, :mod:`~posetransfer.experiments.real_scores`,
  :mod:`~posetransfer.experiments.real_eval` (render and score methods),
  :mod:`~posetransfer.experiments.real_training` (fine-tuning and personalisation jobs),
  :mod:`~posetransfer.experiments.real_figure` (grids).

This package imports nothing itself.
"""
