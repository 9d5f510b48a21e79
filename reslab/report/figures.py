"""``FigureSpec`` data -> image files: SVG for line and bar plots, PNG for heat maps.

Rendering uses matplotlib's object API (``matplotlib.figure.Figure``), never pyplot, so it
opens no display and leaves the caller's backend alone. Output is deterministic (fixed SVG
hash salt, no dates in metadata), so re-rendering unchanged data gives identical files, and
each image carries a content key that lets the report skip figures whose data did not change.
Text from the data is drawn literally (``$`` is escaped), so a dollar sign never starts mathtext.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import matplotlib
from matplotlib.figure import Figure

from ..studies.results import FigureSpec
from .plots import PALETTE, SpecError, draw_bars, draw_image, draw_images, draw_lines

RENDER_VERSION = "1"  # bump when the drawing code changes, so cached figures are redrawn
KINDS = ("lines", "bars", "image", "images")
PNG_DPI = 150

STYLE = {
    "svg.fonttype": "none",  # text stays text: small files, selectable, crisp when projected
    "svg.hashsalt": "reslab",  # fixed ids, so identical data gives identical files
    "svg.image_inline": True,
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Helvetica", "Arial"],
    "font.size": 9.5,
    "axes.titlesize": 10.5,
    "axes.titleweight": "bold",
    "axes.labelsize": 9.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "0.88",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "legend.frameon": False,
    "lines.linewidth": 1.6,
    "figure.dpi": 100,
    "savefig.dpi": PNG_DPI,  # also the resolution of rasterized dense lines inside SVGs
    "path.simplify": True,
    "image.interpolation": "nearest",
}


@dataclass
class RenderedFigure:
    """One image file of the report; ``error`` says why a figure could not be drawn."""

    name: str  # file name under figures/, e.g. "lesion-1.svg"
    key: str  # content hash of the spec(s) and the renderer
    data: bytes = b""
    titles: list[str] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what could not be drawn (NaN, inf, ...)
    error: str = ""

    @property
    def mime(self) -> str:
        return "image/svg+xml" if self.name.endswith(".svg") else "image/png"


def group_figures(specs: list[FigureSpec]) -> list[list[FigureSpec]]:
    """Consecutive specs sharing a non-empty ``panel`` name become one row of subplots."""
    groups: list[list[FigureSpec]] = []
    for spec in specs:
        panel = getattr(spec, "panel", "")
        if panel and groups and getattr(groups[-1][0], "panel", "") == panel:
            groups[-1].append(spec)
        else:
            groups.append([spec])
    return groups


def extension(group: list[FigureSpec]) -> str:
    return "png" if any(s.kind in ("image", "images") for s in group) else "svg"


def content_key(group: list[FigureSpec]) -> str:
    payload = json.dumps([asdict(s) for s in group], sort_keys=True, default=str)
    text = f"{RENDER_VERSION}|{matplotlib.__version__}|{payload}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _size(group: list[FigureSpec]) -> tuple[float, float]:
    if len(group) > 1:
        return min(4.3 * len(group), 13.0), 3.5
    spec = group[0]
    if spec.kind == "images":
        n = max(1, len(spec.matrices or []))
        return min(3.0 * n + 1.2, 13.0), 3.4
    if spec.kind == "image":
        return 5.0, 4.0
    if spec.kind == "bars":
        n = len(spec.categories or []) * max(1, len(spec.series))
        return min(max(6.4, 0.16 * n), 11.0), 3.6
    return 6.4, 3.7


def draw(group: list[FigureSpec]) -> tuple[bytes, list[str]]:
    """Draw a group of specs into one image; returns the file's bytes and caption notes."""
    for spec in group:
        if spec.kind not in KINDS:
            raise SpecError(f"unknown figure kind {spec.kind!r} (one of {', '.join(KINDS)})")
        if spec.kind == "images" and len(group) > 1:
            raise SpecError("an 'images' figure cannot share a panel row; use 'image' figures instead")
    ext = extension(group)
    with matplotlib.rc_context(STYLE | {"axes.prop_cycle": matplotlib.cycler(color=PALETTE)}):
        # No layout engine: one tight bounding box at save time costs a third of constrained layout.
        fig = Figure(figsize=_size(group))
        notes: list[str] = []
        if group[0].kind == "images":
            n = len(group[0].matrices or [])
            if n == 0:
                raise SpecError("an 'images' figure needs at least one matrix")
            notes += draw_images(fig.subplots(1, n, squeeze=False, gridspec_kw={"wspace": 0.3})[0], group[0], fig)
        else:
            axes = fig.subplots(1, len(group), squeeze=False, gridspec_kw={"wspace": 0.38})[0]
            for ax, spec in zip(axes, group):
                prefix = f"{spec.title}: " if len(group) > 1 and spec.title else ""
                if spec.kind == "lines":
                    found = draw_lines(ax, spec)
                elif spec.kind == "bars":
                    found = draw_bars(ax, spec)
                else:
                    found = draw_image(ax, spec, fig)
                notes += [prefix + n for n in found]
        buf = io.BytesIO()
        if ext == "svg":
            fig.savefig(buf, format="svg", bbox_inches="tight", pad_inches=0.06, metadata={"Date": None})
        else:
            fig.savefig(
                buf, format="png", bbox_inches="tight", pad_inches=0.06, dpi=PNG_DPI, metadata={"Software": None}
            )
    return buf.getvalue(), notes


def render_group(
    name: str, group: list[FigureSpec], lookup: Callable[[str], tuple[bytes, list[str]] | None] | None = None
) -> RenderedFigure:
    """One image for a group of specs. ``lookup(key)`` may return (bytes, notes) drawn earlier
    for the same content key; they are reused as they are, since drawing is deterministic."""
    fig = RenderedFigure(
        name=name,
        key=content_key(group),
        titles=[s.title for s in group],
        captions=[s.caption for s in group if s.caption],
    )
    cached = lookup(fig.key) if lookup else None
    if cached is not None:
        fig.data, fig.notes = cached
        return fig
    try:
        fig.data, fig.notes = draw(group)
    except SpecError as exc:
        fig.error = str(exc)
    except (ValueError, TypeError, OverflowError) as exc:  # data matplotlib refuses; the report says so
        fig.error = f"{type(exc).__name__}: {exc}"
    return fig
