"""The ``posetransfer`` command: one entry point, one small record per subcommand.

Each subcommand is a :class:`Command` in :data:`COMMANDS`: a name, a help line, a config dataclass,
a function adding its own arguments, and ``run(args, cfg) -> exit code``. :func:`main` gives every
subcommand the same shared options:

- ``--config FILE.yaml``: fill the config dataclass from YAML (unknown keys are errors);
- ``key.sub=value`` overrides, anywhere on the line (``--key.sub=value`` works too), applied after
  the file (values are YAML scalars: ``true``, ``1e-4``, ``[1, 2]``);
- ``--dry-run``: print the resolved config as YAML and exit 0; the command's ``configure`` hook
  has folded its flags (``--data``, ``--max-steps``, ...) in, so it is the config ``run`` gets;
- ``-v`` / ``-q``: more / less logging (logging is configured here only, never by the library).

User errors (bad config or override, malformed data files, missing files, invalid values) end
with one line ``posetransfer <cmd>: error: ...`` on stderr and exit code 2; ``-v`` adds the
traceback. Adding a command means writing its module here (``add_arguments``, ``run`` and
optionally ``configure``) and one line in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from posetransfer import __version__
from posetransfer.cli.command import USER_ERRORS, Command
from posetransfer.cli.demo import DEMO
from posetransfer.cli.detect_pose import DETECT_POSE
from posetransfer.cli.evaluate import EVALUATE
from posetransfer.cli.evaluate_flow import EVALUATE_FLOW
from posetransfer.cli.export import EXPORT
from posetransfer.cli.infer import INFER
from posetransfer.cli.inspect_data import INSPECT_DATA
from posetransfer.cli.make_dataset import MAKE_DATASET
from posetransfer.cli.make_synthetic import MAKE_SYNTHETIC
from posetransfer.cli.personalize import PERSONALIZE
from posetransfer.cli.serve import SERVE
from posetransfer.cli.show_flow import SHOW_FLOW
from posetransfer.cli.synth_flow import SYNTH_FLOW
from posetransfer.cli.train import TRAIN
from posetransfer.cli.train_flow import TRAIN_FLOW
from posetransfer.config import load_config, to_dict

__all__ = ["COMMANDS", "PROG", "build_parser", "main"]

PROG = "posetransfer"
logger = logging.getLogger(PROG)

#: Subcommands by name, in ``--help`` order: the one table of commands.
COMMANDS: dict[str, Command] = {
    command.name: command
    for command in (
        INSPECT_DATA,
        MAKE_SYNTHETIC,
        SYNTH_FLOW,
        SHOW_FLOW,
        TRAIN_FLOW,
        EVALUATE_FLOW,
        TRAIN,
        INFER,
        EXPORT,
        PERSONALIZE,
        EVALUATE,
        DETECT_POSE,
        MAKE_DATASET,
        DEMO,
        SERVE,
    )
}

# ---------------------------------------------------------------------------------- the parser


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults, except empty ones (None, False, 0 counters, no overrides)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, []) or isinstance(action, argparse._CountAction):
            return action.help
        return super()._get_help_string(action)


def _flatten(data: dict[str, Any], prefix: str = "") -> list[str]:
    """``key.sub=value`` lines for every leaf of a nested config dict."""
    lines = []
    for key, value in data.items():
        if isinstance(value, dict):
            lines += _flatten(value, f"{prefix}{key}.")
        else:
            lines.append(f"{prefix}{key}={yaml.safe_dump(value, default_flow_style=True).strip()}")
    return [line.removesuffix("\n...") for line in lines]


def _config_epilog(config: type) -> str:
    keys = _flatten(to_dict(config()))
    return "config keys and defaults (override with KEY=VALUE): " + ", ".join(keys)


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    """Options every subcommand shares; added last so the overrides follow its positionals."""
    group = parser.add_argument_group("common options")
    group.add_argument("--config", type=Path, metavar="FILE.yaml", help="config file (YAML)")
    group.add_argument(
        "--dry-run", action="store_true", help="print the resolved config as YAML and exit"
    )
    group.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-v: debug, tracebacks)"
    )
    group.add_argument("-q", "--quiet", action="count", default=0, help="less logging")
    group.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides such as key.sub=value, applied after --config",
    )


def _build() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Human pose transfer with dense intrinsic appearance flow.",
        epilog=f"Run '{PROG} <command> --help' for a command's options.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    subparsers = {}
    for command in COMMANDS.values():
        subparsers[command.name] = cmd_parser = sub.add_parser(
            command.name,
            help=command.help,
            description=command.description or command.help,
            epilog=_config_epilog(command.config),
            formatter_class=_HelpFormatter,
        )
        command.add_arguments(cmd_parser)
        _add_common_options(cmd_parser)
    return parser, subparsers


def build_parser() -> argparse.ArgumentParser:
    """The full parser: one subparser per registered :class:`Command`."""
    return _build()[0]


def _split_extras(extras: list[str]) -> tuple[list[str], list[str]]:
    """Split what argparse left over into overrides (``k=v``, ``--k=v``) and unknown arguments.

    Overrides that come after options are left over because argparse fills the positional
    ``overrides`` only once.
    """
    overrides = [a for a in extras if "=" in a and (a.startswith("--") or not a.startswith("-"))]
    return overrides, [a for a in extras if a not in overrides]


def _describe(exc: BaseException) -> str:
    """One line for a user error."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


@contextlib.contextmanager
def _logging_to_stderr(verbosity: int) -> Iterator[None]:
    """Send this package's log records to stderr for the duration of one command.

    ``verbosity``: 0 = INFO, 1+ = DEBUG, -1 = WARNING, -2 or less = ERROR.
    """
    levels = {-2: logging.ERROR, -1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}
    package = logging.getLogger(PROG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    old_level = package.level
    package.addHandler(handler)
    package.setLevel(levels[max(-2, min(verbosity, 1))])
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(old_level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``posetransfer`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    parser, subparsers = _build()
    try:
        args, extras = parser.parse_known_args(argv)
        overrides, unknown = _split_extras(extras)
        if unknown:
            subparsers[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as exc:  # --help, --version and usage errors (already printed)
        return exc.code if isinstance(exc.code, int) else 2
    command = COMMANDS[args.command]
    name = f"{PROG} {command.name}"
    verbosity = args.verbose - args.quiet
    with _logging_to_stderr(verbosity):
        try:
            cfg: Any = load_config(command.config, args.config, [*args.overrides, *overrides])
            if command.configure is not None:
                cfg = command.configure(args, cfg)
            if args.dry_run:
                print(f"# {name}: resolved config")
                print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
                return 0
            return command.run(args, cfg)
        except USER_ERRORS as exc:
            if verbosity > 0:
                traceback.print_exc()
            print(f"{name}: error: {_describe(exc)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"{name}: interrupted", file=sys.stderr)
            return 130
