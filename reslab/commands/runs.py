"""``reslab runs ls [FILTER]``, ``runs show RUN``, ``runs rm RUN``, ``runs mv RUN DIR``, ``runs reindex``."""

from __future__ import annotations

import argparse
import json
import sys


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
    rm = rsub.add_parser(
        "rm", help="delete runs (directory and index entry; a run kept outside the store is only forgotten)"
    )
    rm.add_argument("run", nargs="+", help="run id, unique prefix, or run directory")
    mv = rsub.add_parser("mv", help="move a run's directory into DIR (outside the store it is kept as external)")
    mv.add_argument("run", help="run id, unique prefix, or run directory")
    mv.add_argument("dir", help="folder to move the run directory into (created if missing)")
    reindex = rsub.add_parser("reindex", help="rebuild the run index from the run directories (a damaged one too)")
    for sp, fn in ((ls, run_ls), (show, run_show), (rm, run_rm), (mv, run_mv), (reindex, run_reindex)):
        sp.add_argument("--store", help="run store folder (default $RESLAB_HOME, else ~/.reslab)")
        sp.set_defaults(func=fn)


def open_store(root):
    """The store at ``root``, saying so on stderr when its missing index was rebuilt."""
    from ..runs import RunStore

    store = RunStore(root)
    if store.rebuilt:
        print(f"reslab: the run index was missing; rebuilt it from {store.rebuilt} run directories", file=sys.stderr)
    return store


def _err(result, key):
    if not result or result.get(key) is None:
        return "-"
    v = result[key]
    return f"{v:.4g}" if result.get("error_metric") == "mse" else f"{100 * v:.2f}%"


def run_ls(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    records = store.find(" ".join(args.filter))
    if not records:
        print(f"no runs{' match ' + repr(' '.join(args.filter)) if args.filter else ''} in {store.root}")
        return 0
    w = max(len(r.id) for r in records)
    print(f"{'run':<{w}}  {'status':<11} {'steps':>7} {'train':>8} {'val':>8} {'test':>8} {'time':>8}")
    for r in records:
        res = r.result or {}
        steps = res.get("steps", "-")
        secs = res.get("wall_time_s")
        print(
            f"{r.id:<{w}}  {r.status:<11} {steps:>7} {_err(res, 'train_error'):>8} {_err(res, 'val_error'):>8} "
            f"{_err(res, 'test_error'):>8} {(f'{secs:.1f}s' if secs is not None else '-'):>8}"
            + (f"  (kept outside the store: {r.dir})" if r.external else "")
        )
    print(f"{len(records)} run(s) in {store.root}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    import yaml

    r = open_store(args.store).get(args.run)
    where = "  (outside the store: `runs rm` forgets it, never deletes it)" if r.external else ""
    print(f"run:     {r.id}\nhash:    {r.hash}\nstatus:  {r.status}{f' ({r.problem})' if r.problem else ''}")
    print(f"dir:     {r.dir}{where}\ndata:    {_data_identity(r)}")
    print("config:")
    print("  " + yaml.safe_dump(r.config.to_dict(), sort_keys=False).rstrip().replace("\n", "\n  "))
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


def _data_identity(r) -> str:
    """What the run trained on, as its result (else its config.yaml) recorded it."""
    import yaml

    from ..data import implied_identity

    identity = ((r.result or {}).get("data") or {}).get("identity")
    if identity is None:
        try:
            identity = (yaml.safe_load((r.dir / "config.yaml").read_text()) or {}).get("data_identity")
        except (OSError, yaml.YAMLError, AttributeError):
            identity = None
    if identity is None:
        return "not recorded (stored before reslab recorded data identities)"
    if not identity.startswith("sha256:"):
        return f"{identity} (from the config's data options and data_seed)"
    return identity + ("  (the official files)" if identity == implied_identity(r.config.data) else "")


def run_rm(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    records = [store.get(ref) for ref in args.run]  # resolve all before deleting any
    for r in records:
        store.rm(r.hash)
        if r.external:
            print(f"forgot {r.id}; its directory {r.dir} is outside the store and stays (delete it yourself)")
        else:
            print(f"removed {r.id} ({r.dir})")
    return 0


def run_mv(args: argparse.Namespace) -> int:
    record = open_store(args.store).move(args.run, args.dir)
    print(f"moved {record.id} to {record.dir}{' (kept outside the store)' if record.external else ''}")
    return 0


def run_reindex(args: argparse.Namespace) -> int:
    from ..runs import RunStore

    print(RunStore.reindex(args.store)[1])
    return 0
