"""Gradient through time: how much of the last hidden state's gradient reaches each earlier step.

A recurrent net is a very deep net whose layers share weights: h_t = f(h_{t−1}, x_t). The
gradient ∂h_T/∂h_t is a product of T − t step Jacobians, so a vanilla tanh RNN's shrinks
exponentially with the lag (Bengio1994), while the gates of a GRU (h_t = (1 − z)·h_{t−1} + z·h̃)
and the cell of an LSTM (c_t = f·c_{t−1} + i·g) pass it on nearly unchanged when the gate is
open: a skip connection through time. Measured as the norm of ∂(u·h_T)/∂h_t for random unit
vectors u, averaged over a batch of sequences (one backward pass per u).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from .result import ProbeResult


@dataclass
class TimeGradients(ProbeResult):
    """``norms[k]``: mean ‖∂(u·h_T)/∂h_{T−k}‖ for lag k = 0 … T−1 (k = 0 is the last step itself)."""

    cell: str
    lags: np.ndarray
    norms: np.ndarray
    log10_decay_per_step: float  # fitted slope of log10 norm against the lag
    projections: int
    seed: int


def time_gradients(model: nn.Module, x: torch.Tensor, projections: int = 4, seed: int = 0) -> TimeGradients:
    """‖∂h_T/∂h_t‖ against the lag T − t for a recurrent net with ``states`` (``reslab.models.RecurrentNet``)."""
    if not hasattr(model, "states") or not hasattr(model, "hidden"):
        raise ConfigError(f"{type(model).__name__} does not expose its states per step; see reslab.models.RecurrentNet")
    if projections < 1:
        raise ConfigError(f"projections must be >= 1, got {projections}")
    g = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            hidden = [model.hidden(state) for state in model.states(x)]
            for h in hidden:
                h.retain_grad()
            last = hidden[-1]
            total = np.zeros(len(hidden))
            for p in range(projections):
                u = torch.randn(last.shape[-1], generator=g).to(last)
                u = u / u.norm()
                for h in hidden:
                    h.grad = None
                (last @ u).sum().backward(retain_graph=p < projections - 1)
                total += np.array([float(h.grad.norm(dim=-1).mean()) if h.grad is not None else 0.0 for h in hidden])
    finally:
        model.train(was_training)
    norms = (total / projections)[::-1].copy()  # by lag: the last step first
    lags = np.arange(len(norms))
    finite = norms > 0
    slope = float(np.polyfit(lags[finite], np.log10(norms[finite]), 1)[0]) if finite.sum() > 1 else float("nan")
    return TimeGradients(
        cell=getattr(model, "cell_type", type(model).__name__),
        lags=lags,
        norms=norms,
        log10_decay_per_step=slope,
        projections=projections,
        seed=seed,
    )
