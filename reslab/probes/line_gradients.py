"""Shattered gradients on a net's own inputs: gradients along straight lines between two inputs.

Balduzzi2017 differentiate a net with one scalar input along a 1-D grid. A trained net's
input is an image (or a token sequence), so "the gradient on a 1-D grid" is taken along a
line through its input space: for a pair of inputs a, b and t on a grid of [0, 1],

    g_l(t) = d/dt r_l(x(t)),  x(t) = a + t (b - a),

where r_l is a fixed random linear read-out (unit-norm Gaussian weights, from ``seed``) of
the value x_l at block boundary l (x_0 the stem's output, x_L the last block's) and of
the logits. g_l is the directional derivative of that read-out along the line, which
is what the input gradient on Balduzzi's grid is for a one-dimensional input. A
feedforward stack's g_l turns into white noise with depth (neighbour correlation near 0,
flat spectrum); a residual stack's stays correlated (brown-ish, spectral slope near -2).

Token inputs have no line between them; for token models the line runs through the
stem's output (the embeddings) instead, and x_0 is that line itself. All points are
computed in eval mode (BatchNorm uses its running statistics, so points are independent)
(reverse mode: one backward pass per read-out and pair).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ._evaluation import eval_state, model_device, require_block_net
from .result import ProbeResult
from .spectra import autocorrelation, is_constant, power_spectrum, spectral_slope


@dataclass
class LineGradients(ProbeResult):
    """Directional derivatives along input lines, per read-out point (axis 0) and pair (axis 1)."""

    points: list[str]  # "x_0 (stem)", "x_1", ..., "x_L", "logits"
    changes_shape: np.ndarray  # (blocks,) bool
    t: np.ndarray  # (grid,)
    curves: np.ndarray  # (points, pairs, grid) g_l(t)
    neighbour_correlation: np.ndarray  # (points,) lag-1 autocorrelation, mean over pairs
    spectral_slope: np.ndarray  # (points,) log power vs log frequency, mean over non-constant pairs
    constant_fraction: np.ndarray  # (points,) share of pairs whose curve is constant (a linear stretch)
    space: str  # "input" or "embedding"
    pairs: int
    grid: int
    seed: int
    seconds: float


def _readouts(shapes: list[torch.Size], seed: int, device: torch.device) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for shape in shapes:
        w = torch.randn(shape, generator=gen, dtype=torch.float64)
        out.append((w / w.norm()).to(device=device, dtype=torch.float32))
    return out


def _values(net: nn.Module, h: torch.Tensor, from_stem: bool) -> list[torch.Tensor]:
    """x_0 .. x_L and the logits for a batch (starting at the input, or at the stem's output)."""
    h = net.stem(h) if from_stem else h
    values = [h]
    for block in net.blocks:
        h = block(h)
        values.append(h)
    values.append(net.head(h))
    return values


def _line_curves(net, a, b, weights, t, from_stem) -> torch.Tensor:
    """(points, grid): the derivative of each read-out along a -> b.

    Reverse mode, one backward pass per read-out (forward mode would take one pass, but
    PyTorch lacks it for some kernels, e.g. CPU flash attention). Points do not interact
    in eval mode, so the gradient of the read-outs' sum is every point's own gradient.
    """
    direction = b - a
    line = (a.unsqueeze(0) + t.reshape((len(t),) + (1,) * a.dim()) * direction.unsqueeze(0)).requires_grad_()
    with torch.enable_grad():
        outs = [(v * w).flatten(1).sum(1) for v, w in zip(_values(net, line, from_stem), weights)]
        curves = []
        for i, r in enumerate(outs):
            (g,) = torch.autograd.grad(r.sum(), line, retain_graph=i < len(outs) - 1, allow_unused=True)
            curves.append(torch.zeros(len(t), device=line.device) if g is None else (g * direction).flatten(1).sum(1))
    return torch.stack(curves).detach()


def line_gradients(net: nn.Module, x: torch.Tensor, *, pairs: int = 4, grid: int = 128, seed: int = 0) -> LineGradients:
    """Balduzzi2017's gradient statistics along ``pairs`` lines between consecutive inputs of ``x``."""
    require_block_net(net)
    if pairs < 1 or grid < 8 or len(x) < 2 * pairs:
        raise ConfigError(
            f"need pairs >= 1, grid >= 8 and 2 * pairs inputs; got pairs={pairs}, grid={grid}, {len(x)} inputs"
        )
    start = time.perf_counter()
    device = model_device(net)
    x = x[: 2 * pairs].to(device)
    from_stem = x.is_floating_point()
    t = torch.linspace(0.0, 1.0, grid, device=device)
    with eval_state(net):
        with torch.no_grad():
            ends = x if from_stem else net.stem(x)
            shapes = [v.shape[1:] for v in _values(net, ends[:1], from_stem)]
        weights = _readouts(shapes, seed, device)
        curves = torch.stack(
            [_line_curves(net, ends[2 * i], ends[2 * i + 1], weights, t, from_stem) for i in range(pairs)], dim=1
        )
    c = curves.double().cpu().numpy()
    constant = is_constant(c)
    slopes = spectral_slope(power_spectrum(c))
    slopes = np.where(constant, np.nan, slopes)
    with warnings.catch_warnings():  # a point whose every curve is constant has no slope (NaN)
        warnings.simplefilter("ignore", RuntimeWarning)
        slope = np.nanmean(slopes, axis=1)
    n = len(net.blocks)
    return LineGradients(
        points=["x_0 (stem)"] + [f"x_{i}" for i in range(1, n + 1)] + ["logits"],
        changes_shape=np.array([b.changes_shape for b in net.blocks], dtype=bool),
        t=t.cpu().numpy(),
        curves=c.astype(np.float32),
        neighbour_correlation=autocorrelation(c)[..., 1].mean(axis=1),
        spectral_slope=slope,
        constant_fraction=constant.mean(axis=1),
        space="input" if from_stem else "embedding",
        pairs=pairs,
        grid=grid,
        seed=seed,
        seconds=time.perf_counter() - start,
    )
