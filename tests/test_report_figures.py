"""Figures from FigureSpec data: every kind draws, output is deterministic and small, text is
literal and escaped, bad specs are refused with a reason, and NaN/inf are noted, not hidden."""

from __future__ import annotations

import math
import re

import pytest
from matplotlib.figure import Figure

from reslab.report.figures import draw, group_figures, render_group
from reslab.report.plots import SpecError, _colour_groups, draw_bars, draw_images, draw_lines
from reslab.studies.results import FigureSpec, Series


def lines(*series: Series, **kw) -> FigureSpec:
    return FigureSpec(kind="lines", title=kw.pop("title", "t"), series=list(series), **kw)


def s(label: str, y: list, style: str = "solid", **kw) -> Series:
    return Series(label, list(range(len(y))), y, style=style, **kw)


def svg_texts(data: bytes) -> list[str]:
    return re.findall(r"<text[^>]*>([^<]*)</text>", data.decode())


def test_each_kind_draws_to_its_format():
    svg, _ = draw([lines(s("a", [1, 2, 3]))])
    assert svg.startswith(b"<?xml") and b"<svg" in svg
    bars = FigureSpec(kind="bars", title="b", categories=["x", "y"], series=[s("a", [1, 2])])
    assert draw([bars])[0].startswith(b"<?xml")
    image = FigureSpec(kind="image", title="i", matrix=[[1, 2], [3, 4]])
    assert draw([image])[0].startswith(b"\x89PNG")
    images = FigureSpec(kind="images", title="i", matrices=[[[1, -2], [3, 4]]] * 2, panel_titles=["p", "q"])
    assert draw([images])[0].startswith(b"\x89PNG")


def test_drawing_is_deterministic():
    spec = lines(s("a train", [3, 2, 1], err=[0.1] * 3), s("a test", [4, 3, 2], "dashed"), hlines=[{"y": 2}])
    assert draw([spec])[0] == draw([spec])[0]
    image = FigureSpec(kind="image", title="i", matrix=[[1, 2], [3, 4]])
    assert draw([image])[0] == draw([image])[0]


def test_text_is_literal_and_escaped_in_svg():
    spec = lines(s("costs $5 and $10", [1, 2]), s("<script>x</script> & co", [2, 1]), title="<b>t</b> $x$")
    data, _ = draw([spec])
    texts = svg_texts(data)
    assert "costs $5 and $10" in texts  # no mathtext: dollars stay dollars
    assert "&lt;script&gt;x&lt;/script&gt; &amp; co" in texts
    assert b"<script" not in data and b"<b>" not in data


def test_dense_series_are_rasterized_so_svgs_stay_small():
    n = 20_000
    dense = lines(s("dense", [math.sin(i / 50) for i in range(n)]))
    data, _ = draw([dense])
    assert b"<image" in data and len(data) < 250_000
    small = lines(*[s(f"net {k}", [math.sin(i / 9 + k) for i in range(200)]) for k in range(4)])
    data, _ = draw([small])
    assert b"<image" not in data and len(data) < 80_000


def test_train_test_pairs_share_a_colour_and_a_compact_legend():
    keys, roles = _colour_groups([s("plain-20 train", [1]), s("plain-20 test", [1]), s("He + BN", [1])])
    assert keys == ["plain-20", "plain-20", "He + BN"] and roles == ["train", "test", None]
    spec = lines(
        s("plain-20 train", [3, 2, 1]),
        s("plain-20 test", [4, 3, 2], "dashed"),
        s("resnet-20 train", [2, 1, 0.5]),
        s("resnet-20 test", [3, 2, 1], "dashed"),
    )
    texts = svg_texts(draw([spec])[0])
    assert {"plain-20", "resnet-20", "train", "test"} <= set(texts)
    assert "plain-20 train" not in texts
    ax = Figure().subplots()
    draw_lines(ax, spec)
    colours = [line.get_color() for line in ax.lines[:4]]
    assert colours[0] == colours[1] != colours[2] == colours[3]
    spec.series[0].color = spec.series[1].color = "#123456"  # a colour the study chose
    ax = Figure().subplots()
    draw_lines(ax, spec)
    legend = {t.get_text(): h.get_color() for t, h in zip(ax.get_legend().get_texts(), ax.get_legend().legend_handles)}
    assert legend["plain-20"] == "#123456" and legend["resnet-20"] != "#123456"


def test_non_finite_values_are_noted_not_hidden():
    data, notes = draw([lines(s("loss", [1.0, math.nan, math.inf, 2.0, None]))])
    assert data
    assert notes == ["series 'loss': 3 of 5 values are NaN or infinite (not drawn)"]
    _, notes = draw([lines(s("corr", [1.0, 0.1, 0.0]), logy=True)])
    assert any("≤ 0 cannot be shown on the log axis" in n for n in notes)
    _, notes = draw([FigureSpec(kind="image", title="i", matrix=[[1, math.nan], [3, 4]])])
    assert notes == ["matrix: 1 of 4 values are NaN (not drawn)"]


def test_bars_mark_categories_and_thin_crowded_labels():
    cats = [str(i) for i in range(54)]
    spec = FigureSpec(kind="bars", title="lesion", categories=cats, series=[s("res", [1.0] * 54)], marks=[18, 36])
    ax = Figure().subplots()
    draw_bars(ax, spec)
    labels = {t.get_text(): t.get_fontweight() for t in ax.get_xticklabels()}
    assert labels["18"] == "bold" and labels["36"] == "bold" and labels["0"] == "normal"
    assert len(labels) <= 26  # at most ~24 labels plus the marked ones
    shaded = [p for p in ax.patches if p.get_facecolor()[:3] == pytest.approx((0.9, 0.9, 0.9))]
    assert len(shaded) == 2


def test_images_share_one_colour_scale_centred_on_zero():
    spec = FigureSpec(kind="images", title="cov", matrices=[[[1, -1], [0, 2]], [[10, 0], [0, -4]]])
    fig = Figure()
    axes = fig.subplots(1, 2)
    draw_images(axes, spec, fig)
    clims = {ax.images[0].get_clim() for ax in axes}
    assert clims == {(-10.0, 10.0)}


def test_panels_group_consecutive_figures_into_one_image():
    a = lines(s("x", [1, 2]), panel="veit6", title="distribution")
    b = lines(s("y", [2, 1]), panel="veit6", title="magnitude", logy=True)
    c = lines(s("z", [1, 1]))
    groups = group_figures([a, b, c])
    assert [len(g) for g in groups] == [2, 1]
    texts = svg_texts(draw(groups[0])[0])
    assert "distribution" in texts and "magnitude" in texts


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        (FigureSpec(kind="pie", title="p"), "unknown figure kind"),
        (lines(Series("a", [1, 2, 3], [1, 2])), "3 x values and 2 y values"),
        (lines(s("a", [1, 2], "wiggly")), "unknown series style"),
        (lines(s("a", [1, 2], err=[1])), "1 err values for 2 points"),
        (FigureSpec(kind="bars", title="b", categories=["x"], series=[s("a", [1, 2])]), "2 values for 1 categories"),
        (FigureSpec(kind="bars", title="b", series=[s("a", [1])]), "needs categories"),
        (FigureSpec(kind="image", title="i", matrix=[[1, 2], [3]]), "not a matrix"),
        (FigureSpec(kind="images", title="i", matrices=[[[1]]], panel_titles=["a", "b"]), "2 panel titles for 1"),
        (lines(s("a", [1, "x"])), "not a number"),
        (lines(s("a", [1, 2]), hlines=[{"label": "no y"}]), "finite 'y'"),
    ],
)
def test_bad_specs_are_refused_with_a_reason(spec, reason):
    with pytest.raises(SpecError, match=re.escape(reason)):
        draw([spec])
    fig = render_group("x-1.svg", [spec])
    assert reason in fig.error and fig.data == b""
