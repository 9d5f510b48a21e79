"""``reslab sweep FILE.yaml``: a grid of runs declared in a file, trained through the store, summarised.

The whole grid is read, built and checked first (a mistake is one line naming the file's
line and key), then trained by the executor (finished runs come from the store, an
interrupted sweep continues), then summarised per cell: a table printed, and in ``--out``
``summary.csv``, ``sweep.json``, ``figures/`` and ``summary.html``, the last line printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError
from .executor_options import add_executor_options, make_from_args, store_root


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="train a grid of runs declared in a YAML file; print and write the summary per cell",
        description="Train every combination of the axes in FILE (see the README's sweep section for the format) "
        "through the run store, then summarise each cell (mean ± std over seeds per metric) as a table, "
        "summary.csv and summary.html with one figure per axis. The last line printed is the page.",
    )
    p.add_argument("file", help="the sweep file (YAML)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per cell: 0..N-1 (default: the file's, else 1)")
    p.add_argument("--out", default=None, help="folder for the summary (default: reslab-sweep/<name>)")
    p.add_argument("--data-dir", default=None, help="where to look for datasets first")
    p.add_argument("--plan", action="store_true", help="print the planned runs and stop (nothing trains)")
    add_executor_options(p)
    p.set_defaults(func=run, computes=True)


def run(args: argparse.Namespace) -> int:
    from ..data.download import check_data_dir  # on use, so `reslab --help` does not load these layers
    from ..runs.store import RunStore
    from ..sweeps import load_sweep

    check_data_dir(args.data_dir)
    sweep = load_sweep(args.file, seeds=args.seeds, data_dir=args.data_dir)
    out = Path(args.out) if args.out else Path("reslab-sweep") / sweep.name
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; name a folder for the summary (it is created if missing)")
    store = RunStore(store_root(args))
    _print_plan(sweep, store)
    if args.plan:
        return 0
    executor = make_from_args(args, sweep.resources)
    try:
        records = executor.run_all(store, sweep.configs, label=sweep.name)
    finally:
        executor.close()
    print(_write_summary(sweep, records, out))
    return 0


def _print_plan(sweep, store) -> None:
    configs = sweep.configs
    stored = sum(1 for c in configs if (r := store.lookup(c)) is not None and r.done)
    axes = " × ".join(f"{a.name} ({len(a.labels)})" for a in sweep.axes) or "no axis"
    print(
        f"sweep {sweep.name}: {axes} = {len(sweep.cells)} cells × {len(sweep.seeds)} seed(s) = {len(configs)} runs, "
        f"{stored} already in {store.root}"
    )


def _write_summary(sweep, records, out: Path) -> Path:
    """Print the table; write summary.csv, sweep.json and the page into ``out``; return the page."""
    from ..errors import file_errors
    from ..files import write_json
    from ..report.sweep_page import CSV, DATA, write_sweep_page
    from ..sweeps.summary import percent_metrics, summarize_sweep, table, to_json, write_csv

    cells = summarize_sweep(sweep, records)
    percent = percent_metrics(sweep, records)
    print("\n".join(table(sweep, cells, percent)))
    with file_errors("the summary needs a folder it can write; pass another --out"):
        out.mkdir(parents=True, exist_ok=True)
        write_csv(out / CSV, sweep, cells)
        write_json(out / DATA, to_json(sweep, cells, percent))
        page = write_sweep_page(out)
    print(f"summary: {out / CSV}")
    return page
