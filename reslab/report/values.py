"""Turning measured values into honest text: NaN, infinities and mean ± std never crash a report.

Both the HTML and the Markdown writer use these, so the two always show the same numbers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

NAN_TEXT = "n/a (NaN)"  # a NaN is usually a diverged run; we say what it is, not what we guess
LIST_SHOWN = 8  # longer lists are shortened to their first values and their count


def fmt_float(x: float) -> str:
    """A float in at most 4 significant digits; NaN and infinities spelled out."""
    if math.isnan(x):
        return NAN_TEXT
    if math.isinf(x):
        return "+inf" if x > 0 else "−inf"
    if x == 0:
        return "0"
    if x == int(x) and abs(x) < 1e6:
        return f"{int(x):,}"
    if abs(x) >= 1e5 or abs(x) < 1e-3:
        return f"{x:.3e}"
    return f"{x:.4g}"


def fmt_mean_std(mean: float, std: float) -> str:
    """``mean ± std`` with the std to two significant digits and the mean to the same decimals."""
    if not (math.isfinite(mean) and math.isfinite(std)) or std <= 0:
        return f"{fmt_value(mean)} ± {fmt_value(std)}"
    decimals = min(max(0, 1 - math.floor(math.log10(std))), 6)
    if abs(mean) >= 1e5 or (mean != 0 and abs(mean) < 1e-3):
        return f"{mean:.3e} ± {std:.2g}"
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def is_mean_std(value: Any) -> bool:
    return isinstance(value, dict) and "mean" in value and "std" in value and _is_number(value["mean"])


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def fmt_value(value: Any) -> str:
    """Any JSON value as one line of text (dicts other than mean/std become ``k: v; ...``)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return fmt_float(value)
    if isinstance(value, str):
        return value
    if is_mean_std(value):
        text = fmt_mean_std(float(value["mean"]), float(value["std"]) if _is_number(value["std"]) else math.nan)
        n = value.get("n")
        return f"{text} (n={n})" if _is_number(n) else text
    if isinstance(value, list | tuple):
        shown = [fmt_value(v) for v in value[:LIST_SHOWN]]
        more = f", … ({len(value)} values)" if len(value) > LIST_SHOWN else ""
        return "[" + ", ".join(shown) + more + "]"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {fmt_value(v)}" for k, v in value.items())
    return str(value)


def flatten(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested dicts as ``("a / b", leaf)`` rows; a ``{"mean", "std"}`` dict is one leaf."""
    if isinstance(data, dict) and not is_mean_std(data):
        if not data and prefix:
            yield prefix, "—"
        for key, value in data.items():
            name = f"{prefix} / {key}" if prefix else str(key)
            yield from flatten(value, name)
    else:
        yield prefix, data


def fmt_duration(seconds: Any) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``; unknown durations say so."""
    if not _is_number(seconds) or not math.isfinite(seconds) or seconds < 0:
        return "n/a"
    if seconds < 10:
        return f"{seconds:.1f} s"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def paired_rows(numbers: dict[str, Any], anchors: dict[str, Any]) -> tuple[list[tuple[str, str, str]], str]:
    """Rows ``(quantity, ours, paper)`` pairing our numbers with the papers' by key, and the source.

    Keys present in both dicts share a row; a top-level ``source`` string in ``anchors`` is the
    source of the whole table. An anchor given as ``{"value": ..., "source": ...}`` carries its own.
    """
    anchors = dict(anchors)
    source = anchors.pop("source", "")
    source = source if isinstance(source, str) else fmt_value(source)
    ours = dict(flatten(numbers))
    paper: dict[str, str] = {}
    for key, value in _flatten_anchors(anchors):
        paper[key] = value
    rows = [(k, fmt_value(v), paper.get(k, "")) for k, v in ours.items()]
    rows += [(k, "", v) for k, v in paper.items() if k not in ours]
    return rows, source


def _flatten_anchors(anchors: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for key, value in anchors.items():
        name = f"{prefix} / {key}" if prefix else str(key)
        if isinstance(value, dict) and "value" in value:
            text = fmt_value(value["value"])
            if value.get("source"):
                text += f" ({value['source']})"
            yield name, text
        elif isinstance(value, dict) and not is_mean_std(value):
            yield from _flatten_anchors(value, name)
        else:
            yield name, fmt_value(value)


_SLUG = re.compile(r"[^a-z0-9]+")


def slug(text: str, fallback: str = "study") -> str:
    """A file- and id-safe name: lower-case letters, digits and dashes (no path tricks)."""
    out = _SLUG.sub("-", str(text).lower()).strip("-")[:60]
    return out or fallback


def unique_slugs(names: list[str]) -> list[str]:
    """One slug per name, numbered when two names slug the same (ids must be unique in a page)."""
    used: set[str] = set()
    out = []
    for name in names:
        base = candidate = slug(name)
        n = 1
        while candidate in used:
            n += 1
            candidate = f"{base}-{n}"
        used.add(candidate)
        out.append(candidate)
    return out
