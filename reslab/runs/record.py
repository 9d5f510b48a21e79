"""One run as the store knows it, and what makes a run that ended count as finished."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import ReslabError
from ..models import create_model
from ..train import TERMINAL, TrainConfig, read_metrics
from ..train.checkpoint import load_torch
from .rebuild import safe_result


@dataclass
class RunRecord:
    """One run as the store knows it. ``result`` is result.json's content (None until it exists).

    ``status``: running, stopped, finished, diverged; ``interrupted`` (the index says running but
    no process holds its lock: killed), ``missing`` or ``damaged`` (it ended, but its directory
    is gone or its result/model is unreadable: ``problem`` says which, and it trains again).
    """

    id: str
    hash: str
    dir: Path
    status: str
    config: TrainConfig
    result: dict[str, Any] | None
    created: float | None = None
    updated: float | None = None
    external: bool = False  # kept outside the store's root (``out``): never deleted by ``rm``
    problem: str | None = None

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def load_model(self, map_location: str = "cpu") -> nn.Module:
        """The trained net: built from the registry as trained, weights from model.pt."""
        path = self.dir / "model.pt"
        if self.result is None or not path.exists():
            raise ReslabError(f"run {self.id} has no trained model yet (status {self.status})")
        model = create_model(self.config.model, **self.result["model"]["options"])
        model.load_state_dict(load_torch(path, map_location))
        return model.eval()

    def metrics(self) -> list[dict[str, Any]]:
        return read_metrics(self.dir / "metrics.jsonl")


def check_done(path: Path, h: str) -> tuple[dict[str, Any] | None, str | None]:
    """(result, None) for a run that ended and is whole in ``path``, else (None, what is wrong)."""
    if not path.is_dir():
        return None, f"its directory {path} is gone"
    result = safe_result(path)
    if result is None or result.get("status") not in TERMINAL or result.get("config_hash") != h:
        return None, f"its {path / 'result.json'} is missing, torn or not this run's"
    if not (path / "model.pt").is_file():
        return None, f"its {path / 'model.pt'} is missing"
    return result, None
