"""degradation — deeper plain nets get higher *training* error; residual nets don't (He2015).

Once convergence is assured (He init + BN), accuracy saturates and then degrades as depth
grows, and this is not overfitting: the deeper plain net has the higher training error.
The same depth with identity shortcuts does not degrade. Plain and residual nets here have
identical parameters (option-A shortcuts carry none) and the same recipe, and every net is
trained to convergence: the verdict is judged only if the schedule twice as long no longer
lowers any net's training error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..models import list_models
from ..train import TrainConfig
from ..train.recipe import Recipe, get_recipe
from .base import Study, StudyContext
from .common import recipe_text, run_config
from .results import StudyResult
from .stats import greater, summarize
from .trained import (
    GAIN_POINTS,
    Group,
    converged,
    convergence_rule,
    group_bars,
    group_curves,
    group_numbers,
    train_groups,
)
from .verdict import Verdict

ALPHA = 0.05  # one-sided Welch t-test over seeds
CLAIM = (
    "Deeper plain nets reach a higher training error than shallower ones once trained to convergence, while "
    "residual nets of the same depth and parameters do not degrade."
)
RULE = (
    "Training error is measured at the end in eval mode on a fixed training subset; a diverged run counts "
    f"as 90%. Precondition: the deepest plain and the shallowest residual net, whose further training could "
    f"overturn a check, {convergence_rule()}. Holds when (1) the deepest plain net's training error "
    f"exceeds the shallowest plain net's (one-sided Welch t-test over seeds, p < {ALPHA}), (2) the deepest "
    "residual net's training error is below the deepest plain net's (same test), (3) the residual depth gap "
    "(deep − shallow) is smaller than the plain one, and at full scale (4) the deepest residual net trains no "
    "worse than the shallowest."
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
KINDS = {"plain": "plain", "resnet": "ResNet"}


@dataclass(frozen=True)
class Settings:
    depths: tuple[int, ...]  # weight layers, shallowest first
    recipe: Recipe
    family: str = "cnn"  # "cnn": He2015's CIFAR nets (6n+2); "mlp": two-layer units of the same design, on pixels
    widths: tuple[int, ...] = (16, 32, 64)  # the CNN's stage widths, or the MLP's one width
    data: str = "fashion-mnist"
    data_options: dict = field(default_factory=dict)  # train_size, val_size, test_size, image_size
    eval_every: int = 0
    eval_train_size: int = 5000
    log_every: int = 20


SETTINGS = {
    "smoke": Settings(
        depths=(8, 14),
        widths=(4, 8, 16),
        eval_train_size=128,
        log_every=1,
        data_options={"train_size": 256, "val_size": 128, "test_size": 256, "image_size": 14},
        recipe=Recipe(lr=0.1, steps=6, batch_size=32, schedule="wsd", precision="fp32"),
    ),
    # Sized so that the nets converge on a 2-core CPU (the budget and the measurements behind it are
    # in the README): He2015's depths as fully connected two-layer units (pre-activation, BN; nothing
    # changes shape, so plain and residual nets have the same parameters) on 500 training images of
    # 14x14 Fashion-MNIST, which the residual nets fit completely. Width 64, not 128: a step of the
    # 56-layer net is matmul-bound on one core, so half the width halves its time (README, "The claims").
    "quick": Settings(
        depths=(20, 56),
        family="mlp",
        widths=(64,),
        eval_every=100,
        eval_train_size=500,
        log_every=10,
        data_options={"train_size": 500, "val_size": 1000, "test_size": 2000, "image_size": 14},
        recipe=Recipe(lr=0.1, steps=1200, batch_size=128, schedule="wsd"),
    ),
    # He2015 Sec. 4.2: CIFAR-10, 45k/5k split, SGD 0.1 /10 at 32k and 48k of 64k iterations
    "full": Settings(depths=(20, 32, 44, 56, 110), data="cifar10", eval_every=2000, recipe=get_recipe("he2015_cifar")),
}


def model_name(s: Settings, kind: str, depth: int) -> tuple[str, dict]:
    """The registry name and options of the plain or residual net of ``depth`` weight layers."""
    if s.family == "mlp":
        if depth % 2:
            raise ValueError(f"an MLP of two-layer units needs an even depth, got {depth}")
        shortcut = "none" if kind == "plain" else "identity"
        return "mlp_plain", {
            "depth": depth // 2,
            "width": s.widths[0],
            "layers_per_block": 2,
            "norm": "bn",
            "shortcut": shortcut,
            "order": "preact",
        }
    name, options = f"{kind}{depth}", {}
    if name not in list_models():
        name, options = f"{kind}20", {"depth": depth}
    if s.widths != (16, 32, 64):
        options["widths"] = list(s.widths)
    return name, options


def label(kind: str, depth: int) -> str:
    return f"{KINDS[kind]}-{depth}"


def configs(s: Settings, seeds: Sequence[int], kind: str, depth: int, **changes) -> list[TrainConfig]:
    """One run per seed of the plain or residual net of ``depth`` (with model option ``changes``,
    e.g. drop-path or no BN); the lesion, paths, landscape, concat, normalization-free and
    stochastic-depth studies analyse these same runs or their variants."""
    name, options = model_name(s, kind, depth)
    return [
        run_config(
            name,
            s.recipe,
            seed,
            {**options, **changes},
            s.data_options,
            data=s.data,
            eval_every=s.eval_every,
            eval_train_size=s.eval_train_size,
            log_every=s.log_every,
            convergence_check=True,
        )
        for seed in seeds
    ]


def deepest_resnet(s: Settings) -> list[tuple[str, int]]:
    """The deepest residual net as ``nets`` for ``plan`` and ``trained`` (paths, lesion, stochastic-depth and
    normalization-free analyse it)."""
    return [("resnet", s.depths[-1])]


def planned(s: Settings, seeds: Sequence[int], nets: Sequence[tuple[str, int]] = ()) -> dict[str, list[TrainConfig]]:
    """The runs of ``nets`` ((kind, depth) pairs; default: every kind at every depth) by label ("plain-56", ...)."""
    nets = nets or [(kind, depth) for depth in s.depths for kind in KINDS]
    return {label(kind, depth): configs(s, seeds, kind, depth) for kind, depth in nets}


def plan(s: Settings, seeds: Sequence[int], nets: Sequence[tuple[str, int]] = ()) -> list[TrainConfig]:
    """The runs of ``nets`` (default: all); a study that analyses some of them plans them too, and the run
    store trains each once."""
    return [c for group in planned(s, seeds, nets).values() for c in group]


def trained(ctx: StudyContext, s: Settings, nets: Sequence[tuple[str, int]] = ()) -> dict[str, Group]:
    """The degradation nets ``nets`` (default: all), trained (or fetched from the store), by label."""
    return train_groups(ctx, planned(s, ctx.seeds, nets))


def describe_nets(s: Settings) -> str:
    if s.family == "mlp":
        return (
            f"plain and residual MLPs of two-layer units (BN, pre-activation), width {s.widths[0]}, "
            f"{' and '.join(map(str, s.depths))} weight layers"
        )
    return f"plain and ResNet (option A) at depths {', '.join(map(str, s.depths))}, widths {s.widths}"


def judge(groups: dict[str, Group], s: Settings, scale: str) -> Verdict:
    shallow, deep = s.depths[0], s.depths[-1]
    plain_s, plain_d = groups[label("plain", shallow)], groups[label("plain", deep)]
    res_s, res_d = groups[label("resnet", shallow)], groups[label("resnet", deep)]
    v = Verdict()
    converged(v, [plain_d, res_s], [plain_s, res_d])  # further training of these two could overturn a check
    t1 = greater(plain_d.final(), plain_s.final())
    v.check(
        f"{plain_d.label} training error {plain_d.text()} > {plain_s.label} {plain_s.text()} (p = {t1.p:.3g})",
        t1.outcome(ALPHA),
    )
    t2 = greater(plain_d.final(), res_d.final())
    v.check(
        f"{res_d.label} training error {res_d.text()} < {plain_d.label} {plain_d.text()} (p = {t2.p:.3g})",
        t2.outcome(ALPHA),
    )
    gap_plain = plain_d.summary().mean - plain_s.summary().mean
    gap_res = res_d.summary().mean - res_s.summary().mean
    gap_half = summarize(plain_d.half()).mean - summarize(plain_s.half()).mean
    if gap_half > 0 and plain_d.gain() >= GAIN_POINTS:
        v.notes.append(
            f"The plain depth gap was {gap_half:.1f} points with the schedule half as long and {gap_plain:.1f} with "
            f"this one: doubling the schedule closed {1 - gap_plain / gap_half:.0%} of it."
        )
    v.check(f"residual depth gap {gap_res:+.1f} points < plain depth gap {gap_plain:+.1f} points", gap_res < gap_plain)
    if scale == "full":
        v.check(
            f"{res_d.label} training error {res_d.text()} ≤ {res_s.label} {res_s.text()}",
            res_d.summary().mean <= res_s.summary().mean,
        )
    return v


def analyze(ctx: StudyContext, s: Settings) -> StudyResult:
    groups = trained(ctx, s)
    shallow, deep = s.depths[0], s.depths[-1]
    ordered = [groups[label(k, d)] for d in s.depths for k in KINDS]
    numbers = group_numbers(ordered)
    mean = {g.label: g.summary().mean for g in ordered}
    key = (
        f"train err plain-{shallow}/{deep}: {mean[label('plain', shallow)]:.1f}/{mean[label('plain', deep)]:.1f}%, "
        f"ResNet: {mean[label('resnet', shallow)]:.1f}/{mean[label('resnet', deep)]:.1f}%"
    )
    caption = (
        "He2015 Fig. 1 style: training error (solid, training batches) and validation error (dashed), mean over seeds."
    )
    figures = [
        group_curves(
            "plain nets", [groups[label("plain", d)] for d in s.depths], panel="curves", caption=caption, ylim=[0, 100]
        ),
        group_curves("ResNets", [groups[label("resnet", d)] for d in s.depths], panel="curves", ylim=[0, 100]),
        group_bars("Final training and test error", ordered),
    ]
    setup = {
        "models": describe_nets(s),
        "data": f"{s.data}, " + ", ".join(f"{k} {v}" for k, v in s.data_options.items()),
        "seeds": ctx.seeds,
        "recipe": recipe_text(s.recipe),
    }
    return STUDY.result(
        ctx,
        judge(groups, s, ctx.scale),
        numbers=numbers,
        key_number=key,
        figures=figures,
        setup=setup,
        runs=[r.id for g in ordered for r in g.records],
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
    order=20,
)
