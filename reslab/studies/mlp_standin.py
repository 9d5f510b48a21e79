"""The residual-MLP stand-in the unit-variant studies train at smoke and quick scale.

He2016's Table 1 and Table 2 compare units, not architectures: a deep residual MLP on
small Fashion-MNIST images shows the same orderings for a fraction of a CNN's cost, so the
quick catalogue can afford several variants × seeds trained to convergence. At full scale
the studies train the paper's CIFAR ResNet-110 instead. The block options are the same
words in both families (``reslab.models.BlockConfig``), so a variant is one options dict.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    data_options: dict[str, Any]
    eval_train_size: int
    log_every: int = 10
    eval_every: int = 100  # steps between validations: an epoch of the small training sets is a few steps
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
        return run_config(
            "mlp_residual",
            self.recipe,
            seed,
            options,
            self.data_options,
            eval_train_size=self.eval_train_size,
            log_every=self.log_every,
            eval_every=self.eval_every,
            convergence_check=True,
        )

    def describe(self) -> str:
        return (
            f"residual MLP, {self.units} two-layer units of width {self.width} with BN, on flattened "
            f"Fashion-MNIST ({self.data_options})"
        )


@dataclass(frozen=True)
class VariantSettings:
    """Where a unit-variant study trains: the stand-in (smoke, quick) or the paper's ResNet-110 (full)."""

    standin: StandIn | None = None
    paper_recipe: Recipe | None = None

    def configs(self, options: dict[str, Any], seeds: Sequence[int]) -> list[TrainConfig]:
        if self.standin is not None:
            return [self.standin.config(options, seed) for seed in seeds]
        return [
            run_config(
                "resnet110", self.paper_recipe, seed, options, data="cifar10", eval_every=2000, convergence_check=True
            )
            for seed in seeds
        ]

    def setup(self, seeds: Sequence[int], paper_models: str) -> dict:
        """The report's "what was run"."""
        return {
            "models": self.standin.describe() if self.standin else paper_models,
            "data": "Fashion-MNIST" if self.standin else "CIFAR-10, 45k/5k split",
            "seeds": list(seeds),
            "recipe": recipe_text(self.standin.recipe if self.standin else self.paper_recipe),
        }
