"""The residual-MLP stand-in the unit-variant studies train at smoke and quick scale.

He2016's Table 1 and Table 2 compare units, not architectures: a deep residual MLP on
flattened Fashion-MNIST shows the same orderings for a fraction of a CNN's cost, so the
quick catalogue can afford several variants × seeds. At full scale the studies train the
paper's CIFAR ResNet-110 instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..train import TrainConfig
from ..train.recipe import Recipe
from .common import recipe_text, run_config


@dataclass(frozen=True)
class StandIn:
    """A residual MLP of ``units`` two-layer units of ``width``, trained by ``recipe``."""

    units: int
    width: int
    recipe: Recipe
    train_size: int | None
    val_size: int | None
    eval_train_size: int
    log_every: int = 10
    base: dict[str, Any] = field(default_factory=dict)  # options shared by every variant

    def config(self, variant: dict[str, Any], seed: int) -> TrainConfig:
        options = {
            "depth": self.units,
            "width": self.width,
            "layers_per_block": 2,
            "norm": "bn",
            "shortcut": "identity",
            "order": "preact",
            **self.base,
            **variant,
        }
        data = {"train_size": self.train_size, "val_size": self.val_size}
        return run_config(
            "mlp_residual",
            self.recipe,
            seed,
            options,
            data,
            eval_train_size=self.eval_train_size,
            log_every=self.log_every,
            eval_every=0,
        )

    def describe(self) -> str:
        return (
            f"residual MLP, {self.units} two-layer units of width {self.width} with BN, on flattened "
            f"Fashion-MNIST ({self.train_size} training images)"
        )


def variant_setup(standin: StandIn | None, paper_recipe: Recipe | None, seeds: int, paper_models: str) -> dict:
    """The report's "what was run" for a unit-variant study, at stand-in or paper scale."""
    return {
        "models": standin.describe() if standin else paper_models,
        "data": "Fashion-MNIST" if standin else "CIFAR-10, 45k/5k split",
        "seeds": seeds,
        "recipe": recipe_text(standin.recipe if standin else paper_recipe),
    }
