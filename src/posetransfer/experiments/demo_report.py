"""The demo's report: sample grids of test pairs, ``figure.png`` and ``report.html``.

Called by :func:`posetransfer.experiments.demo.run_demo` once the models are trained and scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import yaml

from posetransfer.config import to_dict
from posetransfer.data.formats import read_pairs_csv
from posetransfer.experiments.baselines import BASELINES
from posetransfer.experiments.compare import Comparison
from posetransfer.experiments.demo_config import DemoConfig
from posetransfer.experiments.variants import resolve_variant

if TYPE_CHECKING:
    from posetransfer.io import PathLike
    from posetransfer.report.html_report import GridRow, Section

__all__ = ["grid_rows", "write_demo_report", "write_figure"]

_COLUMNS = (
    "source", "target pose", "3D flow", "predicted flow", "visibility", "output", "ground truth"
)  # fmt: skip


def grid_rows(cfg: DemoConfig, out: Path, result: Comparison) -> list[GridRow]:
    """Evenly spaced test pairs: inputs, both flows, predicted visibility, output, truth."""
    from torch.utils.data import default_collate

    from posetransfer.data.flow_files import flow_filename, read_any_flow
    from posetransfer.data.layout import discover_dataset
    from posetransfer.experiments.baselines import load_flow_net
    from posetransfer.infer.inputs import PairListDataset, gfla_name
    from posetransfer.io import tensor_to_uint8
    from posetransfer.models.generator_inputs import condition_from_prediction
    from posetransfer.ops.flow_viz import flow_to_color, visibility_to_color
    from posetransfer.pose.draw import draw_pose
    from posetransfer.pose.keypoints import Pose
    from posetransfer.pose.maps import pose_maps
    from posetransfer.report.html_report import GridRow

    pairs = read_pairs_csv(result.pairs_csv)
    count = min(max(cfg.grid_rows, cfg.figure_rows), len(pairs))
    picks = [pairs[round(k * (len(pairs) - 1) / max(count - 1, 1))] for k in range(count)]
    data = PairListDataset(out / "data", picks, cfg.generator.data.protocol)
    batch = default_collate([data[k] for k in range(count)])
    net, flow_cfg = load_flow_net(out / "runs" / "flow")
    x_src = batch["source_image"]
    maps = [
        pose_maps(batch[k + "_xy"], batch[k + "_valid"], x_src.shape[-2:], flow_cfg.data.pose_map)
        for k in ("src", "tgt")
    ]
    with torch.no_grad():
        flow, vis = condition_from_prediction(net(*maps))
    gt_dir = discover_dataset(out / "data").image_dirs["test"]
    rows = []
    for k, (source, target) in enumerate(picks):
        flow_3d = read_any_flow(out / "synth_flow" / "flows" / flow_filename(source, target))[0]
        scale = max(float(np.abs(flow_3d).max()), float(flow[k].abs().max()), 1.0)
        poses = [
            Pose(batch[r + "_xy"][k].numpy(), batch[r + "_valid"][k].numpy())
            for r in ("src", "tgt")
        ]
        blank = np.full((*x_src.shape[-2:], 3), 255, np.uint8)
        images: list[np.ndarray | PathLike] = [
            draw_pose(tensor_to_uint8(x_src[k]), poses[0]),
            draw_pose(blank, poses[1]),
            flow_to_color(flow_3d, scale),
            flow_to_color(flow[k], scale),
            visibility_to_color(vis[k]),
            result.outputs["full"] / gfla_name(source, target),
            gt_dir / target,
        ]
        label = f"{source} → {target}"
        rows.append(GridRow(label, dict(zip(_COLUMNS, images, strict=True))))
    return rows


def write_figure(rows: list[GridRow], path: Path) -> None:
    """The rows stacked into one labelled PNG (the README figure)."""
    from PIL import Image

    from posetransfer.io import save_png
    from posetransfer.ops.flow_viz import make_panel

    panels = []
    for r, row in enumerate(rows):
        images = [
            v if isinstance(v, np.ndarray) else np.asarray(Image.open(v).convert("RGB"))
            for v in row.images.values()
        ]
        panels.append(make_panel(images, list(row.images) if r == 0 else None))
    width = max(p.shape[1] for p in panels)
    padded = [
        np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0)), constant_values=255) for p in panels
    ]
    save_png(path, np.concatenate(padded))


def write_demo_report(
    cfg: DemoConfig,
    out: Path,
    result: Comparison,
    rows: list[GridRow],
    timings: dict[str, float],
    extra: Sequence[Section] = (),
) -> Path:
    """Write ``out/report.html``: grids, metrics, loss curves, timings, ``extra`` sections (the
    real-people section) and the config."""
    from posetransfer.report.html_report import ReportData, Section, write_report

    notes = {k: resolve_variant(cfg.generator, k).description for k in cfg.variants} | BASELINES
    curves = {"flow regressor": out / "runs" / "flow" / "stats.jsonl"}
    curves |= {name: path / "stats.jsonl" for name, path in result.runs.items()}
    syn = cfg.synthetic
    count = len(read_pairs_csv(result.pairs_csv))
    data = ReportData(
        title="posetransfer demo",
        subtitle=f"{syn.num_people} synthetic people x {syn.poses_per_person} poses at "
        f"{syn.size[0]}x{syn.size[1]}; {count} test pairs of unseen people",
        notes=_NOTES,
        grids=rows[: cfg.grid_rows],
        metrics=result.metrics,
        method_notes={m: notes[m] for m in result.metrics},
        metrics_note=_METRICS_NOTE,
        curves={k: v for k, v in curves.items() if v.is_file()},
        timings=timings,
        extra_sections=[
            *extra,
            Section("From the demo to DeepFashion and Market-1501", _NEXT_STEPS),
        ],
        config_text=yaml.safe_dump(to_dict(cfg), sort_keys=False),
    )
    return write_report(data, out)


_NOTES = (
    "Every stage ran on the CPU from nothing: `make-synthetic` rendered Anny people with "
    "procedural clothing, `synth-flow` fitted the body model to each image's **keypoints** and "
    "rendered the pairs' 3D flow (the ground-truth flows are not used), the flow regressor "
    "trained on those flows, and the generators trained briefly. Test people are never seen in "
    "training. Short runs: the numbers show the pipeline works, not the paper's quality."
)
_METRICS_NOTE = (
    "Protocol `native`: SSIM with a Gaussian window (sigma 1.5) on 8-bit values with the fixed "
    "range 255; PSNR; L1 = mean absolute difference on [0, 255] / 255; `mask_*` inside the "
    "target's keypoint mask. Each ablation switches one component of `full` off (with what "
    "needs it: no flow means no visibility and no pixel warping); `full` is `no_pixel_warp`'s "
    "generator plus the pixel-warp refiner."
)
_NEXT_STEPS = (
    "See the README section *From the demo to DeepFashion and Market-1501*: put the dataset in "
    "the PATN layout, run `posetransfer synth-flow`, `posetransfer train-flow`, "
    "`posetransfer train`, `posetransfer infer` and `posetransfer evaluate` with the configs in "
    "`configs/`."
)
