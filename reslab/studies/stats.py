"""The statistics verdicts use: mean ± std over seeds and Welch's t-test.

Written out here (no SciPy) because they are small and every verdict depends on them:
the t distribution's CDF comes from the regularized incomplete beta function.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation and count of a set of per-seed values."""

    mean: float
    std: float
    n: int

    def __str__(self) -> str:
        return fmt(self.mean, self.std)

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "std": self.std, "n": self.n}


def summarize(values: Sequence[float]) -> Summary:
    vals = [float(v) for v in values]
    if not vals:
        return Summary(math.nan, math.nan, 0)
    mean = sum(vals) / len(vals)
    var = sum((v - mean) ** 2 for v in vals) / (len(vals) - 1) if len(vals) > 1 else 0.0
    return Summary(mean, math.sqrt(var), len(vals))


def fmt(mean: float, std: float | None = None, digits: int = 1) -> str:
    if not math.isfinite(mean):
        return "n/a"
    if std is None or not math.isfinite(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-12:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with df degrees of freedom."""
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


@dataclass(frozen=True)
class Comparison:
    """Welch's test that mean(a) > mean(b), one-sided."""

    difference: float
    t: float
    df: float
    p: float

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p < alpha

    def outcome(self, alpha: float = 0.05) -> bool | None:
        """Significant (True), not (False), or undecidable without a variance estimate (None)."""
        return None if math.isnan(self.p) else self.p < alpha


def greater(a: Sequence[float], b: Sequence[float]) -> Comparison:
    """Is mean(a) greater than mean(b)? Welch's unequal-variance t-test, one-sided.

    With a single value on either side there is no variance estimate: the p-value is
    then NaN and ``significant`` is False, so a one-seed run can never be "significant".
    """
    sa, sb = summarize(a), summarize(b)
    diff = sa.mean - sb.mean
    if sa.n < 2 or sb.n < 2:
        return Comparison(diff, math.nan, math.nan, math.nan)
    va, vb = sa.std**2 / sa.n, sb.std**2 / sb.n
    se = math.sqrt(va + vb)
    if se == 0.0:
        return Comparison(diff, math.copysign(math.inf, diff) if diff else 0.0, math.inf, 0.0 if diff > 0 else 1.0)
    t = diff / se
    df = (va + vb) ** 2 / ((va**2 / (sa.n - 1) if va else 0.0) + (vb**2 / (sb.n - 1) if vb else 0.0))
    return Comparison(diff, t, df, t_sf(t, df))


def below(values: Sequence[float], bound: float) -> Comparison:
    """Is the mean of ``values`` below ``bound``? One-sample t-test, one-sided.

    With a single value there is no variance estimate (p is NaN); values without spread are
    below the bound exactly when their mean is.
    """
    s = summarize(values)
    diff = bound - s.mean
    if s.n < 2:
        return Comparison(diff, math.nan, math.nan, math.nan)
    if s.std == 0.0:
        return Comparison(diff, math.copysign(math.inf, diff) if diff else 0.0, math.inf, 0.0 if diff > 0 else 1.0)
    t = diff / (s.std / math.sqrt(s.n))
    return Comparison(diff, t, s.n - 1, t_sf(t, s.n - 1))
