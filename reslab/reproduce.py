"""``reslab reproduce`` / ``reslab study``: run studies, keep their results, render the report.

Resumable at two levels: training runs come from the run store (a finished run is never
trained again, an interrupted one resumes), and a study whose result is already in
``DIR/results.json`` for the same scale, seeds and code (git commit of a clean checkout)
is not analysed again. The report is re-rendered after every study, so an interrupted
reproduction still leaves a report of what finished.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from .errors import ConfigError
from .report import render_report
from .report.render import write_atomic
from .runs.env import collect_env
from .runs.executors import Executor
from .runs.store import RunStore
from .studies.base import SCALES, StudyContext
from .studies.catalogue import get_study, study_ids
from .studies.results import StudyResult

RESULTS = "results.json"


def _code_key(env: dict) -> str:
    """The commit of a clean checkout; empty when the code cannot be pinned (dirty tree, no git)."""
    commit, dirty = env.get("git_commit") or "", env.get("git_dirty")
    return commit if dirty is False and len(commit) == 40 else ""


def _previous(out_dir: Path, scale: str) -> dict[str, dict]:
    """Study results already in ``out_dir/results.json`` at this scale (others are replaced)."""
    try:
        data = json.loads((out_dir / RESULTS).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("scale") != scale:
        return {}
    return {s["id"]: s for s in data.get("studies", []) if isinstance(s, dict) and "id" in s}


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
) -> Path:
    """Run the catalogue (or ``only`` some studies) at ``scale``; returns the report's path."""
    from .runs.executors import LocalExecutor

    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    ids = list(only) if only else study_ids()
    studies = [get_study(i) for i in ids]  # unknown ids fail before anything runs
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    store = store or RunStore()
    executor = executor or LocalExecutor(log=log)
    env = collect_env()
    code = _code_key(env)
    previous = _previous(out_dir, scale)
    kept = {k: v for k, v in previous.items() if k not in ids}  # other studies' results stay in the report
    started = datetime.now(UTC).isoformat(timespec="seconds")
    start = time.perf_counter()
    done: dict[str, dict] = {}

    def save() -> None:
        order = study_ids()
        merged = {**kept, **done}
        studies_out = [merged[i] for i in order if i in merged]
        elapsed = round(time.perf_counter() - start, 1)
        payload = {"env": env, "scale": scale, "started": started, "elapsed_s": elapsed, "studies": studies_out}
        write_atomic(out_dir / RESULTS, json.dumps(payload, indent=1, allow_nan=True).encode())
        render_report(out_dir)

    for n, study in enumerate(studies, 1):
        n_seeds = study.seeds_for(scale, seeds)
        old = previous.get(study.id)
        if not force and old and old.get("seeds") == n_seeds and code and old.get("code") == code:
            log(f"[{n}/{len(studies)}] {study.id}: kept from the previous run ({old.get('verdict')})")
            done[study.id] = old
            continue
        log(f"[{n}/{len(studies)}] {study.id} ({scale}, {n_seeds} seed{'s' * (n_seeds != 1)}): {study.title}")
        ctx = StudyContext(scale, n_seeds, store, executor, out_dir, data_dir, log)
        result: StudyResult = study.run(ctx)
        result.code = code
        done[study.id] = result.to_dict()
        log(f"[{n}/{len(studies)}] {study.id}: {result.verdict} ({result.elapsed_s:.0f}s)")
        save()
    if not studies or all(done.get(s.id) is previous.get(s.id) for s in studies):
        save()  # nothing new was computed: still write the merged results and the report
    return out_dir / "report.html"
