"""Datasets held in memory (Fashion-MNIST, CIFAR-10/100, synthetic tasks) and batch loaders."""

from .base import IGNORE, Dataset, Split
from .catalog import DATASETS, dataset_status, load_dataset
from .loader import Augment, BatchLoader, eval_batches
from .synthetic import grid_1d

__all__ = [
    "DATASETS",
    "IGNORE",
    "Augment",
    "BatchLoader",
    "Dataset",
    "Split",
    "dataset_status",
    "eval_batches",
    "grid_1d",
    "load_dataset",
]
