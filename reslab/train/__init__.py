"""Recipes, the training loop, checkpoints and metrics."""

from .callbacks import Callback, TrainContext

__all__ = ["Callback", "TrainContext"]
