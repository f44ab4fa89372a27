"""Experiments on top of training and inference: baselines, variant comparisons, the demo.

- :mod:`~posetransfer.experiments.baselines`: copy-the-source and warping baselines;
- :mod:`~posetransfer.experiments.compare`: train variants from one config and score them;
- :mod:`~posetransfer.experiments.demo`: the whole pipeline on synthetic data to a report.

This package imports nothing itself.
"""
