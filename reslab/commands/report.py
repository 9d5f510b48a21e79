"""``reslab report DIR``: re-render report.html, report.md and figures/ from DIR/results.json alone."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="re-render the HTML and Markdown report from DIR/results.json")
    p.add_argument(
        "dir", nargs="?", default="reslab-report", help="directory holding results.json (default: %(default)s)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..report import render_report  # on use, so `reslab --help` does not load this layer

    paths = render_report(args.dir)
    for problem in paths.problems:
        print(f"reslab: warning: {problem}", file=sys.stderr)
    print(f"wrote {paths.html}, {paths.markdown} and {len(paths.figures)} figures in {paths.html.parent / 'figures'}")
    return 0
