"""Loss landscapes (Li2018, "Visualizing the Loss Landscape of Neural Nets").

Reproduces Li2018's 1-D lines and 2-D surfaces (Fig. 1, 5: with and without skip
connections) around trained weights w, along random *filter-normalized* directions, and the
1-D linear interpolation between two checkpoints (Goodfellow et al. 2015; Li2018 Sec. 3).
Works on any ``nn.Module`` with a loss function; no block protocol is needed.

Filter normalization (Li2018 Sec. 4): a direction d is drawn from N(0, 1), then each
filter d[i] of a weight of 2 or more dimensions (a conv's output channel, a linear
layer's output neuron, an embedding's row: index 0) is rescaled to the norm of the
weight's filter w[i]. Parameters of fewer than 2 dimensions (biases, BatchNorm/LayerNorm
scales and shifts, scalars such as ReZero's alpha) get a zero direction by default
(Li2018's ``ignore='biasbn'``), or, if included, d = w as in Li2018's code.

BatchNorm is in eval mode (the trained running statistics) by default; ``bn="recompute"``
recomputes the statistics at every grid point from the evaluation data (or ``bn_data``)
before evaluating it, as for models trained with BN whose weights moved.

Roughness: ``negative_curvature_share`` of the grid, always; ``hessian_ratio`` =
|lambda_min / lambda_max| of the Hessian at the centre when ``hessian_iters`` > 0
(definitions in ``reslab.probes.curvature``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import ConfigError
from ..train.task import autocast
from ._evaluation import check_data, chunks, eval_state, fastest_layout, model_device
from .curvature import hessian_extremes, mean_cross_entropy, negative_curvature_share
from .result import ProbeResult
from .resume import GridRows, fingerprint

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
BN_MODES = ("eval", "recompute")


def filter_norms(t: torch.Tensor) -> torch.Tensor:
    """Norm of each filter (slice along dim 0) of a weight of >= 2 dims; the whole norm otherwise."""
    return t.reshape(t.shape[0], -1).norm(dim=1) if t.dim() >= 2 else t.norm().reshape(1)


def random_direction(model: nn.Module, *, seed: int = 0, ignore_bias_bn: bool = True) -> list[torch.Tensor]:
    """A filter-normalized random direction, one tensor per ``model.parameters()`` entry.

    Drawn on the CPU from ``seed`` (so it is the same on every device), then moved to each
    parameter's device. See the module docstring for the normalization rule.
    """
    gen = torch.Generator().manual_seed(int(seed))
    direction = []
    with torch.no_grad():
        for p in model.parameters():
            d = torch.randn(p.shape, generator=gen, dtype=torch.float32).to(device=p.device, dtype=p.dtype)
            if p.dim() <= 1:
                if ignore_bias_bn:
                    d.zero_()
                else:
                    d.copy_(p)
            else:
                scale = filter_norms(p) / (filter_norms(d) + 1e-10)
                d.mul_(scale.reshape(-1, *([1] * (p.dim() - 1))))
            direction.append(d)
    return direction


@dataclass
class LandscapeResult(ProbeResult):
    """A loss line, plane or interpolation (Li2018). ``loss``/``accuracy`` have shape
    (len(alphas),) or (len(alphas), len(betas)); ``betas`` is empty for 1-D results.
    For an interpolation, alpha is the weight of checkpoint b: (1 - alpha) a + alpha b.
    ``origin_loss`` is the loss at alpha = beta = 0 (the given weights, or checkpoint a).
    """

    kind: str
    alphas: np.ndarray
    betas: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray
    origin_loss: float
    origin_accuracy: float
    negative_curvature_share: float
    curvature_tol: float
    hessian_min: float
    hessian_max: float
    hessian_ratio: float
    hessian_iters: int
    ignore_bias_bn: bool
    bn: str
    num_samples: int
    precision: str
    seed: int
    seconds: float


class _Evaluator:
    """Loss and accuracy of the model's current weights on a fixed evaluation set, batched."""

    def __init__(self, model, x, y, loss_fn, batch_size, precision, bn, bn_data, channels_last=False):
        check_data(x, y)
        if bn not in BN_MODES:
            raise ConfigError(f"bn must be one of {', '.join(BN_MODES)}, got {bn!r}")
        self.model, self.loss_fn, self.precision, self.bn = model, loss_fn, precision, bn
        self.device = model_device(model)
        self.batches = list(chunks(x, y, batch_size, self.device, channels_last))
        self.total = len(x)
        bn_x = x if bn_data is None else bn_data
        self.bn_batches = [xb for xb, _ in chunks(bn_x, bn_x, batch_size, self.device, channels_last)]
        self.norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    @torch.inference_mode()
    def recompute_bn(self) -> None:
        """Exact averages of the batch statistics over ``bn_batches`` (momentum None), like swa_utils.update_bn."""
        momenta = [m.momentum for m in self.norms]
        for m in self.norms:
            m.reset_running_stats()
            m.momentum = None
            m.train()
        try:
            with autocast(self.device, self.precision):
                for xb in self.bn_batches:
                    self.model(xb)
        finally:
            for m, momentum in zip(self.norms, momenta):
                m.momentum = momentum
                m.eval()

    @torch.inference_mode()
    def __call__(self) -> tuple[float, float]:
        if self.bn == "recompute":
            self.recompute_bn()
        loss, correct, counted = 0.0, 0, True
        with autocast(self.device, self.precision):
            for xb, yb in self.batches:
                out = self.model(xb)
                loss += float(self.loss_fn(out, yb)) * len(yb)
                if counted and out.shape[:-1] == yb.shape and not yb.is_floating_point():
                    correct += int((out.argmax(-1) == yb).sum())
                else:
                    counted = False
        per = self.batches[0][1][0].numel()
        return loss / self.total, correct / (self.total * per) if counted else float("nan")


class _Weights:
    """Save every parameter and buffer on entry; restore them exactly on exit."""

    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self):
        self.saved = {k: v.detach().clone() for k, v in self.model.state_dict(keep_vars=True).items()}
        return self

    def __exit__(self, *exc):
        with torch.no_grad():
            for k, v in self.model.state_dict(keep_vars=True).items():
                v.copy_(self.saved[k])
        return False


def _grid(span: float | Sequence[float], steps: int) -> np.ndarray:
    lo, hi = (-float(span), float(span)) if np.isscalar(span) else (float(span[0]), float(span[1]))
    if steps < 1 or hi < lo:
        raise ConfigError(f"need steps >= 1 and an increasing span, got steps={steps}, span=({lo}, {hi})")
    grid = np.linspace(lo, hi, steps)
    grid[np.isclose(grid, 0.0, atol=1e-9)] = 0.0  # the given weights themselves, exactly
    grid[np.isclose(grid, 1.0, atol=1e-9)] = 1.0
    return grid


def _check_direction(model: nn.Module, direction: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    params = list(model.parameters())
    if len(direction) != len(params) or any(d.shape != p.shape for d, p in zip(direction, params)):
        raise ConfigError("a direction must hold one tensor of each parameter's shape, in model.parameters() order")
    return [d.to(device=p.device, dtype=p.dtype) for d, p in zip(direction, params)]


@dataclass
class SurfaceOptions:
    """How the loss is evaluated at every point of a line, plane or interpolation.

    ``loss_line`` and ``loss_plane`` take these as keyword arguments; the result records
    ``precision``, ``bn``, ``ignore_bias_bn``, ``seed``, ``curvature_tol`` and ``hessian_iters``.
    ``ignore_bias_bn`` and ``seed`` shape the default random directions; ``hessian_iters`` > 0
    estimates the Hessian's extreme eigenvalues at the centre on ``hessian_samples`` samples.
    """

    loss_fn: LossFn = mean_cross_entropy
    batch_size: int = 500
    precision: str = "fp32"
    bn: str = "eval"
    bn_data: torch.Tensor | None = None
    ignore_bias_bn: bool = True
    seed: int = 0
    curvature_tol: float = 1e-3
    hessian_iters: int = 0
    hessian_samples: int = 500
    resume: str | Path | None = None  # a file keeping finished grid rows, so an interrupted call continues

    def __post_init__(self) -> None:
        if self.hessian_iters < 0 or self.hessian_samples < 1:
            raise ConfigError("hessian_iters must be >= 0 and hessian_samples >= 1")

    def evaluator(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, channels_last: bool) -> _Evaluator:
        args = (self.loss_fn, self.batch_size, self.precision, self.bn, self.bn_data, channels_last)
        return _Evaluator(model, x, y, *args)


def _surface(model, x, y, dirs, alphas, betas, kind, opts: SurfaceOptions) -> LandscapeResult:
    start = time.perf_counter()
    params = list(model.parameters())
    shape = (len(alphas),) if betas is None else (len(alphas), len(betas))
    loss, acc = np.full(shape, np.nan), np.full(shape, np.nan)
    points = list(np.ndindex(*shape))
    with eval_state(model), _Weights(model), fastest_layout(model, x.shape[1:]) as channels_last:
        ev = opts.evaluator(model, x, y, channels_last)
        rows = GridRows(opts.resume, _grid_key(model, x, y, dirs, alphas, betas, kind, opts), shape)
        hess = _hessian_summary(model, x, y, opts)  # at the centre, before any weight or BN statistic moves
        base = [p.detach().clone() for p in params]
        for idx in tqdm(points, desc=f"landscape {kind}", disable=None):
            if rows.done(idx):
                loss[idx], acc[idx] = rows.value(idx)
                continue
            coords = [alphas[idx[0]]] + ([] if betas is None else [betas[idx[1]]])
            with torch.no_grad():
                for i, p in enumerate(params):
                    p.copy_(base[i])
                    for c, d in zip(coords, dirs):
                        if c:
                            p.add_(d[i], alpha=float(c))
            loss[idx], acc[idx] = ev()
            rows.record(idx, loss[idx], acc[idx])
    return _result(kind, alphas, betas, loss, acc, opts, hess, len(x), start)


def _result(kind, alphas, betas, loss, acc, opts: SurfaceOptions, hess: dict, samples: int, start: float):
    """The result of a surface; the origin is the grid point nearest alpha = beta = 0."""
    origin = tuple(int(np.argmin(np.abs(g))) for g in ([alphas] if betas is None else [alphas, betas]))
    return LandscapeResult(
        kind=kind,
        alphas=alphas,
        betas=np.zeros(0) if betas is None else betas,
        loss=loss,
        accuracy=acc,
        origin_loss=float(loss[origin]),
        origin_accuracy=float(acc[origin]),
        negative_curvature_share=negative_curvature_share(loss, opts.curvature_tol),
        curvature_tol=opts.curvature_tol,
        **hess,
        ignore_bias_bn=opts.ignore_bias_bn,
        bn=opts.bn,
        num_samples=samples,
        precision=opts.precision,
        seed=opts.seed,
        seconds=time.perf_counter() - start,
    )


def _grid_key(model, x, y, dirs, alphas, betas, kind, opts: SurfaceOptions) -> str:
    """What a saved grid row depends on: the weights and buffers at the centre, data, directions, settings."""
    settings = {f.name: getattr(opts, f.name) for f in fields(opts) if f.name not in ("resume", "bn_data", "loss_fn")}
    loss_fn = getattr(opts.loss_fn, "__qualname__", repr(opts.loss_fn))
    state = list(model.state_dict().values())
    extra = [] if opts.bn_data is None else [opts.bn_data]
    betas = np.zeros(0) if betas is None else betas
    return fingerprint(
        kind, sorted(settings.items()), loss_fn, state, x, y, [d for ds in dirs for d in ds], alphas, betas, extra
    )


def _hessian_summary(model, x, y, opts: SurfaceOptions) -> dict:
    out = {"hessian_min": float("nan"), "hessian_max": float("nan"), "hessian_ratio": float("nan")}
    out["hessian_iters"] = opts.hessian_iters
    if opts.hessian_iters > 0:
        n = opts.hessian_samples
        lo, hi = hessian_extremes(model, x[:n], y[:n], loss_fn=opts.loss_fn, iters=opts.hessian_iters, seed=opts.seed)
        out.update(hessian_min=lo, hessian_max=hi, hessian_ratio=abs(lo / hi) if hi else float("nan"))
    return out


def loss_line(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    direction: Sequence[torch.Tensor] | None = None,
    steps: int = 21,
    span: float | Sequence[float] = 1.0,
    **options: Any,
) -> LandscapeResult:
    """Li2018's 1-D plot: L(w + alpha d) for ``steps`` alphas in [-span, span] (or [lo, hi]).

    ``direction`` defaults to ``random_direction(model, seed=seed)``; ``options`` are the
    fields of ``SurfaceOptions``. The model's weights, buffers and train/eval flags are
    restored afterwards.
    """
    opts = SurfaceOptions(**options)
    d = random_direction(model, seed=opts.seed, ignore_bias_bn=opts.ignore_bias_bn) if direction is None else direction
    return _surface(model, x, y, [_check_direction(model, d)], _grid(span, steps), None, "line", opts)


def loss_plane(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    directions: tuple[Sequence[torch.Tensor], Sequence[torch.Tensor]] | None = None,
    steps: int = 21,
    span: float | Sequence[float] = 1.0,
    **options: Any,
) -> LandscapeResult:
    """Li2018's 2-D surface: L(w + alpha d1 + beta d2) on a ``steps`` x ``steps`` grid.

    The directions default to ``random_direction`` with seeds ``seed`` and ``seed + 1``;
    ``options`` are the fields of ``SurfaceOptions``.
    """
    opts = SurfaceOptions(**options)
    if directions is None:
        directions = tuple(
            random_direction(model, seed=opts.seed + i, ignore_bias_bn=opts.ignore_bias_bn) for i in range(2)
        )
    dirs = [_check_direction(model, d) for d in directions]
    grid = _grid(span, steps)
    return _surface(model, x, y, dirs, grid, grid.copy(), "plane", opts)


def loss_interpolation(
    model: nn.Module,
    state_a: Mapping[str, torch.Tensor],
    state_b: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int = 21,
    span: Sequence[float] = (-0.5, 1.5),
    loss_fn: LossFn = mean_cross_entropy,
    batch_size: int = 500,
    precision: str = "fp32",
    bn: str = "eval",
    bn_data: torch.Tensor | None = None,
    curvature_tol: float = 1e-3,
) -> LandscapeResult:
    """Loss along (1 - alpha) a + alpha b between two checkpoints (state_dicts) of ``model``.

    Every floating-point entry is interpolated (parameters, and BN running statistics
    unless ``bn="recompute"`` recomputes them); integer entries (BN's batch counters) come
    from ``a``. Outside [0, 1] an extrapolated BN running variance can turn negative; it is
    clamped at 0 (BN's eps then keeps the division finite). The model's own state is
    restored afterwards.
    """
    own = model.state_dict(keep_vars=True)
    if set(state_a) != set(own) or set(state_b) != set(own):
        raise ConfigError("both checkpoints must be state_dicts of this model (same keys)")
    start = time.perf_counter()
    opts = SurfaceOptions(
        loss_fn=loss_fn,
        batch_size=batch_size,
        precision=precision,
        bn=bn,
        bn_data=bn_data,
        ignore_bias_bn=False,
        curvature_tol=curvature_tol,
    )
    alphas = _grid(span, steps)
    loss, acc = np.full(len(alphas), np.nan), np.full(len(alphas), np.nan)
    with eval_state(model), _Weights(model), fastest_layout(model, x.shape[1:]) as channels_last, torch.no_grad():
        ev = opts.evaluator(model, x, y, channels_last)
        # copies: a checkpoint may be the model's own state_dict, whose tensors alias its weights
        a = {k: state_a[k].detach().to(v.device, copy=True) for k, v in own.items()}
        b = {k: state_b[k].detach().to(v.device, copy=True) for k, v in own.items()}
        for i, alpha in enumerate(tqdm(alphas, desc="interpolation", disable=None)):
            for k, v in own.items():
                if not v.is_floating_point():
                    v.copy_(a[k])
                    continue
                v.copy_(torch.lerp(a[k], b[k], float(alpha)))
                if k.endswith("running_var"):
                    v.clamp_(min=0.0)  # extrapolated variances can turn negative
            loss[i], acc[i] = ev()
    return _result("interpolation", alphas, None, loss, acc, opts, _hessian_summary(model, x, y, opts), len(x), start)
