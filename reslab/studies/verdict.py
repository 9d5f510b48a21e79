"""Verdicts computed from checks: each check is a line of the rule with its numbers.

A verdict is ``holds`` when every check passes, ``fails`` when any check fails, and
``inconclusive`` when no check fails but at least one cannot be decided (e.g. a
significance test with a single seed, or a comparison against a diverged run's NaN).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Check:
    text: str  # what was checked, with the numbers, e.g. "plain-56 train err 31.2 ± 2.0 > plain-20 17.1 ± 0.8"
    passed: bool | None  # None: cannot be decided from these data

    def line(self) -> str:
        mark = {True: "✓", False: "✗", None: "?"}[self.passed]
        return f"{mark} {self.text}"


@dataclass
class Verdict:
    checks: list[Check] = field(default_factory=list)

    def check(self, text: str, passed: bool | None) -> bool | None:
        self.checks.append(Check(text, None if passed is None else bool(passed)))
        return passed

    @property
    def verdict(self) -> str:
        results = [c.passed for c in self.checks]
        if not results:
            return "inconclusive"
        if any(r is False for r in results):
            return "fails"
        if any(r is None for r in results):
            return "inconclusive"
        return "holds"

    @property
    def evidence(self) -> list[str]:
        return [c.line() for c in self.checks]
