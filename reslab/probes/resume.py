"""Interrupt a long probe and run it again without redoing what finished.

- ``fingerprint(...)``: a hash of everything a result depends on (tensors by their bytes,
  settings by their text), so a saved part is reused only for the very same net, data and
  settings;
- ``GridRows``: the finished rows of a landscape grid in one small file, rewritten
  atomically after every row. A rerun with the same fingerprint starts after the last
  finished row; a different fingerprint starts over (and overwrites the file).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..files import atomic_write


def fingerprint(*parts: Any) -> str:
    """sha256 over tensors' dtype, shape and bytes and over the text of everything else."""
    h = hashlib.sha256()
    for part in parts:
        items = part if isinstance(part, (list, tuple)) else [part]
        for item in items:
            if isinstance(item, torch.Tensor):
                t = item.detach().cpu().contiguous()
                h.update(f"{t.dtype}{tuple(t.shape)}".encode())
                h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
            elif isinstance(item, np.ndarray):
                h.update(f"{item.dtype}{item.shape}".encode() + np.ascontiguousarray(item).tobytes())
            else:
                h.update(repr(item).encode())
            h.update(b"|")
    return h.hexdigest()


class GridRows:
    """Loss and accuracy of a grid, row by row (axis 0), kept in ``path`` as the rows finish."""

    def __init__(self, path: str | Path | None, key: str, shape: tuple[int, ...]):
        self.path = Path(path) if path is not None else None
        self.key, self.shape = key, shape
        self.loss, self.acc = np.full(shape, np.nan), np.full(shape, np.nan)
        self.finished = np.zeros(shape[0], dtype=bool)
        self.resumed = 0
        if self.path is not None and self.path.exists():
            self._load()

    def _load(self) -> None:
        try:
            with np.load(self.path, allow_pickle=False) as saved:
                if str(saved["key"]) != self.key or tuple(saved["loss"].shape) != self.shape:
                    return  # another net, other data or other settings: start over
                self.loss, self.acc, self.finished = saved["loss"], saved["acc"], saved["finished"]
        except (OSError, ValueError, KeyError):
            return  # unreadable: start over (the file is rewritten after the first row)
        self.resumed = int(self.finished.sum())

    def done(self, index: tuple[int, ...]) -> bool:
        return bool(self.finished[index[0]])

    def value(self, index: tuple[int, ...]) -> tuple[float, float]:
        return float(self.loss[index]), float(self.acc[index])

    def record(self, index: tuple[int, ...], loss: float, acc: float) -> None:
        """Keep one point; when it completes its row, save the finished rows."""
        self.loss[index], self.acc[index] = loss, acc
        if index[1:] != tuple(n - 1 for n in self.shape[1:]):
            return
        self.finished[index[0]] = True
        if self.path is not None:
            arrays = {"key": np.array(self.key), "loss": self.loss, "acc": self.acc, "finished": self.finished}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, lambda f: np.savez(f, **arrays))
