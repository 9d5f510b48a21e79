"""The full training state: checkpoints a resumed run continues from exactly.

Checkpoints are written atomically (``reslab.files.atomic_write``), so a run killed at any
moment leaves the old checkpoint or the new one; temporary names never match ``checkpoint*.pt``.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ReslabError
from ..files import atomic_write

CHECKPOINT = "checkpoint.pt"


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
