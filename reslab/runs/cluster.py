"""``RayExecutor``: the runs as Ray tasks on a cluster (or a local Ray instance), through the store.

Two modes:

- *driver-owned store* (the default): a worker trains in a scratch directory of its own and
  sends the run's files back (``remote.train_in_scratch``); only this process, the driver,
  writes the store and its index (``RunStore.receive``). No shared file system is needed.
- *shared store* (``shared_store=True``): every node sees the store at the same path (NFS,
  a cluster file system) and workers train through it, as local worker processes do.

Each run reserves ``RunResources`` (CPUs, GPUs or a fraction of one, memory). A run whose
worker dies (killed, out of memory, its node lost) is sent out again, up to ``retries``
times, from its last checkpoint that reached the driver (shared store: from the last one the
worker wrote), and is stored once: the store keys it by its hash. A run that fails for its
own reasons (a bad config; a bug) is not retried: its error ends the batch. A run that
diverges is a result like any other.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, ReslabError
from ..files import is_finite_number
from ..train import TrainConfig
from .executors import Log, Progress, done_in_index
from .incoming import IncomingRun
from .remote import train_in_scratch
from .store import RunRecord, RunStore

INSTALL = "pip install 'reslab[ray]' (or pip install 'ray>=2.9')"
# Ray's errors for a task whose worker process, node or returned objects were lost: worth a retry
_LOST = ("WorkerCrashedError", "NodeDiedError", "LocalRayletDiedError", "ObjectLostError", "OutOfMemoryError")
_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "kib": 2**10,
    "m": 10**6,
    "mb": 10**6,
    "mib": 2**20,
    "g": 10**9,
    "gb": 10**9,
    "gib": 2**30,
    "t": 10**12,
    "tb": 10**12,
    "tib": 2**40,
}


@dataclass(frozen=True)
class RunResources:
    """What Ray reserves for each run: ``cpus`` (also its torch threads), ``gpus`` (a fraction
    below 1 lets runs share a GPU; None: one per run on a cluster with GPUs, else none) and
    ``memory`` in bytes (None: not reserved)."""

    cpus: float = 1.0
    gpus: float | None = None
    memory: int | None = None

    def __post_init__(self) -> None:
        if not is_finite_number(self.cpus) or not self.cpus > 0:
            raise ConfigError(f"CPUs per run must be a number > 0, got {self.cpus!r}")
        if self.gpus is not None and not (
            is_finite_number(self.gpus) and (0 <= self.gpus <= 1 or self.gpus == int(self.gpus))
        ):
            raise ConfigError(f"GPUs per run must be a fraction up to 1 or a whole number >= 0, got {self.gpus!r}")
        if self.memory is not None and not (is_finite_number(self.memory) and self.memory > 0):
            raise ConfigError(f"memory per run must be > 0 bytes, got {self.memory!r}")

    @property
    def threads(self) -> int:
        return max(1, int(self.cpus))

    def ray_options(self, cluster_gpus: float) -> dict[str, Any]:
        gpus = self.gpus if self.gpus is not None else float(cluster_gpus > 0)
        return {"num_cpus": self.cpus, "num_gpus": gpus, **({"memory": self.memory} if self.memory else {})}


def parse_memory(text: str | int) -> int:
    """Bytes from ``4GB``, ``512MiB``, ``2g`` or a plain number of bytes."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    if m is None or m.group(2).lower() not in _UNITS:
        raise ConfigError(f"memory must be a size like 4GB, 512MiB or a number of bytes, got {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def import_ray():
    try:
        import ray  # optional: only this executor needs it
    except ImportError:
        raise ConfigError(f"--executor ray needs Ray, which is not installed: {INSTALL}") from None
    return ray


def _connect(ray, address: str | None, num_cpus: int | None) -> None:
    if ray.is_initialized():
        return
    local = {"num_cpus": num_cpus} if address is None and num_cpus else {}
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False, **local)
    except ConnectionError as exc:
        raise ConfigError(
            f"cannot reach a Ray cluster at {address}: {exc} (start one with `ray start --head`, see the README)"
        ) from None


def train_in_store(root: str, config: TrainConfig, threads: int) -> Iterator[dict[str, Any]]:
    """Shared-store mode: train through the store every node sees at ``root`` (one message at the end)."""
    torch.set_num_threads(threads)
    RunStore(Path(root)).run(config)
    yield {"done": True}


@dataclass
class _Flight:
    """One run out on the cluster: its config, its stream of messages, and what reached the driver."""

    config: TrainConfig
    stream: Any  # Ray's ObjectRefGenerator
    incoming: IncomingRun | None  # None in shared-store mode
    attempt: int = 1
    step: int | None = None  # of the last checkpoint that reached the driver


class RayExecutor:
    """Runs as Ray tasks. ``address=None`` starts (or joins) a local Ray instance (``num_cpus`` CPUs).

    ``keep``: a folder every worker can write for large checkpoints (driver-owned mode);
    ``checkpoint_every``: steps between checkpoints for runs that set none (0: leave them).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        shared_store: bool = False,
        resources: RunResources | None = None,
        keep: str | None = None,
        retries: int = 3,
        checkpoint_every: int = 0,
        log: Log = print,
        num_cpus: int | None = None,
    ):
        if retries < 0 or checkpoint_every < 0:
            raise ConfigError("retries and checkpoint_every must be >= 0")
        if shared_store and keep:
            raise ConfigError("a shared store keeps checkpoints in the run directories; drop the checkpoint folder")
        self.ray = import_ray()
        _connect(self.ray, address, num_cpus)
        self.shared, self.keep, self.retries, self.checkpoint_every = shared_store, keep, retries, checkpoint_every
        self.resources, self.log = resources or RunResources(), log
        gpus = self.ray.cluster_resources().get("GPU", 0)
        self.task = self.ray.remote(max_retries=0)(train_in_store if shared_store else train_in_scratch)
        self.options = self.resources.ray_options(gpus)
        self.lost = tuple(getattr(self.ray.exceptions, name) for name in _LOST if hasattr(self.ray.exceptions, name))
        # runs out at once: twice what the cluster's CPUs can train together, so a worker that
        # frees up finds the next run waiting, and a long sweep holds few locks and file handles
        self.window = max(2, int(2 * self.ray.cluster_resources().get("CPU", 1) / self.resources.cpus))
        self._queue: dict[str, TrainConfig] = {}
        self._flights: dict[str, _Flight] = {}

    # --- sending runs out ------------------------------------------------------------------
    def _prepared(self, config: TrainConfig) -> TrainConfig:
        if self.checkpoint_every and not config.checkpoint_every:
            return config.replace(checkpoint_every=self.checkpoint_every)  # not hashed: the same run
        return config

    def _send(self, store: RunStore, flight: _Flight) -> None:
        task = self.task.options(**self.options)
        if flight.incoming is None:
            flight.stream = task.remote(str(store.root.resolve()), flight.config, self.resources.threads)
        else:
            files = flight.incoming.resume_files()
            flight.stream = task.remote(flight.config, files, self.keep, self.resources.threads)

    def prefetch(self, store: RunStore, configs: Sequence[TrainConfig]) -> None:
        """Queue ``configs`` (those not finished, not queued or out already) and send out as many as
        the cluster can start; ``run_all`` collects them and sends the rest as others end."""
        for config in map(self._prepared, configs):
            h = config.hash()
            if h not in self._flights and h not in self._queue and done_in_index(store, config) is None:
                self._queue[h] = config
        self._fill(store)

    def _fill(self, store: RunStore) -> list[tuple[str, RunRecord]]:
        """Send queued runs out up to ``window`` at once (only runs out hold their locks and show as
        running); returns the queued runs another process finished meanwhile."""
        done = []
        while self._queue and len(self._flights) < self.window:
            h = next(iter(self._queue))
            config = self._queue.pop(h)
            if (record := done_in_index(store, config)) is not None:
                done.append((h, record))
                continue
            incoming = None if self.shared else store.receive(config)
            flight = _Flight(config, None, incoming)
            try:
                self._send(store, flight)
            except BaseException:
                if incoming is not None:
                    incoming.close()
                raise
            self._flights[h] = flight
        return done

    def run_all(self, store: RunStore, configs: Sequence[TrainConfig], label: str = "") -> list[RunRecord]:
        configs = list(configs)
        progress = Progress(len(configs), label, self.log)
        records: dict[str, RunRecord | None] = {}
        for config in configs:
            h = config.hash()
            if h not in records:
                records[h] = done_in_index(store, config)
                if records[h] is not None:
                    progress.finished(records[h], cached=True)
        self.prefetch(store, [c for c in configs if records[c.hash()] is None])
        for config in configs:
            h = config.hash()
            if records[h] is None and h not in self._flights and h not in self._queue:
                records[h] = done_in_index(store, config)  # another process finished it meanwhile
        while any(r is None for r in records.values()):
            finished = self._fill(store)
            if not finished and not self._flights:
                raise ReslabError("runs are missing from the store, yet none is out on the cluster")
            for h, record in finished or self._collect(store, label):
                if h in records:
                    records[h] = record
                    progress.finished(record, cached=False)
        return [records[c.hash()] for c in configs]  # type: ignore[misc]

    # --- what comes back -------------------------------------------------------------------
    def _collect(self, store: RunStore, label: str) -> list[tuple[str, RunRecord]]:
        """Wait for the next message of any run out; returns the runs that finished with it."""
        flights = {id(f.stream): f for f in self._flights.values()}
        ready, _ = self.ray.wait([f.stream for f in flights.values()], num_returns=1)
        flight = flights[id(ready[0])]
        try:
            message = self.ray.get(next(flight.stream))
        except StopIteration:  # a stream ends only after its "done" message, which removed it
            raise ReslabError(f"run {flight.config.run_id()} ended on its worker without sending its result") from None
        except self.lost as exc:
            self._retry(store, flight, exc, label)
            return []
        except self.ray.exceptions.RayTaskError as exc:
            self._drop(flight)
            cause = getattr(exc, "cause", None)
            raise cause if isinstance(cause, ReslabError) else exc from None
        if not message.get("done"):
            flight.incoming.write(message["files"])
            flight.step = message["step"]
            where = message["where"]
            self.log(
                f"  [{label}] run {flight.config.run_id()}: checkpoint at step {flight.step} received "
                f"(training on {where['host']}, pid {where['pid']})"
            )
            return []
        del self._flights[flight.config.hash()]
        if flight.incoming is not None:
            try:
                return [(flight.config.hash(), flight.incoming.finish(message["files"]))]
            finally:
                flight.incoming.close()  # after a failed finish: the run stays resumable (else a no-op)
        record = store.lookup(flight.config)
        if record is None or not record.done:
            raise ReslabError(f"run {flight.config.run_id()} ended on its worker but is not finished in {store.root}")
        return [(flight.config.hash(), record)]

    def _retry(self, store: RunStore, flight: _Flight, exc: Exception, label: str) -> None:
        """Send a run whose worker was lost out again, from its last checkpoint; give up after ``retries``."""
        run_id, why = flight.config.run_id(), type(exc).__name__
        start = f"step {flight.step}" if flight.step is not None else "its last checkpoint, if any"
        if flight.attempt > self.retries:
            self._drop(flight)
            raise ReslabError(
                f"run {run_id}: its worker was lost {flight.attempt} times (last: {why}); it is kept at {start} "
                "in the store: run the same command again to continue it"
            )
        flight.attempt += 1
        self.log(
            f"  [{label}] run {run_id}: its worker was lost ({why}); retry {flight.attempt - 1} of "
            f"{self.retries}, from {start}"
        )
        self._send(store, flight)

    def _drop(self, flight: _Flight) -> None:
        """Stop caring about a run: cancel its task, leave it resumable in the store."""
        self._flights.pop(flight.config.hash(), None)
        if flight.stream is not None:
            self.ray.cancel(flight.stream, force=True)  # a no-op for a task that ended or was lost
        if flight.incoming is not None:
            flight.incoming.close()

    def close(self) -> None:
        """Cancel the runs still out; each stays resumable from its last checkpoint in the store."""
        self._queue.clear()
        for flight in list(self._flights.values()):
            self._drop(flight)
