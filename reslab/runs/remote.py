"""What a worker of the driver-owned store runs: one run in a scratch directory, its files sent back.

``train_in_scratch`` trains a config in a fresh directory of the worker's own (under
``$TMPDIR``) and yields messages as the run goes: at every checkpoint the files a resumed
run needs (config, env, metrics, checkpoint), at the end every file of the run. The driver
writes them into its store (``IncomingRun``); the worker never sees the store. A retried run
starts from the files the driver sends back (``resume``), so it continues from the last
checkpoint that reached the driver.

``keep``: a folder the user names for large checkpoints (a bucket mount, a shared disk);
checkpoints and the log so far are written to ``keep/<run id>/`` instead of being sent, and
a retried run continues from there.

The run trains in a thread; this generator watches for new checkpoints (written atomically,
so each read sees a whole file) and yields while the thread trains.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..environment import collect_env
from ..errors import StoreError, file_errors
from ..files import atomic_write, write_json
from ..train import TrainConfig, train
from ..train.checkpoint import CHECKPOINT
from ..train.metrics import METRICS
from ..train.rundir import CONFIG, ENV, MODEL, RESULT

RESUME_FILES = (CONFIG, ENV, METRICS, CHECKPOINT)  # what a run continues from
RUN_FILES = (*RESUME_FILES, MODEL, RESULT)
POLL_S = 0.5  # how often the worker looks for a new checkpoint

Files = dict[str, bytes]


def read_files(folder: Path, names: tuple[str, ...] = RUN_FILES) -> Files:
    return {name: (folder / name).read_bytes() for name in names if (folder / name).is_file()}


def write_files(folder: Path, files: Files) -> None:
    """Write a run's ``files`` into ``folder``, each atomically, result.json last (it says the run ended)."""
    unknown = sorted(set(files) - set(RUN_FILES))
    if unknown:
        raise StoreError(f"{', '.join(unknown)} is not a file of a run; refusing to write it into {folder}")
    for name in sorted(files, key=lambda n: n == RESULT):
        atomic_write(folder / name, lambda f, data=files[name]: f.write(data), durable=name == CHECKPOINT)


def checkpoint_step(data: bytes) -> int:
    return int(torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)["step"])


def train_in_scratch(config: TrainConfig, resume: Files, keep: str | None, threads: int) -> Iterator[dict[str, Any]]:
    """Train ``config`` from ``resume`` (files of its run, possibly none) in a scratch directory.

    Yields ``{"step", "files", "where"}`` at each new checkpoint and ``{"done": True,
    "files", "where"}`` at the end; errors of the run itself (a bad config) are raised.
    """
    torch.set_num_threads(threads)
    where = {"host": socket.gethostname(), "pid": os.getpid()}
    scratch = Path(tempfile.mkdtemp(prefix="reslab-run-"))
    kept = Path(keep) / config.run_id() if keep else None
    try:
        write_files(scratch, resume)
        if kept is not None and kept.is_dir():  # the user's folder holds the newest checkpoint
            write_files(scratch, read_files(kept, RESUME_FILES))
        if not (scratch / ENV).exists():
            write_json(scratch / ENV, collect_env())  # the machine it trains on (a retry keeps the first)
        trainer = _Trainer(config, scratch)
        for files in trainer.checkpoints():
            step = checkpoint_step(files[CHECKPOINT])
            if kept is not None:
                _keep(kept, files)
                files = {k: v for k, v in files.items() if k != CHECKPOINT}
            yield {"step": step, "files": files, "where": where}
        files = read_files(scratch)
        if kept is not None:
            _keep(kept, {k: v for k, v in files.items() if k in RESUME_FILES})
            files.pop(CHECKPOINT, None)
        yield {"done": True, "files": files, "where": where}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _keep(folder: Path, files: Files) -> None:
    with file_errors(f"the checkpoint folder {folder.parent} must be writable by every worker"):
        folder.mkdir(parents=True, exist_ok=True)
        write_files(folder, files)


class _Trainer(threading.Thread):
    """``train(config, folder)`` in a thread; ``checkpoints()`` yields each new checkpoint's run files."""

    def __init__(self, config: TrainConfig, folder: Path):
        super().__init__(daemon=True, name=f"train {config.run_id()}")
        self.config, self.folder = config, folder
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            train(self.config, self.folder, resume=True)
        except BaseException as exc:  # raised again in the generator, which Ray reports to the driver
            self.error = exc

    def checkpoints(self) -> Iterator[Files]:
        path = self.folder / CHECKPOINT
        seen = _stamp(path)  # a checkpoint it resumes from is not sent back
        self.start()
        while self.is_alive():
            self.join(POLL_S)
            stamp = _stamp(path)
            if stamp != seen and not (self.folder / RESULT).exists():  # the last one comes with the end
                seen = stamp
                files = read_files(self.folder, RESUME_FILES)
                if CHECKPOINT in files:
                    yield files
        if self.error is not None:
            raise self.error


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns
