"""Verdicts computed from checks: each check is a line of the rule with its numbers.

A verdict is ``holds`` when every check passes, ``fails`` when any check fails, and
``inconclusive`` when no check fails but at least one cannot be decided (e.g. a
significance test with a single seed, or a comparison against a diverged run's NaN).

Some checks are preconditions (``require``): what must be true for the data to judge the
claim at all, e.g. that the nets a claim about trained nets rests on have converged. A
failed precondition makes the verdict ``inconclusive`` whatever the other checks say.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Check:
    text: str  # what was checked, with the numbers, e.g. "plain-56 train err 31.2 ± 2.0 > plain-20 17.1 ± 0.8"
    passed: bool | None  # None: cannot be decided from these data
    precondition: bool = False

    def line(self) -> str:
        mark = {True: "✓", False: "✗", None: "?"}[self.passed]
        return f"{mark} {'precondition: ' if self.precondition else ''}{self.text}"


@dataclass
class Verdict:
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what a reader must know to read the verdict, in words

    def check(self, text: str, passed: bool | None) -> bool | None:
        self.checks.append(Check(text, None if passed is None else bool(passed)))
        return passed

    def require(self, text: str, passed: bool | None) -> bool | None:
        """A precondition: when it fails (or cannot be decided) the verdict is inconclusive."""
        self.checks.append(Check(text, None if passed is None else bool(passed), precondition=True))
        return passed

    @property
    def verdict(self) -> str:
        if not self.checks or any(c.precondition and c.passed is not True for c in self.checks):
            return "inconclusive"
        results = [c.passed for c in self.checks]
        if any(r is False for r in results):
            return "fails"
        if any(r is None for r in results):
            return "inconclusive"
        return "holds"

    @property
    def evidence(self) -> list[str]:
        return [c.line() for c in self.checks]
