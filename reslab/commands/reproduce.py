"""``reslab reproduce`` (the whole catalogue), ``reslab study ID`` (one study) and ``reslab stability``
(the catalogue in each precision and seed set, and whether every verdict stays the same)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError
from .executor_options import add_executor_options, make_from_args, store_root


def _common(p: argparse.ArgumentParser, default_out: str) -> None:
    p.add_argument("--scale", default="quick", choices=("smoke", "quick", "full"), help="default: %(default)s")
    p.add_argument("--seeds", type=int, default=None, help="seeds per trained configuration (default: the scale's)")
    p.add_argument(
        "--seed-set",
        type=int,
        default=0,
        help="which disjoint set of seeds: set K of N seeds is K*N ... K*N+N-1 (default: %(default)s)",
    )
    p.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default=None,
        help="force this training precision on every run (default: each recipe's own, usually auto)",
    )
    p.add_argument("--out", default=default_out, help="report directory (default: %(default)s)")
    p.add_argument("--data-dir", default=None, help="where to look for datasets first")
    p.add_argument("--force", action="store_true", help="analyse again even if results.json has the study")
    add_executor_options(p)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="run the catalogue of studies and write the report")
    p.add_argument("--only", nargs="+", metavar="ID", help="run only these studies")
    _common(p, "reslab-report")
    p.set_defaults(func=run_reproduce, computes=True)
    s = sub.add_parser("study", help="run one study (`reslab study --list` lists them)")
    s.add_argument("id", nargs="?", help="study id, e.g. degradation")
    s.add_argument("--list", action="store_true", help="list the studies and exit")
    s.add_argument(
        "--markdown",
        action="store_true",
        help="with --list: every study's claim, rule, anchors and scales (docs/claims.md)",
    )
    _common(s, "reslab-report/<id>")
    s.set_defaults(func=run_study, computes=True)
    t = sub.add_parser("stability", help="reproduce in each precision and seed set; is every verdict the same?")
    t.add_argument("--only", nargs="+", metavar="ID", help="check only these studies")
    t.add_argument("--scale", default="quick", choices=("smoke", "quick", "full"), help="default: %(default)s")
    t.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=("fp32", "bf16"))
    t.add_argument("--seed-sets", nargs="+", type=int, default=[0, 1], metavar="K", help="default: 0 1")
    t.add_argument(
        "--out", default="reslab-stability", help="folder of the reports and stability.md (default: %(default)s)"
    )
    t.add_argument("--data-dir", default=None, help="where to look for datasets first")
    add_executor_options(t)
    t.set_defaults(func=run_stability, computes=True)


def _go(args: argparse.Namespace, only: list[str] | None, out: str) -> int:
    from ..data.download import check_data_dir
    from ..errors import ConfigError
    from ..reproduce import reproduce  # on use, so `reslab --help` does not load these layers
    from ..runs.store import RunStore

    if args.seeds is not None and args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
    if not 0 <= args.seed_set < 2**20:
        raise ConfigError(f"--seed-set must be between 0 and 2**20, got {args.seed_set}")
    check_data_dir(args.data_dir)
    if Path(out).exists() and not Path(out).is_dir():
        raise ConfigError(f"--out {out} is a file; name a folder for the report (it is created if missing)")
    store = RunStore(store_root(args))
    executor = make_from_args(args)
    report = reproduce(
        Path(out),
        scale=args.scale,
        only=only,
        seeds=args.seeds,
        executor=executor,
        store=store,
        data_dir=args.data_dir,
        force=args.force,
        seed_set=args.seed_set,
        precision=args.precision,
    )
    print(report)
    return 0


def run_reproduce(args: argparse.Namespace) -> int:
    return _go(args, args.only, args.out)


def run_study(args: argparse.Namespace) -> int:
    from ..studies.catalogue import all_studies, get_study  # on use, so `reslab --help` does not load this layer
    from ..studies.claims_doc import claims_markdown

    if args.markdown and not args.list:
        raise ConfigError("--markdown goes with --list (reslab study --list --markdown > docs/claims.md)")
    if args.list:
        if args.markdown:
            print(claims_markdown(), end="")
            return 0
        for study in all_studies():
            print(f"{study.id:<20} {study.title}")
        return 0
    if not args.id:
        raise ConfigError("name a study (see `reslab study --list`)")
    get_study(args.id)
    out = args.out.replace("<id>", args.id)
    return _go(args, [args.id], out)


def run_stability(args: argparse.Namespace) -> int:
    from ..data.download import check_data_dir
    from ..runs.store import RunStore
    from ..stability import stability  # on use, so `reslab --help` does not load these layers

    if any(not 0 <= k < 2**20 for k in args.seed_sets):
        raise ConfigError(f"--seed-sets must lie between 0 and 2**20, got {args.seed_sets}")
    check_data_dir(args.data_dir)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ConfigError(f"--out {args.out} is a file; name a folder (it is created if missing)")
    page = stability(
        args.out,
        lambda: make_from_args(args),
        RunStore(store_root(args)),
        scale=args.scale,
        only=args.only,
        precisions=args.precisions,
        seed_sets=args.seed_sets,
        data_dir=args.data_dir,
    )
    print(page)
    return 0
