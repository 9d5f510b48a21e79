"""The example input, and the check that a discovered net computes what the model computes."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils._pytree import tree_leaves

from .._evaluation import model_device
from .trace import FALLBACK, DiscoveryError, modes, no_fused_attention

# Relative difference tolerated where kernels are not bitwise reproducible (some GPU
# convolutions); on a CPU the discovered net's output is identical.
RTOL = 1e-5


def example_for(model: nn.Module, example: torch.Tensor | None, input_shape: Sequence[int] | None) -> torch.Tensor:
    if example is None and input_shape is None:
        raise DiscoveryError(
            f"{type(model).__name__} does not follow the block protocol: pass an example input "
            "(as_block_net(model, example_input), a batch the model accepts) so its blocks can be discovered"
        )
    if example is None:
        example = torch.randn(2, *input_shape, generator=torch.Generator().manual_seed(0))
    if not isinstance(example, torch.Tensor):
        raise DiscoveryError(f"example_input must be a tensor, got {type(example).__name__}")
    return example.to(model_device(model))


def forward_inputs(model: nn.Module, modules: list[nn.Module], example: torch.Tensor) -> list[torch.Tensor]:
    """The first input each module receives when the model runs on the example (eval mode)."""
    seen: dict[int, torch.Tensor] = {}

    def grab(module, args):
        if id(module) not in seen and args and isinstance(args[0], torch.Tensor):
            seen[id(module)] = args[0]

    handles = [m.register_forward_pre_hook(grab) for m in modules]
    try:
        with modes(model, False), torch.no_grad(), no_fused_attention():
            model(example)
    finally:
        for h in handles:
            h.remove()
    missing = [type(m).__name__ for m in modules if id(m) not in seen]
    if missing:
        raise DiscoveryError(f"blocks {', '.join(missing)} are never called with a tensor by {type(model).__name__}")
    return [seen[id(m)] for m in modules]


def shares_modes(model: nn.Module, net: nn.Module) -> None:
    """The discovered net's own containers start in the model's train/eval mode."""
    own = {id(m) for m in model.modules()}
    for m in net.modules():
        if id(m) not in own:
            m.training = model.training


def verify(model: nn.Module, net: nn.Module, example: torch.Tensor) -> None:
    """Raise unless the discovered net reproduces the model's output (eval mode, the example input)."""
    with modes(model, False), modes(net, False), torch.no_grad(), no_fused_attention():
        expected, got = tree_leaves(model(example)), tree_leaves(net(example))
    if len(expected) != len(got):
        raise DiscoveryError(f"the discovered net of {type(model).__name__} returns a different structure; {FALLBACK}")
    for a, b in zip(expected, got):
        if not isinstance(a, torch.Tensor) or torch.equal(a, b):
            continue
        scale = float(a.detach().abs().max()) if a.numel() else 0.0
        diff = float((a.double() - b.double()).abs().max()) if a.shape == b.shape else float("inf")
        if not diff <= RTOL * max(scale, 1e-12):
            raise DiscoveryError(
                f"the discovered blocks of {type(model).__name__} do not reproduce its output on the example input "
                f"(largest difference {diff:.3g}); {FALLBACK}"
            )
