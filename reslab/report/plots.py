"""Drawing one ``FigureSpec`` onto matplotlib axes, in the style of the papers' own figures.

He2015 Fig. 1/6: training error solid, test error dashed, one colour per net (series whose
labels differ only by a trailing ``train``/``test`` word share a colour, and the legend then
names nets by colour and roles by line style). Veit2016 Fig. 3: bars per block with the
marked (downsampling) blocks shaded. Balduzzi2017 Fig. 2: covariance heat maps with a
diverging colour map centred on zero.

Each ``draw_*`` returns notes for the caption (values that could not be drawn, and why), and
raises ``SpecError`` for a spec that cannot be drawn at all.
"""

from __future__ import annotations

import math
import re
from typing import Any

import matplotlib
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter
from matplotlib.transforms import blended_transform_factory

from ..studies.results import FigureSpec, Series

# Okabe–Ito: distinguishable with colour-blindness and in greyscale print.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#999999"]
LINESTYLES = {"solid": "-", "dashed": "--", "dotted": ":"}
RASTERIZE_OVER = 2000  # points per series above which a line is embedded as pixels (small SVGs)
DECIMATE_OVER = 20000  # points per series above which every k-th point is kept
MAX_TICK_LABELS = 24
_ROLE = re.compile(r"^(.*?)[\s,:;·/|–—-]+\(?(train|training|test|val|valid|validation|eval)\)?$", re.IGNORECASE)


class SpecError(ValueError):
    """A figure spec that cannot be drawn (wrong lengths, unknown kind or style)."""


def _t(text: object) -> str:
    """Data text drawn literally: a ``$`` would otherwise start matplotlib's mathtext."""
    return str(text).replace("$", r"\$")


def palette(n: int) -> list[str]:
    if n <= len(PALETTE):
        return PALETTE[:n]
    cmap = matplotlib.colormaps["tab20"]
    return [matplotlib.colors.to_hex(cmap(i % 20)) for i in range(n)]


def _floats(values: Any, what: str) -> np.ndarray:
    try:
        arr = np.array([math.nan if v is None else v for v in values], dtype=float)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{what} holds a value that is not a number ({exc})") from None
    return arr


def _finite(arr: np.ndarray, what: str, notes: list[str]) -> np.ndarray:
    """NaN/inf are not drawn; the caption says how many and where."""
    bad = ~np.isfinite(arr)
    if bad.any():
        kinds = []
        if np.isnan(arr).any():
            kinds.append("NaN")
        if np.isinf(arr).any():
            kinds.append("infinite")
        notes.append(f"{what}: {int(bad.sum())} of {arr.size} values are {' or '.join(kinds)} (not drawn)")
        arr = np.where(bad, np.nan, arr)
    return arr


def _style(style: str) -> tuple[str, str | None]:
    """``solid|dashed|dotted|markers`` or ``<line>+markers`` -> (matplotlib linestyle, marker)."""
    parts = style.split("+")
    line, marker = "none", None
    for part in parts:
        if part == "markers":
            marker = "o"
        elif part in LINESTYLES and line == "none":
            line = LINESTYLES[part]
        else:
            raise SpecError(f"unknown series style {style!r} (solid, dashed, dotted, markers, e.g. solid+markers)")
    return line, marker


def _colour_groups(series: list[Series]) -> tuple[list[str], list[str | None]]:
    """Colour key per series (the label without a trailing train/test word) and the role word."""
    keys, roles = [], []
    for s in series:
        m = _ROLE.match(s.label.strip())
        keys.append(m.group(1).strip() if m else s.label)
        roles.append(m.group(2).lower() if m else None)
    return keys, roles


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _log_labels(axis) -> None:
    """Decades as ``10⁻³`` in plain Unicode (no mathtext: faster, and stays text in the SVG);
    on axes spanning under two decades, the 2s and 5s in between are labelled too."""

    def label(x: float, pos: int | None) -> str:
        if x <= 0 or not math.isfinite(x):
            return ""
        exp = math.log10(x)
        if abs(exp - round(exp)) < 1e-9:
            return "10" + str(round(exp)).translate(_SUPERSCRIPT)
        lo, hi = sorted(axis.get_view_interval())
        mantissa = x / 10 ** math.floor(exp)
        few = lo > 0 and math.log10(hi / lo) < 2
        return f"{x:g}" if few and round(mantissa) in (2, 5) and abs(mantissa - round(mantissa)) < 1e-6 else ""

    axis.set_major_formatter(FuncFormatter(label))
    axis.set_minor_formatter(FuncFormatter(label))


def _log_axes(ax, spec: FigureSpec) -> None:
    if spec.logx:
        ax.set_xscale("log")
        _log_labels(ax.xaxis)
    if spec.logy:
        ax.set_yscale("log")
        _log_labels(ax.yaxis)


def _hlines(ax, spec: FigureSpec) -> None:

    trans = blended_transform_factory(ax.transAxes, ax.transData)
    for h in spec.hlines:
        if not isinstance(h, dict) or not isinstance(h.get("y"), int | float) or not math.isfinite(h["y"]):
            raise SpecError(f"hlines entries need a finite 'y', got {h!r}")
        ls = LINESTYLES.get(h.get("style", "dotted"), ":")
        ax.axhline(h["y"], color=h.get("color", "0.35"), linestyle=ls, linewidth=1.0, zorder=1)
        if h.get("label"):
            ax.text(0.995, h["y"], _t(h["label"]), transform=trans, ha="right", va="bottom", fontsize=8, color="0.3")


def _legend(ax, handles, labels) -> None:
    if not handles:
        return
    labels = [_t(label) for label in labels]
    if len(handles) > 8:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0)
    else:
        ax.legend(handles, labels, loc="best", fontsize=8.5)


def _labels(ax, spec: FigureSpec) -> None:
    if spec.title:
        ax.set_title(_t(spec.title), loc="left")
    ax.set_xlabel(_t(spec.xlabel))
    ax.set_ylabel(_t(spec.ylabel))


def draw_lines(ax, spec: FigureSpec) -> list[str]:

    notes: list[str] = []
    if not spec.series:
        raise SpecError("a 'lines' figure needs at least one series")
    keys, roles = _colour_groups(spec.series)
    order = list(dict.fromkeys(keys))
    colours = dict(zip(order, palette(len(order))))
    role_style: dict[str, str] = {}
    drawn_colour: dict[str, str] = {}  # the colour each net was actually drawn in (a study may set it)
    series_handles = []
    for s, key, role in zip(spec.series, keys, roles):
        y = _finite(_floats(s.y, f"series {s.label!r}"), f"series {s.label!r}", notes)
        x = _floats(s.x, f"series {s.label!r} x") if len(s.x) else np.arange(len(y), dtype=float)
        if len(x) != len(y):
            raise SpecError(f"series {s.label!r} has {len(x)} x values and {len(y)} y values")
        err = None
        if s.err is not None:
            err = _floats(s.err, f"series {s.label!r} err")
            if len(err) != len(y):
                raise SpecError(f"series {s.label!r} has {len(err)} err values for {len(y)} points")
        band = _band(s, y, err, spec.logy)
        if len(y) > DECIMATE_OVER:
            step = math.ceil(len(y) / DECIMATE_OVER)
            x, y = x[::step], y[::step]
            err = err[::step] if err is not None else None
            band = (band[0][::step], band[1][::step]) if band is not None else None
            notes.append(f"series {s.label!r}: every {step}th of its points drawn")
        if spec.logy and np.any(y[np.isfinite(y)] <= 0):
            notes.append(f"series {s.label!r}: values ≤ 0 cannot be shown on the log axis")
        linestyle, marker = _style(s.style)
        colour = s.color or colours[key]
        dense = len(y) > RASTERIZE_OVER
        if err is not None and linestyle == "none":
            h = ax.errorbar(x, y, yerr=err, fmt=marker or "o", color=colour, markersize=4, capsize=2, linewidth=1)
        else:
            (h,) = ax.plot(x, y, linestyle=linestyle, marker=marker, markersize=4, color=colour, rasterized=dense)
            if band is not None:
                ax.fill_between(x, *band, color=colour, alpha=0.18, linewidth=0, rasterized=dense)
        series_handles.append(h)
        drawn_colour.setdefault(key, colour)
        if role is not None:
            role_style.setdefault(role, s.style)
    _log_axes(ax, spec)
    for m in spec.marks:
        ax.axvline(m, color="0.55", linestyle="--", linewidth=0.8, zorder=0)
    _hlines(ax, spec)
    _labels(ax, spec)
    # One entry per net (colour) plus one per role (line style) when labels pair up as net+role.
    compact = len(order) < len(spec.series) and all(r is not None for r in roles)
    compact = compact and all(role_style[r] == s.style for r, s in zip(roles, spec.series))
    if compact:
        handles = [Line2D([], [], color=drawn_colour[k], linestyle="-") for k in order]
        handles += [
            Line2D([], [], color="0.3", linestyle=_style(st)[0], marker=_style(st)[1]) for st in role_style.values()
        ]
        _legend(ax, handles, order + list(role_style))
    elif len(spec.series) > 1:
        _legend(ax, series_handles, [s.label for s in spec.series])
    return notes


def _band(s: Series, y: np.ndarray, err: np.ndarray | None, logy: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """The shaded band: the series' own lower/upper edges, else y ± err; on a log axis a ± band
    whose lower edge reaches zero is drawn as its multiplicative mirror y / (1 + err/y)
    instead (a slab down to the axis' end would hide the curve's shape)."""
    if s.lower is not None or s.upper is not None:
        if s.lower is None or s.upper is None:
            raise SpecError(f"series {s.label!r} needs both lower and upper band edges")
        lower, upper = _floats(s.lower, f"series {s.label!r} lower"), _floats(s.upper, f"series {s.label!r} upper")
        if len(lower) != len(y) or len(upper) != len(y):
            raise SpecError(f"series {s.label!r} has band edges of another length than its {len(y)} points")
        return lower, upper
    if err is None:
        return None
    lower = y - err
    if logy:
        with np.errstate(divide="ignore", invalid="ignore"):
            lower = np.where(lower > 0, lower, y / (1 + err / y))
    return lower, y + err


def draw_bars(ax, spec: FigureSpec) -> list[str]:
    notes: list[str] = []
    cats = [str(c) for c in (spec.categories or [])]
    if not cats or not spec.series:
        raise SpecError("a 'bars' figure needs categories and at least one series")
    n, k = len(cats), len(spec.series)
    pos = np.arange(n, dtype=float)
    width = 0.8 / k
    colours = palette(k)
    handles = []
    for i, s in enumerate(spec.series):
        y = _floats(s.y, f"series {s.label!r}")
        if len(y) != n:
            raise SpecError(f"series {s.label!r} has {len(y)} values for {n} categories")
        y = _finite(y, f"series {s.label!r}", notes)
        err = None
        if s.err is not None:
            err = _floats(s.err, f"series {s.label!r} err")
            if len(err) != n:
                raise SpecError(f"series {s.label!r} has {len(err)} err values for {n} categories")
        x = pos - 0.4 + width * (i + 0.5)
        colour = s.color or colours[i]
        bars = ax.bar(x, np.nan_to_num(y, nan=0.0), width=width * 0.92, color=colour, label=s.label, zorder=2)
        handles.append(bars)
        if err is not None:
            ax.errorbar(x, y, yerr=err, fmt="none", ecolor="0.2", elinewidth=0.8, capsize=1.5, zorder=3)
        for xi in x[np.isnan(y)]:
            ax.text(xi, 0, " n/a", rotation=90, ha="center", va="bottom", fontsize=7, color="0.35", zorder=3)
    marked = sorted({int(m) for m in spec.marks if 0 <= int(m) < n})
    for m in marked:
        ax.axvspan(m - 0.5, m + 0.5, color="0.9", zorder=0, linewidth=0)
    step = max(1, math.ceil(n / MAX_TICK_LABELS))
    shown = sorted(set(range(0, n, step)) | set(marked))
    ax.set_xticks(pos[shown])
    ax.set_xticklabels([_t(cats[i]) for i in shown], rotation=45 if n > 8 and max(map(len, cats)) > 3 else 0)
    for label, i in zip(ax.get_xticklabels(), shown):
        if i in marked:
            label.set_fontweight("bold")
    ax.set_xlim(-0.6, n - 0.4)
    ax.grid(axis="x", visible=False)
    _log_axes(ax, spec)
    _hlines(ax, spec)
    _labels(ax, spec)
    if k > 1:
        _legend(ax, handles, [s.label for s in spec.series])
    return notes


def _matrix(values: Any, what: str, notes: list[str]) -> np.ndarray:
    try:
        arr = np.array([[math.nan if v is None else v for v in row] for row in values], dtype=float)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{what} is not a matrix of numbers ({exc})") from None
    if arr.ndim != 2 or arr.size == 0:
        raise SpecError(f"{what} must be a non-empty 2-D matrix, got shape {arr.shape}")
    return _finite(arr, what, notes)


def _colour_scale(arrays: list[np.ndarray]) -> dict[str, Any]:
    """Diverging and centred on zero when values have both signs, else sequential; shared by panels."""
    finite = np.concatenate([a[np.isfinite(a)] for a in arrays])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if lo < 0 < hi:
        v = max(-lo, hi)
        cmap, lo, hi = "RdBu_r", -v, v
    else:
        cmap = "viridis"
    cmap = matplotlib.colormaps[cmap].with_extremes(bad="#d9d9d9")
    return {"cmap": cmap, "vmin": lo, "vmax": hi if hi > lo else lo + 1.0}


def _imshow(ax, arr: np.ndarray, scale: dict[str, Any]):
    aspect = "equal" if 0.5 <= arr.shape[0] / arr.shape[1] <= 2 else "auto"
    return ax.imshow(arr, interpolation="nearest", aspect=aspect, **scale)


def _contours(ax, arr: np.ndarray, scale: dict[str, Any], extent: list[float] | None):
    """Filled contours with the same levels in every panel, lines on them, the origin marked."""
    x0, x1, y0, y1 = extent if extent else (0.0, arr.shape[1] - 1.0, 0.0, arr.shape[0] - 1.0)
    xs, ys = np.linspace(x0, x1, arr.shape[1]), np.linspace(y0, y1, arr.shape[0])
    levels = np.linspace(scale["vmin"], scale["vmax"], 16)
    filled = ax.contourf(xs, ys, arr, levels=levels, cmap=scale["cmap"], extend="both")
    ax.contour(xs, ys, arr, levels=levels, colors="0.25", linewidths=0.4)
    if x0 <= 0 <= x1 and y0 <= 0 <= y1:
        ax.plot([0], [0], marker="+", color="white", markersize=8)
    ax.set_aspect("equal" if extent else "auto")
    return filled


def draw_image(ax, spec: FigureSpec, fig) -> list[str]:
    notes: list[str] = []
    if spec.matrix is None:
        raise SpecError("an 'image' figure needs a matrix")
    arr = _matrix(spec.matrix, "matrix", notes)
    im = _imshow(ax, arr, _colour_scale([arr]))
    ax.grid(False)
    fig.colorbar(im, ax=ax, shrink=0.85)
    _labels(ax, spec)
    return notes


def draw_images(axes, spec: FigureSpec, fig) -> list[str]:
    """Panels side by side on one shared colour scale, so they can be compared by eye."""
    notes: list[str] = []
    arrays = [_matrix(m, f"panel {i + 1}", notes) for i, m in enumerate(spec.matrices or [])]
    titles = list(spec.panel_titles or [])
    if titles and len(titles) != len(arrays):
        raise SpecError(f"{len(titles)} panel titles for {len(arrays)} matrices")
    scale = _colour_scale(arrays)
    im = None
    for i, (ax, arr) in enumerate(zip(axes, arrays)):
        im = _contours(ax, arr, scale, spec.extent) if spec.contours else _imshow(ax, arr, scale)
        ax.grid(False)
        ax.set_title(_t(titles[i]) if titles else "", fontsize=9.5)
        ax.set_xlabel(_t(spec.xlabel))
        ax.set_ylabel(_t(spec.ylabel) if i == 0 else "")
    fig.colorbar(im, ax=list(axes), shrink=0.85)
    if spec.title:
        fig.suptitle(_t(spec.title), x=0.02, ha="left", fontweight="bold", fontsize=10.5)
    return notes
