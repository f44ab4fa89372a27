"""What a subcommand is: :class:`Command`, and the errors reported as one-line user errors."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["USER_ERRORS", "Command"]

#: Exceptions reported as one-line user errors (exit code 2). ``FormatError`` and ``ConfigError``
#: subclass ``ValueError``; ``OSError`` covers missing files and folders, permissions, and a full
#: disk, a read-only folder or an exhausted quota (their messages name the file).
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)


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
        configure: ``configure(args, cfg) -> cfg`` folds the command's own flags that change the
            configuration (``--data``, ``--max-steps``, ``--quick``) into it, before ``--dry-run``
            prints it and before ``run`` gets it, so that both see the same configuration.
    """

    name: str
    help: str
    config: type
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Any], int]
    description: str = field(default="")
    configure: Callable[[argparse.Namespace, Any], Any] | None = None
