"""The figures and key numbers of one ``reslab probe`` run, from its result files alone.

Each probe gets the figure of the paper it reproduces (Veit2016 Fig. 3 and 6, He2016's
gradient ratios, Li2018's surface, Balduzzi2017's correlations), drawn for one net and
without a verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..probes import (
    GradientNorms,
    LandscapeResult,
    LesionResult,
    LineGradients,
    PathResult,
    ProbeResult,
    Propagation,
    ShortcutShares,
)
from ..studies.results import FigureSpec, Series


def _f(values: Any) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=float).ravel()]


def _boundaries(n: int) -> list[float]:
    return [float(i) for i in range(n)]


def lesion(results: dict[str, ProbeResult]) -> tuple[list[FigureSpec], dict[str, Any]]:
    r: LesionResult = results["lesion"]
    blocks = list(range(r.num_blocks))
    figures = [
        FigureSpec(
            "bars",
            "Test error after deleting one block",
            "deleted block",
            "error (%)",
            [Series("one block deleted", blocks, _f(100 * r.single_error))],
            categories=[str(b) for b in blocks],
            hlines=[{"y": 100 * r.baseline_error, "label": "nothing deleted"}],
            marks=[float(i) for i in np.flatnonzero(r.downsampling)],
            caption="Shaded: blocks that change the shape (their deletion keeps only the shortcut).",
        ),
    ]
    if r.delete_k.size:
        figures.append(
            FigureSpec(
                "lines",
                "Deleting k random blocks",
                "blocks deleted (k)",
                "error (%)",
                [
                    Series(
                        "mean over draws",
                        _f(r.delete_k),
                        _f(100 * r.delete_error.mean(1)),
                        _f(100 * r.delete_error.std(1)),
                        "solid+markers",
                    )
                ],
                panel="k",
            )
        )
    if r.reorder_k.size:
        figures.append(
            FigureSpec(
                "lines",
                "Reordering by k random swaps",
                "Kendall τ of the block order",
                "error (%)",
                [
                    Series(
                        "mean over draws", _f(r.reorder_tau.mean(1)), _f(100 * r.reorder_error.mean(1)), None, "markers"
                    )
                ],
                panel="k",
            )
        )
    numbers = {
        "blocks": r.num_blocks,
        "error, nothing deleted (%)": 100 * r.baseline_error,
        "median increase for deleting one same-shape block (points)": 100 * r.median_single_increase,
        "worst single same-shape deletion (%)": 100 * r.max_single_error_same_shape,
    }
    return figures, numbers


def paths(results: dict[str, ProbeResult]) -> tuple[list[FigureSpec], dict[str, Any]]:
    r: PathResult = results["paths"]
    lengths = _f(r.lengths)
    figures = [
        FigureSpec(
            "lines",
            "(a) Distribution of path length",
            "path length",
            "share of paths",
            [Series("Binomial(n, 1/2)", lengths, _f(r.path_share))],
            panel="veit6",
        ),
        FigureSpec(
            "lines",
            "(b) Gradient magnitude per path",
            "path length",
            "gradient magnitude",
            [Series("sampled paths", lengths, _f(r.magnitude), None, "solid+markers")],
            logy=True,
            panel="veit6",
        ),
        FigureSpec(
            "lines",
            "(c) Total gradient per length",
            "path length",
            "share of total gradient",
            [Series("count × magnitude", lengths, _f(r.contribution_share))],
            panel="veit6",
            marks=[float(v) for v in r.effective_range],
            caption=f"Marks: the effective range holding {r.share:.0%} of the total.",
        ),
    ]
    numbers = {
        "blocks with a shortcut (n)": r.num_blocks,
        "effective range (path lengths)": f"{r.effective_range[0]}–{r.effective_range[1]}",
        "mean path length n/2": r.mean_path_length,
        "log10 gradient magnitude per block on the path": r.log10_decay_per_block,
    }
    return figures, numbers


def gradflow(results: dict[str, ProbeResult]) -> tuple[list[FigureSpec], dict[str, Any]]:
    g: GradientNorms = results["norms"]
    s: ShortcutShares = results["shares"]
    n = len(g.activation_grad_norms)
    figures = [
        FigureSpec(
            "lines",
            "Backward signal at each block boundary",
            "boundary l (0: stem output)",
            "‖∂E/∂x_l‖",
            [Series("activation gradient", _boundaries(n), _f(g.activation_grad_norms), None, "solid+markers")],
            logy=True,
            panel="flow",
        ),
        FigureSpec(
            "lines",
            "Weight gradient per layer",
            "weight layer (input to output)",
            "‖∂E/∂W‖",
            [Series("weight gradient", _boundaries(len(g.weight_grad_norms)), _f(g.weight_grad_norms))],
            logy=True,
            panel="flow",
        ),
        FigureSpec(
            "lines",
            "Share of each block's backward signal through its shortcut",
            "block",
            "shortcut share",
            [Series("shortcut share", _boundaries(len(s.shortcut_share)), _f(s.shortcut_share), None, "solid+markers")],
            hlines=[{"y": 0.5, "label": "equal parts"}],
        ),
    ]
    numbers = {
        "log10 ‖∂E/∂x_0‖ / ‖∂E/∂x_L‖": g.activation_grad_orders,
        "log10 first / last weight gradient": g.weight_grad_orders,
        "mean shortcut share": s.mean_share,
        "loss E": g.loss,
    }
    return figures, numbers


def propagation(results: dict[str, ProbeResult]) -> tuple[list[FigureSpec], dict[str, Any]]:
    p: Propagation = results["propagation"]
    b = _boundaries(len(p.ratio))
    figures = [
        FigureSpec(
            "lines",
            "‖∂E/∂x_l‖ / ‖∂E/∂x_L‖ (He2016 Eq. 5)",
            "boundary l (0: stem output)",
            "ratio",
            [Series("ratio", b, _f(p.ratio), None, "solid+markers")],
            logy=True,
            panel="prop",
            hlines=[{"y": 1.0, "label": "top's size"}],
        ),
        FigureSpec(
            "lines",
            "Share of the identity term",
            "boundary l",
            "identity share",
            [Series("‖d_l‖ / (‖d_l‖ + ‖r_l‖)", b, _f(p.identity_share), None, "solid+markers")],
            panel="prop",
        ),
    ]
    numbers = {
        "ratio at x_0 (bottom)": p.bottom_ratio,
        "smallest ratio": p.min_ratio,
        "mean identity share": float(np.nanmean(p.identity_share)),
        "branch scale s": p.branch_scale,
    }
    return figures, numbers


def landscape(results: dict[str, ProbeResult]) -> tuple[list[FigureSpec], dict[str, Any]]:
    r: LandscapeResult = results["landscape"]
    alphas = _f(r.alphas)
    if r.betas.size:
        mid = int(np.argmin(np.abs(r.betas)))
        cuts = [
            Series("along d1 (β = 0)", alphas, _f(r.loss[:, mid])),
            Series("along d2 (α = 0)", _f(r.betas), _f(r.loss[int(np.argmin(np.abs(r.alphas))), :])),
        ]
        figures = [
            FigureSpec(
                "image",
                "log10 loss on the plane (rows: α, columns: β)",
                "β index",
                "α index",
                matrix=np.log10(np.maximum(r.loss, 1e-12)).tolist(),
                caption=f"α, β from {alphas[0]:g} to {alphas[-1]:g} in {len(alphas)} steps.",
            ),
            FigureSpec("lines", "Loss through the centre", "step along the direction", "loss", cuts),
        ]
    else:
        figures = [
            FigureSpec(
                "lines", "Loss along a filter-normalized direction", "α", "loss", [Series("loss", alphas, _f(r.loss))]
            )
        ]
    numbers = {
        "loss at the weights": r.origin_loss,
        "accuracy at the weights": r.origin_accuracy,
        "largest loss on the grid": float(np.nanmax(r.loss)),
        "share of negative curvature": r.negative_curvature_share,
    }
    return figures, numbers


def shattered(results: dict[str, ProbeResult]) -> tuple[list[FigureSpec], dict[str, Any]]:
    r: LineGradients = results["lines"]
    b = _boundaries(len(r.points))
    picks = sorted({0, len(r.points) // 2, len(r.points) - 2, len(r.points) - 1})
    t = _f(r.t)
    curves = [Series(r.points[i], t, _f(r.curves[i, 0] / (np.abs(r.curves[i, 0]).max() or 1.0))) for i in picks]
    figures = [
        FigureSpec(
            "lines",
            "Neighbour correlation along the lines",
            "boundary (last: logits)",
            "lag-1 correlation",
            [Series("mean over pairs", b, _f(r.neighbour_correlation), None, "solid+markers")],
            panel="shat",
        ),
        FigureSpec(
            "lines",
            "Spectral slope",
            "boundary (last: logits)",
            "slope",
            [Series("mean over pairs", b, _f(r.spectral_slope), None, "solid+markers")],
            panel="shat",
            hlines=[{"y": -2.0, "label": "brown"}, {"y": 0.0, "label": "white"}],
        ),
        FigureSpec("lines", "Gradient along the first line (scaled to ±1)", "t (input a → input b)", "g_l(t)", curves),
    ]
    numbers = {
        "line through": f"{r.space} space",
        "pairs × points": f"{r.pairs} × {r.grid}",
        "neighbour correlation at x_0": float(r.neighbour_correlation[0]),
        "neighbour correlation at the last block": float(r.neighbour_correlation[-2]),
        "spectral slope at the last block": float(r.spectral_slope[-2]),
    }
    return figures, numbers


FIGURES: dict[str, Callable[[dict[str, ProbeResult]], tuple[list[FigureSpec], dict[str, Any]]]] = {
    "lesion": lesion,
    "paths": paths,
    "gradflow": gradflow,
    "propagation": propagation,
    "landscape": landscape,
    "shattered": shattered,
}
