"""``reslab reproduce`` / ``reslab study``: run studies, keep their results, render the report.

Resumable at two levels: training runs come from the run store (a finished run is never
trained again, an interrupted one resumes), and a study whose result is already in
``DIR/results.json`` for the same scale, seeds, precision and code (git commit of a clean
checkout) is not analysed again. The report is re-rendered after every study, so an interrupted
reproduction still leaves a report of what finished.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from .data import Dataset, load_dataset
from .environment import collect_env
from .errors import ConfigError, DataError, ReslabError, file_errors
from .report import render_report
from .report.render import write_public
from .runs.executors import Executor, LocalExecutor
from .runs.store import RunStore
from .studies.base import SCALES, RunOverrides, Study, StudyContext
from .studies.catalogue import all_studies, get_study, study_ids
from .studies.results import StudyResult
from .train import TrainConfig
from .train.setup import check_buildable

RESULTS = "results.json"


def _code_key(env: dict) -> str:
    """The commit of a clean checkout; empty when the code cannot be pinned (dirty tree, no git)."""
    commit, dirty = env.get("git_commit") or "", env.get("git_dirty")
    return commit if dirty is False and len(commit) == 40 else ""


def _previous(out_dir: Path, scale: str, seed_set: int, precision: str | None) -> tuple[dict[str, dict], list[dict]]:
    """Study results already in ``out_dir/results.json`` at this scale, seed set and precision
    (a report of another one is replaced whole), and the reproductions that computed them."""
    try:
        data = json.loads((out_dir / RESULTS).read_text())
    except (OSError, ValueError):
        return {}, []
    if not isinstance(data, dict):
        return {}, []
    if (data.get("scale"), data.get("seed_set", 0), data.get("precision")) != (scale, seed_set, precision):
        return {}, []
    studies = {s["id"]: s for s in data.get("studies", []) if isinstance(s, dict) and "id" in s}
    return studies, [x for x in data.get("sessions", []) if isinstance(x, dict)]


def reproduce(
    out_dir: str | Path,
    scale: str = "quick",
    only: Sequence[str] | None = None,
    seeds: int | None = None,
    executor: Executor | None = None,
    store: RunStore | None = None,
    data_dir: str | None = None,
    force: bool = False,
    log: Callable[[str], None] = print,
    seed_set: int = 0,
    precision: str | None = None,
) -> Path:
    """Run the catalogue (or ``only`` some studies) at ``scale``; returns the report's path.

    ``seeds`` (default: each study's count at the scale) seeds of seed set ``seed_set``;
    ``precision`` forces every training run's precision (None: each recipe's own).
    """
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    ids = list(only) if only else study_ids()
    studies = [get_study(i) for i in ids]  # unknown ids fail before anything runs
    out_dir = Path(out_dir)
    with file_errors("the report needs a folder it can write; pass another --out"):
        out_dir.mkdir(parents=True, exist_ok=True)
    store = store or RunStore()
    executor = executor or LocalExecutor(log=log)
    env = collect_env()
    code = _code_key(env)
    previous, sessions = _previous(out_dir, scale, seed_set, precision)
    overrides = RunOverrides(data_dir, precision)
    kept = {k: v for k, v in previous.items() if k not in ids}  # other studies' results stay in the report
    results = _ResultsFile(out_dir, scale, env, kept, {"seed_set": seed_set, "precision": precision}, sessions)
    seed_list = {st.id: st.seeds_for(scale, seeds, seed_set) for st in all_studies()}
    todo = [st for st in studies if force or not _up_to_date(previous.get(st.id), code, len(seed_list[st.id]))]
    queue, order = _start_training(todo, scale, seed_list, overrides, store, executor)
    results.data = {c.data: c.data_identity() for c in sorted(queue.values(), key=lambda c: c.data)}
    try:
        for st in studies:
            if st not in todo:
                log(f"{st.id}: kept from the previous run ({previous[st.id].get('verdict')})")
                results.done[st.id] = previous[st.id]
        for n, study in enumerate(order, 1):
            n_seeds = len(seed_list[study.id])
            trained = sum(1 for c in queue.values() if (r := store.lookup(c)) is not None and r.done)
            log(
                f"[{n}/{len(order)}] {study.id} ({scale}, {n_seeds} seed{'s' * (n_seeds != 1)}): {study.title} "
                f"[{results.elapsed():.0f}s elapsed; {trained}/{len(queue)} training runs done]"
            )
            ctx = StudyContext(scale, seed_list[study.id], store, executor, out_dir, overrides, log)
            result: StudyResult = study.run(ctx)
            result.code = code
            results.done[study.id] = result.to_dict()
            results.computed.append(study.id)
            log(f"[{n}/{len(order)}] {study.id}: {result.verdict} ({result.elapsed_s:.0f}s)")
            results.save()
    finally:
        executor.close()
    if not order:
        results.save()  # nothing new was computed: still write the merged results and the report
    return out_dir / "report.html"


def _up_to_date(previous: dict | None, code: str, seeds: int) -> bool:
    """A study's previous result stands: computed by the same code (a clean checkout) with as many seeds."""
    return bool(previous and code and previous.get("code") == code and previous.get("seeds") == seeds)


def _start_training(
    todo: Sequence[Study],
    scale: str,
    seeds: dict[str, list[int]],
    overrides: RunOverrides,
    store: RunStore,
    executor: Executor,
) -> tuple[dict[str, TrainConfig], list[Study]]:
    """Start every training run the studies need, in catalogue order; the studies in the order to analyse them.

    Each analysis then waits only for its own runs, and those at initialization go first.
    Returns the runs by hash, and the studies ordered by the last of their runs to start.
    """

    def runs_of(st: Study) -> list[TrainConfig]:
        return [overrides.apply(c) for c in st.runs_for(scale, seeds[st.id])]

    datasets: dict[tuple, Dataset] = {}
    for st in todo:
        _check_buildable(st, scale, runs_of(st), datasets)
    queue = {c.hash(): c for st in todo for c in runs_of(st)}
    executor.prefetch(store, list(queue.values()))
    position = {h: i for i, h in enumerate(queue)}
    order = sorted(todo, key=lambda st: max((position[c.hash()] for c in runs_of(st)), default=-1))
    return queue, order


def _check_buildable(study: Study, scale: str, configs: Sequence[TrainConfig], datasets: dict[tuple, Dataset]) -> None:
    """Every model a study trains is built on the meta device first: a study whose settings
    cannot train fails before any run starts, with one line naming it."""
    for c in {
        (c.model, repr(c.model_options), repr(c.recipe), c.data, repr(c.data_options)): c for c in configs
    }.values():
        key = (c.data, c.data_dir, repr(sorted(c.data_options.items())))
        try:
            if key not in datasets:
                datasets[key] = load_dataset(c.data, c.data_dir, **c.data_options)
            check_buildable(c, datasets[key])
        except DataError:
            raise
        except ReslabError as exc:
            raise ConfigError(f"study {study.id} cannot train its {scale} runs ({c.model}): {exc}") from None


class _ResultsFile:
    """results.json of one reproduction, written with the report after every study.

    ``kept`` holds other studies' results from an earlier reproduction, ``done`` this one's.
    ``sessions`` lists each reproduction that computed studies still in the report: when it
    started, its wall time, which studies, and the CPU features it ran with (a report
    completed by ``--only`` reruns keeps the time of the run that computed the rest).
    """

    def __init__(
        self, out_dir: Path, scale: str, env: dict, kept: dict[str, dict], variant: dict, sessions: list[dict]
    ):
        self.out_dir, self.scale, self.env, self.kept, self.variant = out_dir, scale, env, kept, variant
        self.earlier = sessions
        self.done: dict[str, dict] = {}
        self.computed: list[str] = []  # studies this reproduction analysed (not kept from the last one)
        self.data: dict[str, str] = {}  # dataset -> identity of the files the runs read
        self.started = datetime.now(UTC).isoformat(timespec="seconds")
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def sessions(self) -> list[dict]:
        out = []
        for session in self.earlier:
            left = [i for i in session.get("studies", []) if i not in self.computed]
            if left:
                out.append({**session, "studies": left})
        if self.computed:
            cpu = {k: self.env.get(k) for k in ("cpu", "cpu_bf16", "aten_cpu_capability", "onednn_max_cpu_isa")}
            now = {"started": self.started, "elapsed_s": round(self.elapsed(), 1), "studies": list(self.computed)}
            out.append({**now, **cpu})
        return out

    def save(self) -> None:
        merged = {**self.kept, **self.done}
        payload = {
            "env": self.env,
            "scale": self.scale,
            **self.variant,  # seed_set, precision: which seed set and precision this report is of
            "started": self.started,
            "elapsed_s": round(self.elapsed(), 1),
            "sessions": self.sessions(),
            "data": self.data,
            "studies": [merged[i] for i in study_ids() if i in merged],
        }
        write_public(self.out_dir / RESULTS, json.dumps(payload, indent=1, allow_nan=True).encode())
        render_report(self.out_dir)
