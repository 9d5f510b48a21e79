"""Speed of the run store, for ``reslab bench``: what a stored run costs beyond its training."""

from __future__ import annotations

import tempfile
import time

from ..benchmark import BenchContext, Measurement
from ..train import Recipe, TrainConfig
from .store import RunStore


def _store_overhead(runs: int = 5) -> tuple[float, float]:
    """Seconds a store adds per run (index, locks, config/env files) beyond train() itself, and train()'s own."""
    with tempfile.TemporaryDirectory() as d:
        store = RunStore(d)
        extra, own = [], []
        for seed in range(runs + 1):
            cfg = TrainConfig(
                "mlp_plain",
                "identity",
                model_options={"depth": 2, "width": 8},
                data_options={"train_size": 64, "val_size": 16, "test_size": 16, "dim": 4},
                recipe=Recipe(steps=2, batch_size=16),
                eval_train_size=16,
                seed=seed,
            )
            t0 = time.perf_counter()
            record = store.run(cfg)
            if seed:  # the first run pays one-off imports
                extra.append(time.perf_counter() - t0 - record.result["wall_time_s"])
                own.append(record.result["wall_time_s"])
        return sum(extra) / len(extra), sum(own) / len(own)


def bench(ctx: BenchContext) -> list[Measurement]:
    overhead, own = _store_overhead()
    return [
        Measurement(
            "runs: store overhead per run (a 2-step run of a tiny MLP)",
            round(overhead, 3),
            "s",
            target="< 0.5 s",
            passed=overhead < 0.5,
            reference=f"train() alone {own:.3f} s",
            ratio=round(overhead / own, 2),
        )
    ]
