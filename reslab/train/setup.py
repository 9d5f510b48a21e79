"""The parts a run is assembled from: device, model, augmentation, optimizer (precision and
memory layout: ``hardware.py``).

Augmentation defaults: CIFAR gets He2015's 4-pixel pad-and-crop and flips. Fashion-MNIST
gets none: its quick studies run one or two epochs, where augmentation only slows
fitting, and the claims they test are about optimization (training error).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ..data import Augment, Dataset
from ..errors import ConfigError
from ..models import create_model, get_entry
from .config import TrainConfig

DEFAULT_AUGMENT = {"cifar10": Augment(4, True), "cifar100": Augment(4, True)}


def resolve_device(device: str) -> torch.device:
    """The torch device for ``auto``/``cpu``/``cuda[:N]``/``mps``, refused early where this machine lacks it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(
                f"--device {device}: this machine has no CUDA GPU (or torch was built without CUDA); "
                "use --device cpu or auto"
            )
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"--device {device}: this machine has {count} CUDA GPU(s), numbered 0 to {count - 1}")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {device}: MPS is not available on this machine; use --device cpu or auto")
    return dev


def build_model(config: TrainConfig, dataset: Dataset) -> tuple[nn.Module, dict[str, Any]]:
    """The registry model with the shape arguments the data implies (explicit options win)."""
    entry = get_entry(config.model)
    accepted = set(entry.options())
    options = {k: v for k, v in dataset.model_inputs().items() if k in accepted and k not in config.model_options}
    if "in_features" in config.model_options:
        options.pop("input_shape", None)
    options.update(config.model_options)
    wanted = config.model_options.get("num_classes", dataset.num_classes)
    if wanted != dataset.num_classes:
        raise ConfigError(
            f"num_classes={wanted} does not fit {dataset.name}, which has {dataset.num_classes} "
            f"{'classes' if dataset.task == 'classification' else 'outputs'}; drop --model-opt num_classes"
        )
    return create_model(config.model, **options), options


def check_buildable(config: TrainConfig, dataset: Dataset) -> None:
    """Build ``config``'s model and augmentation on the meta device (nothing allocated), so a
    config that cannot train fails where it is declared, not later on a worker."""
    augmentation(config, dataset)
    with torch.device("meta"):
        build_model(config, dataset)
    config.hash()


def augmentation(config: TrainConfig, dataset: Dataset) -> Augment | None:
    r = config.recipe
    default = DEFAULT_AUGMENT.get(dataset.name, Augment())
    aug = Augment(default.crop if r.crop is None else r.crop, default.flip if r.flip is None else r.flip)
    if aug.active and not dataset.is_image:
        if r.crop or r.flip:
            raise ConfigError(f"crop/flip augmentation needs image data; {dataset.name} is not")
        return None
    side = min(dataset.shape[1:]) if dataset.is_image else 0
    if aug.crop >= side > 0:  # a shift of a whole image or more would crop nothing but padding
        raise ConfigError(
            f"--crop {aug.crop} is not smaller than the {side}x{side} images of {dataset.name}; "
            f"use a crop below {side} (He2015 uses 4 on 32x32)"
        )
    return aug


def make_optimizer(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """SGD or AdamW over every trainable parameter (weight decay on all of them, as He2015).

    The fused implementations update all parameters in one kernel: on a CPU they are 3-6x
    faster than the default per-parameter loop, which matters for deep, narrow nets.
    """
    r = config.recipe
    params = [p for p in model.parameters() if p.requires_grad]
    fast = {"fused": True} if device.type in ("cpu", "cuda") else {"foreach": True}
    if r.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=r.lr, momentum=r.momentum, nesterov=r.nesterov, weight_decay=r.weight_decay, **fast
        )
    return torch.optim.AdamW(params, lr=r.lr, betas=r.betas, weight_decay=r.weight_decay, **fast)


class InterruptFlag:
    """The first Ctrl-C asks the loop to stop at the next step boundary (with a checkpoint);
    a second one interrupts at once. Only in the main thread, where signals are delivered."""

    def __init__(self):
        self.flag = False
        self._previous = None

    def _handle(self, signum, frame):
        self.flag = True
        signal.signal(signal.SIGINT, self._previous)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, self._handle)
            self._previous = previous if previous is not None else signal.default_int_handler
        return self

    def __exit__(self, *exc):
        if self._previous is not None and not self.flag:
            signal.signal(signal.SIGINT, self._previous)
        return False


@contextmanager
def run_environment(config: TrainConfig) -> Iterator[None]:
    """Global torch settings for one run, restored afterwards, and the caller's RNG state kept.

    Deterministic runs use deterministic algorithms (``warn_only``: a few CUDA backward
    kernels, e.g. adaptive average pooling, have no deterministic version and warn instead
    of failing; CPU runs are bit-exact) and no cuDNN autotuning; others let cuDNN pick the
    fastest kernels for the shapes it sees.
    """
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_cudnn = torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic
    if config.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = not config.deterministic
    torch.backends.cudnn.deterministic = config.deterministic
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    try:
        with torch.random.fork_rng(devices=devices):  # the run seeds the global generators
            yield
    finally:
        torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = prev_cudnn


def total_grad_norm(model: nn.Module) -> float:
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))))
