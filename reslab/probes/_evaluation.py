"""How probes run a model on evaluation data: in a known state, in fixed batches, on its device.

Used by the lesion, path, landscape and curvature probes. They keep the probes honest
about the model's state: every probe runs in a known mode (eval by default) with every
block in ``full`` mode, and leaves the model exactly as it found it, even when it fails
half-way.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
from torch import nn

from ..errors import ConfigError
from ..models import block_modes, follows_block_protocol
from ..train.hardware import use_channels_last


def require_block_net(model: nn.Module) -> None:
    """Raise a clear error for a model that does not follow the block protocol."""
    if not follows_block_protocol(model):
        raise ConfigError(
            f"{type(model).__name__} does not follow the block protocol (stem, blocks of Block, head, "
            "forward_blocks); discover its blocks with reslab.probes.as_block_net(model, example_input)"
        )


def model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


@contextmanager
def eval_state(model: nn.Module, train: bool = False) -> Iterator[None]:
    """Put the model in eval (or train) mode and its blocks in ``full`` mode; restore both after."""
    flags = [(m, m.training) for m in model.modules()]
    blocks = getattr(model, "blocks", None) if follows_block_protocol(model) else None
    modes = block_modes(blocks, "full") if blocks is not None else nullcontext()
    try:
        model.train(train)
        with modes:
            yield
    finally:
        for module, flag in flags:
            module.training = flag


@contextmanager
def fastest_layout(model: nn.Module, sample_shape: tuple[int, ...]) -> Iterator[bool]:
    """The model in channels-last where that pays for its samples (``train.hardware``); yields
    whether it is, so inputs can follow. Its tensors return to their own layout afterwards."""
    if not use_channels_last(model, tuple(sample_shape)):
        yield False
        return
    tensors = itertools.chain(model.parameters(), model.buffers())
    others = [t for t in tensors if t.dim() == 4 and not t.is_contiguous(memory_format=torch.channels_last)]
    with torch.inference_mode(False):  # inside a caller's inference_mode the weights would become inference tensors
        model.to(memory_format=torch.channels_last)
    try:
        yield True
    finally:
        with torch.inference_mode(False):
            for t in others:
                t.data = t.data.contiguous()


def check_data(x: torch.Tensor, y: torch.Tensor) -> None:
    if len(x) != len(y):
        raise ConfigError(f"got {len(x)} inputs but {len(y)} targets")
    if len(x) == 0:
        raise ConfigError("no evaluation samples given")


def chunks(x: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device, channels_last: bool = False):
    """Fixed, ordered evaluation batches on the model's device (inputs in channels-last if asked)."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(device)
        yield (
            (xb.contiguous(memory_format=torch.channels_last) if channels_last else xb),
            y[start : start + batch_size].to(device),
        )
