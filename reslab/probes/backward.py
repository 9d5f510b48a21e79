"""Shared machinery of the backward-signal probes (gradient flow, propagation).

- ``probe_view``: the model in the dtype a probe asks for, with no side effects on it
  (BatchNorm running statistics are put back; float64 works on a copy).
- ``probe_loss``: the error E whose gradient the probes follow.
- ``forked_rng``: the global RNGs restored after a probe draws from them.
- ``walk``: a forward pass block by block that keeps every block input, the RNG state in
  front of every block (so a block can be recomputed with the same dropout mask), and
  the loss.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..models.net import follows_block_protocol


@contextmanager
def probe_view(model: nn.Module, dtype: torch.dtype | None = None) -> Iterator[nn.Module]:
    """Yield ``model`` itself (its buffers restored afterwards) or, for another dtype, a converted copy.

    Probes run forward passes in the model's current mode; in training mode BatchNorm would
    update its running statistics, which a measurement must not do.
    """
    current = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    if dtype is not None and dtype != current:
        yield copy.deepcopy(model).to(dtype)
        return
    saved = {name: buf.clone() for name, buf in model.named_buffers()}
    try:
        yield model
    finally:
        with torch.no_grad():
            for name, buf in model.named_buffers():
                if name in saved:
                    buf.copy_(saved[name])


def cast_input(x: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """Floating inputs take the model's dtype; token ids stay integers."""
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    return x.to(dtype) if x.is_floating_point() and dtype is not None else x


def probe_loss(out: torch.Tensor, targets: torch.Tensor | None, seed: int = 0) -> torch.Tensor:
    """The error E the probes differentiate.

    Integer ``targets``: cross-entropy (over the last dim, any leading dims). Floating
    targets: mean squared error. ``None``: a random linear read-out E = <out, r> / batch
    with r ~ N(0, 1) fixed by ``seed``; its gradient at the output does not depend on the
    output's size, so an exploding forward pass does not change the backward signal's start.
    """
    if targets is None:
        gen = torch.Generator().manual_seed(seed)
        r = torch.randn(out.shape, generator=gen, dtype=torch.float64).to(out.device, out.dtype)
        return (out * r).sum() / out.shape[0]
    targets = targets.to(out.device)
    if not targets.is_floating_point():
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), targets.reshape(-1))
    return F.mse_loss(out, targets.to(out.dtype))


def forked_rng(x: torch.Tensor):
    """Save the global RNGs (the CPU's, and ``x``'s GPU's) and restore them on exit, so a
    probe's random draws leave the caller's streams as they were."""
    return torch.random.fork_rng(devices=[x.device.index or 0] if x.device.type == "cuda" else [])


def rng_state(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def set_rng_state(state: tuple[torch.Tensor, torch.Tensor | None], device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


@dataclass
class Walk:
    """A forward pass through a block net: inputs[l] is x_l (x_0 = stem output, x_L = last block's output)."""

    inputs: list[torch.Tensor]
    rng: list[tuple[torch.Tensor, torch.Tensor | None]]  # state in front of block l
    output: torch.Tensor
    loss: torch.Tensor


def walk(net: nn.Module, x: torch.Tensor, targets: torch.Tensor | None, seed: int = 0) -> Walk:
    """Run ``net`` block by block, keeping every x_l in the autograd graph."""
    if not follows_block_protocol(net):
        raise ConfigError(f"{type(net).__name__} does not follow the block protocol (stem, blocks, head)")
    h = net.stem(x)
    inputs, states = [h], []
    for block in net.blocks:
        states.append(rng_state(h.device))
        h = block(h)
        inputs.append(h)
    out = net.head(h)
    return Walk(inputs, states, out, probe_loss(out, targets, seed))


def norms(tensors: list[torch.Tensor | None]) -> list[float]:
    """Frobenius norms over the whole batch (0 for a missing gradient), computed in float64."""
    return [0.0 if t is None else float(torch.linalg.vector_norm(t.double())) for t in tensors]
