"""Executors: how a batch of training runs gets done. Every executor goes through the run
store, so a finished run is never trained twice and an interrupted one resumes.

- ``LocalExecutor(workers=1)``: in this process, one run after another.
- ``LocalExecutor(workers=N)``: N worker processes on this machine, each with its share of
  the CPU threads (small nets are limited by Python overhead, so two single-threaded
  processes beat one two-threaded process on 2 cores), or one process per GPU.
- ``RayExecutor(address)``: the same runs as Ray tasks on a cluster (or a local Ray
  instance); workers must see the same store directory (a shared file system).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Protocol

from ..errors import ConfigError, ReslabError
from ..train import TrainConfig
from .store import RunRecord, RunStore

Log = Callable[[str], None]


class Executor(Protocol):
    def run_all(self, store: RunStore, configs: Sequence[TrainConfig], label: str = "") -> list[RunRecord]: ...


class _Progress:
    """One plain line per finished run: which study, which run, its result, and an ETA."""

    def __init__(self, total: int, label: str, log: Log):
        self.total, self.label, self.log = total, label, log
        self.done, self.trained, self.start = 0, 0, time.perf_counter()

    def finished(self, record: RunRecord, cached: bool) -> None:
        self.done += 1
        self.trained += not cached
        result = record.result or {}
        err = result.get("train_error")
        what = f"train err {100 * err:.1f}%" if isinstance(err, float) else result.get("status", record.status)
        if cached:
            timing = "from the store"
        else:
            elapsed = time.perf_counter() - self.start
            eta = elapsed / self.trained * (self.total - self.done)
            timing = f"{result.get('wall_time_s', 0):.0f}s, ETA {eta:.0f}s for {self.label or 'this batch'}"
        self.log(f"  [{self.label}] run {self.done}/{self.total} {record.id}: {what} ({timing})")


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class LocalExecutor:
    def __init__(self, workers: int = 1, log: Log = print, progress: bool = False):
        if workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        self.workers, self.log, self.progress = workers, log, progress

    def run_all(self, store: RunStore, configs: Sequence[TrainConfig], label: str = "") -> list[RunRecord]:
        configs = list(configs)
        progress = _Progress(len(configs), label, self.log)
        records: dict[str, RunRecord] = {}
        todo = []
        for config in configs:  # finished runs come straight from the index
            found = store.lookup(config)
            if found is not None and found.done and found.result is not None:
                records[config.hash()] = found
                progress.finished(found, cached=True)
            elif config.hash() not in {c.hash() for c in todo}:
                todo.append(config)
        if self.workers == 1 or len(todo) <= 1:
            for config in todo:
                record = store.run(config, progress=self.progress)
                records[config.hash()] = record
                progress.finished(record, cached=False)
        else:
            self._parallel(store, todo, records, progress)
        return [records[c.hash()] for c in configs]

    def _parallel(self, store: RunStore, todo: list[TrainConfig], records: dict, progress: _Progress) -> None:
        threads = max(1, _cores() // self.workers)
        ctx = mp.get_context("spawn")  # forking a process that already runs torch threads can deadlock
        with ProcessPoolExecutor(min(self.workers, len(todo)), ctx, _init_worker, (threads,)) as pool:
            pending: dict[Future, TrainConfig] = {pool.submit(_train_one, str(store.root), c): c for c in todo}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    config = pending.pop(future)
                    future.result()  # re-raises a worker's error here
                    record = store.lookup(config)
                    if record is None:
                        raise ReslabError(f"run {config.run_id()} finished in a worker but is not in the index")
                    records[config.hash()] = record
                    progress.finished(record, cached=False)


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _train_one(root: str, config: TrainConfig) -> str:
    return RunStore(Path(root)).run(config).hash


class RayExecutor:
    """Runs as Ray tasks. ``address=None`` starts (or joins) a local Ray instance."""

    def __init__(
        self, address: str | None = None, cpus_per_run: float = 1.0, gpus_per_run: float = 0.0, log: Log = print
    ):
        try:
            import ray
        except ImportError:
            raise ConfigError("the ray executor needs Ray: pip install 'reslab[ray]'") from None
        self.ray, self.log = ray, log
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        self.task = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run)(_train_one)

    def run_all(self, store: RunStore, configs: Sequence[TrainConfig], label: str = "") -> list[RunRecord]:
        configs = list(configs)
        progress = _Progress(len(configs), label, self.log)
        submitted: dict[str, TrainConfig] = {}
        refs = []
        for config in configs:
            found = store.lookup(config)
            if found is not None and found.done and found.result is not None:
                progress.finished(found, cached=True)
            elif config.hash() not in submitted:
                submitted[config.hash()] = config
                refs.append(self.task.remote(str(store.root), config))
        while refs:
            ready, refs = self.ray.wait(refs, num_returns=1)
            h = self.ray.get(ready[0])  # re-raises a task's error here
            progress.finished(store.lookup(submitted[h]), cached=False)
        return [store.lookup(c) for c in configs]


def make_executor(name: str, workers: int = 1, address: str | None = None, log: Log = print) -> Executor:
    if name == "local":
        return LocalExecutor(workers, log=log)
    if name == "ray":
        return RayExecutor(address, log=log)
    raise ConfigError(f"unknown executor {name!r}; choose local or ray")
