"""The convergence check: the same run with a schedule half as long, branched off the run itself.

A run of T steps and one of T/2 with the same seed draw the same batches in the same order,
so they take identical steps for as long as their learning rates agree. A "wsd" schedule
holds its rate until it decays over the last ``decay_frac`` of the run: the two agree up to
step (1 - decay_frac)·T/2, and the shorter run differs only in its last ``decay_frac``·T/2
steps (a constant schedule never differs: the shorter run is the longer one's first half).
At the step where the rates part, the loop hands its state to ``ShorterSchedule.train``,
which trains the shorter run's remaining steps on that state, evaluates it, and restores
the state exactly (weights, optimizer, data order, random generators), so the run goes on
as if nothing had happened. The result equals a separate run of T/2 steps (a test checks
it bit for bit) at a tenth of its cost.

"Converged" then has a measurable meaning: doubling the schedule (T/2 → T) gains little.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from .checkpoint import rng_state, set_rng_state
from .recipe import Recipe, lr_at
from .task import autocast

if TYPE_CHECKING:
    from .loop import _Run


@dataclass
class ShorterSchedule:
    """The run of half the length: ``total`` steps, whose rates differ from the run's from step ``start`` on."""

    total: int
    start: int
    result: dict[str, Any] | None = None

    @classmethod
    def of(cls, recipe: Recipe, total: int) -> ShorterSchedule:
        half = total // 2
        parts = (s for s in range(half) if lr_at(recipe, s, half, False) != lr_at(recipe, s, total, False))
        return cls(half, next(parts, half))

    def due(self, step: int) -> bool:
        return self.result is None and self.total >= 1 and step == self.start

    def train(self, run: _Run) -> None:
        """Train steps ``start``..``total`` of the shorter schedule on the run's state, record
        the result, then put the run's state back as it was."""
        saved = _snapshot(run)
        status, diverged_step = "finished", None
        for step in range(self.start, self.total):
            if not _step(run, step, self.total):
                status, diverged_step = "diverged", step + 1
                break
        train_loss, train_error = run._eval(run.train_eval)
        val_loss, val_error = run._eval(run.ds.val)
        self.result = {
            "steps": self.total,
            "branched_at": self.start,
            "status": status,
            "diverged_step": diverged_step,
            "train_error": train_error,
            "train_loss": train_loss,
            "val_error": val_error,
            "val_loss": val_loss,
        }
        _restore(run, saved)

    def state_dict(self) -> dict[str, Any]:
        return {"total": self.total, "start": self.start, "result": self.result}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.total, self.start, self.result = state["total"], state["start"], state["result"]


def _snapshot(run: _Run) -> dict[str, Any]:
    return {
        "model": copy.deepcopy(run.model.state_dict()),
        "optimizer": copy.deepcopy(run.optimizer.state_dict()),
        "loader": copy.deepcopy(run.loader.state_dict()),
        "warmup": copy.deepcopy(run.warmup.state_dict()),
        "rng": rng_state(),
    }


def _restore(run: _Run, saved: dict[str, Any]) -> None:
    run.model.load_state_dict(saved["model"])
    run.optimizer.load_state_dict(saved["optimizer"])
    run.loader.load_state_dict(saved["loader"])
    run.warmup.load_state_dict(saved["warmup"])
    for group in run.optimizer.param_groups:
        group["lr"] = run.lr
    set_rng_state(saved["rng"])


def _step(run: _Run, step: int, total: int) -> bool:
    """One optimizer step of the shorter schedule (no logging, no callbacks); False if its loss is non-finite."""
    x, y = run.loader.next()
    lr = lr_at(run.recipe, step, total, run.warmup.active)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    with autocast(run.device, run.precision):
        out = run.model(x)
        loss = run.task.loss(out, y)
    if not math.isfinite(float(loss.detach())):
        return False
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if run.recipe.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.recipe.grad_clip)
    run.optimizer.step()
    if run.warmup.active:
        wrong, count = run.task.errors(out.detach(), y)
        run.warmup.observe(float(wrong) / max(float(count), 1.0), step + 1)
    return True
