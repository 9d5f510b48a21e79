"""Synthetic results.json content for the report's tests and bench: every verdict, every figure kind.

The numbers are made up by a seeded generator and every claim says "(synthetic)"; they show
what the report looks like, they measure nothing.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..studies.results import FigureSpec, Series, StudyResult

SYNTHETIC = "(synthetic sample data, not a measurement)"


def _curves(rng: np.random.Generator) -> list[FigureSpec]:
    steps = np.arange(0, 2001, 20)
    series = []
    for net, level in (("plain-20", 0.2), ("plain-56", 0.45), ("resnet-20", 0.15), ("resnet-56", 0.1)):
        train = level + 0.8 * np.exp(-steps / 400) + rng.normal(0, 0.01, steps.size)
        test = train + 0.05
        err = np.full(steps.size, 0.02)
        series += [
            Series(f"{net} train", steps.tolist(), (100 * train).tolist(), (100 * err).tolist(), "solid"),
            Series(f"{net} test", steps.tolist(), (100 * test).tolist(), None, "dashed"),
        ]
    fig = FigureSpec(
        kind="lines",
        title="Training and test error",
        xlabel="iteration",
        ylabel="error (%)",
        series=series,
        hlines=[{"y": 90, "label": "chance"}],
        marks=[1000],
        caption="Solid: training error; dashed: test error; bands: ± std over seeds",
    )
    grads = FigureSpec(
        kind="lines",
        title="Gradient norm per layer",
        xlabel="layer",
        ylabel="gradient norm",
        logy=True,
        series=[
            Series(name, list(range(1, 51)), [float(10 ** (k * (i - 25) / 10)) for i in range(1, 51)])
            for name, k in (("small", 1.0), ("unit", -1.0), ("He", 0.02))
        ],
    )
    return [fig, grads]


def _lesion(rng: np.random.Generator) -> list[FigureSpec]:
    blocks = [f"{i}" for i in range(1, 28)]
    res = 8 + rng.uniform(0, 2, len(blocks))
    res[[9, 18]] = [20, 19]
    plain = np.full(len(blocks), 90.0) - rng.uniform(0, 1, len(blocks))
    bars = FigureSpec(
        kind="bars",
        title="Test error after deleting one block",
        xlabel="deleted block",
        ylabel="test error (%)",
        categories=blocks,
        series=[
            Series("residual", list(range(len(blocks))), res.tolist(), [0.5] * len(blocks)),
            Series("plain", list(range(len(blocks))), plain.tolist()),
        ],
        marks=[9, 18],
        hlines=[{"y": 8.0, "label": "no deletion"}],
        caption="Shaded: downsampling blocks",
    )
    ks = list(range(1, 14))
    curve = FigureSpec(
        kind="lines",
        title="Error vs number of deleted blocks",
        xlabel="k",
        ylabel="test error (%)",
        series=[
            Series("delete", ks, [8 + 3 * k for k in ks], [1.0] * len(ks), "solid+markers"),
            Series("reorder", ks, [8 + 1.5 * k for k in ks], [0.7] * len(ks), "markers"),
        ],
    )
    return [bars, curve]


def _shattered(rng: np.random.Generator) -> list[FigureSpec]:
    grid = np.linspace(-2, 2, 128)
    white = rng.normal(size=grid.size)
    brown = np.cumsum(rng.normal(size=grid.size)) / 8

    def cov(v: np.ndarray) -> list[list[float]]:
        return np.outer(v, v).round(4).tolist()

    return [
        FigureSpec(
            kind="lines",
            title="Gradient of the output w.r.t. the input",
            xlabel="input",
            ylabel="gradient",
            series=[
                Series("feedforward, depth 50", grid.tolist(), white.tolist()),
                Series("residual", grid.tolist(), brown.tolist()),
            ],
        ),
        FigureSpec(kind="image", title="Gradient covariance (residual)", matrix=cov(brown[:64])),
        FigureSpec(
            kind="images",
            title="Gradient covariance by depth",
            matrices=[cov(brown[:48]), cov(white[:48]), np.abs(cov(white[:48])).tolist()],
            panel_titles=["residual", "feedforward", "feedforward |cov|"],
        ),
        FigureSpec(
            kind="lines",
            title="Neighbour correlation vs depth",
            xlabel="depth",
            ylabel="correlation",
            logy=True,
            series=[Series("feedforward", [1, 2, 4, 8, 16], [0.99, 0.9, 0.6, 0.1, 0.0], style="dashed+markers")],
        ),
    ]


def _paths() -> list[FigureSpec]:
    n = 27
    ks = list(range(n + 1))
    count = [math.comb(n, k) for k in ks]
    mag = [10 ** (-0.3 * k) for k in ks]
    contrib = [c * m for c, m in zip(count, mag)]
    return [
        FigureSpec(
            kind="lines",
            title="Path length distribution",
            xlabel="path length",
            ylabel="paths",
            series=[Series("paths", ks, count)],
            panel="veit6",
        ),
        FigureSpec(
            kind="lines",
            title="Gradient magnitude",
            xlabel="path length",
            ylabel="magnitude",
            logy=True,
            series=[Series("magnitude", ks, mag)],
            panel="veit6",
        ),
        FigureSpec(
            kind="lines",
            title="Total gradient",
            xlabel="path length",
            ylabel="contribution",
            series=[Series("contribution", ks, contrib)],
            panel="veit6",
        ),
    ]


def sample_studies(n: int = 5, seed: int = 0) -> list[StudyResult]:
    """``n`` synthetic studies cycling through five templates (curves, lesion, shattered, paths, none)."""
    rng = np.random.default_rng(seed)
    templates = [
        ("degradation", "holds", _curves, {"plain-56 train err": {"mean": 45.2, "std": 1.3}}),
        ("lesion", "fails", _lesion, {"median lesion error": 8.9, "plain lesion error": 89.6}),
        ("shattered", "inconclusive", _shattered, {"neighbour correlation": [0.99, 0.65, 0.0]}),
        ("paths", "holds", lambda rng: _paths(), {"effective range": "5-17"}),
        ("diverging", "fails", lambda rng: [], {"loss": math.nan, "grad norm": math.inf, "floor": -math.inf}),
    ]
    studies = []
    for i in range(n):
        name, verdict, figures, numbers = templates[i % len(templates)]
        sid = name if i < len(templates) else f"{name}-{i // len(templates) + 1}"
        studies.append(
            StudyResult(
                id=sid,
                claim=f"Claim of the {name} study {SYNTHETIC}.",
                scale="smoke",
                seeds=3,
                verdict=verdict,
                verdict_rule="Holds when the synthetic number beats the synthetic threshold.",
                numbers=numbers | {"seeds used": 3},
                anchors={"source": "He2015 Table 6", "plain-56 train err": 13.0},
                evidence=[f"synthetic check {j}: {j * 1.5:.1f} > 1.0" for j in range(1, 3)],
                figures=figures(rng),
                setup={"models": ["plain20", "resnet20"], "data": "synthetic", "recipe": {"lr": 0.1, "steps": 600}},
                sources=["He2015"],
                notes="Synthetic sample; the report layer's tests use it.",
                elapsed_s=12.5 + i,
                runs=[f"run-{i}-{j}" for j in range(3)],
            )
        )
    return studies


def sample_results(n: int = 5, seed: int = 0) -> dict[str, Any]:
    """A whole results.json document (as a dict) holding ``sample_studies(n, seed)``."""
    return {
        "env": {
            "python": "3.11",
            "torch": "2.13.0",
            "cpu": "synthetic CPU",
            "git_commit": "0" * 40,
            "git_dirty": False,
        },
        "scale": "smoke",
        "started": "2025-01-01T12:00:00+00:00",
        "elapsed_s": 61.0,
        "studies": [s.to_dict() for s in sample_studies(n, seed)],
    }
