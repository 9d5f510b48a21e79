"""The files of a run directory that more than the training loop reads or writes.

A run directory holds config.yaml (what the run is), metrics.jsonl (``metrics.py``),
checkpoint.pt (``checkpoint.py``), model.pt (the trained weights) and result.json (how the
run ended); the run store adds env.json (the software and hardware it trained on).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..files import atomic_write_text
from .config import TrainConfig

CONFIG, RESULT, MODEL, ENV = "config.yaml", "result.json", "model.pt", "env.json"
TERMINAL = ("finished", "diverged")  # a run that ended so is never trained again; a "stopped" one resumes


def write_config(run_dir: Path, config: TrainConfig) -> None:
    """config.yaml, written once: a resumed run keeps the file it started with."""
    path = Path(run_dir) / CONFIG
    if not path.exists():
        atomic_write_text(path, config.to_yaml())


def read_result(run_dir: Path) -> dict[str, Any] | None:
    """result.json's content; None while the run has none (or a damaged one)."""
    path = Path(run_dir) / RESULT
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
