"""degradation — deeper plain nets get higher *training* error; residual nets don't (He2015).

Once convergence is assured (He init + BN), accuracy saturates and then degrades as depth
grows, and this is not overfitting: the deeper plain net has the higher training error.
The same depth with identity shortcuts does not degrade. Plain and residual nets here have
identical parameters (option-A shortcuts carry none) and the same recipe.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..models import list_models
from ..train import TrainConfig
from ..train.recipe import Recipe, get_recipe
from .base import Study, StudyContext
from .common import describe, error_bars, errors, recipe_text, run_config, summary_dict, training_curves
from .results import FigureSpec, StudyResult
from .stats import greater, summarize
from .verdict import Verdict

CLAIM = (
    "Deeper plain nets reach a higher training error than shallower ones, while residual nets of the "
    "same depth and parameters do not degrade."
)
RULE = (
    "Training error is measured at the end in eval mode on a fixed training subset; a diverged run "
    "counts as 90%. Holds when (1) the deepest plain net's training error exceeds the shallowest plain "
    "net's (one-sided Welch t-test over seeds, p < 0.05), (2) the deepest residual net's training error "
    "is below the deepest plain net's (same test), (3) the residual depth gap (deep − shallow) is smaller "
    "than the plain one, and at full scale (4) the deepest residual net trains no worse than the shallowest."
)
ANCHORS = {
    "source": "He2015 Table 6 (CIFAR-10 test error %; ours on this scale's data); plain nets: public reproductions",
    "resnet20 test error": 8.75,
    "resnet32 test error": 7.51,
    "resnet44 test error": 7.17,
    "resnet56 test error": 6.97,
    "resnet110 test error": "6.43 (6.61 ± 0.16)",
    "plain20 test error": "≈ 9.5–9.8",
    "plain56 test error": "≈ 12.8–13.0",
    "resnet20 params": "0.27M",
    "resnet56 params": "0.85M",
}


@dataclass(frozen=True)
class Settings:
    depths: tuple[int, ...]  # shallowest first
    recipe: Recipe
    widths: tuple[int, int, int] = (16, 32, 64)
    data: str = "fashion-mnist"
    data_options: dict = field(default_factory=dict)  # train_size, val_size, test_size, image_size
    eval_every: int = 0
    eval_train_size: int = 5000
    log_every: int = 20


SETTINGS = {
    "smoke": Settings(
        depths=(8, 14), widths=(4, 8, 16), eval_train_size=128, log_every=1,
        data_options={"train_size": 256, "val_size": 128, "test_size": 256, "image_size": 14},
        recipe=Recipe(lr=0.1, steps=6, batch_size=32, schedule="constant", precision="fp32"),
    ),
    # Sized for a 2-core CPU: nets half as wide as He2015's on 14x14 Fashion-MNIST (4x fewer pixels),
    # one epoch of 10k images. lr 0.05 (not 0.1) because at 0.1 this short schedule leaves even the
    # 56-layer ResNet far from converged (58% training error, measured), which no longer tests the claim.
    "quick": Settings(
        depths=(20, 56), widths=(8, 16, 32), eval_every=26, eval_train_size=1000, log_every=5,
        data_options={"train_size": 10_000, "val_size": 1000, "test_size": 2000, "image_size": 14},
        recipe=Recipe(lr=0.05, epochs=1, batch_size=128, schedule="cosine"),
    ),
    # He2015 Sec. 4.2: CIFAR-10, 45k/5k split, SGD 0.1 /10 at 32k and 48k of 64k iterations
    "full": Settings(
        depths=(20, 32, 44, 56, 110), data="cifar10", eval_every=2000, recipe=get_recipe("he2015_cifar"),
    ),
}  # fmt: skip


def model_name(kind: str, depth: int) -> tuple[str, dict]:
    """The registry name for a plain/residual net of ``depth`` (with a depth override if unnamed)."""
    name = f"{kind}{depth}"
    if name in list_models():
        return name, {}
    return f"{kind}20", {"depth": depth}


def configs(s: Settings, seeds: int, kind: str, depth: int) -> list[TrainConfig]:
    name, options = model_name(kind, depth)
    if s.widths != (16, 32, 64):
        options = {**options, "widths": list(s.widths)}
    return [
        run_config(
            name,
            s.recipe,
            seed,
            options,
            s.data_options,
            data=s.data,
            eval_every=s.eval_every,
            eval_train_size=s.eval_train_size,
            log_every=s.log_every,
        )
        for seed in range(seeds)
    ]


def plan(s: Settings, seeds: int) -> list[TrainConfig]:
    return [c for depth in s.depths for kind in ("plain", "resnet") for c in configs(s, seeds, kind, depth)]


def analyze(ctx: StudyContext, s: Settings) -> StudyResult:
    runs = {}
    for depth in s.depths:
        for kind in ("plain", "resnet"):
            runs[kind, depth] = ctx.train(configs(s, ctx.seeds, kind, depth), f"{kind}-{depth}")
    shallow, deep = s.depths[0], s.depths[-1]
    train = {key: errors(recs) for key, recs in runs.items()}
    test = {key: errors(recs, "test_error") for key, recs in runs.items()}
    mean = {key: summarize(v).mean for key, v in train.items()}

    v = Verdict()
    t1 = greater(train["plain", deep], train["plain", shallow])
    v.check(
        f"plain-{deep} training error {describe(summarize(train['plain', deep]))} > plain-{shallow} "
        f"{describe(summarize(train['plain', shallow]))} (p = {t1.p:.3g})",
        t1.outcome(),
    )
    t2 = greater(train["plain", deep], train["resnet", deep])
    v.check(
        f"residual-{deep} training error {describe(summarize(train['resnet', deep]))} < plain-{deep} "
        f"{describe(summarize(train['plain', deep]))} (p = {t2.p:.3g})",
        t2.outcome(),
    )
    gap_plain = mean["plain", deep] - mean["plain", shallow]
    gap_res = mean["resnet", deep] - mean["resnet", shallow]
    v.check(f"residual depth gap {gap_res:+.1f} points < plain depth gap {gap_plain:+.1f} points", gap_res < gap_plain)
    if ctx.scale == "full":
        v.check(
            f"residual-{deep} training error {mean['resnet', deep]:.2f}% ≤ residual-{shallow} "
            f"{mean['resnet', shallow]:.2f}%",
            mean["resnet", deep] <= mean["resnet", shallow],
        )

    label = {"plain": "plain", "resnet": "ResNet"}
    numbers = {}
    for (kind, depth), vals in train.items():  # keys match the anchors', so the report pairs them
        numbers[f"{kind}{depth} train error"] = summary_dict(vals)
        numbers[f"{kind}{depth} test error"] = summary_dict(test[kind, depth])
    numbers["plain depth gap (points)"] = round(gap_plain, 2)
    numbers["residual depth gap (points)"] = round(gap_res, 2)

    figures = []
    for kind in ("plain", "resnet"):
        series = []
        for depth in s.depths:
            series += training_curves(f"{label[kind]}-{depth}", runs[kind, depth])
        figures.append(
            FigureSpec(
                "lines",
                f"{label[kind]} nets",
                "iterations",
                "error (%)",
                series,
                panel="curves",
                caption=""
                if kind == "resnet"
                else "He2015 Fig. 1 style: training error (solid, training batches) and validation error "
                "(dashed), mean over seeds.",
            )
        )
    keys = [(k, d) for d in s.depths for k in ("plain", "resnet")]
    figures.append(
        error_bars(
            "Final training and test error",
            [f"{label[k]}-{d}" for k, d in keys],
            [train[k] for k in keys],
            [test[k] for k in keys],
        )
    )
    return STUDY.result(
        ctx,
        v,
        numbers=numbers,
        key_number=(
            f"train err plain-{shallow}/{deep}: {mean['plain', shallow]:.1f}/{mean['plain', deep]:.1f}%, "
            f"ResNet: {mean['resnet', shallow]:.1f}/{mean['resnet', deep]:.1f}%"
        ),
        figures=figures,
        setup={
            "models": f"plain and ResNet (option A) at depths {', '.join(map(str, s.depths))}, widths {s.widths}",
            "data": f"{s.data}, " + ", ".join(f"{k} {v}" for k, v in s.data_options.items()),
            "seeds": ctx.seeds,
            "recipe": recipe_text(s.recipe),
        },
        runs=[r.id for recs in runs.values() for r in recs],
    )


STUDY = Study(
    id="degradation",
    title="Deeper plain nets train worse; residual nets don't",
    claim=CLAIM,
    sources=["He2015"],
    anchors=ANCHORS,
    rule=RULE,
    settings=SETTINGS,
    analyze=analyze,
    plan=plan,
)
