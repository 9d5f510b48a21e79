"""Errors a user can cause. The CLI prints them as one line and exits with code 2."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager


class ReslabError(Exception):
    """Base class for every mistake a user can make (bad name, bad config, bad data)."""


class UnknownModelError(ReslabError, KeyError):
    """A model name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(ReslabError, ValueError):
    """An option value that cannot work (impossible depth, unknown variant, ...)."""


class DataError(ReslabError):
    """Missing, truncated or corrupt data, or a failed download/checksum."""


class StoreError(ReslabError):
    """A run store, run directory or output folder that cannot be used as asked."""


# what the file system said, in words; errors outside this table are bugs and stay tracebacks
_OS_PROBLEMS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "the file grew past the size limit",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a file stands where a folder is needed",
    errno.EISDIR: "a folder stands where a file is needed",
    errno.EEXIST: "a file of that name is in the way",
    errno.ENOENT: "it does not exist (was it deleted?)",
    errno.EIO: "input/output error on the device",
}


def os_problem(exc: OSError, where: str | None = None) -> str | None:
    """``"<where>: <what went wrong>"`` for the file-system errors a user can cause, else None.
    ``where`` defaults to the file the error names."""
    problem = _OS_PROBLEMS.get(exc.errno)  # type: ignore[arg-type]
    if problem is None:
        return None
    where = where or exc.filename
    return f"{where}: {problem}" if where else problem


def os_fix(exc: OSError) -> str:
    """What a user does about ``exc``, in a few words."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return "free some space"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "make it writable again"
    return "fix that"


@contextmanager
def file_errors(advice: str) -> Iterator[None]:
    """Turn the file-system errors a user can cause into one ``StoreError`` line: the path, the
    problem and ``advice`` (what to do). Other OS errors stay tracebacks: they are bugs."""
    try:
        yield
    except OSError as exc:
        problem = os_problem(exc)
        if problem is None:
            raise
        raise StoreError(f"{problem}; {advice}") from None
