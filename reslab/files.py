"""Files that are never half-written, and values JSON can hold.

Every file reslab writes (checkpoints, results, metrics, configs, probe results,
downloads, the report) goes through ``atomic_write``: a temporary file in the same folder,
renamed into place, so a process killed at any moment leaves the old file or the new one,
never half of one. Temporary names start with a dot and end in ``.tmp``
(``clean_temporaries`` removes those a killed process left). Used by every layer, so it
lives at the bottom of the package and imports nothing of reslab.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np


def atomic_write(
    path: Path, write: Callable[[IO], Any], mode: str = "wb", durable: bool = False, permissions: int | None = None
) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``.

    The rename makes the write atomic for any process that dies (SIGKILL included), and an
    exception inside ``write`` leaves nothing behind. ``durable`` also fsyncs the data
    first, so a power cut cannot leave an empty file under the new name (for checkpoints,
    which a resume depends on). ``permissions`` replaces the temporary file's private 0600.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        if permissions is not None:
            os.chmod(tmp, permissions)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text), mode="w")


def clean_temporaries(folder: Path) -> None:
    """Remove the temporary files of ``atomic_write`` that a killed process left in ``folder``."""
    for tmp in Path(folder).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def jsonable(value: Any, nonfinite_as_none: bool = True) -> Any:
    """``value`` in types JSON holds: string keys, lists for tuples, Python numbers for NumPy's.

    With ``nonfinite_as_none`` (default) NaN and infinities become None, which strict JSON
    can hold; without, they are kept (Python's json writes them as NaN and Infinity).
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if not nonfinite_as_none or math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v, nonfinite_as_none) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v, nonfinite_as_none) for v in value]
    return value


def is_finite_number(value: Any) -> bool:
    """An int or float that is finite (not a bool, NaN or an infinity): a value read from a file usable as a number."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def write_json(path: Path, obj: Any) -> None:
    """Strict JSON (non-finite numbers as null), indented, written atomically."""
    atomic_write_text(path, json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n")
