"""The main stream of a traced graph, and the residual merges on it.

Definitions (all on the data-flow graph of tensors; a value such as ``x.size(0)`` is not
a data edge, so a shape read does not tie two parts of the net together):
- the **main stream** is the chain of values every path from the input to the output
  passes through (the output's dominators). Between two consecutive stream values lies
  one **step**: a single operation (a ReLU, a convolution) or a sub-graph with several
  paths that rejoin at the step's end;
- a step is a **residual merge** when its end is an addition (``+``, ``+=``,
  ``torch.add``, ``Tensor.add(_)``, without ``alpha``) whose two operands both come from
  the step's start x: one is the **branch**, the other the **shortcut** (x itself, or a
  projection or subsampling of x). The shortcut is the operand that is x, else the one
  with fewer operations of its own (on a tie, the right-hand operand: ``out += shortcut``).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.fx as fx

ADD_FUNCTIONS = (operator.add, operator.iadd, torch.add)
ADD_METHODS = ("add", "add_", "__add__", "__iadd__")


@dataclass
class Step:
    """The operations from one main-stream value (``start``) to the next (``end``)."""

    start: fx.Node
    end: fx.Node
    nodes: list[fx.Node]  # the step's data nodes in graph order, ``end`` last
    branch: fx.Node | None = None  # set for a residual merge
    shortcut: fx.Node | None = None

    @property
    def is_merge(self) -> bool:
        return self.branch is not None

    @property
    def signature(self) -> tuple[str, ...]:
        return tuple(describe(n) for n in self.nodes)


def describe(node: fx.Node) -> str:
    """A short name of what a node computes: the module's class (recorded by ``trace``) or the function's name."""
    if "kind" in node.meta:
        return node.meta["kind"]
    if node.op == "call_function":
        return getattr(node.target, "__name__", str(node.target))
    return str(node.target)


def carries_data(node: fx.Node) -> bool:
    return "tensor_meta" in node.meta


def stream_nodes(graph: fx.Graph) -> set[fx.Node]:
    """Nodes whose value is a tensor computed from the input (through tensor edges only)."""
    inputs = [n for n in graph.nodes if n.op == "placeholder"][:1]
    stream = set(inputs)
    for node in graph.nodes:
        if node.op != "placeholder" and carries_data(node) and any(p in stream for p in node.all_input_nodes):
            stream.add(node)
    return stream


def _dominators(graph: fx.Graph, stream: set[fx.Node]) -> dict[fx.Node, fx.Node | None]:
    """Immediate dominator of every stream node (and of the output node), by the input."""
    idom: dict[fx.Node, fx.Node | None] = {}
    depth: dict[fx.Node, int] = {}

    def meet(a: fx.Node, b: fx.Node) -> fx.Node:
        while a is not b:
            if depth[a] < depth[b]:
                a, b = b, a
            a = idom[a]
        return a

    for node in graph.nodes:
        preds = [p for p in node.all_input_nodes if p in stream]
        if node.op == "placeholder" and node in stream:
            idom[node], depth[node] = None, 0
        elif (node in stream or node.op == "output") and preds:
            d = preds[0]
            for p in preds[1:]:
                d = meet(d, p)
            idom[node], depth[node] = d, depth[d] + 1
    return idom


def main_stream(graph: fx.Graph) -> tuple[list[fx.Node], fx.Node]:
    """The main-stream values in order (the input first) and the graph's output node."""
    stream = stream_nodes(graph)
    idom = _dominators(graph, stream)
    output = next(n for n in graph.nodes if n.op == "output")
    chain = []
    node = idom.get(output)
    while node is not None:
        chain.append(node)
        node = idom[node]
    return chain[::-1], output


def _step_nodes(start: fx.Node, end: fx.Node, stream: set[fx.Node]) -> list[fx.Node]:
    """Stream nodes between ``start`` (excluded) and ``end`` (included)."""
    seen, todo = set(), [end]
    while todo:
        node = todo.pop()
        if node is start or node in seen:
            continue
        seen.add(node)
        todo.extend(p for p in node.all_input_nodes if p in stream)
    order = {n: i for i, n in enumerate(end.graph.nodes)}
    return sorted(seen, key=order.__getitem__)


def _is_add(node: fx.Node) -> bool:
    plain = len(node.args) == 2 and not node.kwargs
    if node.op == "call_function":
        return node.target in ADD_FUNCTIONS and plain
    return node.op == "call_method" and node.target in ADD_METHODS and plain


def _own_nodes(operand: fx.Node, other: fx.Node, start: fx.Node, stream: set[fx.Node]) -> int:
    return len(set(_step_nodes(start, operand, stream)) - set(_step_nodes(start, other, stream)))


def _merge_operands(step: Step, stream: set[fx.Node]) -> tuple[fx.Node, fx.Node] | None:
    """(branch, shortcut) when the step ends in a residual addition, else None."""
    end = step.end
    if not _is_add(end):
        return None
    a, b = end.args
    if not (isinstance(a, fx.Node) and isinstance(b, fx.Node) and a in stream and b in stream):
        return None
    if a is b or (a is step.start and b is step.start):
        return None
    if b is step.start:
        return a, b
    if a is step.start:
        return b, a
    own_a, own_b = (_own_nodes(p, q, step.start, stream) for p, q in ((a, b), (b, a)))
    return (b, a) if own_a < own_b else (a, b)


def steps(graph: fx.Graph) -> tuple[list[Step], fx.Node]:
    """The main stream as steps (residual merges marked) and the output node."""
    chain, output = main_stream(graph)
    stream = stream_nodes(graph)
    out = []
    for start, end in zip(chain, chain[1:]):
        step = Step(start, end, _step_nodes(start, end, stream))
        operands = _merge_operands(step, stream)
        if operands is not None:
            step.branch, step.shortcut = operands
        out.append(step)
    return out, output
