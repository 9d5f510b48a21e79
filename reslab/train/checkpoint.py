"""Atomic files and the full training state: checkpoints a resumed run continues from exactly.

Everything is written to a temporary file in the same folder and renamed into place, so a
run killed at any moment leaves either the old file or the new one, never half of one.
Temporary names start with a dot and never match ``checkpoint*.pt``.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ReslabError

CHECKPOINT = "checkpoint.pt"


def atomic_write(path: Path, write: Any, mode: str = "wb", durable: bool = False) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``.

    The rename makes the write atomic for any process that dies (SIGKILL included);
    ``durable`` also fsyncs the data first, so a power cut cannot leave an empty file
    under the new name (used for checkpoints, which a resume depends on).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text), mode="w")


def json_safe(obj: Any) -> Any:
    """Non-finite floats become None (JSON has no NaN); tuples become lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n")


def save_torch(path: Path, obj: Any, durable: bool = False) -> None:
    # serialized in memory first: torch.save turns a failed file write (a full disk) into a
    # RuntimeError; writing the bytes ourselves keeps it the OSError it is
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write(path, lambda f: f.write(buffer.getbuffer()), durable=durable)


def load_torch(path: Path, map_location: str | torch.device = "cpu") -> Any:
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # a torn or foreign file
        raise ReslabError(f"{path} cannot be read ({exc}); delete it to start that run over") from None


def clean_temporaries(folder: Path) -> None:
    """Remove temporary files a killed process left behind."""
    for tmp in Path(folder).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def rng_state() -> dict[str, Any]:
    """Every random generator a training step may draw from (torch CPU and CUDA, Python, NumPy)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
