"""The file-system side of a run directory: errors while training, folders made for it, moving it."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from ..errors import ReslabError, StoreError, os_fix, os_problem
from ..train.checkpoint import CHECKPOINT, load_torch


def training_error(exc: OSError, path: Path) -> StoreError:
    """A file-system error during training, with where the last good checkpoint is."""
    problem, fix = os_problem(exc, f"writing the run {path}"), os_fix(exc)
    checkpoint = path / CHECKPOINT
    if not checkpoint.exists():
        return StoreError(f"{problem}; nothing was trained or kept: {fix} and train again")
    try:
        step = f" (step {int(load_torch(checkpoint)['step'])})"
    except (ReslabError, OSError, KeyError, TypeError):
        step = ""
    return StoreError(
        f"{problem}; the last good checkpoint is {checkpoint}{step}: {fix}, then continue with "
        f"`reslab train --resume {path}`"
    )


def missing_folders(path: Path) -> list[Path]:
    """``path`` and those of its parents that do not exist yet, deepest first."""
    out = []
    while not path.exists() and path != path.parent:
        out.append(path)
        path = path.parent
    return out


def move_dir(src: Path, dest: Path) -> bool:
    """Rename ``src`` to ``dest``; across devices copy it (under a temporary name, renamed when
    whole) and return True: the caller deletes ``src`` once nothing points at it any more."""
    try:
        os.rename(src, dest)
        return False
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    tmp = dest.with_name(f".{dest.name}.moving")
    try:
        shutil.copytree(src, tmp, symlinks=True)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return True
