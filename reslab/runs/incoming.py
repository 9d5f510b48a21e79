"""A run that a worker trains elsewhere and this store takes in: Ray's driver-owned store.

Workers never write the store. The driver opens an ``IncomingRun`` (``RunStore.receive``)
for each run it sends out: it holds the run's locks, so the store shows the run as running
and no other process trains it, and it makes the run's directory and its index row. The files
a worker sends at each checkpoint are kept in that directory (``write``), so the run is
resumable from there exactly like one trained here: after a lost worker (the retry starts
from ``resume_files``) or after the driver itself was stopped (the next sweep does).
``finish`` keeps the final files and indexes the result; ``close`` after a failure leaves
the run resumable from its last checkpoint, or removes it when none arrived.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..errors import StoreError
from ..train import TERMINAL, TrainConfig
from ..train.rundir import RESULT
from .rebuild import result_columns
from .remote import RESUME_FILES, Files, read_files, write_files

if TYPE_CHECKING:  # the store makes IncomingRuns; importing it here would be circular
    from .store import RunRecord, RunStore


class IncomingRun:
    def __init__(self, store: RunStore, config: TrainConfig):
        self.store, self.config, self.hash = store, config, config.hash()
        self.path, self._made, self._held = store._hold(self.hash, config)
        self.open = True

    def resume_files(self) -> Files:
        """What a worker continues this run from (nothing for a run not started yet)."""
        return read_files(self.path, RESUME_FILES)

    def write(self, files: Files) -> None:
        """Keep the files a worker sent at a checkpoint (a result never comes this way)."""
        write_files(self.path, {k: v for k, v in files.items() if k != RESULT})

    def finish(self, files: Files) -> RunRecord:
        """Keep a finished run's files, index its result and release the run."""
        result = _result(files)
        if result.get("config_hash") != self.hash:
            raise StoreError(
                f"run {self.path.name} came back trained under hash {str(result.get('config_hash'))[:10]}, not "
                f"{self.hash[:10]}: the worker read other data under the same name (see `reslab data ls` there)"
            )
        write_files(self.path, files)
        self.store.index.upsert(self.hash, **result_columns(result))
        self._release()
        return self.store._record(self.store.index.get(self.hash))

    def close(self) -> None:
        """After a failure: the run stays resumable from its last checkpoint (or is removed if it has none)."""
        if self.open:
            self.store._stopped(self.hash, self.path, self._made)
            self._release()

    def _release(self) -> None:
        self.open = False
        self._held.close()


def _result(files: Files) -> dict[str, Any]:
    try:
        result = json.loads(files[RESULT])
    except (KeyError, ValueError):
        raise StoreError("a worker sent a run back without a readable result.json") from None
    if not isinstance(result, dict) or result.get("status") not in TERMINAL:
        raise StoreError("a worker sent a run back that had not ended (its result.json says otherwise)")
    return result
