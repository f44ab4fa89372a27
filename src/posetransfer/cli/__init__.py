"""The ``posetransfer`` command line: one module per command, one table of commands.

:data:`~posetransfer.cli.main.COMMANDS` lists every command; each command module
(:mod:`~posetransfer.cli.train`, :mod:`~posetransfer.cli.infer`, ...) turns its arguments into a
call of the library. The library never imports this package.
"""

from posetransfer.cli.command import Command
from posetransfer.cli.main import COMMANDS, build_parser, main

__all__ = ["COMMANDS", "Command", "build_parser", "main"]
