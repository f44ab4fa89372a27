"""``posetransfer evaluate``: score generated images under a named protocol, write JSON.

The work is :func:`posetransfer.eval.evaluate.evaluate_folders`; this file only maps
command-line arguments onto it, prints the table and writes the report. Its flags name inputs,
outputs and weight files, none sets a config key: ``--dry-run`` prints the config that runs.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from posetransfer.cli.command import Command
from posetransfer.console import echo
from posetransfer.eval.evaluate import EvaluateConfig, evaluate_folders
from posetransfer.eval.protocols import EVAL_PROTOCOLS, get_eval_protocol, list_eval_protocols
from posetransfer.eval.results import format_table, write_report
from posetransfer.runtime import set_torch_threads

__all__ = ["EVALUATE", "EVALUATE_COMMAND"]

logger = logging.getLogger(__name__)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--protocol",
        choices=list_eval_protocols(),
        metavar="NAME",
        help=f"evaluation protocol: {', '.join(list_eval_protocols())} (--describe explains)",
    )
    parser.add_argument("--pred", type=Path, metavar="DIR", help="generated images")
    parser.add_argument("--gt", type=Path, metavar="DIR", help="ground-truth target images")
    parser.add_argument("--out", type=Path, metavar="FILE.json", help="report to write")
    parser.add_argument(
        "--pairs", type=Path, metavar="CSV", help="pair list (from,to) to restrict and check"
    )
    parser.add_argument(
        "--annotations", type=Path, metavar="CSV", help="targets' keypoints (masked metrics)"
    )
    parser.add_argument(
        "--fid-real", type=Path, metavar="DIR", help="real images for FID/KID (default: the GT)"
    )
    parser.add_argument("--lpips-weights", type=Path, metavar="FILE", help="AlexNet .pth file")
    parser.add_argument(
        "--fid-weights",
        type=Path,
        metavar="FILE",
        help="Inception weights: pytorch-fid .pth or fid-helper TorchScript .pt",
    )
    parser.add_argument(
        "--describe", action="store_true", help="print what the protocol(s) compute and exit"
    )


def _size_label(name: str, size: tuple[int, int] | None) -> str:
    return f"{name} ({size[0]}x{size[1]})" if size else f"{name} (any size)"


def _run(args: argparse.Namespace, cfg: EvaluateConfig) -> int:
    if args.describe:
        names = [args.protocol] if args.protocol else list_eval_protocols()
        echo("\n\n".join(get_eval_protocol(n).describe() for n in names))
        return 0
    missing = [flag for flag in ("protocol", "pred", "gt", "out") if getattr(args, flag) is None]
    if missing:
        raise ValueError(f"missing required option(s): {', '.join('--' + m for m in missing)}")
    if cfg.num_threads < 0:
        raise ValueError(f"num_threads must be >= 0, got {cfg.num_threads}")
    set_torch_threads(cfg.num_threads)
    report = evaluate_folders(
        args.pred,
        args.gt,
        args.protocol,
        cfg,
        pairs_csv=args.pairs,
        annotations_csv=args.annotations,
        fid_real_dir=args.fid_real,
        lpips_weights=args.lpips_weights,
        fid_weights=args.fid_weights,
    )
    echo(format_table(report))
    write_report(args.out, report)
    logger.info("wrote %s", args.out)
    return 0


EVALUATE_COMMAND = EVALUATE = Command(
    name="evaluate",
    help="score generated images against ground truth under a named protocol",
    config=EvaluateConfig,
    add_arguments=_arguments,
    run=_run,
    description="Match predictions (GFLA names <source>_2_<target>.png, or the target's own "
    "name) to ground-truth images and compute SSIM, PSNR, L1, masked metrics (Market), LPIPS "
    "and FID/KID when their weights are found, exactly as the named protocol defines them; "
    "print a table and write a JSON report. Nothing is downloaded: unavailable metrics are "
    "listed as skipped with the reason. Protocols: "
    + "; ".join(_size_label(name, p.size) for name, p in EVAL_PROTOCOLS.items()),
)
