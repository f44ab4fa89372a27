"""The ``posetransfer`` command: one entry point, one small record per subcommand.

Each subcommand is a :class:`Command` in :data:`COMMANDS`: a name, a help line, a config dataclass,
a function adding its own arguments, and ``run(args, cfg) -> exit code``. :func:`main` gives every
subcommand the same shared options:

- ``--config FILE.yaml``: fill the config dataclass from YAML (unknown keys are errors);
- ``key.sub=value`` overrides, anywhere on the line (``--key.sub=value`` works too), applied after
  the file (values are YAML scalars: ``true``, ``1e-4``, ``[1, 2]``);
- ``--dry-run``: print the resolved config as YAML and exit 0;
- ``-v`` / ``-q``: more / less logging (logging is configured here only, never by the library).

User errors (bad config or override, malformed data files, missing files, invalid values) end
with one line ``posetransfer <cmd>: error: ...`` on stderr and exit code 2; ``-v`` adds the
traceback. Adding a stage means writing its ``add_arguments``/``run`` pair and one
:func:`register` call.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from posetransfer import __version__
from posetransfer.config import load_config, to_dict
from posetransfer.data.inspect import InspectConfig, format_report, inspect_dataset
from posetransfer.io import atomic_write_text

__all__ = ["COMMANDS", "Command", "build_parser", "main", "register"]

PROG = "posetransfer"
logger = logging.getLogger(PROG)

#: Exceptions reported as one-line user errors (exit code 2). ``FormatError`` and ``ConfigError``
#: subclass ``ValueError``.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
)


@dataclass(frozen=True)
class Command:
    """One subcommand.

    Attributes:
        name: The verb on the command line (``inspect-data``).
        help: One line for ``posetransfer --help``.
        config: Config dataclass type; ``--config``, overrides and ``--dry-run`` act on it.
        add_arguments: Adds the subcommand's own arguments to its parser.
        run: ``run(args, cfg) -> exit code``; ``cfg`` is the resolved config instance.
        description: Longer text for ``posetransfer <name> --help`` (defaults to ``help``).
    """

    name: str
    help: str
    config: type
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Any], int]
    description: str = field(default="")


#: Subcommands by name, in ``--help`` order.
COMMANDS: dict[str, Command] = {}


def register(command: Command) -> Command:
    """Add a subcommand to :data:`COMMANDS` (names must be unique)."""
    if command.name in COMMANDS:
        raise ValueError(f"subcommand {command.name!r} is already registered")
    COMMANDS[command.name] = command
    return command


# ---------------------------------------------------------------------------------- inspect-data


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
    print(format_report(report, max_listed))
    if json_path is not None:
        atomic_write_text(json_path, json.dumps(report.to_dict(), indent=2) + "\n")
        logger.info("wrote %s", json_path)
    return 1 if report.errors else 0


register(
    Command(
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
)


# The stages' commands live next to their code; importing a module registers its commands.
_COMMAND_MODULES = (
    "posetransfer.data.synthetic_cli",  # make-synthetic
    "posetransfer.render.synth_flow_cli",  # synth-flow, show-flow
    "posetransfer.train.flow_cli",  # train-flow, evaluate-flow
    "posetransfer.train.generator_cli",  # train, infer
    "posetransfer.eval.cli_command",  # evaluate
    "posetransfer.demo",  # demo
)
for _module in _COMMAND_MODULES:
    importlib.import_module(_module)

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
            cfg = load_config(command.config, args.config, [*args.overrides, *overrides])
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
