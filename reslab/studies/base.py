"""What a study is, and what it gets to work with.

A study module reads like its paragraph of the claims: the claim, the sources, the
papers' numbers (anchors), the settings at each scale, the runs it needs, the analysis
and the verdict rule. It ends with ``STUDY = Study(...)``, which the catalogue finds by
itself (every module of ``reslab/studies`` that defines one); ``order`` places it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .results import StudyResult
from .verdict import Verdict

if TYPE_CHECKING:
    from ..runs.executors import Executor
    from ..runs.store import RunRecord, RunStore
    from ..train.config import TrainConfig

SCALES = ("smoke", "quick", "full")
PARTS = ("essay", "beyond")


@dataclass(frozen=True)
class RunOverrides:
    """What one reproduction changes in every training run the studies plan: where the data
    is, and the training precision (None keeps each recipe's own, usually "auto"), so a
    verdict can be checked in fp32 and bf16 alike."""

    data_dir: str | None = None
    precision: str | None = None

    def apply(self, config: TrainConfig) -> TrainConfig:
        changes: dict[str, Any] = {}
        if self.data_dir:
            changes["data_dir"] = self.data_dir
        if self.precision and config.recipe.precision != self.precision:
            changes["recipe"] = config.recipe.replace(precision=self.precision)
        return config.replace(**changes) if changes else config


@dataclass
class StudyContext:
    """Everything a study's analysis may use: where runs live, how they are executed,
    where to put probe result files, and how to tell the user what is happening.

    ``seeds`` are the seed values of this reproduction: with N seeds, seed set K is
    K·N … K·N + N − 1 (``--seed-set K``), so a second, disjoint set is one flag away.
    """

    scale: str
    seeds: list[int]
    store: RunStore
    executor: Executor
    out_dir: Path
    overrides: RunOverrides = field(default_factory=RunOverrides)
    log: Callable[[str], None] = print
    study_id: str = ""

    def train(self, configs: Sequence[TrainConfig], what: str = "") -> list[RunRecord]:
        """Finished runs for ``configs``, in order: from the store, or trained now."""
        configs = [self.overrides.apply(c) for c in configs]
        return self.executor.run_all(self.store, configs, label=f"{self.study_id}{': ' + what if what else ''}")

    @property
    def data_dir(self) -> str | None:
        return self.overrides.data_dir

    def data_path(self, name: str) -> Path:
        """Where this study saves a probe result (``DIR/data/<study>/<name>``)."""
        path = self.out_dir / "data" / self.study_id / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


@dataclass
class Study:
    """One claim of claims.md, made runnable.

    ``settings`` maps each scale to a settings object (any dataclass) that ``plan`` and
    ``analyze`` read; ``default_seeds`` gives each scale's seed count (``--seeds`` overrides).
    ``plan(settings, seeds)`` lists the training runs for those seed values (empty for
    studies at initialization) so a runner can start them up front; ``analyze(ctx,
    settings)`` does the work and returns the result with its computed verdict.
    ``order`` places the study in the catalogue (the order of the essay's argument);
    ``part`` says whether the claim is the essay's own or a later explanation ("beyond").
    """

    id: str
    title: str
    claim: str
    sources: list[str]
    anchors: dict[str, Any]
    rule: str
    settings: dict[str, Any]
    analyze: Callable[[StudyContext, Any], StudyResult]
    order: int
    plan: Callable[[Any, Sequence[int]], list[TrainConfig]] = lambda settings, seeds: []
    default_seeds: dict[str, int] = field(default_factory=lambda: {"smoke": 1, "quick": 3, "full": 3})
    part: str = "essay"

    def __post_init__(self) -> None:
        missing = [s for s in SCALES if s not in self.settings]
        if missing:
            raise ValueError(f"study {self.id} has no settings for scale(s) {', '.join(missing)}")
        if self.part not in PARTS:
            raise ValueError(f"study {self.id}: part must be one of {PARTS}")

    def seeds_for(self, scale: str, seeds: int | None, seed_set: int = 0) -> list[int]:
        """Seed set ``seed_set`` at ``scale``: N = ``seeds`` (default: the scale's count) values
        from K·N on, so sets of the same size never share a seed."""
        count = seeds if seeds is not None else self.default_seeds[scale]
        return list(range(seed_set * count, (seed_set + 1) * count))

    def runs_for(self, scale: str, seeds: Sequence[int]) -> list[TrainConfig]:
        """The training runs this study analyses at ``scale``, another study's too (the store trains each once)."""
        return self.plan(self.settings[scale], list(seeds))

    def run(self, ctx: StudyContext) -> StudyResult:
        """Analyze at ``ctx.scale`` and stamp the result with the scale, seeds and time taken."""
        if ctx.scale not in SCALES:
            raise ConfigError(f"unknown scale {ctx.scale!r}; choose one of {', '.join(SCALES)}")
        ctx.study_id = self.id
        start = time.perf_counter()
        result = self.analyze(ctx, self.settings[ctx.scale])
        result.elapsed_s = round(time.perf_counter() - start, 2)
        result.run_precisions = _precisions(ctx.store, result.runs)
        return result

    def result(self, ctx: StudyContext, verdict: Verdict, **fields: Any) -> StudyResult:
        """A ``StudyResult`` pre-filled with this study's claim, rule, sources and anchors,
        and the verdict and evidence of the rule's checks."""
        return StudyResult(
            id=self.id,
            claim=self.claim,
            scale=ctx.scale,
            seeds=len(ctx.seeds),
            seed_values=list(ctx.seeds),
            precision=ctx.overrides.precision or "recipe",
            verdict_rule=self.rule,
            anchors=self.anchors,
            sources=self.sources,
            verdict=verdict.verdict,
            evidence=verdict.evidence,
            **{**fields, "notes": " ".join([*verdict.notes, fields.get("notes", "")]).strip()},
        )


def _precisions(store: RunStore, run_ids: Sequence[str]) -> list[str]:
    """The precisions the runs computed in, as their result.json records them (``auto`` resolved)."""
    if not run_ids:
        return []
    wanted = set(run_ids)  # one pass over the store: looking each run up alone rescans the index every time
    return sorted({p for r in store.find() if r.id in wanted and (p := (r.result or {}).get("precision"))})
