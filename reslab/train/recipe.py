"""How to train: optimizer, schedule, warm-up, batch size, length, precision, augmentation.

A ``Recipe`` is plain data (it is hashed into the run key), validated when built, so a
bad value fails before any training. Named presets live in ``PRESETS``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("step", "cosine", "constant", "wsd")
WARMUPS = ("none", "linear", "he2015")
PRECISIONS = ("fp32", "bf16")  # what a run or a probe computes in; a recipe may also say "auto"


@dataclass(frozen=True)
class Recipe:
    """Everything about optimization; the run's length is ``epochs`` or ``steps`` (not both;
    neither means one epoch).

    Schedules: "step" multiplies the rate by ``gamma`` at each of ``milestones`` (fractions
    of the run's length, so a shortened run keeps the shape: He2015's 32k and 48k of 64k
    are 0.5 and 0.75); "cosine" decays to ``final_lr``; "constant"; "wsd" (warm-up, stable,
    decay) holds ``lr`` and decays linearly to ``final_lr`` over the last ``decay_frac`` of
    the run. A wsd run of half the length follows the same rates up to its own decay, so
    its result can be branched off the longer run (the convergence check).

    Warm-up: "linear" ramps from 0 to ``lr`` over ``warmup_steps``; "he2015" trains at
    ``warmup_lr`` until the mean training error of the last ``warmup_window`` batches falls
    below ``warmup_error``, then returns to the schedule (He2015 Sec. 4.2, for ResNet-110:
    0.01 until training error < 80%, about 400 iterations).

    ``crop``/``flip``: augmentation of image batches; None takes the dataset's default
    (CIFAR: crop 4 + flip; Fashion-MNIST: none, see ``reslab.train.loop``).
    """

    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    milestones: tuple[float, ...] = (0.5, 0.75)
    gamma: float = 0.1
    final_lr: float = 0.0
    decay_frac: float = 0.2
    warmup: str = "none"
    warmup_steps: int = 0
    warmup_lr: float = 0.01
    warmup_error: float = 0.8
    warmup_window: int = 20
    batch_size: int = 128
    epochs: float | None = None
    steps: int | None = None
    label_smoothing: float = 0.0
    grad_clip: float | None = None
    precision: str = "auto"
    channels_last: bool = True
    crop: int | None = None
    flip: bool | None = None

    def __post_init__(self) -> None:
        # YAML and JSON give lists; keep tuples so recipes compare and hash the same
        object.__setattr__(self, "betas", tuple(self.betas))
        object.__setattr__(self, "milestones", tuple(self.milestones))
        self.validate()

    def validate(self) -> None:
        def bad(msg: str) -> ConfigError:
            return ConfigError(f"invalid recipe: {msg}")

        for name, allowed in (
            ("optimizer", OPTIMIZERS),
            ("schedule", SCHEDULES),
            ("warmup", WARMUPS),
            ("precision", ("auto", *PRECISIONS)),
        ):
            if getattr(self, name) not in allowed:
                raise bad(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        for name in ("lr", "weight_decay", "final_lr", "warmup_lr", "label_smoothing", "momentum"):
            value = getattr(self, name)
            least = "> 0" if name == "lr" else ">= 0"
            if (
                not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
                or (name == "lr" and value == 0)
            ):
                raise bad(f"{name} must be a finite number {least}, got {value!r}")
        if self.momentum >= 1 or not 0 <= self.label_smoothing < 1:
            raise bad("momentum must be < 1 and label_smoothing in [0, 1)")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise bad("nesterov needs optimizer 'sgd' with momentum > 0")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise bad(f"betas must be two numbers in [0, 1), got {self.betas}")
        if not 0 < self.gamma <= 1:
            raise bad(f"gamma must be in (0, 1], got {self.gamma}")
        if any(not 0 < m < 1 for m in self.milestones) or list(self.milestones) != sorted(self.milestones):
            raise bad(f"milestones must be increasing fractions of the run in (0, 1), got {self.milestones}")
        if self.epochs is not None and self.steps is not None:
            raise bad("give the length as epochs or as steps, not both")
        if self.epochs is not None and not (isinstance(self.epochs, int | float) and 0 < self.epochs < math.inf):
            raise bad(f"epochs must be > 0, got {self.epochs!r}")
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            raise bad(f"steps must be an integer >= 1, got {self.steps!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise bad(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        if self.warmup_steps < 0 or (self.warmup == "linear" and self.warmup_steps < 1):
            raise bad("linear warm-up needs warmup_steps >= 1")
        if not 0 < self.warmup_error <= 1 or self.warmup_window < 1:
            raise bad("warmup_error must be in (0, 1] and warmup_window >= 1")
        if not 0 < self.decay_frac <= 1:
            raise bad(f"decay_frac must be in (0, 1], got {self.decay_frac}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise bad(f"grad_clip must be > 0 or None, got {self.grad_clip}")
        if self.crop is not None and self.crop < 0:
            raise bad(f"crop must be >= 0, got {self.crop}")

    def replace(self, **changes: Any) -> Recipe:
        """A copy with ``changes``; setting ``epochs`` clears ``steps`` and vice versa."""
        if changes.get("epochs") is not None and "steps" not in changes:
            changes["steps"] = None
        if changes.get("steps") is not None and "epochs" not in changes:
            changes["epochs"] = None
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(f"unknown recipe field(s) {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)

    def total_steps(self, steps_per_epoch: int) -> int:
        if self.steps is not None:
            return self.steps
        return max(1, round((self.epochs if self.epochs is not None else 1.0) * steps_per_epoch))

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["betas"], out["milestones"] = list(self.betas), list(self.milestones)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"unknown recipe field(s) {', '.join(unknown)}")
        return cls(**data)


def lr_at(recipe: Recipe, step: int, total: int, warming: bool) -> float:
    """The learning rate for optimizer step ``step`` (0-based) of ``total``.

    ``warming`` is True while He2015's warm-up is still on (the loop decides, from the
    training error).
    """
    if recipe.warmup == "he2015" and warming:
        return recipe.warmup_lr
    if recipe.schedule == "constant":
        lr = recipe.lr
    elif recipe.schedule == "wsd":
        decay_start = round((1.0 - recipe.decay_frac) * total)
        left = min(max(total - step, 0), total - decay_start) / max(total - decay_start, 1)
        lr = recipe.final_lr + (recipe.lr - recipe.final_lr) * left
    elif recipe.schedule == "step":
        passed = sum(1 for m in recipe.milestones if step >= round(m * total))
        lr = recipe.lr * recipe.gamma**passed
    else:
        progress = min(step / max(total, 1), 1.0)
        lr = recipe.final_lr + (recipe.lr - recipe.final_lr) * 0.5 * (1 + math.cos(math.pi * progress))
    if recipe.warmup == "linear" and step < recipe.warmup_steps:
        lr *= (step + 1) / recipe.warmup_steps
    return lr


# He2015 Sec. 4.2: SGD 0.1, momentum 0.9, wd 1e-4, batch 128, 64k iterations, /10 at 32k
# and 48k, 45k/5k split (the dataset's default), 4-pixel pad-and-crop and flips.
_HE2015_CIFAR = Recipe(
    lr=0.1,
    momentum=0.9,
    weight_decay=1e-4,
    batch_size=128,
    steps=64_000,
    schedule="step",
    milestones=(0.5, 0.75),
    gamma=0.1,
    crop=4,
    flip=True,
)
PRESETS: dict[str, Recipe] = {
    "he2015_cifar": _HE2015_CIFAR,
    # ResNet-110 (and deeper): the same, warmed up at 0.01 until training error < 80%.
    "he2015_cifar_warmup": _HE2015_CIFAR.replace(warmup="he2015"),
    # Short CPU runs: the He2015 optimizer, a cosine decay, two epochs, bf16 where fast.
    "quick": Recipe(lr=0.1, momentum=0.9, weight_decay=1e-4, batch_size=128, epochs=2, schedule="cosine"),
    # Transformers on synthetic token tasks: AdamW with a linear warm-up and cosine decay.
    "transformer": Recipe(
        optimizer="adamw",
        lr=1e-3,
        weight_decay=0.01,
        betas=(0.9, 0.98),
        batch_size=64,
        steps=2000,
        schedule="cosine",
        warmup="linear",
        warmup_steps=200,
        momentum=0.0,
    ),
}


def get_recipe(name: str, **overrides: Any) -> Recipe:
    """A named preset, with any field overridden."""
    if name not in PRESETS:
        raise ConfigError(f"unknown recipe {name!r}; presets: {', '.join(PRESETS)}")
    return PRESETS[name].replace(**overrides) if overrides else PRESETS[name]
