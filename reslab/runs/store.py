"""The run store: every run a directory, every directory indexed by the hash of what determines it.

``store.run(config)`` returns the stored result of a config that already finished (or
diverged) without training, resumes one that was interrupted, and trains a new one
otherwise. Finished means present and whole: a run whose directory vanished, or whose
result.json or model.pt is missing or torn, is trained again (``RunRecord.problem`` says why).

A store is self-contained: ``root/runs/<id>/`` per run, ``root/index.sqlite`` naming them
relative to the root, ``root/locks/``. A copy (``cp -a``) or a moved store works where it
lands and never touches the original. A run put elsewhere (``out``) is indexed by its
absolute path as *external*: ``rm`` forgets it but never deletes it (``mv`` moves runs in
or out). The index only caches the run directories: it is rebuilt from them when it is
missing, and by ``RunStore.reindex`` (``reslab runs reindex``) when it is damaged.

Locks live with what they protect and are released by the kernel when a process dies.
``root/locks/<hash>.lock`` makes two processes asking this store for one config train it
once (the second waits, then finds it finished); a run "running" in the index whose lock is
free was killed, and is shown as ``interrupted``. ``<run dir>/.lock`` is held while a run
trains, so no process (of any store, a copy included) trains or deletes a directory that
another one is writing.

Callbacks run only when training actually happens. A callback that records data for a
study should write it into ``training.run_dir`` (its ``TrainContext``) so it is kept with the run (and read it from
``record.dir`` when the run comes from the store), or the study should set
``TrainConfig.tag`` to make its instrumented runs distinct.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data import DATASETS, Dataset, load_dataset
from ..environment import collect_env
from ..errors import ConfigError, ReslabError, StoreError, file_errors, os_problem
from ..files import write_json
from ..models import get_entry
from ..train import TERMINAL, Callback, TrainConfig, train, write_config
from ..train.checkpoint import CHECKPOINT
from ..train.rundir import ENV
from ..train.setup import augmentation, resolve_device
from .folders import missing_folders, move_dir, training_error
from .incoming import IncomingRun
from .index import DamagedIndexError, RunIndex
from .locks import DIR_LOCK, is_held, locked
from .rebuild import read_config, result_columns, row_from_dir, safe_result, scan
from .record import RunRecord, check_done

INDEX = "index.sqlite"
USE_ANOTHER = "pass --store a writable folder (it is created if missing) or set RESLAB_HOME"


def default_root() -> Path:
    return Path(os.environ.get("RESLAB_HOME") or "~/.reslab").expanduser()


class RunStore:
    """Runs under ``root`` (default ``$RESLAB_HOME``, else ``~/.reslab``)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).expanduser() if root else default_root()
        self.runs_dir = self.root / "runs"
        self.locks_dir = self.root / "locks"
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"the run store {self.root} is a file, not a folder; {USE_ANOTHER}")
        with file_errors(f"the run store {self.root} cannot be used; {USE_ANOTHER}"):
            for d in (self.runs_dir, self.locks_dir):
                d.mkdir(parents=True, exist_ok=True)
        self.rebuilt: int | None = None  # runs found when a missing index was rebuilt on opening
        self.index = self._open_index()

    def _open_index(self) -> RunIndex:
        path = self.root / INDEX
        if path.exists():
            return RunIndex(path)
        # one process rebuilds a missing index; the others wait, then open it
        with locked(self.locks_dir / "index.lock"), file_errors(f"the run store {self.root} cannot be used"):
            if path.exists():
                return RunIndex(path)
            for log in (path.with_name(INDEX + "-wal"), path.with_name(INDEX + "-shm")):
                log.unlink(missing_ok=True)  # left by a deleted index: must not replay into a new one
            index = RunIndex(path)
            rows = scan(self.runs_dir)
            if rows:
                index.replace_all(rows)
                self.rebuilt = len(rows)
            return index

    @classmethod
    def reindex(cls, root: str | Path | None = None) -> tuple[RunStore, str]:
        """Rebuild ``root``'s index from its run directories; returns the store and what was done.

        A damaged index is set aside as ``index.sqlite.damaged``. Runs kept outside
        ``runs/`` are known only to the old index: they are kept when it is readable and
        their directories still hold them. Run it while no other process uses the store.
        """
        path = (Path(root).expanduser() if root else default_root()) / INDEX
        old_rows, note = [], ""
        try:
            old_rows = RunIndex(path).all() if path.exists() else []
        except DamagedIndexError:
            with file_errors("cannot set the damaged index aside; check the store's permissions"):
                os.replace(path, path.with_name(INDEX + ".damaged"))
                for log in (path.with_name(INDEX + "-wal"), path.with_name(INDEX + "-shm")):
                    log.unlink(missing_ok=True)
            note = (
                f"; the damaged index is kept as {path.name}.damaged (runs kept outside the store cannot be "
                "read from it: `reslab train --resume DIR` indexes one again)"
            )
        store = cls(path.parent)
        rows = {row["hash"]: row for row in scan(store.runs_dir)}
        for row in old_rows:
            if row["hash"] not in rows and not row["dir"].startswith(f"{store.runs_dir.name}/"):
                fresh = row_from_dir(store._abs(row["dir"]), row["dir"])
                if fresh is not None and fresh["hash"] == row["hash"]:
                    rows[row["hash"]] = fresh
        store.index.replace_all(list(rows.values()))
        return store, f"indexed {len(rows)} run(s) in {store.root}{note}"

    # --- paths: relative inside the store, absolute outside it ---------------------------
    def _inside(self, path: Path) -> bool:
        return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(self.root))

    def _rel(self, path: Path) -> str:
        path = Path(os.path.abspath(path))
        return path.relative_to(os.path.abspath(self.root)).as_posix() if self._inside(path) else str(path)

    def _abs(self, stored: str) -> Path:
        return Path(stored) if Path(stored).is_absolute() else self.root / stored

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

        ``out`` puts a *new* run's directory under that folder instead of the store's (a run
        stored already, finished or interrupted, stays where it is: see ``move``);
        ``run_dir`` names the directory exactly (``reslab train --resume``).
        """
        h = config.hash()
        found = self._finished_on_disk(h)
        if found is not None:
            return found
        _preflight(config)
        if dataset is None:  # data problems surface before anything is written
            dataset = load_dataset(config.data, config.data_dir, **config.data_options)
        augmentation(config, dataset)
        with self._lock(h):
            found = self._finished_on_disk(h)  # another process may have trained it while we waited
            if found is not None:
                return found
            path = Path(run_dir) if run_dir is not None else self._place(h, config, out)
            return self._train(h, config, path, callbacks, dataset, progress, tensorboard)

    def _place(self, h: str, config: TrainConfig, out: str | Path | None) -> Path:
        row = self.index.get(h)
        if row is not None and self._abs(row["dir"]).is_dir():
            return self._abs(row["dir"])  # resume where it was interrupted
        return (Path(out).expanduser() if out else self.runs_dir) / config.run_id()

    def _make_dir(self, path: Path) -> None:
        fix = USE_ANOTHER if self._inside(path) else "give --out a writable folder"
        with file_errors(f"nothing was trained; {fix}"):
            path.mkdir(parents=True, exist_ok=True)

    def _train(self, h, config, path, callbacks, dataset, progress, tensorboard) -> RunRecord:
        made = missing_folders(path)  # removed again if nothing gets trained
        try:
            self._make_dir(path)
            busy = f"{path} is being trained by another process (perhaps of another store); try again when it ends"
            with locked(path / DIR_LOCK, wait=False, busy=busy):
                self._start(h, config, path)
                result = train(
                    config, path, callbacks, resume=True, progress=progress, tensorboard=tensorboard, dataset=dataset
                )
        except BaseException as exc:
            self._stopped(h, path, made)
            if isinstance(exc, OSError) and os_problem(exc):
                raise training_error(exc, path) from None
            raise
        self.index.upsert(h, **result_columns(result))
        return self._record(self.index.get(h))

    def _start(self, h: str, config: TrainConfig, path: Path, env: bool = True) -> None:
        """config.yaml, env.json (``env``: of this process; a run trained elsewhere brings its own)
        and the index row that says the run is running."""
        write_config(path, config)
        if env and not (path / ENV).exists():
            write_json(path / ENV, collect_env())
        self.index.upsert(
            h,
            id=path.name,
            dir=self._rel(path),
            model=config.model,
            data=config.data,
            seed=config.seed,
            status="running",
            config=config.to_dict(),
        )

    def _hold(self, h: str, config: TrainConfig) -> tuple[Path, list[Path], contextlib.ExitStack]:
        """For a run trained elsewhere (``IncomingRun``): its locks, taken without waiting, its
        directory and its index row "running"; returns the directory, the folders made for it
        and the stack that holds the locks until it closes."""
        held = contextlib.ExitStack()
        path, made = None, []
        try:
            held.enter_context(self._lock(h, wait=False))
            path = self._place(h, config, None)
            made = missing_folders(path)
            self._make_dir(path)
            busy = f"{path} is being trained by another process; try again when it ends"
            held.enter_context(locked(path / DIR_LOCK, wait=False, busy=busy))
            self._start(h, config, path, env=False)
        except BaseException:
            if path is not None:  # under the run's lock still
                self._stopped(h, path, made)
            held.close()
            raise
        return path, made, held

    def _stopped(self, h: str, path: Path, made: list[Path]) -> None:
        """After a failure: with nothing trained, no directory and no row are left; otherwise
        the row says stopped (resumable from its checkpoint)."""
        # the index may be what failed (a full disk): its row then reads as interrupted
        with contextlib.suppress(StoreError):
            if made and not (path / CHECKPOINT).exists():
                shutil.rmtree(path, ignore_errors=True)
                for folder in made[1:]:  # parents made for it, unless something else was put there since
                    with contextlib.suppress(OSError):
                        folder.rmdir()
                self.index.delete(h)
            elif self.index.get(h) is not None:
                self.index.upsert(h, status="stopped")

    def receive(self, config: TrainConfig) -> IncomingRun:
        """Take in a run that a worker trains elsewhere and sends back as files (Ray's
        driver-owned store): see ``IncomingRun``. The caller has checked it is not finished."""
        _preflight(config, device=False)  # the device is the worker's, not this machine's
        return IncomingRun(self, config)

    def resume(self, run_dir: str | Path, **kwargs: Any) -> RunRecord:
        """Continue the run in ``run_dir`` (from its config.yaml and checkpoint), or index it
        if it finished (see ``resumable``)."""
        return self.run(self.resumable(run_dir), run_dir=Path(run_dir).expanduser(), **kwargs)

    def resumable(self, run_dir: str | Path) -> TrainConfig:
        """The config of the run in ``run_dir``, which this store may continue. Refused when
        this store keeps the same run in another directory (``run_dir`` is a copy): adopting
        it would orphan the original."""
        run_dir = Path(run_dir).expanduser()
        found = read_config(run_dir) if run_dir.is_dir() else None
        if found is None:
            raise StoreError(f"{run_dir} is not a run directory (no readable config.yaml)")
        config, recorded = found
        h = config.hash()
        if recorded is not None and recorded != h:
            raise StoreError(
                f"{run_dir} was stored under hash {recorded[:10]} but its config now hashes to {h[:10]}: the data "
                "it names differs from what it trained on; point --data-dir at that data (see `reslab runs show`)"
            )
        row = self.index.get(h)
        other = self._abs(row["dir"]) if row is not None else None
        if other is not None and other.is_dir() and not other.samefile(run_dir):
            raise StoreError(
                f"this store keeps that run at {other}, and {run_dir} is a copy of it; continue that one "
                f"(reslab train --resume {other}), or forget it first (reslab runs rm {row['id']}) to adopt the copy"
            )
        return config

    def place(self, config: TrainConfig, out: str | Path | None = None) -> Path:
        """The directory the run of ``config`` is in, or would be put in (see ``run``'s ``out``)."""
        return self._place(config.hash(), config, out)

    def _lock(self, h: str, wait: bool = True) -> contextlib.AbstractContextManager[None]:
        busy = "that run is being trained by another process; try again when it ends"
        return locked(self.locks_dir / f"{h}.lock", wait, busy)

    # --- looking runs up -------------------------------------------------------------------
    def _finished_on_disk(self, h: str) -> RunRecord | None:
        row = self.index.get(h)
        record = self._record(row) if row is not None else None
        return record if record is not None and record.done else None

    def _record(self, row: dict[str, Any]) -> RunRecord:
        path = self._abs(row["dir"])
        status, result, problem = row["status"], row.get("result"), None
        if status in TERMINAL:
            result, problem = check_done(path, row["hash"])
            if problem is not None:
                status = "missing" if not path.is_dir() else "damaged"
        else:
            result = result or safe_result(path)
            if status == "running" and not is_held(self.locks_dir / f"{row['hash']}.lock"):
                status = "interrupted"
        return RunRecord(
            id=row["id"],
            hash=row["hash"],
            dir=path,
            status=status,
            config=TrainConfig.from_dict(row["config"]),
            result=result,
            created=row.get("created"),
            updated=row.get("updated"),
            external=not self._inside(path),
            problem=problem,  # older indexes hold absolute paths
        )

    def lookup(self, config: TrainConfig) -> RunRecord | None:
        """The stored run of ``config`` (any status), without training anything."""
        row = self.index.get(config.hash())
        return self._record(row) if row else None

    def find(self, pattern: str | None = None, **fields: Any) -> list[RunRecord]:
        """Runs matching ``pattern`` and ``fields``.

        ``pattern`` is a list of space-separated terms; ``key=glob`` matches a field (id,
        hash, model, data, seed, status, dir), a bare term matches the run id (as a glob if
        it has ``*?[``, else as a substring). ``fields`` are exact field values.
        """
        terms: list[tuple[str, str]] = []
        for term in (pattern or "").split():
            key, sep, value = term.partition("=")
            terms.append((key, value) if sep else ("id", term if any(c in term for c in "*?[") else f"*{term}*"))
        out = []
        for record in map(self._record, self.index.all()):
            values = {
                "id": record.id,
                "hash": record.hash,
                "model": record.config.model,
                "data": record.config.data,
                "seed": record.config.seed,
                "status": record.status,
                "dir": str(record.dir),
            }
            if any(values.get(k) != v for k, v in fields.items()):
                continue
            if all(fnmatch.fnmatchcase(str(values.get(key, "")), glob) for key, glob in terms):
                out.append(record)
        return out

    def get(self, ref: str | Path) -> RunRecord:
        """A run by id, id or hash prefix, or directory path."""
        ref = str(ref)
        rows = self.index.all()
        path = Path(ref).expanduser()
        if path.is_dir():
            matches = [r for r in rows if self._abs(r["dir"]).is_dir() and self._abs(r["dir"]).samefile(path)]
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

    # --- removing and moving -----------------------------------------------------------------
    def rm(self, ref: str | Path) -> RunRecord:
        """Delete a run's directory and its index row (refused while it trains). An external
        run (outside the store's root) is only forgotten: its directory stays."""
        record = self.get(ref)
        with self._lock(record.hash, wait=False):
            if not record.external and record.dir.is_dir():
                if record.dir.is_symlink() or not (record.dir / "config.yaml").exists():
                    raise StoreError(f"{record.dir} does not look like a run directory; not deleting it")
                busy = f"{record.dir} is being trained by another process; not deleting it"
                partly = f"{record.dir} is only partly deleted; fix that, then `reslab runs rm` it again"
                with locked(record.dir / DIR_LOCK, wait=False, busy=busy), file_errors(partly):
                    shutil.rmtree(record.dir)
            self.index.delete(record.hash)
        return record

    def move(self, ref: str | Path, folder: str | Path) -> RunRecord:
        """Move a run's directory into ``folder`` (outside the root it becomes external)."""
        record = self.get(ref)
        folder = Path(folder).expanduser()
        dest = folder / record.dir.name
        if folder.exists() and not folder.is_dir():
            raise StoreError(f"{folder} is a file; name the folder to move run {record.id} into")
        if dest.exists():
            raise StoreError(f"{dest} already exists; move the run into another folder")
        if not record.dir.is_dir():
            raise StoreError(f"run {record.id} has no directory to move ({record.dir} is gone); `reslab runs rm` it")
        busy = f"{record.dir} is being trained by another process; try again when it ends"
        with self._lock(record.hash, wait=False), locked(record.dir / DIR_LOCK, wait=False, busy=busy):
            with file_errors(f"run {record.id} is still at {record.dir}"):
                folder.mkdir(parents=True, exist_ok=True)
                copied = move_dir(record.dir, dest)
            self.index.upsert(record.hash, id=dest.name, dir=self._rel(dest))
            if copied:  # across devices: the original goes only once the index names the copy
                with file_errors(f"the run is at {dest} now; delete {record.dir} by hand"):
                    shutil.rmtree(record.dir)
        return self.get(record.hash)


def _preflight(config: TrainConfig, device: bool = True) -> None:
    """Name errors (unknown model or dataset, a device this machine lacks) before any directory is made."""
    get_entry(config.model)
    if config.data not in DATASETS:
        raise ConfigError(
            f"unknown dataset {config.data!r}; choose one of {', '.join(DATASETS)} (see `reslab data ls`)"
        )
    if device:
        resolve_device(config.device)
