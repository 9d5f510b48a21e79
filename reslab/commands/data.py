"""``reslab data ls`` and ``reslab data fetch NAME``: where each dataset is, and getting it."""

from __future__ import annotations

import argparse

from ..data import DATASETS, cifar, dataset_status, fashion
from ..errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="list datasets and where they were found; fetch one")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", parser_class=type(p))
    ls = dsub.add_parser("ls", help="each dataset, where it was found, how to get it if missing")
    ls.add_argument("--data-dir", help="folder searched first")
    ls.set_defaults(func=run_ls)
    fetch = dsub.add_parser(
        "fetch",
        help="get a dataset: fashion-mnist (Debian package as root, else download), cifar10, cifar100",
    )
    fetch.add_argument("name")
    fetch.add_argument("--data-dir", help="where to put a download (default $RESLAB_DATA, else ~/.cache/reslab)")
    fetch.add_argument("--url", help="base URL to download from instead of the official location")
    fetch.add_argument("--no-apt", action="store_true", help="download even when apt could install the package")
    fetch.set_defaults(func=run_fetch)


def run_ls(args: argparse.Namespace) -> int:
    rows = dataset_status(args.data_dir)
    w_name = max(len(r["name"]) for r in rows)
    w_kind = max(len(r["kind"]) for r in rows)
    print(f"{'dataset':<{w_name}}  {'kind':<{w_kind}}  where / how to get it")
    for r in rows:
        where = r["where"] + (f"  ({r['how']})" if r["how"] else "")
        print(f"{r['name']:<{w_name}}  {r['kind']:<{w_kind}}  {where}")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    if args.name == "fashion-mnist":
        folder = fashion.fetch(args.data_dir, base_url=args.url, use_apt=False if args.no_apt else None)
        fashion.load_raw(args.data_dir if folder != fashion.DEBIAN_DIR else None, verify=True)
    elif args.name in cifar.FORMATS:
        folder = cifar.fetch(args.name, args.data_dir, base_url=args.url)
    elif args.name in DATASETS:
        print(f"{args.name} is generated from a seed; nothing to fetch")
        return 0
    else:
        raise ConfigError(f"unknown dataset {args.name!r}; choose one of {', '.join(DATASETS)}")
    print(f"{args.name}: ready at {folder}")
    return 0
