"""Gradient norms sampled during training, as one layer x step matrix (claim ``vanishing``).

``GradientFlowRecorder`` is a ``reslab.train.Callback``: pass it to the trainer's
``callbacks`` to switch it on. Every ``every`` steps it records, after the backward pass,
the norm of every weight gradient and (for block-protocol nets) of the gradient at every
block boundary x_0..x_L, and keeps them as columns of two matrices, so the report draws
a heat map, not hundreds of separate series.

The activation gradients are caught by tensor hooks that the recorder arms only for the
forward pass of a sampled step (``TrainContext.step`` is the number of steps taken, so
the step about to run is sampled when ``step % every == 0``). If a trainer runs a
sampled step's forward pass without arming (a different calling convention), those
entries are NaN rather than wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..models.net import follows_block_protocol
from ..train.callbacks import Callback, TrainContext
from .gradflow import weight_layers
from .result import ProbeResult


@dataclass
class GradientFlowHistory(ProbeResult):
    """Gradient norms during training: rows are layers (or block boundaries), columns sampled steps."""

    layer_names: list[str]
    steps: np.ndarray  # (samples,) the step index of each column
    weight_grad_norms: np.ndarray  # (layers, samples)
    activation_names: list[str]  # "x_0" (stem output) .. "x_L" (last block's output)
    activation_grad_norms: np.ndarray  # (blocks + 1, samples); NaN where not captured
    losses: np.ndarray  # (samples,) the training loss at each sampled step


class GradientFlowRecorder(Callback):
    """Record gradient norms every ``every`` training steps (see the module docstring).

    ``filename``: where ``on_end`` saves the history inside the run directory (``None``:
    do not save; call ``result()`` instead).
    """

    def __init__(self, every: int = 50, filename: str | None = "probes/gradflow"):
        if every < 1:
            raise ConfigError(f"GradientFlowRecorder needs every >= 1, got {every}")
        self.every = int(every)
        self.filename = filename
        self.layer_names: list[str] = []
        self.activation_names: list[str] = []
        self._steps: list[int] = []
        self._weights: list[list[float]] = []
        self._acts: list[list[float]] = []
        self._losses: list[float] = []
        self._handles: list[Any] = []
        self._armed = False
        self._caught: dict[int, torch.Tensor] = {}

    # ------------------------------------------------------------------ hooks
    def on_start(self, training: TrainContext) -> None:
        model = training.model
        self._layers = weight_layers(model)
        self.layer_names = [n for n, _ in self._layers]
        self._remove_hooks()
        if follows_block_protocol(model):
            points: list[nn.Module] = [model.stem, *model.blocks]
            self.activation_names = [f"x_{i}" for i in range(len(points))]
            self._handles = [p.register_forward_hook(self._forward_hook(i)) for i, p in enumerate(points)]
        self._armed = training.step % self.every == 0

    def on_backward(self, training: TrainContext, loss: float) -> None:
        if training.step % self.every:
            return
        weights = [
            float(torch.linalg.vector_norm(p.grad.double())) if p.grad is not None else 0.0 for _, p in self._layers
        ]
        acts = [
            float(torch.linalg.vector_norm(self._caught[i].double())) if i in self._caught else math.nan
            for i in range(len(self.activation_names))
        ]
        self._steps.append(int(training.step))
        self._weights.append(weights)
        self._acts.append(acts)
        self._losses.append(float(loss))
        self._caught.clear()
        self._armed = False

    def on_step(self, training: TrainContext, metrics: dict[str, float]) -> None:
        self._armed = training.step % self.every == 0  # training.step: steps taken, i.e. the next step's index

    def on_end(self, training: TrainContext, result: dict[str, Any]) -> None:
        self._remove_hooks()
        if self.filename and training.run_dir is not None and self._steps:
            self.result().save(Path(training.run_dir) / self.filename)

    # ------------------------------------------------------------------ state
    def result(self) -> GradientFlowHistory:
        n_layers, n_acts = len(self.layer_names), len(self.activation_names)
        return GradientFlowHistory(
            layer_names=list(self.layer_names),
            steps=np.asarray(self._steps, dtype=np.int64),
            weight_grad_norms=np.asarray(self._weights, dtype=np.float64).reshape(-1, n_layers).T.copy(),
            activation_names=list(self.activation_names),
            activation_grad_norms=np.asarray(self._acts, dtype=np.float64).reshape(-1, n_acts).T.copy(),
            losses=np.asarray(self._losses, dtype=np.float64),
        )

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self._steps, "weights": self._weights, "acts": self._acts, "losses": self._losses}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._steps = [int(s) for s in state.get("steps", [])]
        self._weights = [list(map(float, w)) for w in state.get("weights", [])]
        self._acts = [list(map(float, a)) for a in state.get("acts", [])]
        self._losses = [float(v) for v in state.get("losses", [])]

    # ------------------------------------------------------------------ internals
    def _forward_hook(self, index: int):
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if self._armed and isinstance(output, torch.Tensor) and output.requires_grad:
                output.register_hook(lambda grad: self._caught.__setitem__(index, grad.detach()))

        return hook

    def _remove_hooks(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
