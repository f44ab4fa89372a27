"""Training: the shared step-based loop, checkpoints, statistics and multi-process plumbing.

``run_training(make_stage, train_set, val_set, TrainConfig(...), run_dir)`` trains any
:class:`Stage` (modules, optimisers, one step, validation); :func:`load_weights` reads trained
weights back for inference and evaluation.
"""

from posetransfer.train.checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    find_checkpoint,
    load_weights,
)
from posetransfer.train.distributed import DistInfo, ShardedEpochSampler
from posetransfer.train.loop import TrainResult, run_training, seed_everything
from posetransfer.train.settings import TrainConfig, lr_factor, make_adam
from posetransfer.train.stage import (
    NonFiniteLossError,
    Stage,
    StepContext,
    eval_mode,
    move_to_device,
    requires_grad,
)
from posetransfer.train.stats import save_image_grid

__all__ = [
    "CheckpointError",
    "CheckpointMismatchError",
    "DistInfo",
    "NonFiniteLossError",
    "ShardedEpochSampler",
    "Stage",
    "StepContext",
    "TrainConfig",
    "TrainResult",
    "eval_mode",
    "find_checkpoint",
    "load_weights",
    "lr_factor",
    "make_adam",
    "move_to_device",
    "requires_grad",
    "run_training",
    "save_image_grid",
    "seed_everything",
]
