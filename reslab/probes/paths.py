"""The ensemble view of Veit2016: a ResNet as 2^n paths, and which path lengths carry the gradient.

Reproduces Veit2016 Fig. 6: (a) the distribution of path lengths, (b) the gradient magnitude
that reaches the input along paths of each length, (c) the total contribution per length
(count x magnitude), from which the *effective range* follows: the shortest interval of
lengths that carries a stated share (default 90%) of the total gradient.

How blocks are counted. Every block with a shortcut of any kind is a fork with two ways
through it (branch or shortcut), so n = the number of such blocks and there are 2^n
paths. As in Veit2016 (all 54 blocks of ResNet-110), downsampling blocks count too,
whatever their shortcut (option A, a projection, a gate): a path that takes their
shortcut does not pass their branch, so it is one block shorter. Blocks without a
shortcut (plain blocks, e.g. a DenseNet transition) are not forks: every path passes
through them and they add nothing to its length. A plain net has n = 0 and one path.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..errors import ConfigError
from ..models import block_modes
from ._evaluation import chunks, eval_state, model_device, require_block_net
from .result import ProbeResult

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def summed_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy summed over samples (and tokens), so each sample's gradient is its own loss's."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1), reduction="sum")


def path_counts(n: int) -> list[int]:
    """Exact number of paths of each length k = 0..n through n forks: C(n, k), summing to 2^n."""
    if n < 0:
        raise ConfigError(f"the number of blocks must be >= 0, got {n}")
    return [math.comb(n, k) for k in range(n + 1)]


def skippable_blocks(model: nn.Module) -> list[int]:
    """Indices of the blocks that are forks (have a shortcut of any kind); see the module docstring."""
    require_block_net(model)
    return [i for i, block in enumerate(model.blocks) if block.has_shortcut]


def shortest_interval(weights: Sequence[float], share: float) -> tuple[int, int, float]:
    """The shortest [lo, hi] (inclusive) whose weights hold at least ``share`` of the total.

    Ties go to the interval holding more weight. Returns (lo, hi, share actually held).
    """
    if not 0 < share <= 1:
        raise ConfigError(f"share must be in (0, 1], got {share}")
    w = np.asarray(weights, dtype=np.float64)
    total = w.sum()
    if not np.isfinite(total) or total <= 0:
        return 0, len(w) - 1, float("nan")
    cum = np.concatenate([[0.0], np.cumsum(w / total)])
    need = share - 1e-12
    best: tuple[int, float, int, int] | None = None  # (width, -held, lo, hi)
    for lo in range(len(w)):
        hi = int(np.searchsorted(cum, cum[lo] + need, side="left")) - 1
        if hi >= len(w):
            break
        hi = max(hi, lo)
        key = (hi - lo, -(cum[hi + 1] - cum[lo]), lo, hi)
        if best is None or key < best:
            best = key
    assert best is not None
    return best[2], best[3], float(-best[1])


class PathSampler:
    """One batch's forward pass, cached, then the backward signal along any chosen path.

    For every fork block the forward is recorded twice from the same (detached) input: in
    ``grad-branch-only`` and ``grad-skip-only`` mode. Both give the full forward values, so
    a path is a choice, per block, of which recorded graph the gradient goes back through;
    no forward is ever recomputed. Blocks without a shortcut are recorded in ``full`` mode.
    The backward signal starts as d(loss)/d(last block's output) of the full forward.
    Each path then costs one vector-Jacobian product per block (a cheap one for every
    shortcut). Samples are not vmapped together: ``is_grads_batched`` was slower than this
    loop on CPU. The model is used in the mode it is in (``path_gradients``
    puts it in eval mode); it stays untouched.
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn = summed_cross_entropy):
        require_block_net(model)
        self.blocks = list(model.blocks)
        self.forks = [b.has_shortcut for b in self.blocks]
        self.inputs: list[torch.Tensor] = []
        self.branch_out: list[torch.Tensor | None] = []
        self.skip_out: list[torch.Tensor | None] = []
        with torch.enable_grad():
            h = model.stem(x).detach()
            for block, fork in zip(self.blocks, self.forks):
                xi = h.detach().requires_grad_()
                if fork:
                    with block_modes([block], "grad-branch-only"):
                        out_b = block(xi)
                    with block_modes([block], "grad-skip-only"):
                        out_s = block(xi)
                else:
                    with block_modes([block], "full"):
                        out_b = block(xi)
                    out_s = None
                self.inputs.append(xi)
                self.branch_out.append(out_b)
                self.skip_out.append(out_s)
                h = out_b
            last = h.detach().requires_grad_()
            loss = loss_fn(model.head(last), y)
            (self.upstream,) = torch.autograd.grad(loss, last)

    def input_gradient(self, branch: Collection[int]) -> torch.Tensor:
        """Gradient at the first block's input along the path through the branches of ``branch``.

        ``branch`` holds block indices; every other fork passes the signal through its
        shortcut only. Indices of non-fork blocks are ignored (the signal always passes them).
        """
        g = self.upstream
        for i in range(len(self.blocks) - 1, -1, -1):
            out = self.branch_out[i] if (i in branch or not self.forks[i]) else self.skip_out[i]
            (grad,) = torch.autograd.grad(out, self.inputs[i], g, retain_graph=True, allow_unused=True)
            g = grad if grad is not None else torch.zeros_like(self.inputs[i])
        return g


@dataclass
class PathResult(ProbeResult):
    """Veit2016 Fig. 6 for one net: path counts, gradient magnitude and contribution per length.

    ``samples[k, s]`` is the gradient norm at the first block's input of sample s along a
    random path of length k (the mean over images of each image's gradient norm);
    ``magnitude`` is its mean over samples (Veit2016's expected magnitude) and
    ``median_magnitude`` its median. ``counts`` are exact integers (in the .json file).
    """

    num_blocks: int
    skippable: list[int]
    lengths: np.ndarray
    counts: list[int]
    path_share: np.ndarray
    log10_count: np.ndarray
    samples: np.ndarray
    magnitude: np.ndarray
    median_magnitude: np.ndarray
    log10_contribution: np.ndarray
    contribution_share: np.ndarray
    share: float
    effective_range: list[int]
    effective_share: float
    effective_path_share: float
    path_range: list[int]
    path_range_share: float
    mean_path_length: float
    log10_decay_per_block: float
    decay_r2: float
    num_samples: int
    num_images: int
    batch_size: int
    seed: int
    seconds: float


def _decay_fit(lengths: np.ndarray, magnitude: np.ndarray) -> tuple[float, float]:
    """Slope of log10(magnitude) against length, and the fit's R^2 (exponential decay -> straight line)."""
    ok = np.isfinite(magnitude) & (magnitude > 0)
    if ok.sum() < 2:
        return float("nan"), float("nan")
    k, m = lengths[ok].astype(float), np.log10(magnitude[ok])
    slope, intercept = np.polyfit(k, m, 1)
    resid = m - (slope * k + intercept)
    ss = ((m - m.mean()) ** 2).sum()
    return float(slope), float(1 - (resid**2).sum() / ss) if ss > 0 else 1.0


def path_gradients(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    samples_per_length: int = 32,
    batch_size: int = 16,
    share: float = 0.9,
    loss_fn: LossFn = summed_cross_entropy,
    seed: int = 0,
) -> PathResult:
    """Veit2016 Fig. 6: gradient magnitude and total contribution of paths of each length.

    For every length k = 0..n, ``samples_per_length`` random paths are drawn (k fork blocks
    chosen uniformly, the signal passes their branches and every other fork's shortcut).
    ``x``/``y`` are split into batches of ``batch_size``, each serving its share of the
    samples. Returns a ``PathResult`` with the effective range for ``share``.
    """
    require_block_net(model)
    if samples_per_length < 1:
        raise ConfigError(f"samples_per_length must be >= 1, got {samples_per_length}")
    if len(x) != len(y) or len(x) == 0:
        raise ConfigError(f"need as many targets as inputs, and at least one (got {len(x)} and {len(y)})")
    start = time.perf_counter()
    forks = skippable_blocks(model)
    rng = np.random.default_rng(seed)
    # draw every path up front, so the result depends on the seed alone, not on batching
    paths = [
        [set(rng.choice(forks, size=k, replace=False).tolist()) for _ in range(samples_per_length)]
        for k in range(len(forks) + 1)
    ]
    samples = _gradient_norms_along(paths, model, x, y, batch_size, loss_fn)
    return PathResult(
        num_blocks=len(forks),
        skippable=forks,
        samples=samples,
        median_magnitude=np.median(samples, axis=1),
        **_per_length(samples, share),
        num_samples=samples_per_length,
        num_images=len(x),
        batch_size=batch_size,
        seed=seed,
        seconds=time.perf_counter() - start,
    )


def _gradient_norms_along(
    paths: list[list[set[int]]], model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, loss_fn: LossFn
) -> np.ndarray:
    """samples[k, s]: the input-gradient norm along ``paths[k][s]``, sample s served by batch s mod batches.

    Each batch's forward is computed once (eval mode) and serves its share of the samples,
    so samples see different batches as in Veit2016.
    """
    lengths, per_length = len(paths), len(paths[0])
    samples = np.full((lengths, per_length), np.nan)
    batches = list(chunks(x, y, batch_size, model_device(model)))
    with eval_state(model), tqdm(total=lengths * per_length, desc="paths", disable=None) as bar:
        for b, (xb, yb) in enumerate(batches):
            sampler = PathSampler(model, xb, yb, loss_fn)
            for k in range(lengths):
                for s in range(b, per_length, len(batches)):
                    g = sampler.input_gradient(paths[k][s])
                    samples[k, s] = g.flatten(1).norm(dim=1).mean().item()
                    bar.update()
            del sampler
    return samples


def _per_length(samples: np.ndarray, share: float) -> dict:
    """Counts, mean magnitude and contribution per path length, the ranges holding ``share``, the decay fit."""
    n = len(samples) - 1
    counts = path_counts(n)
    lengths = np.arange(n + 1)
    log_count = np.array([math.log(c) for c in counts])
    magnitude = samples.mean(axis=1)
    with np.errstate(divide="ignore"):
        log_contrib = log_count + np.log(magnitude)
    finite = np.isfinite(log_contrib)
    top = log_contrib[finite].max() if finite.any() else 0.0
    weights = np.where(finite, np.exp(log_contrib - top), 0.0)
    contribution_share = weights / weights.sum() if weights.sum() > 0 else weights
    lo, hi, held = shortest_interval(contribution_share, share)
    path_share = np.exp(log_count - n * math.log(2))
    plo, phi, pheld = shortest_interval(path_share, share)
    slope, r2 = _decay_fit(lengths, magnitude)
    return dict(
        lengths=lengths,
        counts=counts,
        path_share=path_share,
        log10_count=log_count / math.log(10),
        magnitude=magnitude,
        log10_contribution=log_contrib / math.log(10),
        contribution_share=contribution_share,
        share=share,
        effective_range=[lo, hi],
        effective_share=held,
        effective_path_share=sum(counts[lo : hi + 1]) / 2**n,
        path_range=[plo, phi],
        path_range_share=pheld,
        mean_path_length=n / 2,
        log10_decay_per_block=slope,
        decay_r2=r2,
    )
