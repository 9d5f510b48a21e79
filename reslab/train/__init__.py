"""Recipes, the training loop, checkpoints and metrics."""

from .callbacks import Callback, TrainContext
from .config import TrainConfig
from .loop import build_model, read_result, resolve_precision, train
from .metrics import read_metrics
from .recipe import PRESETS, Recipe, get_recipe, lr_at
from .task import Task, evaluate

__all__ = [
    "PRESETS",
    "Callback",
    "Recipe",
    "Task",
    "TrainConfig",
    "TrainContext",
    "build_model",
    "evaluate",
    "get_recipe",
    "lr_at",
    "read_metrics",
    "read_result",
    "resolve_precision",
    "train",
]
