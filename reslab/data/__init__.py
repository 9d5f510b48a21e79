"""Datasets held in memory (Fashion-MNIST, CIFAR-10/100, synthetic tasks) and batch loaders."""

from .base import IGNORE, Dataset, Split
from .catalog import DATASETS, data_identity, dataset_status, implied_identity, load_dataset
from .loader import Augment, BatchLoader, eval_batches
from .synthetic import grid_1d

__all__ = [
    "DATASETS",
    "IGNORE",
    "Augment",
    "BatchLoader",
    "Dataset",
    "Split",
    "data_identity",
    "dataset_status",
    "eval_batches",
    "grid_1d",
    "implied_identity",
    "load_dataset",
]
