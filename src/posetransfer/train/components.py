"""Names of the networks and optimisers that runs checkpoint, defined once.

A checkpoint folder holds one ``<name>.safetensors`` per network and the optimiser states under
their names in ``state.pt`` (:mod:`posetransfer.train.checkpoint`). The stages write these names,
and inference, the baselines and the experiments read them, so each is spelled here only.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "DISCRIMINATOR",
    "DISCRIMINATOR_PW",
    "FLOW_OPTIMIZER",
    "FLOW_REGRESSOR",
    "GENERATOR",
    "PIXEL_WARP",
]

#: The pose-transfer generator (coarse stage); also its optimiser, which fine-tunes the flow
#: regressor with it when ``flow.finetune`` is on.
GENERATOR: Final = "generator"
#: The pixel-warp refiner (second stage), and its optimiser.
PIXEL_WARP: Final = "pixel_warp"
#: The PatchGAN of the coarse stage, and its optimiser.
DISCRIMINATOR: Final = "discriminator"
#: The fresh PatchGAN of the pixel-warping stage, and its optimiser.
DISCRIMINATOR_PW: Final = "discriminator_pw"
#: The flow regressor, in flow runs and (frozen or fine-tuned) in generator runs.
FLOW_REGRESSOR: Final = "flow_regressor"
#: The flow stage's optimiser.
FLOW_OPTIMIZER: Final = "flow"
