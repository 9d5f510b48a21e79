"""What a study is, and what it gets to work with.

A study module reads like its paragraph in claims.md: the claim, the sources, the
papers' numbers (anchors), the settings at each scale, the runs it needs, the analysis
and the verdict rule. It ends with ``STUDY = Study(...)``, which the catalogue collects.
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


@dataclass
class StudyContext:
    """Everything a study's analysis may use: where runs live, how they are executed,
    where to put probe result files, and how to tell the user what is happening."""

    scale: str
    seeds: int
    store: RunStore
    executor: Executor
    out_dir: Path
    data_dir: str | None = None
    log: Callable[[str], None] = print
    study_id: str = ""

    def train(self, configs: Sequence[TrainConfig], what: str = "") -> list[RunRecord]:
        """Finished runs for ``configs``, in order: from the store, or trained now."""
        configs = [c.replace(data_dir=self.data_dir) if self.data_dir else c for c in configs]
        return self.executor.run_all(self.store, configs, label=f"{self.study_id}{': ' + what if what else ''}")

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
    ``plan(settings, seeds)`` lists the training runs (empty for studies at initialization)
    so a runner can count work up front; ``analyze(ctx, settings)`` does the work and
    returns the result with its computed verdict.
    """

    id: str
    title: str
    claim: str
    sources: list[str]
    anchors: dict[str, Any]
    rule: str
    settings: dict[str, Any]
    analyze: Callable[[StudyContext, Any], StudyResult]
    plan: Callable[[Any, int], list[TrainConfig]] = lambda settings, seeds: []
    default_seeds: dict[str, int] = field(default_factory=lambda: {"smoke": 1, "quick": 3, "full": 3})
    uses: tuple[str, ...] = ()  # studies whose training runs this one analyses (and does not plan itself)

    def __post_init__(self) -> None:
        missing = [s for s in SCALES if s not in self.settings]
        if missing:
            raise ValueError(f"study {self.id} has no settings for scale(s) {', '.join(missing)}")

    def seeds_for(self, scale: str, seeds: int | None) -> int:
        return seeds if seeds is not None else self.default_seeds[scale]

    def runs_for(self, scale: str, seeds: int | None) -> list[TrainConfig]:
        """The training runs this study plans at ``scale`` (its own, not those it ``uses``)."""
        return self.plan(self.settings[scale], self.seeds_for(scale, seeds))

    def run(self, ctx: StudyContext) -> StudyResult:
        """Analyze at ``ctx.scale`` and stamp the result with the scale, seeds and time taken."""
        if ctx.scale not in SCALES:
            raise ConfigError(f"unknown scale {ctx.scale!r}; choose one of {', '.join(SCALES)}")
        ctx.study_id = self.id
        start = time.perf_counter()
        result = self.analyze(ctx, self.settings[ctx.scale])
        result.elapsed_s = round(time.perf_counter() - start, 2)
        return result

    def result(self, ctx: StudyContext, verdict: Verdict, **fields: Any) -> StudyResult:
        """A ``StudyResult`` pre-filled with this study's claim, rule, sources and anchors,
        and the verdict and evidence of the rule's checks."""
        return StudyResult(
            id=self.id,
            claim=self.claim,
            scale=ctx.scale,
            seeds=ctx.seeds,
            verdict_rule=self.rule,
            anchors=self.anchors,
            sources=self.sources,
            verdict=verdict.verdict,
            evidence=verdict.evidence,
            **fields,
        )
