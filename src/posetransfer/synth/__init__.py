"""Stage 1 pipelines: synthetic people with exact flow (``make-synthetic``) and flow synthesis
from keypoints by fitting the body model (``synth-flow``).

- :mod:`~posetransfer.synth.people`, :mod:`~posetransfer.synth.appearance`,
  :mod:`~posetransfer.synth.garments`: one synthetic person in one pose, rendered;
- :mod:`~posetransfer.synth.synthetic_config`, :mod:`~posetransfer.synth.dataset_writer`: the
  ``make-synthetic`` settings and dataset (PATN layout, sharding);
- :mod:`~posetransfer.synth.flow_plan`, :mod:`~posetransfer.synth.flow_inputs`,
  :mod:`~posetransfer.synth.flow_output`, :mod:`~posetransfer.synth.flow_fits`,
  :mod:`~posetransfer.synth.flow_pipeline`: ``synth-flow`` (plan, keypoint inputs, flow outputs
  and manifest, the fit stage, the fit-and-render pipeline);
- :mod:`~posetransfer.synth.contact_sheet`: preview sheets.

This package imports nothing itself.
"""
