"""Networks: shared blocks, the flow regressor (stage 2) and FLOP/parameter counting."""

from posetransfer.models.flops import count_flops, count_parameters
from posetransfer.models.flow_regressor import (
    FlowPrediction,
    FlowRegressor,
    FlowRegressorConfig,
    flow_input_channels,
    level_channels,
)

__all__ = [
    "FlowPrediction",
    "FlowRegressor",
    "FlowRegressorConfig",
    "count_flops",
    "count_parameters",
    "flow_input_channels",
    "level_channels",
]
