"""Recipes, the training loop, checkpoints and metrics."""

from .callbacks import Callback, TrainContext
from .config import TrainConfig
from .hardware import resolve_precision
from .loop import train
from .metrics import read_metrics
from .recipe import PRESETS, Recipe, get_recipe, lr_at
from .rundir import TERMINAL, read_result, write_config
from .setup import build_model
from .task import Task, evaluate

__all__ = [
    "PRESETS",
    "TERMINAL",
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
    "write_config",
]
