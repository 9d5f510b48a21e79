"""``reslab models [PATTERN]``: the registry as a table with parameter counts."""

from __future__ import annotations

import argparse

from ..errors import UnknownModelError
from ..models import count_parameters, create_model, model_entries


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list registered models with their parameter counts")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style name pattern, e.g. 'resnet*'")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    entries = model_entries(args.pattern)
    if not entries:
        raise UnknownModelError(f"no model matches {args.pattern!r}; run `reslab models` for the list")
    width = max(len(e.name) for e in entries)
    print(f"{'model':<{width}}  {'family':<11}  {'params':>11}  description")
    for e in entries:
        params = count_parameters(create_model(e.name))
        print(f"{e.name:<{width}}  {e.family:<11}  {params:>11,}  {e.description}", flush=True)
    return 0
