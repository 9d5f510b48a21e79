"""Lesions and reordering at test time (Veit2016 Fig. 3, 4 and 5).

Deleting a block sets it to ``skip-only``: it outputs its shortcut path alone (for a plain
block of unchanged shape, the identity; for a shape-changing plain block, its
``lesion_map``). A ResNet barely notices the loss of one block, a plain net collapses.

Efficiency: in eval mode, every block's input is computed once per evaluation batch and
kept; deleting block j then costs only the blocks after j (the prefix is never
recomputed). All n single deletions cost n(n+1)/2 branch evaluations instead of the n^2 of
one full forward per deletion plus the baseline, about half (``lesion_cost`` measures both
in counts and wall-clock).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import ConfigError
from ..models import Block, block_modes
from ..train.task import autocast
from ._evaluation import check_data, chunks, eval_state, fastest_layout, model_device, require_block_net
from .result import ProbeResult


@contextmanager
def count_branch_calls(blocks: Sequence[Block]) -> Iterator[list[int]]:
    """Count how often any block's branch runs (the cost that lesion caching saves)."""
    counter = [0]

    def hook(module, args):
        counter[0] += 1

    handles = [block.branch.register_forward_pre_hook(hook) for block in blocks]
    try:
        yield counter
    finally:
        for handle in handles:
            handle.remove()


def _block_inputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """acts[i] = input of block i; acts[n] = output of the last block."""
    acts = [model.stem(x)]
    for block in model.blocks:
        acts.append(block(acts[-1]))
    return acts


def _run(blocks: Sequence[Block], h: torch.Tensor, order: Sequence[int], deleted: frozenset[int]) -> torch.Tensor:
    """Run the blocks at ``order`` (block indices) on h, deleting those in ``deleted``."""
    for idx in order:
        block = blocks[idx]
        if idx in deleted:
            with block_modes([block], "skip-only"):
                h = block(h)
        else:
            h = block(h)
    return h


def kendall_tau(order: Sequence[int]) -> float:
    """Kendall's tau between ``order`` and the original order 0..n-1 (1: unchanged)."""
    n = len(order)
    if n < 2:
        return 1.0
    discordant = sum(1 for i, j in itertools.combinations(range(n), 2) if order[i] > order[j])
    pairs = n * (n - 1) / 2
    return 1.0 - 2.0 * discordant / pairs


def deletable_blocks(model: nn.Module) -> list[int]:
    """Blocks that have a ``skip-only`` path (all but shape-changing plain blocks without a lesion map)."""
    require_block_net(model)
    return [i for i, b in enumerate(model.blocks) if b.can_skip]


def swappable_groups(model: nn.Module, example: torch.Tensor) -> list[list[int]]:
    """Groups of block positions whose blocks map one shape to the same shape (may be swapped)."""
    with torch.no_grad(), eval_state(model):
        acts = _block_inputs(model, example[:1].to(model_device(model)))
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, block in enumerate(model.blocks):
        shape = tuple(acts[i].shape[1:])
        if not block.changes_shape and shape == tuple(acts[i + 1].shape[1:]):
            groups.setdefault(shape, []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def top1_wrong(logits: torch.Tensor, y: torch.Tensor) -> int:
    """Number of wrong top-1 predictions (any leading shape: per image or per token)."""
    return int((logits.argmax(-1) != y).sum())


def _intact_and_single_deletions(
    model: nn.Module, acts: list[torch.Tensor], deletable: Sequence[int]
) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """Logits of the intact net, and with each block of ``deletable`` deleted in turn, from
    the cached block inputs ``acts``: deleting block j runs only the blocks after it."""
    blocks, n = list(model.blocks), len(model.blocks)
    single = {j: model.head(_run(blocks, acts[j], range(j, n), frozenset([j]))) for j in deletable}
    return model.head(acts[n]), single


def lesion_predictions(
    model: nn.Module, x: torch.Tensor, *, cached: bool = True, batch_size: int = 256, precision: str = "fp32"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-1 predictions of the intact net and with each block deleted in turn.

    Returns (baseline, per_block): per_block[j] holds the predictions with block j deleted
    (-1 where block j cannot be deleted), one per sample (or per token for token models).
    ``cached=False`` is the naive reference: one full ``model(x)`` per deletion.
    """
    deletable = deletable_blocks(model)
    blocks, n = list(model.blocks), len(model.blocks)
    device = model_device(model)
    base, per_block = [], []
    with torch.inference_mode(), eval_state(model), fastest_layout(model, x.shape[1:]) as channels_last:
        for xb, _ in chunks(x, x, batch_size, device, channels_last):
            with autocast(device, precision):
                if cached:
                    intact, single = _intact_and_single_deletions(model, _block_inputs(model, xb), deletable)
                else:
                    intact, single = model(xb), {}
                    for j in deletable:
                        with block_modes([blocks[j]], "skip-only"):
                            single[j] = model(xb)
            base.append(intact.argmax(-1))
            preds = torch.full((n, *base[-1].shape), -1, dtype=torch.long, device=device)
            for j, logits in single.items():
                preds[j] = logits.argmax(-1)
            per_block.append(preds)
    return torch.cat(base, 0).cpu(), torch.cat(per_block, 1).cpu()


@dataclass
class LesionResult(ProbeResult):
    """Test error (fractions in [0, 1]) after deleting or reordering blocks.

    single_error[j]: block j deleted (NaN where it cannot be); downsampling[j]: block j
    changes the shape. delete_error[i, d]: draw d of delete_k[i] random blocks deleted
    (which ones: delete_blocks[i][d]). reorder_error[i, d] / reorder_tau[i, d]: after
    reorder_k[i] random swaps of same-shape blocks, the error and Kendall's tau between the
    original and resulting order (reorder_orders[i, d]: the block at each position).
    median_single_increase: median over deletable, non-downsampling blocks of
    single_error - baseline_error (Veit2016's "barely hurts").
    branch_evals / naive_branch_evals: branch evaluations per evaluation batch spent on the
    baseline plus all single deletions, cached vs one full forward per deletion.
    """

    num_blocks: int
    num_samples: int
    baseline_error: float
    single_error: np.ndarray
    downsampling: np.ndarray
    has_shortcut: np.ndarray
    median_single_increase: float
    max_single_error_same_shape: float
    delete_k: np.ndarray
    delete_blocks: list[list[list[int]]]
    delete_error: np.ndarray
    reorder_k: np.ndarray
    reorder_orders: np.ndarray
    reorder_error: np.ndarray
    reorder_tau: np.ndarray
    draws: int
    branch_evals: int
    naive_branch_evals: int
    precision: str
    seed: int
    seconds: float


def lesion_study(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    delete_k: Sequence[int] | None = None,
    reorder_k: Sequence[int] | None = None,
    draws: int = 5,
    batch_size: int = 256,
    precision: str = "fp32",
    seed: int = 0,
) -> LesionResult:
    """Veit2016 Fig. 3-5: single deletions, k random deletions, k random swaps.

    ``delete_k`` and ``reorder_k`` default to 1..n//2 (deletions: at most the number of
    deletable blocks; pass [] to skip either); ``draws``
    random draws each. Random choices depend on ``seed`` only. One pass over the data:
    each batch's block inputs are computed once and reused by every lesion.
    """
    require_block_net(model)
    check_data(x, y)
    if draws < 1:
        raise ConfigError(f"draws must be >= 1, got {draws}")
    start = time.perf_counter()
    n = len(model.blocks)
    deletable = deletable_blocks(model)
    delete_k = list(range(1, min(n // 2, len(deletable)) + 1)) if delete_k is None else list(delete_k)
    reorder_k = list(range(1, n // 2 + 1)) if reorder_k is None else list(reorder_k)
    if any(k < 1 or k > len(deletable) for k in delete_k):
        raise ConfigError(f"delete_k must lie in 1..{len(deletable)} (the deletable blocks), got {delete_k}")
    if any(k < 1 for k in reorder_k):
        raise ConfigError(f"reorder_k must be >= 1, got {reorder_k}")
    rng = np.random.default_rng(seed)
    deletions = [[frozenset(rng.choice(deletable, k, replace=False).tolist()) for _ in range(draws)] for k in delete_k]
    pairs = [p for g in swappable_groups(model, x) for p in itertools.combinations(g, 2)]
    if not pairs:
        reorder_k = []
    orders = [[_random_order(rng, n, pairs, k) for _ in range(draws)] for k in reorder_k]
    wrong = _count_wrong(model, x, y, deletable, deletions, orders, draws, batch_size, precision)

    total = len(x)
    single = np.full(n, np.nan)
    single[deletable] = wrong["single"][deletable] / total
    downsampling = np.array([b.changes_shape for b in model.blocks], dtype=bool)
    baseline = wrong["base"] / total
    same_shape = [j for j in deletable if not downsampling[j]]
    return LesionResult(
        num_blocks=n,
        num_samples=total,
        baseline_error=baseline,
        single_error=single,
        downsampling=downsampling,
        has_shortcut=np.array([b.has_shortcut for b in model.blocks], dtype=bool),
        median_single_increase=float(np.median(single[same_shape]) - baseline) if same_shape else float("nan"),
        max_single_error_same_shape=float(np.max(single[same_shape])) if same_shape else float("nan"),
        delete_k=np.array(delete_k, dtype=int),
        delete_blocks=[[sorted(deleted) for deleted in row] for row in deletions],
        delete_error=wrong["delete"] / total,
        reorder_k=np.array(reorder_k, dtype=int),
        reorder_orders=np.array(orders, dtype=int).reshape(len(reorder_k), draws, n),
        reorder_error=wrong["reorder"] / total,
        reorder_tau=np.array([[kendall_tau(o) for o in row] for row in orders]).reshape(len(reorder_k), draws),
        draws=draws,
        branch_evals=wrong["branch_evals"],
        naive_branch_evals=n + len(deletable) * (n - 1),  # baseline + one full forward per deletion
        precision=precision,
        seed=seed,
        seconds=time.perf_counter() - start,
    )


def _random_order(rng: np.random.Generator, n: int, pairs: Sequence[tuple[int, int]], swaps: int) -> list[int]:
    """The block order 0..n-1 after ``swaps`` swaps of random pairs from ``pairs``."""
    order = list(range(n))
    for _ in range(swaps):
        i, j = pairs[rng.integers(len(pairs))]
        order[i], order[j] = order[j], order[i]
    return order


def _count_wrong(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    deletable: Sequence[int],
    deletions: Sequence[Sequence[frozenset[int]]],
    orders: Sequence[Sequence[list[int]]],
    draws: int,
    batch_size: int,
    precision: str,
) -> dict[str, Any]:
    """Wrong predictions, summed over the data, of every lesion of ``lesion_study``.

    Each batch's block inputs are computed once; a lesion then runs only the blocks from
    the first one it changes. ``branch_evals`` counts the branches run for the intact net
    and the single deletions of one batch.
    """
    blocks, n = list(model.blocks), len(model.blocks)
    device = model_device(model)
    wrong = {
        "base": 0,
        "single": np.zeros(n),
        "delete": np.zeros((len(deletions), draws)),
        "reorder": np.zeros((len(orders), draws)),
        "branch_evals": -1,
    }
    with (
        torch.inference_mode(),
        eval_state(model),
        fastest_layout(model, x.shape[1:]) as channels_last,
        autocast(device, precision),
    ):
        batches = list(chunks(x, y, batch_size, device, channels_last))
        for b, (xb, yb) in enumerate(tqdm(batches, desc="lesions", disable=None)):
            with count_branch_calls(blocks) as calls:
                acts = _block_inputs(model, xb)
                intact, single = _intact_and_single_deletions(model, acts, deletable)
                wrong["base"] += top1_wrong(intact, yb)
                for j, logits in single.items():
                    wrong["single"][j] += top1_wrong(logits, yb)
            if b == 0:
                wrong["branch_evals"] = calls[0]
            for i, row in enumerate(deletions):
                for d, deleted in enumerate(row):
                    first = min(deleted)
                    wrong["delete"][i, d] += top1_wrong(
                        model.head(_run(blocks, acts[first], range(first, n), deleted)), yb
                    )
            for i, row in enumerate(orders):
                for d, order in enumerate(row):
                    first = next((p for p in range(n) if order[p] != p), n)
                    wrong["reorder"][i, d] += top1_wrong(
                        model.head(_run(blocks, acts[first], order[first:], frozenset())), yb
                    )
            del acts, single
    return wrong


def lesion_cost(
    model: nn.Module, x: torch.Tensor, *, batch_size: int = 256, repeats: int = 3, precision: str = "fp32"
) -> dict[str, float]:
    """Cost of the baseline plus all single deletions: cached vs one full forward per deletion.

    Both are timed ``repeats`` times, alternating, and the fastest of each is kept (the
    least disturbed by other work on the machine). Branch evaluations are counted with
    hooks. Returns counts, seconds and both ratios (cached / naive).
    """
    require_block_net(model)
    timings: dict[bool, list[float]] = {True: [], False: []}
    counts: dict[bool, int] = {}
    for _ in range(max(1, repeats)):
        for cached in (True, False):
            with count_branch_calls(list(model.blocks)) as calls:
                t = time.perf_counter()
                lesion_predictions(model, x, cached=cached, batch_size=batch_size, precision=precision)
                timings[cached].append(time.perf_counter() - t)
            counts[cached] = calls[0]
    cached_s, naive_s = min(timings[True]), min(timings[False])
    return {
        "blocks": len(model.blocks),
        "samples": len(x),
        "cached_branch_evals": counts[True],
        "naive_branch_evals": counts[False],
        "count_ratio": counts[True] / counts[False],
        "cached_seconds": cached_s,
        "naive_seconds": naive_s,
        "wall_ratio": cached_s / naive_s,
    }
