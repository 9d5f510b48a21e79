"""``reslab reproduce`` (the whole catalogue) and ``reslab study ID`` (one study)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..errors import ConfigError

RUNS_PER_GPU = 4  # not measured: no GPU was available where this was written


def _common(p: argparse.ArgumentParser, default_out: str) -> None:
    p.add_argument("--scale", default="quick", choices=("smoke", "quick", "full"), help="default: %(default)s")
    p.add_argument("--seeds", type=int, default=None, help="seeds per trained configuration (default: the scale's)")
    p.add_argument("--out", default=default_out, help="report directory (default: %(default)s)")
    p.add_argument("--store", default=None, help="run store directory (default: $RESLAB_HOME or ~/.reslab)")
    p.add_argument("--data-dir", default=None, help="where to look for datasets first")
    p.add_argument("--executor", default="local", choices=("local", "ray"), help="default: %(default)s")
    p.add_argument("--workers", type=int, default=None,
                   help=f"local worker processes (default: 1 per CPU core up to 8, {RUNS_PER_GPU} per GPU)")  # fmt: skip
    p.add_argument("--ray-address", default=None, help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--force", action="store_true", help="analyse again even if results.json has the study")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="run the catalogue of studies and write the report")
    p.add_argument("--only", nargs="+", metavar="ID", help="run only these studies")
    _common(p, "reslab-report")
    p.set_defaults(func=run_reproduce, computes=True)
    s = sub.add_parser("study", help="run one study (`reslab study --list` lists them)")
    s.add_argument("id", nargs="?", help="study id, e.g. degradation")
    s.add_argument("--list", action="store_true", help="list the studies and exit")
    _common(s, "reslab-report/<id>")
    s.set_defaults(func=run_study, computes=True)


def _default_workers() -> int:
    """``RUNS_PER_GPU`` workers per GPU (the catalogue's small nets leave a large GPU idle: several
    runs share it); on a CPU one single-threaded worker per core, up to 8 (small nets are
    limited by Python overhead, so processes beat threads)."""
    from ..runs.executors import cores  # on use, so `reslab --help` does not load this layer

    if torch.cuda.is_available():
        return RUNS_PER_GPU * torch.cuda.device_count()
    return max(1, min(8, cores()))


def _go(args: argparse.Namespace, only: list[str] | None, out: str) -> int:
    from ..data.download import check_data_dir
    from ..errors import ConfigError
    from ..reproduce import reproduce  # on use, so `reslab --help` does not load these layers
    from ..runs.executors import make_executor
    from ..runs.store import RunStore

    if args.seeds is not None and args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
    check_data_dir(args.data_dir)
    if Path(out).exists() and not Path(out).is_dir():
        raise ConfigError(f"--out {out} is a file; name a folder for the report (it is created if missing)")
    workers = args.workers if args.workers is not None else _default_workers()
    executor = make_executor(args.executor, workers=workers, address=args.ray_address)
    report = reproduce(
        Path(out),
        scale=args.scale,
        only=only,
        seeds=args.seeds,
        executor=executor,
        store=RunStore(args.store),
        data_dir=args.data_dir,
        force=args.force,
    )
    print(report)
    return 0


def run_reproduce(args: argparse.Namespace) -> int:
    return _go(args, args.only, args.out)


def run_study(args: argparse.Namespace) -> int:
    from ..studies.catalogue import all_studies, get_study  # on use, so `reslab --help` does not load this layer

    if args.list:
        for study in all_studies():
            print(f"{study.id:<20} {study.title}")
        return 0
    if not args.id:
        raise ConfigError("name a study (see `reslab study --list`)")
    get_study(args.id)
    out = args.out.replace("<id>", args.id)
    return _go(args, [args.id], out)
