"""``reslab runs ls [FILTER]``, ``reslab runs show RUN``, ``reslab runs rm RUN``."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="list, show and remove stored training runs")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    rsub = p.add_subparsers(dest="runs_command", metavar="SUBCOMMAND", parser_class=type(p))
    ls = rsub.add_parser("ls", help="runs in the store, optionally filtered")
    ls.add_argument(
        "filter", nargs="*", help="terms: KEY=GLOB on id, hash, model, data, seed, status, dir; or part of the id"
    )
    show = rsub.add_parser("show", help="one run: directory, config, result, environment")
    show.add_argument("run", help="run id, unique prefix of an id or hash, or run directory")
    rm = rsub.add_parser("rm", help="delete runs (directory and index entry)")
    rm.add_argument("run", nargs="+", help="run id, unique prefix, or run directory")
    for sp, fn in ((ls, run_ls), (show, run_show), (rm, run_rm)):
        sp.add_argument("--store", help="run store folder (default $RESLAB_HOME, else ~/.reslab)")
        sp.set_defaults(func=fn)


def _err(result, key):
    if not result or result.get(key) is None:
        return "-"
    v = result[key]
    return f"{v:.4g}" if result.get("error_metric") == "mse" else f"{100 * v:.2f}%"


def run_ls(args: argparse.Namespace) -> int:
    from ..runs import RunStore  # on use, so `reslab --help` does not load this layer

    store = RunStore(args.store)
    records = store.find(" ".join(args.filter))
    if not records:
        print(f"no runs{' match ' + repr(' '.join(args.filter)) if args.filter else ''} in {store.root}")
        return 0
    w = max(len(r.id) for r in records)
    print(f"{'run':<{w}}  {'status':<9} {'steps':>7} {'train':>8} {'val':>8} {'test':>8} {'time':>8}")
    for r in records:
        res = r.result or {}
        steps = res.get("steps", "-")
        secs = res.get("wall_time_s")
        print(
            f"{r.id:<{w}}  {r.status:<9} {steps:>7} {_err(res, 'train_error'):>8} {_err(res, 'val_error'):>8} "
            f"{_err(res, 'test_error'):>8} {(f'{secs:.1f}s' if secs is not None else '-'):>8}"
        )
    print(f"{len(records)} run(s) in {store.root}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from ..runs import RunStore  # on use, so `reslab --help` does not load this layer

    r = RunStore(args.store).get(args.run)
    print(f"run:     {r.id}\nhash:    {r.hash}\nstatus:  {r.status}\ndir:     {r.dir}")
    print("config:")
    print("  " + r.config.to_yaml().rstrip().replace("\n", "\n  "))
    if r.result:
        res = r.result
        keys = (
            "status",
            "steps",
            "total_steps",
            "epochs",
            "diverged_step",
            "train_error",
            "val_error",
            "test_error",
            "train_loss",
            "val_loss",
            "test_loss",
            "wall_time_s",
            "img_per_s",
            "precision",
            "device",
            "params",
        )
        print("result:")
        for k in keys:
            if k in res:
                print(f"  {k}: {res[k]}")
    env = r.dir / "env.json"
    if env.exists():
        e = json.loads(env.read_text())
        dirty = " (dirty)" if e.get("git_dirty") else ""
        print(
            f"env:     python {e.get('python')}, torch {e.get('torch')}, {e.get('cpu')}, gpu {e.get('gpu')}, "
            f"git {str(e.get('git_commit'))[:12]}{dirty}"
        )
    return 0


def run_rm(args: argparse.Namespace) -> int:
    from ..runs import RunStore  # on use, so `reslab --help` does not load this layer

    store = RunStore(args.store)
    records = [store.get(ref) for ref in args.run]  # resolve all before deleting any
    for r in records:
        store.rm(r.hash)
        print(f"removed {r.id} ({r.dir})")
    return 0
