"""Trained nets grouped the way a study compares them: final numbers per seed, the
convergence check, and the figures every such comparison draws.

A ``Group`` is one net or variant over seeds. Its final training error is measured in eval
mode on a fixed training subset; a run that diverged counts as ``chance`` (the papers'
"fail"). Every run is trained with ``convergence_check``: its result also holds the same run
with a schedule half as long (``train/shorter.py``), and ``converged`` turns that into the
precondition of every claim about trained nets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..runs.store import RunRecord
from ..train import TrainConfig
from .base import StudyContext
from .common import CHANCE_10, error_bars, summary_dict, training_curves
from .results import FigureSpec
from .stats import Summary, below, summarize
from .verdict import Verdict

GAIN_POINTS = 2.0  # percentage points the schedule twice as long may still gain: "converged"
ALPHA = 0.05  # ... significantly less than that, over seeds


@dataclass
class Group:
    """The runs of one net or variant, one per seed; numbers are % error (or the task's MSE)."""

    label: str
    records: list[RunRecord]
    chance: float = CHANCE_10  # what a diverged run counts as
    scale: float = 100.0  # stored fractions to %, or 1 for an MSE

    def final(self, key: str = "train_error") -> list[float]:
        return [self._value(r.result or {}, key) for r in self.records]

    def half(self, key: str = "train_error") -> list[float]:
        """The same runs with the schedule half as long (NaN where a run has no such result)."""
        out = []
        for r in self.records:
            result = r.result or {}
            half = result.get("half_schedule")
            if half is None and result.get("status") == "diverged":
                half = {"status": "diverged"}  # it diverged before the shorter schedule parted from it
            out.append(math.nan if half is None else self._value(half, key))
        return out

    def gains(self) -> list[float]:
        """Per seed, what the schedule twice as long gained (half − full); NaN without the check."""
        return [h - f for h, f in zip(self.half(), self.final())]

    def gain(self) -> float:
        return summarize(self.gains()).mean

    def summary(self, key: str = "train_error") -> Summary:
        return summarize(self.final(key))

    def diverged(self) -> int:
        """How many of the runs diverged (each counts as ``chance``)."""
        return sum((r.result or {}).get("status") == "diverged" for r in self.records)

    def text(self, key: str = "train_error") -> str:
        s = self.summary(key)
        unit = "%" if self.scale == 100.0 else ""
        digits = 1 if self.scale == 100.0 else 3
        spread = f" ± {s.std:.{digits}f}" if s.n > 1 else ""
        n = self.diverged()
        diverged = f" ({n} of {len(self.records)} diverged)" if n else ""
        return f"{s.mean:.{digits}f}{spread}{unit}{diverged}"

    def _value(self, result: dict, key: str) -> float:
        if result.get("status") == "diverged":
            return self.chance
        value = result.get(key)
        return math.nan if value is None else self.scale * float(value)


def train_groups(
    ctx: StudyContext, planned: Mapping[str, Sequence[TrainConfig]], chance: float = CHANCE_10, scale: float = 100.0
) -> dict[str, Group]:
    """Train (or fetch) every group's runs; ``planned`` maps a label to its configs (one per seed)."""
    return {label: Group(label, ctx.train(configs, label), chance, scale) for label, configs in planned.items()}


def convergence_rule(tolerance: float = GAIN_POINTS, unit: str = "points") -> str:
    """The precondition ``converged`` checks, as each study's rule states it."""
    return (
        f"converged (the schedule twice as long lowered the final training error by significantly less than "
        f"{tolerance:g} {unit}, one-sided t-test over seeds; or every seed already ends below {tolerance:g} {unit}, "
        "so that no further training can lower it that much)"
    )


def converged(
    v: Verdict,
    decisive: Iterable[Group],
    others: Iterable[Group] = (),
    tolerance: float = GAIN_POINTS,
    unit: str = "points",
) -> bool | None:
    """The precondition of a claim about trained nets: each ``decisive`` group converged, i.e.
    further training cannot lower its final training error by ``tolerance``. Measured: the
    schedule twice as long lowered it by significantly less than ``tolerance`` (one-sided t-test
    over seeds, p < ``ALPHA``: a net that some seeds still train is not converged). Bounded: an
    error cannot fall below zero, so a group whose every seed ends below ``tolerance`` has less
    than that left to gain, whatever its shorter schedule did. Decisive are the nets whose
    further training could overturn a check: training longer lowers a net's error, so for "A
    trains worse than B" that is A (B's further training only widens the gap); a net a probe
    analyses after training is decisive too. The ``others``' gains are listed beside them.
    """
    decisive, others = list(decisive), list(others)
    tests = {g.label: below(g.gains(), tolerance) for g in decisive}
    near_zero = {g.label: bool(g.final()) and all(0 <= x < tolerance for x in g.final()) for g in decisive}
    outcomes = [True if near_zero[k] else t.outcome(ALPHA) for k, t in tests.items()]
    for g, passed in zip(decisive, outcomes):
        if not passed:
            half, full = summarize(g.half()).mean, g.summary().mean
            v.notes.append(
                f"{g.label} has not converged: the schedule twice as long lowered its training error from "
                f"{half:.3g} to {full:.3g} (per seed {', '.join(f'{x:+.2f}' for x in g.gains())} {unit}), so the "
                "verdict waits for a longer schedule or a smaller task."
            )

    def evidence(g: Group) -> str:
        if near_zero[g.label]:
            return f"{g.label} (every seed ends below {tolerance:g}: max {max(g.final()):.2g})"
        return f"{g.label} ({g.gain():+.2f}, p = {tests[g.label].p:.2g})"

    listed = "; others: " + ", ".join(f"{g.label} {g.gain():+.2f}" for g in others) if others else ""
    passed = None if None in outcomes else all(outcomes)
    return v.require(
        f"converged: the schedule twice as long gained significantly less than {tolerance:g} {unit} of training "
        f"error (p < {ALPHA}), or less is left to gain, for " + ", ".join(map(evidence, decisive)) + listed,
        passed,
    )


def group_numbers(groups: Iterable[Group], test: bool = True) -> dict[str, dict | float]:
    """Each group's final training (and test) error over seeds, and its convergence gain."""
    out: dict[str, dict | float] = {}
    for g in groups:
        unit = "%" if g.scale == 100.0 else ""
        out[f"{g.label} train error{' ' + unit if unit else ''}"] = summary_dict(g.final())
        if test:
            out[f"{g.label} test error{' ' + unit if unit else ''}"] = summary_dict(g.final("test_error"))
        out[f"{g.label} gain from a 2× schedule"] = round(g.gain(), 3)
        if g.diverged():
            out[f"{g.label} diverged runs"] = g.diverged()
    return out


def group_bars(title: str, groups: Sequence[Group], **extra) -> FigureSpec:
    """Final training and test error per group, mean ± std over seeds."""
    return error_bars(
        title, [g.label for g in groups], [g.final() for g in groups], [g.final("test_error") for g in groups], **extra
    )


def group_curves(title: str, groups: Sequence[Group], **extra) -> FigureSpec:
    """He2015 Fig. 1 style: training error (solid) and validation error (dashed) over steps, mean over seeds."""
    series = [s for g in groups for s in training_curves(g.label, g.records)]
    return FigureSpec("lines", title, "iterations", "error (%)", series, **extra)
