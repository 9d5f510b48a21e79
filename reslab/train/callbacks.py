"""Hooks the training loop calls, so analyses can sample during training.

``train/`` never imports ``probes/``: a probe that records something while a net trains
(e.g. per-layer gradient norms every N steps) subclasses ``Callback`` and is passed to the
trainer from above.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn


@dataclass
class TrainContext:
    """What a callback can see: the live model and optimizer, and where the run is.

    ``extra`` holds the run's ``config`` (TrainConfig) and ``dataset``; a callback sets
    ``extra["stop"] = True`` to end the run after the current step (status "stopped", with
    a checkpoint, so the run can be resumed). Data a callback records belongs in
    ``run_dir``, so that it stays with the run in the store.
    """

    model: nn.Module
    optimizer: Any
    run_dir: Path | None
    step: int = 0  # optimizer steps taken so far
    epoch: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class Callback:
    """Override what you need; every hook is optional.

    ``every``: ``on_backward`` runs on steps where ``step % every == 0`` (0 = never).
    Callbacks that keep state across a resumed run implement ``state_dict`` and
    ``load_state_dict``; the trainer stores that state in its checkpoints.
    """

    every: int = 0

    def on_start(self, training: TrainContext) -> None:
        """Once, before the first step (also after a resume)."""

    def on_backward(self, training: TrainContext, loss: float) -> None:
        """After backward, before the optimizer step: gradients are in ``param.grad``."""

    def on_step(self, training: TrainContext, metrics: dict[str, float]) -> None:
        """After every optimizer step, with that step's metrics."""

    def on_epoch_end(self, training: TrainContext, metrics: dict[str, float]) -> None:
        """After each epoch's validation, with the validation metrics."""

    def on_end(self, training: TrainContext, result: dict[str, Any]) -> None:
        """Once, when the run finishes, diverges or stops; ``result`` is result.json's content."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
