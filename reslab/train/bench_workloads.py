"""The workloads ``reslab bench`` trains: models, data shapes, ``train()`` runs and the reference."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..data import Dataset, fashion, load_dataset
from .config import TrainConfig
from .hardware import resolve_precision
from .loop import train
from .metrics import read_metrics
from .recipe import Recipe
from .reference import ReferencePipeline
from .setup import build_model

WARM = 5  # steps each round leaves out of its speed: the first pay for kernel choice and caches


@dataclass
class Workload:
    model: str
    data: str  # "fashion-mnist" (28x28x1) or "cifar-shape" (32x32x3, synthetic images)
    model_options: dict = field(default_factory=dict)
    augment: bool = True  # pad-4 crop and flip, as the reference does

    def net(self, dataset: Dataset) -> torch.nn.Module:
        """The model, shaped for ``dataset`` exactly as ``train()`` builds it."""
        return build_model(TrainConfig(self.model, dataset.name, model_options=self.model_options), dataset)[0]

    def dataset(self, train_size: int, test_size: int = 0) -> tuple[str, dict, Dataset]:
        if self.data == "cifar-shape" or fashion.locate() is None:
            channels, size = (3, 32) if self.data == "cifar-shape" else (1, 28)
            options = {"channels": channels, "size": size, "train_size": train_size, "val_size": 0}
            options["test_size"] = test_size
            return "synthetic-images", options, load_dataset("synthetic-images", **options)
        options = {"train_size": train_size, "val_size": 0, **({"test_size": test_size} if test_size else {})}
        return "fashion-mnist", options, load_dataset("fashion-mnist", **options)

    def label(self, data: str) -> str:
        """The model and the data it trained on (``data``: what ``dataset`` returned)."""
        shape = "28x28x1" if self.data == "fashion-mnist" else "32x32x3"
        name = self.model.replace("resnet", "ResNet-")
        if self.model_options:
            name += f" ({', '.join(f'{k} {v}' for k, v in self.model_options.items())})"
        return f"{name} on {data} {shape}"


def train_config(
    work: Workload, data: str, options: dict, recipe: Recipe, seed: int = 0, test: bool = False
) -> TrainConfig:
    """A run of ``work`` that evaluates only what it reports (and augments like the reference)."""
    recipe = recipe.replace(crop=4, flip=True) if work.augment else recipe
    return TrainConfig(
        work.model,
        data,
        model_options=work.model_options,
        data_options=options,
        recipe=recipe,
        eval_train_size=0,
        test=test,
        log_every=WARM,
        seed=seed,
    )


def reslab_speed(work: Workload, data: str, options: dict, dataset: Dataset, precision: str, steps: int) -> float:
    """Images per second of ``train()`` over ``steps`` steps after ``WARM``, constant rate."""
    recipe = Recipe(steps=WARM + steps, batch_size=128, precision=precision, schedule="constant")
    with tempfile.TemporaryDirectory() as tmp:
        train(train_config(work, data, options, recipe), tmp, resume=False, dataset=dataset)
        lines = [r for r in read_metrics(Path(tmp) / "metrics.jsonl") if r["kind"] == "train"][1:]
    return len(lines) / sum(1 / r["img_per_s"] for r in lines)  # every window has the same images


def reference_pipeline(
    work: Workload, dataset: Dataset, seed: int = 0, total_steps: int | None = None
) -> ReferencePipeline:
    torch.manual_seed(seed)
    return ReferencePipeline(
        work.net(dataset), dataset.train, dataset.mean, dataset.std, total_steps=total_steps, seed=seed
    )


def auto_precision(work: Workload, dataset: Dataset, device: torch.device) -> str:
    """What ``precision=auto`` resolves to for ``work`` at batch 128."""
    return resolve_precision("auto", device, work.net(dataset), dataset.train.x[:1].float(), batch_size=128)
