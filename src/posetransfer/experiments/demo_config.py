"""The demo's configuration (:class:`DemoConfig`) and ``--quick`` (:data:`QUICK`).

Defaults are ``configs/demo/default.yaml``'s: a small synthetic dataset, a small flow regressor
and generator on short schedules, the full model and its ablations, the three baselines, and the
real-people section (``real``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from posetransfer.config import ConfigError, apply_overrides, from_dict
from posetransfer.experiments.baselines import BASELINES
from posetransfer.experiments.demo_real import RealDemoConfig
from posetransfer.experiments.variants import VARIANT_NAMES, VARIANTS
from posetransfer.synth.dataset_writer import SyntheticConfig
from posetransfer.synth.flow_output import SynthFlowConfig
from posetransfer.train.flow_stage import FlowStageConfig
from posetransfer.train.generator_config import GeneratorStageConfig

__all__ = ["QUICK", "DemoConfig", "quick_config"]

_QUIET_TRAIN = {"tensorboard": False, "progress": False, "device": "cpu", "num_workers": 0}

#: The flow regressor (configs/flow/synthetic.yaml's model and loss, a short schedule).
_FLOW = {
    "data": {"pose_map": {"kind": "disk", "radius": 4.0, "limbs": False}, "val_max_pairs": 64},
    "model": {"base_channels": 16, "max_channels": 256, "num_levels": 3, "flow_scale": 20.0},
    "loss": {"flow_weight": 0.05, "level_weights": [0.0, 0.32, 0.16, 0.08]},
    "train": {
        "max_steps": 250, "batch_size": 8, "lr": 1e-3, "lr_step_size": 200, "log_every": 10,
        "val_every": 125, "ckpt_every": 125, "sample_every": 0, "keep_last": 1, **_QUIET_TRAIN,
    },
}  # fmt: skip

#: The generator (configs/generator/synthetic.yaml's model, a short schedule, no VGG).
_GENERATOR = {
    "data": {"pose_map": {"kind": "disk", "radius": 8.0}, "val_max_pairs": 32, "sample_pairs": 0},
    "generator": {"image_size": [128, 96], "channels": [16, 32, 64, 64, 64], "warp_levels": 3},
    "pixel_warp": {"channels": [16, 32, 64]},
    "discriminator": {"base_channels": 16, "num_layers": 3},
    "loss": {"perceptual_weight": 0.0, "gan_weight": 0.01, "gan_start_step": 1000},
    "schedule": {"coarse_steps": 150},
    "train": {
        "max_steps": 250, "batch_size": 8, "lr": 1e-3, "log_every": 10, "val_every": 50,
        "ckpt_every": 50, "sample_every": 0, "keep_last": 1, **_QUIET_TRAIN,
    },
}  # fmt: skip

#: ``--quick``: overrides applied after the config (about a third of the default's time).
QUICK: tuple[str, ...] = (
    "synthetic.num_people=60",
    "flow.train.max_steps=100",
    "flow.train.val_every=50",
    "flow.train.ckpt_every=50",
    "generator.schedule.coarse_steps=60",
    "generator.train.max_steps=100",
    "generator.train.val_every=50",
    "generator.train.ckpt_every=50",
    "grid_rows=4",
    "real.personalize_steps=50",
)


@dataclass(frozen=True)
class DemoConfig:
    """Everything the demo does (``configs/demo/default.yaml`` lists the same values).

    Attributes:
        synthetic: The dataset (``make-synthetic``).
        synth_flow: Keypoint fits and flow rendering (``synth-flow``).
        flow: The flow regressor's stage (its ``data.root`` and ``data.flows_dir`` are set to
            the demo's dataset and synth-flow output when it trains).
        generator: The full model's config; the ablations are overrides of it.
        variants: Trained models (:data:`posetransfer.experiments.compare.VARIANT_NAMES`).
        baselines: Untrained baselines
            (keys of :data:`~posetransfer.experiments.baselines.BASELINES`).
        workers: Models trained at once (one process each).
        threads: Torch threads per training process, and for the flow regressor's training.
        max_test_pairs: Score evenly spaced test pairs only (None: all).
        grid_rows: Test pairs shown in the report.
        figure_rows: Test pairs in ``figure.png``.
        real: The real-people section (real video, the trained model, ``warp_3d`` and
            personalisation; :mod:`posetransfer.experiments.demo_real`).
    """

    synthetic: SyntheticConfig = field(
        default_factory=lambda: SyntheticConfig(num_people=200, save_bodies=False)
    )
    synth_flow: SynthFlowConfig = field(default_factory=SynthFlowConfig)
    flow: FlowStageConfig = field(default_factory=lambda: from_dict(FlowStageConfig, _FLOW))
    generator: GeneratorStageConfig = field(
        default_factory=lambda: from_dict(GeneratorStageConfig, _GENERATOR)
    )
    variants: tuple[str, ...] = tuple(VARIANTS)
    baselines: tuple[str, ...] = tuple(BASELINES)
    workers: int = 2
    threads: int = 1
    max_test_pairs: int | None = None
    grid_rows: int = 6
    figure_rows: int = 3
    real: RealDemoConfig = field(default_factory=RealDemoConfig)

    def __post_init__(self) -> None:
        for name, known in (("variants", VARIANT_NAMES), ("baselines", tuple(BASELINES))):
            bad = [v for v in getattr(self, name) if v not in known]
            if bad:
                raise ConfigError(f"demo {name}: unknown {bad[0]!r}; choose from {list(known)}")
        if "full" not in self.variants:
            raise ConfigError("demo variants must include 'full' (the report shows its outputs)")
        for name in ("workers", "threads", "grid_rows", "figure_rows"):
            if getattr(self, name) < 1:
                raise ConfigError(f"demo {name} must be >= 1, got {getattr(self, name)}")
        if self.synthetic.size != tuple(self.generator.generator.image_size):
            raise ConfigError(
                f"synthetic.size={list(self.synthetic.size)} must equal "
                f"generator.generator.image_size={list(self.generator.generator.image_size)}"
            )


def quick_config(cfg: DemoConfig) -> DemoConfig:
    """``cfg`` with :data:`QUICK` applied."""
    return apply_overrides(cfg, QUICK)
