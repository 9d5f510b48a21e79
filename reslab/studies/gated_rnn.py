"""gated-rnn — the gates of an LSTM or GRU are residual connections through time.

Unrolled over T steps a recurrent net is a T-layer net with shared weights, and a vanilla
tanh RNN suffers what a deep plain net does: the gradient reaching step t is a product of
T − t Jacobians and vanishes exponentially (Bengio1994), so it cannot learn dependencies
across long lags. The LSTM's cell (c_t = f·c_{t−1} + i·g, forget-gate bias 1) and the GRU's
update (h_t = (1 − z)·h_{t−1} + z·h̃) add the previous state back in: a skip connection
through time. Measured on the adding problem (the sum of two marked numbers in a long
sequence; predicting the mean gives MSE 1/6) at several lengths.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..probes import TimeGradients, time_gradients
from ..train import TrainConfig
from ..train.recipe import Recipe
from .base import Study, StudyContext
from .common import eval_data, recipe_text, run_config
from .results import FigureSpec, Series, StudyResult
from .stats import summarize
from .trained import Group, converged, convergence_rule, group_numbers, train_groups
from .verdict import Verdict

TRIVIAL = 1 / 6  # MSE of predicting the mean (1) of the sum of two U(0, 1) numbers
SOLVED = 0.2  # × TRIVIAL: "far below the trivial error"
UNSOLVED = 0.5  # × TRIVIAL: "does not learn it"
GAIN_MSE = 0.01  # converged: the schedule twice as long lowered the MSE by significantly less than this
DECAY_RATIO = 5.0  # the tanh RNN's gradient falls at least this many times faster per step
CELLS = {"tanh": ("rnn_tanh", "tanh RNN"), "gru": ("gru", "GRU"), "lstm": ("lstm", "LSTM")}
CLAIM = (
    "On the adding problem at the longest length, LSTM and GRU reach an error far below the trivial one while "
    "the vanilla tanh RNN does not; the tanh RNN's gradient ‖∂h_T/∂h_t‖ decays exponentially with the lag T − t, "
    "the gated cells' much more slowly."
)
RULE = (
    f"Final training MSE (a diverged run counts as the trivial {TRIVIAL:.3f}), per seed. Precondition: the nets at the "
    f"longest length (what (1) and (2) measure) {convergence_rule(GAIN_MSE, 'MSE')}. Holds when at the longest "
    f"length (1) LSTM and GRU are below {SOLVED:.0%} of the trivial MSE and the tanh RNN above {UNSOLVED:.0%} of it "
    "(means over seeds), and (2) the fitted decay of log10 ‖∂h_T/∂h_t‖ per step of lag, on the trained nets, is at "
    f"least {DECAY_RATIO:g}× steeper for the tanh RNN than for either gated cell."
)
ANCHORS = {
    "source": "Hochreiter1997 (LSTM, adding problem); Cho2014 (GRU); Bengio1994 (vanishing gradients through time)",
    "trivial MSE": f"{TRIVIAL:.3f} (predict 1)",
    "Hochreiter1997": "LSTM solves the adding problem for lags up to 1000; gradient-based RNNs fail beyond ~10",
}


@dataclass(frozen=True)
class Settings:
    lengths: tuple[int, ...]  # sequence lengths T, shortest first
    recipe: Recipe
    hidden: int = 64
    train_size: int = 10_000
    grad_batch: int = 64


SETTINGS = {
    "smoke": Settings(
        lengths=(5, 10),
        hidden=8,
        train_size=256,
        grad_batch=8,
        recipe=Recipe(
            optimizer="adamw", lr=3e-3, steps=6, batch_size=32, schedule="wsd", momentum=0.0, weight_decay=0.0
        ),
    ),
    "quick": Settings(
        # at T = 50 a tanh RNN seed now and then starts to learn late in its schedule, so it was not shown
        # converged on every cell; at T = 100 none does (README)
        lengths=(10, 100),
        hidden=32,
        train_size=5000,
        recipe=Recipe(
            optimizer="adamw",
            lr=1e-2,
            steps=1200,
            batch_size=64,
            schedule="wsd",
            momentum=0.0,
            weight_decay=0.0,
            grad_clip=1.0,
        ),
    ),
    "full": Settings(
        lengths=(50, 100, 200),
        hidden=128,
        train_size=100_000,
        recipe=Recipe(
            optimizer="adamw",
            lr=1e-3,
            steps=20_000,
            batch_size=128,
            schedule="wsd",
            momentum=0.0,
            weight_decay=0.0,
            grad_clip=1.0,
        ),
    ),
}


def label(cell: str, length: int) -> str:
    return f"{CELLS[cell][1]}, T = {length}"


def configs(s: Settings, seeds: Sequence[int], cell: str, length: int) -> list[TrainConfig]:
    data = {"seq_len": length, "train_size": s.train_size, "val_size": 500, "test_size": 500}
    return [
        run_config(
            CELLS[cell][0],
            s.recipe,
            seed,
            {"hidden_size": s.hidden},
            data,
            data="adding",
            eval_train_size=1000,
            log_every=25,
            convergence_check=True,
        )
        for seed in seeds
    ]


def plan(s: Settings, seeds: Sequence[int]) -> list[TrainConfig]:
    return [c for length in s.lengths for cell in CELLS for c in configs(s, seeds, cell, length)]


def gradients(ctx: StudyContext, s: Settings, groups: dict[str, Group], length: int) -> dict[str, list[TimeGradients]]:
    """‖∂h_T/∂h_t‖ against the lag for each trained net at ``length`` (and at initialization)."""
    x, _ = eval_data(groups[label("tanh", length)].records[0].config, "train", s.grad_batch)
    out = {}
    for cell in CELLS:
        records = groups[label(cell, length)].records
        out[cell] = [time_gradients(r.load_model(), x, seed=seed) for seed, r in zip(ctx.seeds, records)]
        for seed, r in zip(ctx.seeds, out[cell]):
            r.save(ctx.data_path(f"{cell}-T{length}-seed{seed}"))
    return out


def judge(groups: dict[str, Group], grads: dict[str, list[TimeGradients]], length: int) -> Verdict:
    v = Verdict()
    at = {cell: groups[label(cell, length)] for cell in CELLS}
    others = [g for g in groups.values() if g not in at.values()]
    converged(v, at.values(), others, tolerance=GAIN_MSE, unit="MSE")  # the nets (1) and (2) are measured on
    solved = all(at[c].summary().mean < SOLVED * TRIVIAL for c in ("gru", "lstm"))
    v.check(
        f"T = {length}: "
        + ", ".join(f"{CELLS[c][1]} {g.text()}" for c, g in at.items())
        + f" (GRU, LSTM < {SOLVED * TRIVIAL:.3f}; tanh RNN > {UNSOLVED * TRIVIAL:.3f})",
        solved and at["tanh"].summary().mean > UNSOLVED * TRIVIAL,
    )
    decay = {c: summarize([r.log10_decay_per_step for r in rs]).mean for c, rs in grads.items()}
    ratio = {c: decay["tanh"] / decay[c] if decay[c] < 0 else float("inf") for c in ("gru", "lstm")}
    v.check(
        "log10 ‖∂h_T/∂h_t‖ per step of lag: "
        + ", ".join(f"{CELLS[c][1]} {d:+.3f}" for c, d in decay.items())
        + f" (tanh RNN ≥ {DECAY_RATIO:g}× steeper: {', '.join(f'{r:.1f}×' for r in ratio.values())})",
        decay["tanh"] < 0 and all(r >= DECAY_RATIO for r in ratio.values()),
    )
    return v


def figures(groups: dict[str, Group], grads: dict[str, list[TimeGradients]], s: Settings) -> list[FigureSpec]:
    length = s.lengths[-1]
    lag = [float(k) for k in grads["tanh"][0].lags]
    series = []
    for cell, rs in grads.items():
        logs = np.log10(np.maximum(np.array([r.norms for r in rs]), 1e-300))
        centre = logs.mean(axis=0)
        series.append(Series(CELLS[cell][1], lag, list(10**centre)))
    lengths = [float(t) for t in s.lengths]
    mse = [
        Series(
            CELLS[c][1],
            lengths,
            [groups[label(c, t)].summary().mean for t in s.lengths],
            [groups[label(c, t)].summary().std for t in s.lengths],
            "solid+markers",
        )
        for c in CELLS
    ]
    return [
        FigureSpec(
            "lines",
            f"Gradient through time after training, T = {length}",
            "lag T − t",
            "‖∂h_T/∂h_t‖",
            series,
            logy=True,
            caption="Geometric mean over seeds.",
        ),
        FigureSpec(
            "lines",
            "Adding problem: final training MSE against length",
            "sequence length T",
            "MSE",
            mse,
            hlines=[{"y": TRIVIAL, "label": "trivial (predict 1)"}],
        ),
    ]


def analyze(ctx: StudyContext, s: Settings) -> StudyResult:
    planned = {label(c, t): configs(s, ctx.seeds, c, t) for t in s.lengths for c in CELLS}
    groups = train_groups(ctx, planned, chance=TRIVIAL, scale=1.0)
    length = s.lengths[-1]
    grads = gradients(ctx, s, groups, length)
    numbers = group_numbers(groups.values(), test=False)
    numbers |= {
        f"{CELLS[c][1]}: log10 gradient per step of lag (T = {length})": summarize(
            [r.log10_decay_per_step for r in rs]
        ).to_dict()
        for c, rs in grads.items()
    }
    return STUDY.result(
        ctx,
        judge(groups, grads, length),
        numbers=numbers,
        key_number=f"T = {length}: " + ", ".join(f"{CELLS[c][1]} MSE {groups[label(c, length)].text()}" for c in CELLS),
        figures=figures(groups, grads, s),
        setup={
            "models": f"tanh RNN, GRU, LSTM (forget-gate bias 1), hidden {s.hidden}, linear readout of the last state",
            "data": f"the adding problem, T = {', '.join(map(str, s.lengths))}, {s.train_size} training sequences",
            "seeds": ctx.seeds,
            "recipe": recipe_text(s.recipe),
        },
        runs=[r.id for g in groups.values() for r in g.records],
    )


STUDY = Study(
    id="gated-rnn",
    title="Gates in LSTM and GRU are skip connections through time",
    claim=CLAIM,
    sources=["Hochreiter1997", "Cho2014", "Bengio1994"],
    anchors=ANCHORS,
    rule=RULE,
    settings=SETTINGS,
    analyze=analyze,
    plan=plan,
    order=120,
)
