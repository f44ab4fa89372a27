"""Command output: the one place where commands write results (tables, summaries) to stdout.

Library code logs through ``logging``; a command's *result* (a table, a JSON summary that
scripts read) is not a log record, so command modules hand it to :func:`echo` instead.
"""

from __future__ import annotations

import sys

__all__ = ["echo"]


def echo(text: str) -> None:
    """Write ``text`` and a newline to stdout and flush (results stay in order with logs)."""
    sys.stdout.write(f"{text}\n")
    sys.stdout.flush()
