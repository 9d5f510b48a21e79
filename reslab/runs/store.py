"""The run store: every run a directory, every directory indexed by the hash of its config.

``store.run(config)`` returns the stored result of a config that already finished (or
diverged) without training, resumes one that was interrupted, and trains a new one
otherwise. A per-config lock file (``fcntl.flock``) makes two processes asking for the
same config at once train it only once: the second waits, then finds it finished.

Callbacks run only when training actually happens. A callback that records data for a
study should write it into ``training.run_dir`` (its ``TrainContext``) so it is kept with the run (and read it from
``record.dir`` when the run comes from the store), or the study should set
``TrainConfig.tag`` to make its instrumented runs distinct.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..data import DATASETS, Dataset, load_dataset
from ..environment import collect_env
from ..errors import ConfigError, ReslabError
from ..files import write_json
from ..models import create_model, get_entry
from ..train import TERMINAL, Callback, TrainConfig, read_metrics, read_result, train, write_config
from ..train.checkpoint import CHECKPOINT, load_torch
from .index import RunIndex


def default_root() -> Path:
    return Path(os.environ.get("RESLAB_HOME") or "~/.reslab").expanduser()


@dataclass
class RunRecord:
    """One run as the store knows it. ``result`` is result.json's content (None until it exists)."""

    id: str
    hash: str
    dir: Path
    status: str
    config: TrainConfig
    result: dict[str, Any] | None
    created: float | None = None
    updated: float | None = None

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def load_model(self, map_location: str = "cpu") -> nn.Module:
        """The trained net: built from the registry as trained, weights from model.pt."""
        path = self.dir / "model.pt"
        if self.result is None or not path.exists():
            raise ReslabError(f"run {self.id} has no trained model yet (status {self.status})")
        model = create_model(self.config.model, **self.result["model"]["options"])
        model.load_state_dict(load_torch(path, map_location))
        return model.eval()

    def metrics(self) -> list[dict[str, Any]]:
        return read_metrics(self.dir / "metrics.jsonl")


class RunStore:
    """Runs under ``root`` (default ``$RESLAB_HOME``, else ``~/.reslab``): ``runs/<id>/`` and
    ``index.sqlite``. A run may live elsewhere (``out``); it is indexed all the same."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).expanduser() if root else default_root()
        self.runs_dir = self.root / "runs"
        self.locks_dir = self.root / "locks"
        for d in (self.runs_dir, self.locks_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.index = RunIndex(self.root / "index.sqlite")

    # --- training ------------------------------------------------------------------------
    def run(
        self,
        config: TrainConfig,
        callbacks: Sequence[Callback] = (),
        out: str | Path | None = None,
        progress: bool = False,
        tensorboard: bool = False,
        dataset: Dataset | None = None,
        run_dir: str | Path | None = None,
    ) -> RunRecord:
        """The finished run of ``config``: stored, resumed, or trained now.

        ``out`` puts a new run's directory under that folder instead of the store's;
        ``run_dir`` names the directory exactly (``reslab train --resume``).
        """
        h = config.hash()
        found = self._finished_on_disk(h)
        if found is not None:
            return found
        _preflight(config)
        if dataset is None:  # data problems surface before anything is written
            dataset = load_dataset(config.data, config.data_dir, **config.data_options)
        with self._lock(h):
            found = self._finished_on_disk(h)  # another process may have trained it while we waited
            if found is not None:
                return found
            row = self.index.get(h)
            if run_dir is not None:
                path = Path(run_dir)
            elif row is not None and Path(row["dir"]).is_dir():
                path = Path(row["dir"])  # resume where it was interrupted
            else:
                path = (Path(out) if out else self.runs_dir) / config.run_id()
            created = not path.exists()
            path.mkdir(parents=True, exist_ok=True)
            write_config(path, config)
            if not (path / "env.json").exists():
                write_json(path / "env.json", collect_env())
            self.index.upsert(
                h, id=path.name, dir=str(path.resolve()), model=config.model, data=config.data, seed=config.seed,
                status="running", config=config.to_dict(),
            )  # fmt: skip
            try:
                result = train(config, path, callbacks, resume=True, progress=progress, tensorboard=tensorboard,
                               dataset=dataset)  # fmt: skip
            except ReslabError:
                if created and not (path / CHECKPOINT).exists():  # nothing trained: leave nothing behind
                    shutil.rmtree(path, ignore_errors=True)
                    self.index.delete(h)
                else:
                    self.index.upsert(h, status="stopped")
                raise
            except BaseException:
                self.index.upsert(h, status="stopped")
                raise
            self._record_result(h, result)
            return self._record(self.index.get(h))

    def resume(self, run_dir: str | Path, **kwargs: Any) -> RunRecord:
        """Continue the run in ``run_dir`` (from its config.yaml and checkpoint)."""
        run_dir = Path(run_dir)
        config_file = run_dir / "config.yaml"
        if not config_file.is_file():
            raise ReslabError(f"{run_dir} is not a run directory (no config.yaml)")
        config = TrainConfig.from_yaml(config_file.read_text())
        result = read_result(run_dir)
        if result is not None and result.get("status") in TERMINAL:
            self._index_existing(run_dir, config, result)
        return self.run(config, run_dir=run_dir, **kwargs)

    def _finished_on_disk(self, h: str) -> RunRecord | None:
        """The run of hash ``h`` if the index says it ended for good and its result.json agrees."""
        row = self.index.get(h)
        if row is None or row["status"] not in TERMINAL:
            return None
        result = read_result(Path(row["dir"]))
        if result is None or result.get("status") not in TERMINAL:
            return None  # the directory was removed or damaged: train it again
        return self._record(row, result)

    def _record_result(self, h: str, result: dict[str, Any]) -> None:
        self.index.upsert(
            h, status=result["status"], result=result, train_error=result.get("train_error"),
            val_error=result.get("val_error"), test_error=result.get("test_error"), steps=result.get("steps"),
            wall_time_s=result.get("wall_time_s"),
        )  # fmt: skip

    def _index_existing(self, run_dir: Path, config: TrainConfig, result: dict[str, Any]) -> None:
        h = config.hash()
        self.index.upsert(
            h, id=run_dir.name, dir=str(run_dir.resolve()), model=config.model, data=config.data, seed=config.seed,
            status=result["status"], config=config.to_dict(),
        )  # fmt: skip
        self._record_result(h, result)

    @contextlib.contextmanager
    def _lock(self, h: str, wait: bool = True) -> Iterator[None]:
        path = self.locks_dir / f"{h}.lock"
        with open(path, "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ReslabError("that run is being trained by another process; try again when it ends") from None
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    # --- looking runs up -------------------------------------------------------------------
    def _record(self, row: dict[str, Any], result: dict[str, Any] | None = None) -> RunRecord:
        path = Path(row["dir"])
        if result is None:
            result = row.get("result") or read_result(path)
        return RunRecord(
            id=row["id"], hash=row["hash"], dir=path, status=row["status"],
            config=TrainConfig.from_dict(row["config"]), result=result,
            created=row.get("created"), updated=row.get("updated"),
        )  # fmt: skip

    def lookup(self, config: TrainConfig) -> RunRecord | None:
        """The stored run of ``config`` (any status), without training anything."""
        row = self.index.get(config.hash())
        return self._record(row) if row else None

    def find(self, pattern: str | None = None, **fields: Any) -> list[RunRecord]:
        """Runs matching ``pattern`` and ``fields``.

        ``pattern`` is a list of space-separated terms; ``key=glob`` matches a column (id,
        hash, model, data, seed, status, dir), a bare term matches the run id (as a glob if
        it has ``*?[``, else as a substring). ``fields`` are exact column values.
        """
        terms: list[tuple[str, str]] = []
        for term in (pattern or "").split():
            key, sep, value = term.partition("=")
            terms.append((key, value) if sep else ("id", term if any(c in term for c in "*?[") else f"*{term}*"))
        out = []
        for row in self.index.all():
            if any(row.get(k) != v for k, v in fields.items()):
                continue
            if all(fnmatch.fnmatchcase(str(row.get(key, "")), glob) for key, glob in terms):
                out.append(self._record(row))
        return out

    def get(self, ref: str | Path) -> RunRecord:
        """A run by id, id or hash prefix, or directory path."""
        ref = str(ref)
        rows = self.index.all()
        path = Path(ref).expanduser()
        if path.is_dir():
            matches = [r for r in rows if Path(r["dir"]).resolve() == path.resolve()]
        else:
            matches = [r for r in rows if r["id"] == ref or r["hash"] == ref]
            if not matches and ref:
                matches = [r for r in rows if r["id"].startswith(ref) or (len(ref) >= 6 and r["hash"].startswith(ref))]
        if not matches:
            raise ReslabError(f"no run {ref!r} in {self.root}; `reslab runs ls` lists them")
        if len(matches) > 1:
            ids = ", ".join(r["id"] for r in matches[:5])
            raise ReslabError(f"{ref!r} matches {len(matches)} runs ({ids}, ...); give more of the id")
        return self._record(matches[0])

    def rm(self, ref: str | Path) -> RunRecord:
        """Delete a run's directory and its index row (refused while it is training)."""
        record = self.get(ref)
        with self._lock(record.hash, wait=False):
            if record.dir.is_dir():
                if not (record.dir / "config.yaml").exists():
                    raise ReslabError(f"{record.dir} does not look like a run directory; not deleting it")
                shutil.rmtree(record.dir)
            self.index.delete(record.hash)
        # the lock file stays: deleting it could let two processes lock different files for one run
        return record


def _preflight(config: TrainConfig) -> None:
    """Name errors (unknown model or dataset) before any directory is made."""
    get_entry(config.model)
    if config.data not in DATASETS:
        raise ConfigError(
            f"unknown dataset {config.data!r}; choose one of {', '.join(DATASETS)} (see `reslab data ls`)"
        )
