"""``posetransfer inspect-data``: validate a dataset and summarise it."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from posetransfer.cli.command import Command
from posetransfer.console import echo
from posetransfer.data.inspect import InspectConfig, format_report, inspect_dataset
from posetransfer.io import atomic_write_text

__all__ = ["INSPECT_DATA"]

logger = logging.getLogger(__name__)


def _inspect_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", type=Path, help="dataset folder (PATN/GFLA or DIAF layout)")
    parser.add_argument("--split", default="all", help="split to check (train, test, ...), or all")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the report as JSON")
    parser.add_argument(
        "--max-listed", type=int, default=5, metavar="N", help="examples listed per finding kind"
    )


def _inspect_run(args: argparse.Namespace, cfg: InspectConfig) -> int:
    splits = None if args.split == "all" else [args.split]
    return _inspect_and_print(args.root, splits, cfg, args.max_listed, args.json)


def _inspect_and_print(
    root: Path,
    splits: list[str] | None,
    cfg: InspectConfig,
    max_listed: int,
    json_path: Path | None = None,
) -> int:
    """Inspect, print the summary, optionally save JSON; exit code 1 on errors, else 0."""
    report = inspect_dataset(root, splits, cfg)
    echo(format_report(report, max_listed))
    if json_path is not None:
        atomic_write_text(json_path, json.dumps(report.to_dict(), indent=2) + "\n")
        logger.info("wrote %s", json_path)
    return 1 if report.errors else 0


INSPECT_DATA = Command(
    name="inspect-data",
    help="validate a dataset (either layout) and summarise it",
    config=InspectConfig,
    add_arguments=_inspect_arguments,
    run=_inspect_run,
    description="Validate a dataset in the PATN/GFLA or DIAF layout: counts per split, "
    "missing or unreadable images, keypoints outside their image, pairs naming unknown "
    "images, duplicate pairs, malformed files, and flow files. Exits 1 when it finds "
    "errors, 0 otherwise.",
)
