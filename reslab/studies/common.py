"""Helpers several studies share: run configs, per-seed numbers, curves."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..data import load_dataset
from ..data.loader import eval_batches
from ..runs.store import RunRecord
from ..train import TrainConfig
from ..train.recipe import Recipe
from .results import FigureSpec, Series
from .stats import Summary, summarize

CHANCE_10 = 90.0  # % error of guessing among 10 classes


def percent(value: float | None) -> float:
    """A stored error fraction as a percentage (NaN when absent)."""
    return math.nan if value is None else 100.0 * float(value)


def final_error(record: RunRecord, key: str = "train_error", diverged_as: float = CHANCE_10) -> float:
    """A run's final error in %; a diverged run counts as chance (the papers' "fail")."""
    result = record.result or {}
    if result.get("status") == "diverged":
        return diverged_as
    return percent(result.get(key))


def errors(records: Sequence[RunRecord], key: str = "train_error") -> list[float]:
    return [final_error(r, key) for r in records]


def summary_dict(values: Sequence[float]) -> dict[str, float]:
    s = summarize(values)
    return {"mean": round(s.mean, 3), "std": round(s.std, 3), "n": s.n}


def describe(s: Summary, unit: str = "%") -> str:
    return f"{s.mean:.1f} ± {s.std:.1f}{unit}" if s.n > 1 else f"{s.mean:.1f}{unit}"


def mean_curve(
    records: Sequence[RunRecord], kind: str, key: str, scale: float = 100.0
) -> tuple[list[float], list[float], list[float]]:
    """Steps, mean and std over seeds of ``key`` in the metrics lines of ``kind``, times ``scale`` (% by default).

    Only steps every seed logged are kept (a diverged seed's curve stops early; the
    mean is then over the seeds still running)."""
    per_step: dict[int, list[float]] = {}
    for record in records:
        for line in record.metrics():
            if line.get("kind") == kind and isinstance(line.get(key), int | float):
                per_step.setdefault(int(line["step"]), []).append(scale * line[key])
    steps = sorted(per_step)
    means = [float(np.mean(per_step[s])) for s in steps]
    stds = [float(np.std(per_step[s], ddof=1)) if len(per_step[s]) > 1 else 0.0 for s in steps]
    return [float(s) for s in steps], means, stds


def training_curves(label: str, records: Sequence[RunRecord], color: str | None = None) -> list[Series]:
    """He2015 Fig. 1 style: training error (solid, train-mode batches) and validation error (dashed)."""
    steps, train, train_std = mean_curve(records, "train", "train_error")
    out = [Series(f"{label} train", steps, train, train_std, "solid", color)]
    vsteps, val, val_std = mean_curve(records, "eval", "val_error")
    if vsteps:
        out.append(Series(f"{label} val", vsteps, val, val_std, "dashed", color))
    return out


def run_config(
    model: str,
    recipe: Recipe,
    seed: int,
    model_options: dict[str, Any] | None = None,
    data_options: dict[str, Any] | None = None,
    data: str = "fashion-mnist",
    **fields: Any,
) -> TrainConfig:
    """A training run on Fashion-MNIST (the default) or ``data``, built the same way by every study.

    ``data_options`` go to ``load_dataset`` (train_size, val_size, test_size, image_size);
    ``fields`` are other ``TrainConfig`` fields (eval_every, eval_train_size, log_every).
    """
    return TrainConfig(
        model=model,
        data=data,
        recipe=recipe,
        model_options=model_options or {},
        data_options={k: v for k, v in (data_options or {}).items() if v is not None},
        seed=seed,
        **fields,
    )


def recipe_text(recipe: Recipe) -> str:
    """The recipe in one line for the report's "what was run"."""
    d = recipe.to_dict()
    length = f"{d['steps']} steps" if d.get("steps") else f"{d['epochs']} epochs"
    return (
        f"{d['optimizer'].upper()} lr {d['lr']} (momentum {d['momentum']}), {d['schedule']} schedule, "
        f"warm-up {d['warmup']}, weight decay {d['weight_decay']}, batch {d['batch_size']}, {length}, "
        f"precision {d['precision']}"
    )


def eval_data(config: TrainConfig, split: str = "test", n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` examples of a run's ``split``, normalized exactly as the run saw them."""
    dataset = load_dataset(config.data, config.data_dir, **config.data_options)
    part = getattr(dataset, split)
    part = part.take(slice(0, n)) if n else part
    return next(eval_batches(part, len(part), mean=dataset.mean, std=dataset.std))


def error_bars(
    title: str, names: Sequence[str], train: Sequence[Sequence[float]], test: Sequence[Sequence[float]], **extra: Any
) -> FigureSpec:
    """Final training and test error per net or variant (mean ± std over seeds), as grouped bars."""
    xs = list(range(len(names)))

    def series(label: str, values: Sequence[Sequence[float]]) -> Series:
        stats = [summarize(v) for v in values]
        return Series(label, xs, [s.mean for s in stats], [s.std if s.n > 1 else 0.0 for s in stats])

    return FigureSpec(
        "bars",
        title,
        "",
        "error (%)",
        [series("training error", train), series("test error", test)],
        categories=list(names),
        **extra,
    )
