"""From a model's main stream to a ``BlockNet``: which steps are blocks, stem, head, pre and post.

The rules (see ``stream`` for steps and merges):
- every residual merge on the main stream is one block; the stem is everything before the
  first block's input, the head everything after the last block's output;
- the operations between two merges are split by what *every* block has after its
  addition: the longest common prefix of those operation sequences (torchvision's ReLU,
  a Post-LN Transformer's LayerNorm, nothing for a pre-activation net) is the earlier
  block's ``post``; the rest (a pre-activation net's BN-ReLU in front of a projection
  shortcut, a transition between stages) belongs to the next block and runs at the start
  of both its branch and its shortcut (computed twice; deleting that block keeps it);
- the last block's ``post`` is the part of the tail that matches that common prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.fx as fx
from torch import nn

from ...models import Block
from .parts import chain, extract
from .stream import Step
from .trace import FALLBACK, DiscoveryError, Traced


@dataclass
class BlockPlan:
    """One discovered block: its input on the main stream, its merge, and its output."""

    input: fx.Node
    merge: Step
    output: fx.Node


def _common_prefix(sequences: list[list[tuple[str, ...]]]) -> int:
    if not sequences:
        return 0
    n = 0
    while all(len(s) > n for s in sequences) and len({s[n] for s in sequences}) == 1:
        n += 1
    return n


def plan_blocks(steps: list[Step], name: str, opaque: list[str]) -> list[BlockPlan]:
    merges = [i for i, s in enumerate(steps) if s.is_merge]
    if not merges:
        nodes = len({n for s in steps for n in s.nodes})
        whole = f"; kept whole because they cannot be traced: {', '.join(opaque)}" if opaque else ""
        raise DiscoveryError(
            f"traced {name}: {len(steps)} steps on its main stream ({nodes} operations{whole}), found no addition "
            f"whose two inputs share a main-stream value (no residual block); {FALLBACK}"
        )
    gaps = [[s.signature for s in steps[a + 1 : b]] for a, b in zip(merges, merges[1:])]
    post = _common_prefix(gaps)
    tail = [s.signature for s in steps[merges[-1] + 1 :]]
    last_post = _common_prefix([tail, gaps[0][:post]]) if gaps else 0
    plans = []
    start = steps[merges[0]].start
    for j, i in enumerate(merges):
        n = post if j < len(merges) - 1 else last_post
        output = steps[i + n].end
        plans.append(BlockPlan(start, steps[i], output))
        start = output
    return plans


def make_block(traced: Traced, plan: BlockPlan, index: int, pre: nn.Module | None = None) -> Block:
    """A ``Block`` whose parts compute exactly the plan's operations; ``pre`` runs in front of both paths."""
    merge = plan.merge
    what = f"block {index}"
    branch = extract(traced, plan.input, merge.branch, f"branch of {what}")
    shortcut = extract(traced, plan.input, merge.shortcut, f"shortcut of {what}")
    post = extract(traced, merge.end, plan.output, f"post of {what}")
    return Block(
        branch=chain(pre, branch),
        shortcut=chain(pre, shortcut),
        post=post,
        changes_shape=changes_shape(plan.input, plan.output),
    )


def changes_shape(a: fx.Node, b: fx.Node) -> bool:
    """Whether one sample's shape differs between two traced values (True when unknown)."""
    shapes = [getattr(n.meta.get("tensor_meta"), "shape", None) for n in (a, b)]
    return None in shapes or tuple(shapes[0][1:]) != tuple(shapes[1][1:])
