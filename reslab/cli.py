"""The one entry point: ``reslab <command>`` (also ``python -m reslab``).

Each command lives in ``reslab/commands/<name>.py`` with ``register(subparsers)``; this
module only assembles them and turns user mistakes into one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import select
import sys
from contextlib import nullcontext

from .errors import ReslabError

# Command modules in the order ``reslab --help`` lists them.
COMMANDS = (
    "models",
    "data",
    "train",
    "runs",
    "probe",
    "reproduce",
    "sweep",
    "report",
    "bench",
)  # reproduce.py also adds `study`


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (plus exit 2), like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="reslab",
        description="Measure what residual connections solve in deep networks, and why they work.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"reslab.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with _threads(args):
            return int(args.func(args) or 0)
    except ReslabError as exc:
        print(f"reslab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("reslab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        if not _stdout_closed():
            raise  # a pipe of our own broke: a bug, not a reader that stopped reading
        return 141  # like any Unix tool whose reader left (`reslab models | head -1`): quietly, 128 + SIGPIPE


def _threads(args: argparse.Namespace):
    """Commands that compute (``computes`` in their defaults) use the cores other work leaves idle."""
    if not getattr(args, "computes", False):
        return nullcontext()
    from .train.hardware import idle_core_threads  # on use, so `reslab --help` does not load torch

    return idle_core_threads()


def _stdout_closed() -> bool:
    """Whether stdout's reader has gone (its pipe polls as an error); if so, point stdout at
    /dev/null so that Python's final flush at exit does not print a broken-pipe error."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # stdout replaced by an object without a file
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    if not any(event & select.POLLERR for _, event in poller.poll(0)):
        return False
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    return True


if __name__ == "__main__":
    sys.exit(main())
