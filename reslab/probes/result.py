"""The shape every probe returns: a dataclass of numpy arrays and summary numbers.

A result saves to ``PATH.npz`` (the arrays) plus ``PATH.json`` (everything else), and
loads back to the same class, so the report layer can plot from files alone.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TypeVar

import numpy as np

from ..files import atomic_write, jsonable

R = TypeVar("R", bound="ProbeResult")


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
                meta[f.name] = jsonable(value, nonfinite_as_none=False)  # NaN means "not measured"
        stem.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(stem.with_suffix(".npz"), lambda fh: np.savez_compressed(fh, **arrays))
        atomic_write(stem.with_suffix(".json"), lambda fh: fh.write(json.dumps(meta, indent=1).encode()))
        return stem

    @classmethod
    def load(cls: type[R], path: str | Path) -> R:
        stem = Path(path).with_suffix("")
        meta = json.loads(stem.with_suffix(".json").read_text())
        meta.pop("__class__", None)
        with np.load(stem.with_suffix(".npz"), allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        return cls(**meta, **arrays)
