"""Any residual net as a block-protocol ``BlockNet``, by discovering its blocks in its traced graph.

``as_block_net(model, example_input)`` traces the model with ``torch.fx`` (``trace``),
finds the residual additions on its main stream (``stream``), cuts the graph into stem,
blocks and head (``build``) and checks that the result computes the model's output on
the example input. The parts call the model's own modules, so nothing is copied: the
discovered net and the model share parameters, buffers and train/eval flags.

When discovery cannot work (the model's own forward cannot be traced, or a block's
structure is not an addition of two paths), the error says what was found. Naming the
blocks (``blocks=[...]``) keeps each named module whole in the model's trace and finds
its one residual addition by tracing it alone: its operations before the fork run in
front of both paths, those after the addition are its ``post``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...models import BlockNet, follows_block_protocol
from .build import BlockPlan, changes_shape, make_block, plan_blocks
from .parts import extract
from .stream import steps
from .trace import DiscoveryError, Traced, trace
from .verify import example_for, forward_inputs, shares_modes, verify

__all__ = ["DiscoveryError", "as_block_net"]


def as_block_net(
    model: nn.Module,
    example_input: torch.Tensor | None = None,
    *,
    input_shape: Sequence[int] | None = None,
    blocks: Sequence[nn.Module | str] | None = None,
) -> nn.Module:
    """The model itself if it follows the block protocol, else a ``BlockNet`` over its own modules.

    ``example_input``: a batch the model accepts (token ids for token models); or
    ``input_shape`` for a random float batch of that per-sample shape. ``blocks``: the
    residual block modules (or their names in ``model.named_modules()``), in order, when
    automatic discovery does not find them.
    """
    if follows_block_protocol(model):
        return model
    example = example_for(model, example_input, input_shape)
    net = _explicit(model, example, blocks) if blocks is not None else _discovered(model, example)
    verify(model, net, example)
    return net


def _discovered(model: nn.Module, example: torch.Tensor) -> BlockNet:
    traced = trace(model, example)
    found, output = steps(traced.graph)
    plans = plan_blocks(found, type(model).__name__, traced.opaque)
    blocks = [make_block(traced, plan, i) for i, plan in enumerate(plans)]
    return _net(model, traced, plans[0].input, plans[-1].output, output, blocks, example)


def _net(model, traced: Traced, first: torch.fx.Node, last: torch.fx.Node, output, blocks, example) -> BlockNet:
    stem = extract(traced, _input(traced), first, "stem")
    head = extract(traced, last, output.args[0], "head")
    arch = {"discovered_from": type(model).__name__, "blocks": len(blocks), "opaque_modules": traced.opaque}
    embedding = next((m for m in model.modules() if isinstance(m, nn.Embedding)), None)
    vocab = embedding.num_embeddings if embedding is not None and not example.is_floating_point() else None
    net = BlockNet(stem, blocks, head, arch, input_shape=tuple(example.shape[1:]), vocab_size=vocab)
    shares_modes(model, net)
    return net


def _input(traced: Traced) -> torch.fx.Node:
    return next(n for n in traced.graph.nodes if n.op == "placeholder")


def _resolve_blocks(model: nn.Module, blocks: Sequence[nn.Module | str]) -> list[tuple[str, nn.Module]]:
    names = {id(m): name for name, m in model.named_modules()}
    out = []
    for b in blocks:
        if isinstance(b, str):
            try:
                out.append((b, model.get_submodule(b)))
            except AttributeError:
                raise DiscoveryError(f"{type(model).__name__} has no module named {b!r}") from None
        elif isinstance(b, nn.Module) and id(b) in names and names[id(b)]:
            out.append((names[id(b)], b))
        else:
            raise DiscoveryError(f"blocks must be submodules of {type(model).__name__} or their names, got {b!r}")
    if not out:
        raise DiscoveryError("blocks=[] names no block")
    return out


def _explicit(model: nn.Module, example: torch.Tensor, blocks: Sequence[nn.Module | str]) -> BlockNet:
    named = _resolve_blocks(model, blocks)
    traced = trace(model, example, explicit={id(m) for _, m in named})
    found, output = steps(traced.graph)
    calls = {s.end.target: s for s in found if s.end.op == "call_module"}
    inputs = forward_inputs(model, [m for _, m in named], example)
    out_blocks, previous = [], None
    for i, (name, module) in enumerate(named):
        step = calls.get(name)
        if step is None or step.nodes != [step.end]:
            raise DiscoveryError(f"block {name!r} is not on the main stream of {type(model).__name__}")
        if previous is not None and found.index(step) <= found.index(calls[named[i - 1][0]]):
            raise DiscoveryError(f"block {name!r} runs before block {named[i - 1][0]!r}: list the blocks in order")
        first = previous if previous is not None else step.start
        pre = extract(traced, first, step.start, f"operations before block {i}") if previous is not None else None
        block = _module_block(module, name, inputs[i], i, pre)
        block.changes_shape = changes_shape(first, step.end)  # including what runs in front of it
        out_blocks.append(block)
        previous = step.end
    first_input = calls[named[0][0]].start
    return _net(model, traced, first_input, previous, output, out_blocks, example)


def _module_block(module: nn.Module, name: str, example: torch.Tensor, index: int, pre: nn.Module | None):
    """One named block: its own trace must hold exactly one residual addition on its main stream."""
    traced = trace(module, example)
    found, output = steps(traced.graph)
    merges = [s for s in found if s.is_merge]
    if len(merges) != 1:
        raise DiscoveryError(
            f"block {name!r} ({type(module).__name__}) has {len(merges)} residual additions on its main path; "
            "each named block needs exactly one (name its sub-blocks instead)"
        )
    plan = BlockPlan(_input(traced), merges[0], output.args[0])
    if not isinstance(plan.output, torch.fx.Node):
        raise DiscoveryError(f"block {name!r} ({type(module).__name__}) does not return one tensor")
    return make_block(traced, plan, index, pre)
