"""Advisory file locks (``fcntl.flock``): held by a process, released by the kernel when it dies.

A lock that a killed process held is free again at once, so "status running, lock free"
means the run was interrupted. Lock files are never deleted while a store is in use:
deleting one could let two processes lock two different files for the same thing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import StoreError, file_errors

DIR_LOCK = ".lock"  # in a run directory, held while a process trains or takes in that run


@contextlib.contextmanager
def locked(path: Path, wait: bool = True, busy: str = "") -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing); ``wait=False`` raises
    ``StoreError(busy)`` instead of waiting for another holder."""
    with file_errors("its lock file cannot be made there: the folder must be writable"):
        f = open(path, "a")  # noqa: SIM115 (closed by the with below)
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(busy or f"{path} is locked by another process; try again when it ends") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def is_held(path: Path) -> bool:
    """Whether some process holds the lock on ``path`` now (read-only: works on a read-only store)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases the shared lock taken just to test
    return False
