"""``posetransfer serve``: the web app (Gradio) on this machine.

``--checkpoint RUN`` names the ``posetransfer train`` run; without it the full model that
``make demo`` trains (``demo_out/runs/full``, or ``demo_out/work/runs/full`` where the demo
trains it) is used when it exists, folded into the config by ``configure`` so that
``--dry-run`` prints the run that would be served. ``--host``, ``--port``, ``--device``
and the limit flags set the config keys named in their help.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from posetransfer.app.config import DEFAULT_RUN, DEMO_RUNS, AppConfig, default_checkpoint
from posetransfer.cli.command import Command
from posetransfer.cli.options import add_device_option, add_threads_option, positive_int, with_flags
from posetransfer.console import echo
from posetransfer.infer.pipeline import PRECISIONS
from posetransfer.runtime import set_torch_threads

__all__ = ["SERVE"]

_NO_RUN = (
    "no run to serve: give --checkpoint RUN (a `posetransfer train` run folder), or run "
    "`make demo` first (about 8 minutes on 2 CPU cores): its full model ("
    + " or ".join(str(p) for p in DEMO_RUNS)
    + ") is then served by default"
)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        type=Path,
        metavar="RUN",
        help=f"sets checkpoint: the run to serve (default: {DEFAULT_RUN} when it exists)",
    )
    parser.add_argument(
        "--host", metavar="ADDR", help="sets host (default 127.0.0.1: this machine only)"
    )
    parser.add_argument("--port", type=int, help="sets port (0: any free port; default 7860)")
    parser.add_argument(
        "--max-upload-mb", type=positive_int, metavar="MB", help="sets max_upload_mb"
    )
    parser.add_argument(
        "--max-frames", type=positive_int, metavar="N", help="sets max_video_frames"
    )
    parser.add_argument(
        "--concurrency", type=positive_int, metavar="N", help="sets concurrency (model jobs)"
    )
    parser.add_argument(
        "--precision", choices=PRECISIONS, help="sets precision (bf16: ~2x faster on CPUs with it)"
    )
    add_device_option(parser)
    add_threads_option(parser)


def _configure(args: argparse.Namespace, cfg: AppConfig) -> AppConfig:
    cfg = with_flags(
        cfg,
        {
            "checkpoint": None if args.checkpoint is None else str(args.checkpoint),
            "host": args.host,
            "port": args.port,
            "max_upload_mb": None if args.max_upload_mb is None else float(args.max_upload_mb),
            "max_video_frames": args.max_frames,
            "concurrency": args.concurrency,
            "device": args.device,
            "precision": args.precision,
        },
    )
    if cfg.checkpoint is None and (found := default_checkpoint()) is not None:
        cfg = with_flags(cfg, {"checkpoint": str(found)})
    return cfg


def _run(args: argparse.Namespace, cfg: AppConfig) -> int:
    if cfg.checkpoint is None:
        raise FileNotFoundError(_NO_RUN)
    run = Path(cfg.checkpoint)
    if not (run / "config.yaml").is_file() and not (run / "meta.json").is_file():
        hint = f"; {_NO_RUN}" if run in DEMO_RUNS else ""
        raise FileNotFoundError(f"{run}: not a `posetransfer train` run folder{hint}")
    try:
        from posetransfer.app.server import AppServer
    except ImportError as exc:
        raise ValueError(
            f"the web app needs the app extra: pip install 'posetransfer[app]' ({exc})"
        ) from None
    set_torch_threads(args.threads)
    server = AppServer(cfg, run)
    try:
        url = server.start()
        echo(f"posetransfer serve: {run} at {url} (Ctrl-C stops it)")
        server.wait()
    except KeyboardInterrupt:  # Ctrl-C during start-up or before wait() took over
        pass
    finally:
        server.close()
    echo("posetransfer serve: stopped; temporary files deleted")
    return 0


SERVE = Command(
    name="serve",
    help="the web app: re-pose a photo or animate it from a video in the browser",
    config=AppConfig,
    add_arguments=_arguments,
    run=_run,
    configure=_configure,
    description="Serve a Gradio page on this machine: upload a person photo and pick a target "
    "pose (built-in, from another photo, or by moving joints) to see the person re-posed with "
    "the predicted flow and visibility, or upload a short driving video to get an MP4 of the "
    "person moving. Needs the app extra (pip install 'posetransfer[app]'). Binds to 127.0.0.1 "
    "unless --host says otherwise; uploads are size-limited, videos cut to max_video_frames, "
    "model jobs queued (concurrency, queue_size), temporary files deleted when it stops, and "
    "no connection leaves this machine.",
)
