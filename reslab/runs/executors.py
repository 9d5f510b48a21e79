"""Executors: how a batch of training runs gets done. Every executor goes through the run
store, so a finished run is never trained twice and an interrupted one resumes.

- ``LocalExecutor(workers=1)``: in this process, one run after another.
- ``LocalExecutor(workers=N)``: N worker processes on this machine, each with its share of
  the CPU threads (small nets are limited by Python overhead, so two single-threaded
  processes beat one two-threaded process on 2 cores), or one process per GPU. Runs can
  be started ahead of time (``prefetch``) so the caller analyses while workers train.
- ``RayExecutor`` (``cluster.py``): the same runs as Ray tasks on a cluster (or a local Ray
  instance), with the driver owning the store or with a shared one.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Protocol

import torch

from ..errors import ConfigError, ReslabError
from ..train import TrainConfig
from .store import RunRecord, RunStore

Log = Callable[[str], None]


class Executor(Protocol):
    def run_all(self, store: RunStore, configs: Sequence[TrainConfig], label: str = "") -> list[RunRecord]: ...

    def prefetch(self, store: RunStore, configs: Sequence[TrainConfig]) -> None: ...

    def close(self) -> None: ...


class Progress:
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
            timing = f"{result.get('wall_time_s', 0):.0f}s; {self.label or 'batch'} done in ~{eta:.0f}s"
        self.log(f"  [{self.label}] run {self.done}/{self.total} {record.id}: {what} ({timing})")


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def done_in_index(store: RunStore, config: TrainConfig) -> RunRecord | None:
    """The run of ``config`` if the index holds it as ended for good, with its result (no file is read)."""
    found = store.lookup(config)
    return found if found is not None and found.done and found.result is not None else None


class LocalExecutor:
    """Runs on this machine: in-process (``workers=1``) or in a pool of worker processes.

    ``devices``: one device per worker (e.g. ``["cuda:0", "cuda:1"]``); each worker then
    sees only its own GPU. On a CPU each worker gets ``cores // workers`` threads, and while
    they train, this process's own torch work (the analyses) gets the cores they leave; once
    no run is left, all of them again.
    """

    def __init__(self, workers: int = 1, log: Log = print, progress: bool = False, devices: Sequence[str] = ()):
        if workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        if devices and len(devices) != workers:
            raise ConfigError(f"got {len(devices)} devices for {workers} workers")
        self.workers, self.log, self.progress, self.devices = workers, log, progress, list(devices)
        self._pool: ProcessPoolExecutor | None = None
        self._futures: dict[str, Future] = {}
        self._own_threads: int | None = None  # this process's threads before the workers took their share

    def _submit(self, store: RunStore, config: TrainConfig) -> Future:
        h = config.hash()
        if h not in self._futures:
            if self._pool is None:
                spawn = mp.get_context("spawn")  # forking a process that already runs torch threads can deadlock
                queue = spawn.Queue()
                for d in self.devices:
                    queue.put(d)
                threads = 1 if self.devices else max(1, cores() // self.workers)
                self._pool = ProcessPoolExecutor(self.workers, spawn, _init_worker, (threads, queue))
            self._futures[h] = self._pool.submit(_train_one, str(store.root), config)
            self._share_cpu()
        return self._futures[h]

    def _share_cpu(self) -> None:
        if self._own_threads is None and not self.devices and not torch.cuda.is_available():
            self._own_threads = torch.get_num_threads()
            torch.set_num_threads(max(1, cores() - self.workers))

    def _release_cpu_if_idle(self) -> None:
        if self._own_threads is not None and all(f.done() for f in self._futures.values()):
            torch.set_num_threads(self._own_threads)
            self._own_threads = None

    def prefetch(self, store: RunStore, configs: Sequence[TrainConfig]) -> None:
        """Start training ``configs`` in the background (with worker processes only)."""
        if self.workers > 1:
            for config in configs:
                if done_in_index(store, config) is None:
                    self._submit(store, config)

    def run_all(self, store: RunStore, configs: Sequence[TrainConfig], label: str = "") -> list[RunRecord]:
        configs = list(configs)
        progress = Progress(len(configs), label, self.log)
        records: dict[str, RunRecord] = {}
        pending: dict[Future, TrainConfig] = {}
        for config in configs:
            h = config.hash()
            if h in records or any(c.hash() == h for c in pending.values()):
                continue
            found = done_in_index(store, config)
            if found is not None:
                records[h] = found
                progress.finished(found, cached=True)
            elif self.workers == 1:
                records[h] = store.run(config, progress=self.progress)
                progress.finished(records[h], cached=False)
            else:
                pending[self._submit(store, config)] = config
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                config = pending.pop(future)
                future.result()  # re-raises a worker's error here
                record = done_in_index(store, config)
                if record is None:
                    raise ReslabError(f"run {config.run_id()} ended in a worker but has no result in the store")
                records[config.hash()] = record
                progress.finished(record, cached=False)
        self._release_cpu_if_idle()
        return [records[c.hash()] for c in configs]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool, self._futures = None, {}
        self._release_cpu_if_idle()


def _init_worker(threads: int, devices) -> None:
    try:
        device = devices.get_nowait()
    except Exception:  # no device list: a CPU worker
        device = None
    if device and device.startswith("cuda:"):
        os.environ["CUDA_VISIBLE_DEVICES"] = device.split(":", 1)[1]  # before torch initializes CUDA
    torch.set_num_threads(threads)


def _train_one(root: str, config: TrainConfig) -> str:
    return RunStore(Path(root)).run(config).hash


def make_executor(name: str, workers: int = 1, log: Log = print, **ray_options) -> Executor:
    """``local`` (``workers`` processes; one per GPU where there are GPUs) or ``ray`` (``ray_options``
    go to ``RayExecutor``)."""
    if name == "local":
        devices = []
        if workers > 1 and torch.cuda.is_available():
            devices = [f"cuda:{i % torch.cuda.device_count()}" for i in range(workers)]
        return LocalExecutor(workers, log=log, devices=devices)
    if name == "ray":
        from .cluster import RayExecutor  # cluster.py imports this module

        return RayExecutor(log=log, **ray_options)
    raise ConfigError(f"unknown executor {name!r}; choose local or ray")
