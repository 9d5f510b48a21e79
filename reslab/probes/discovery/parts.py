"""Cutting a traced graph into the parts of a ``Block``: small GraphModules over the original modules.

``extract(traced, source, result)`` copies every operation between one main-stream value
and a later value into a new graph of one input. The new GraphModule holds the traced
model's own module and tensor objects (not copies), so parameters, buffers and
train/eval flags are shared with the original model.
"""

from __future__ import annotations

from typing import Any

import torch.fx as fx
from torch import nn

from .trace import DiscoveryError, Traced, graph_module


def _needed(source: fx.Node, results: list[fx.Node], what: str) -> set[fx.Node]:
    """Every node the results depend on, stopping at ``source``; none may reach the model's input another way."""
    seen: set[fx.Node] = set()
    todo = list(results)
    while todo:
        node = todo.pop()
        if node is source or node in seen:
            continue
        if node.op == "placeholder":
            raise DiscoveryError(
                f"the {what} reads the model's input outside the main stream (a side input such as a mask "
                f"or a size taken before it); such blocks cannot be run on their own input"
            )
        seen.add(node)
        todo.extend(node.all_input_nodes)
    return seen


def extract(traced: Traced, source: fx.Node, result: Any, what: str) -> nn.Module:
    """The computation from ``source`` to ``result`` (a node, or the output's structure of nodes)."""
    if result is source:
        return nn.Identity()
    results: list[fx.Node] = []
    fx.node.map_arg(result, results.append)
    needed = _needed(source, results, what)
    graph = fx.Graph()
    env = {source: graph.placeholder("x")}
    for node in traced.graph.nodes:
        if node in needed:
            env[node] = graph.node_copy(node, env.__getitem__)
    graph.output(fx.node.map_arg(result, env.__getitem__))
    return graph_module(traced, graph, what.split()[0].capitalize())


def chain(*parts: nn.Module | None) -> nn.Module:
    """Parts applied one after the other (None and identities left out)."""
    kept = [p for p in parts if p is not None and not isinstance(p, nn.Identity)]
    if not kept:
        return nn.Identity()
    return kept[0] if len(kept) == 1 else nn.Sequential(*kept)
