"""The one entry point: ``reslab <command>`` (also ``python -m reslab``).

Each command lives in ``reslab/commands/<name>.py`` with ``register(subparsers)``; this
module only assembles them and turns user mistakes into one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import ReslabError

# Command modules in the order ``reslab --help`` lists them.
COMMANDS = (
    "models",
    "data",
    "train",
    "runs",
    "probe",
    "reproduce",
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
        return int(args.func(args) or 0)
    except ReslabError as exc:
        print(f"reslab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("reslab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
