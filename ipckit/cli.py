"""The ``ipckit`` command (also ``python -m ipckit``).

Each subcommand lives in its own module and contributes a ``register(subparsers)``
function that adds its parser and sets ``handler`` (called with the parsed
arguments, returns the exit status) and ``parser`` (for usage errors). To add a
subcommand, write its module and append its ``register`` to :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ipckit import _admin
from ipckit._bench import command as bench_command

__all__ = ["COMMANDS", "build_parser", "main"]

#: Every subcommand's ``register(subparsers)``, in the order ``--help`` lists them.
COMMANDS: list[Callable[[Any], argparse.ArgumentParser]] = [
    bench_command.register,
    _admin.register_ls,
    _admin.register_stat,
    _admin.register_rm,
    _admin.register_gc,
]


def build_parser() -> argparse.ArgumentParser:
    """The ``ipckit`` argument parser with every subcommand registered."""
    from ipckit import __version__, _accel

    parser = argparse.ArgumentParser(
        prog="ipckit", description="ipckit: one Channel API for inter-process communication."
    )
    parser.add_argument(
        "--version", action="version", version=f"ipckit {__version__} ({_accel.describe()})"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in COMMANDS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``ipckit`` command with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    Bad arguments print the usage and an error on stderr and return 2; ``--help``
    returns 0.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help, --version and bad arguments
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    try:
        status: int = args.handler(args)
    except bench_command.UsageError as exc:
        sub: argparse.ArgumentParser = args.parser
        sub.print_usage(sys.stderr)
        sys.stderr.write(f"{sub.prog}: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
