"""transformer — every Transformer sublayer is wrapped in a residual connection and LayerNorm.

Vaswani2017 put each sublayer (self-attention, feed-forward) inside ``LN(x + F(x))``. Remove
the residual and a deep encoder stops learning; keep it and the place of the LayerNorm
decides how the net must be trained: Xiong2020 show that Post-LN's gradients near the
output are large at initialization, so without a learning-rate warm-up it trains badly,
while Pre-LN (``x + F(LN(x))``) does not need one. Measured on sequence reversal, a token
task that needs attention (every output position must read the token at the mirrored
input position), with a deep encoder; the learning rate is high enough for the tiny
model to show Xiong2020's failure (a larger model fails at a smaller rate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..models import create_model
from ..probes import gradient_norms
from ..train import TrainConfig
from ..train.recipe import Recipe
from .base import Study, StudyContext
from .common import eval_data, mean_curve, recipe_text, run_config
from .results import FigureSpec, Series, StudyResult
from .stats import greater
from .trained import Group, converged, convergence_rule, group_bars, group_numbers, train_groups
from .verdict import Verdict

ALPHA = 0.05
SOLVED = 10.0  # % training error below which a net "learns" the task
FAILS = 0.8  # share of chance above which a net "fails to learn"
CLEARLY = 10.0  # points: "clearly worse"
VARIANTS = {"post-ln": "Post-LN", "pre-ln": "Pre-LN", "no-residual": "no residual", "rezero": "ReZero"}
# (variant, warm-up): the nets whose further training could overturn a check, for (1) the nets without
# residuals, (2) Post-LN without warm-up, (3) Pre-LN with it; the precondition's t-test needs their seeds
DECISIVE = (("no-residual", True), ("no-residual", False), ("post-ln", False), ("pre-ln", True))
OTHER_SEEDS = 3  # the nets that learn the task (or that no check reads) need no more: their means are far apart


def _spelled(variant: str, warm: bool) -> str:
    return f"{VARIANTS[variant]} with{'' if warm else 'out'} warm-up"


CLAIM = (
    "Without residual connections a deep Transformer encoder fails to learn a task its residual versions "
    "solve; with Post-LN it needs a learning-rate warm-up to train well, with Pre-LN it does not."
)
RULE = (
    "Final training error on the scored positions (eval mode; a diverged run counts as chance) of encoders of "
    "the deepest depth, trained by one recipe with and without a linear warm-up. Precondition: the nets whose "
    f"further training could overturn a check ({'; '.join(_spelled(v, w) for v, w in DECISIVE)}) {convergence_rule()}; "
    f"they train on every seed, the others on the first {OTHER_SEEDS}. Holds when (1) the encoder without residuals "
    f"stays above {FAILS:.0%} of chance with and without warm-up while Pre-LN, ReZero and Post-LN with warm-up get "
    f"below {SOLVED:g}%, (2) Post-LN without warm-up is at least {CLEARLY:g} points worse than with it (one-sided "
    f"Welch t-test, p < {ALPHA}), and (3) Pre-LN without warm-up is not significantly worse than with it."
)
ANCHORS = {
    "source": "Vaswani2017 (Post-LN, warm-up 4,000 steps); Xiong2020 Fig. 3 and Sec. 4 (Pre-LN needs no warm-up)",
    "Xiong2020, Post-LN without warm-up": "BLEU far below the warmed-up run (lr 5e-4 and 1e-3)",
    "Xiong2020, gradient norm at init": "Post-LN: grows toward the output layer; Pre-LN: flat",
}


@dataclass(frozen=True)
class Settings:
    depths: tuple[int, ...]  # encoder layers (two residual blocks each); the deepest is judged
    recipe: Recipe  # with the warm-up; "no warm-up" is the same recipe without it
    model: dict = field(default_factory=dict)  # d_model, heads, d_ff
    data_options: dict = field(default_factory=dict)  # seq_len, vocab, sizes
    grad_batch: int = 64
    task: str = "reversal"  # a synthetic token task (reslab.data.synthetic)


SETTINGS = {
    "smoke": Settings(
        depths=(2,),
        model={"d_model": 16, "heads": 2, "d_ff": 32},
        data_options={"seq_len": 9, "vocab": 8, "train_size": 256, "val_size": 64, "test_size": 64},
        recipe=Recipe(
            optimizer="adamw",
            lr=1e-3,
            steps=8,
            batch_size=32,
            schedule="wsd",
            warmup="linear",
            warmup_steps=2,
            momentum=0.0,
            weight_decay=0.01,
        ),
    ),
    "quick": Settings(
        depths=(12,),
        model={"d_model": 32, "heads": 2, "d_ff": 64},
        data_options={"seq_len": 10, "vocab": 10, "train_size": 10_000, "val_size": 500, "test_size": 500},
        recipe=Recipe(
            optimizer="adamw",
            lr=5e-3,  # at 1e-2 Post-LN was unstable even with warm-up
            betas=(0.9, 0.98),
            steps=600,  # at 400, Post-LN with warm-up was still leaving chance after step 200 on seeds 10-12
            batch_size=64,
            schedule="wsd",
            warmup="linear",
            warmup_steps=60,
            momentum=0.0,
            weight_decay=0.01,
        ),
    ),
    "full": Settings(
        depths=(6, 12, 24),
        model={"d_model": 128, "heads": 4, "d_ff": 512},
        data_options={"seq_len": 33, "vocab": 64},
        recipe=Recipe(
            optimizer="adamw",
            lr=1e-3,
            betas=(0.9, 0.98),
            steps=20_000,
            batch_size=128,
            schedule="wsd",
            warmup="linear",
            warmup_steps=2000,
            momentum=0.0,
            weight_decay=0.01,
        ),
    ),
}


def label(variant: str, warm: bool, depth: int) -> str:
    return f"{VARIANTS[variant]}{'' if warm else ', no warm-up'}, {depth} layers"


def seeds_of(seeds: Sequence[int], variant: str, warm: bool) -> list[int]:
    return list(seeds) if (variant, warm) in DECISIVE else list(seeds)[:OTHER_SEEDS]


def configs(s: Settings, seeds: Sequence[int], variant: str, warm: bool, depth: int) -> list[TrainConfig]:
    recipe = s.recipe if warm else s.recipe.replace(warmup="none", warmup_steps=0)
    options = {"depth": depth, "variant": variant, **s.model}
    return [
        run_config(
            "transformer_preln",
            recipe,
            seed,
            options,
            s.data_options,
            data=s.task,
            eval_train_size=1000,
            log_every=20,
            eval_every=100,
            convergence_check=True,
        )
        for seed in seeds
    ]


def plan(s: Settings, seeds: Sequence[int]) -> list[TrainConfig]:
    return [
        c for d in s.depths for v in VARIANTS for w in (True, False) for c in configs(s, seeds_of(seeds, v, w), v, w, d)
    ]


def chance(s: Settings) -> float:
    """% error of guessing each scored token: among the vocabulary (recall's values: half of it)."""
    vocab = s.data_options.get("vocab", 16)
    return 100.0 * (1 - 1 / (vocab // 2 if s.task == "recall" else vocab))


def judge(groups: dict, depth: int, s: Settings) -> Verdict:
    g = {(v, w): groups[label(v, w, depth)] for v in VARIANTS for w in (True, False)}
    v = Verdict()
    failing = [g["no-residual", w] for w in (True, False)]
    decisive = [g[k] for k in DECISIVE]
    converged(v, decisive, [x for x in groups.values() if x not in decisive])
    solving = [g["pre-ln", True], g["pre-ln", False], g["rezero", True], g["post-ln", True]]
    fails = all(x.summary().mean > FAILS * chance(s) for x in failing)
    solves = all(x.summary().mean < SOLVED for x in solving)
    v.check(
        f"depth {depth}: no residual {', '.join(x.text() for x in failing)} (> {FAILS * chance(s):.0f}%) while "
        + ", ".join(f"{x.label} {x.text()}" for x in solving)
        + f" (< {SOLVED:g}%)",
        fails and solves,
    )
    post, post_cold = g["post-ln", True], g["post-ln", False]
    t = greater(post_cold.final(), post.final())
    gap = post_cold.summary().mean - post.summary().mean
    v.check(
        f"Post-LN without warm-up {post_cold.text()} vs with {post.text()}: {gap:+.1f} points (≥ {CLEARLY:g}, "
        f"p = {t.p:.3g})",
        None if t.outcome(ALPHA) is None else bool(t.outcome(ALPHA) and gap >= CLEARLY),
    )
    pre, pre_cold = g["pre-ln", True], g["pre-ln", False]
    t = greater(pre_cold.final(), pre.final())
    v.check(
        f"Pre-LN without warm-up {pre_cold.text()} is not significantly worse than with {pre.text()} (p = {t.p:.3g})",
        None if t.outcome(ALPHA) is None else not t.outcome(ALPHA),
    )
    return v


def gradients_at_init(ctx: StudyContext, s: Settings, depth: int) -> dict[str, np.ndarray]:
    """Xiong2020 Fig. 3: ‖∂E/∂W‖ of each layer's feed-forward output weights at initialization, mean over seeds."""
    x, y = eval_data(
        configs(s, ctx.seeds[:1], "pre-ln", True, depth)[0].replace(data_dir=ctx.data_dir), "train", s.grad_batch
    )
    out = {}
    for variant in ("post-ln", "pre-ln"):
        norms = []
        for seed in ctx.seeds:
            torch.manual_seed(seed)
            net = create_model(
                "transformer_preln",
                depth=depth,
                variant=variant,
                vocab_size=s.data_options.get("vocab", 16),
                seq_len=s.data_options.get("seq_len", 16),
                **s.model,
            )
            r = gradient_norms(net.train(), x, y)
            norms.append(r.weight_grad_norms[_ff_outputs(r.layer_names)])
        out[variant] = np.mean(norms, axis=0)
    return out


def _ff_outputs(names: list[str]) -> list[int]:
    """Indices of each feed-forward sublayer's output weights: the last weight of blocks 1, 3, 5, ..."""
    last: dict[int, int] = {}
    for i, name in enumerate(names):
        parts = name.split(".")
        if parts[0] == "blocks" and int(parts[1]) % 2 == 1:
            last[int(parts[1])] = i
    return [last[b] for b in sorted(last)]


def figures(groups: dict, grads: dict[str, np.ndarray], depth: int) -> list[FigureSpec]:
    curves = []
    for variant in VARIANTS:
        for warm in (True, False):
            g: Group = groups[label(variant, warm, depth)]
            steps, loss, _ = mean_curve(g.records, "train", "loss", scale=1.0)
            curves.append(Series(g.label.rsplit(",", 1)[0], steps, loss, style="solid" if warm else "dashed"))
    layers = [float(i + 1) for i in range(len(next(iter(grads.values()))))]
    return [
        FigureSpec(
            "lines",
            f"Training loss, {depth}-layer encoders (dashed: no warm-up)",
            "iterations",
            "cross-entropy",
            curves,
            logy=True,
        ),
        FigureSpec(
            "lines",
            "Gradient norm of each layer's feed-forward output weights at initialization",
            "layer",
            "‖∂E/∂W‖",
            [Series(VARIANTS[v], layers, [float(x) for x in n], style="solid+markers") for v, n in grads.items()],
            logy=True,
        ),
        group_bars(f"Final error, {depth}-layer encoders", list(groups.values())),
    ]


def analyze(ctx: StudyContext, s: Settings) -> StudyResult:
    depth = s.depths[-1]
    planned = {
        label(v, w, d): configs(s, seeds_of(ctx.seeds, v, w), v, w, d)
        for d in s.depths
        for v in VARIANTS
        for w in (True, False)
    }
    groups = train_groups(ctx, planned, chance=chance(s))
    deepest = {k: g for k, g in groups.items() if k.endswith(f", {depth} layers")}
    grads = gradients_at_init(ctx, s, depth)
    numbers = group_numbers(groups.values())
    numbers |= {f"{VARIANTS[v]} FF gradient norm, last/first layer": float(n[-1] / n[0]) for v, n in grads.items()}
    key = ", ".join(f"{g.label.rsplit(',', 1)[0]} {g.text()}" for g in deepest.values())
    return STUDY.result(
        ctx,
        judge(groups, depth, s),
        numbers=numbers,
        key_number=f"{depth} layers: " + key,
        figures=figures(deepest, grads, depth),
        setup={
            "models": f"Transformer encoders of {', '.join(map(str, s.depths))} layers, {s.model}, each variant",
            "data": f"{s.task}, {s.data_options}",
            "seeds": f"{ctx.seeds} for the nets the precondition tests, {ctx.seeds[:OTHER_SEEDS]} for the others",
            "recipe": recipe_text(s.recipe) + "; the same without warm-up",
        },
        runs=[r.id for g in groups.values() for r in g.records],
    )


STUDY = Study(
    id="transformer",
    title="Residual connections and LayerNorm in every Transformer sublayer (Vaswani2017, Xiong2020)",
    claim=CLAIM,
    sources=["Vaswani2017", "Xiong2020"],
    anchors=ANCHORS,
    rule=RULE,
    settings=SETTINGS,
    analyze=analyze,
    plan=plan,
    order=100,
    part="essay",
    # the nets that fail to learn wander near chance, their final error a few points apart between schedules
    # on some seeds: 3 seeds, and then 6 on one machine, could not show them converged (README); see DECISIVE
    default_seeds={"smoke": 1, "quick": 10, "full": 3},
)
