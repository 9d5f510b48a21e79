"""The shape every probe returns: a dataclass of numpy arrays and summary numbers.

A result saves to ``PATH.npz`` (the arrays) plus ``PATH.json`` (everything else), and
loads back to the same class, so the report layer can plot from files alone.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

R = TypeVar("R", bound="ProbeResult")


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


@dataclasses.dataclass
class ProbeResult:
    """Base class: subclasses declare fields; ``np.ndarray`` fields go to the .npz file."""

    def save(self, path: str | Path) -> Path:
        """Write ``path``.npz and ``path``.json atomically; returns the stem path."""
        stem = Path(path).with_suffix("")
        arrays, meta = {}, {"__class__": type(self).__name__}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                arrays[f.name] = value
            else:
                meta[f.name] = _jsonable(value)
        _atomic_write(stem.with_suffix(".npz"), lambda fh: np.savez_compressed(fh, **arrays))
        _atomic_write(stem.with_suffix(".json"), lambda fh: fh.write(json.dumps(meta, indent=1).encode()))
        return stem

    @classmethod
    def load(cls: type[R], path: str | Path) -> R:
        stem = Path(path).with_suffix("")
        meta = json.loads(stem.with_suffix(".json").read_text())
        meta.pop("__class__", None)
        with np.load(stem.with_suffix(".npz"), allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        return cls(**meta, **arrays)
