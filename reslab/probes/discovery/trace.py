"""Tracing a model with ``torch.fx`` so its residual structure can be read off the graph.

What the tracer keeps whole (as one ``call_module`` node) and what it opens:
- modules of ``torch.nn`` are leaves (convolutions, norms, activations,
  ``nn.MultiheadAttention``), except containers and the Transformer layers, whose
  residual additions are what discovery looks for (an ``nn.TransformerEncoder`` called
  without masks is traced as its layers and its norm: its own forward inspects tensor
  properties in Python);
- a module whose forward cannot be traced (control flow on tensor values, ``len`` of a
  tensor, ...) becomes a leaf, and the trace starts again; its call still runs its own code;
- the blocks a user names (``blocks=[...]``) are leaves of the whole-model trace.

A traced graph freezes every Python-level ``if self.training``. The model is therefore
traced in eval mode and in train mode: where the two graphs differ in structure (a
drop-path that returns ``x`` in eval mode), the innermost module around the difference
becomes a leaf; where they differ only in a boolean argument (``F.dropout(x, p,
training=self.training)``), that argument is replaced by a node that reads the part's own
training flag when it runs, so the discovered net follows ``.train()``/``.eval()``.
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from ...errors import ReslabError

FLAG = "_reslab_training_flag"  # the target of the node that reads the training flag at run time
TRACE_INTO = (nn.Sequential, nn.ModuleList, nn.ModuleDict, nn.TransformerEncoderLayer, nn.TransformerEncoder)
MAX_RETRACES = 64  # each retrace makes one more module a leaf


class DiscoveryError(ReslabError):
    """A model whose residual structure cannot be found (or reproduced) automatically."""


FALLBACK = "pass the blocks yourself: as_block_net(model, example_input, blocks=[...block modules or their names...])"


class TrainingFlag(nn.Module):
    """Returns its own training flag: a traced graph asks it instead of freezing ``self.training``."""

    def forward(self) -> bool:
        return self.training


class _Tracer(fx.Tracer):
    def __init__(self, opaque: set[str], explicit: set[int]):
        super().__init__()
        self.opaque, self.explicit = opaque, explicit

    def is_leaf_module(self, m: nn.Module, name: str) -> bool:
        if name in self.opaque or id(m) in self.explicit:
            return True
        if isinstance(m, TRACE_INTO):
            return False
        return m.__module__.startswith(("torch.nn", "torch.ao.nn"))

    def call_module(self, m: nn.Module, forward: Any, args: tuple, kwargs: dict) -> Any:
        if isinstance(m, nn.TransformerEncoder) and len(args) == 1 and all(v is None for v in kwargs.values()):
            forward = partial(_encoder_layers, m)  # its forward asks tensor properties (is_nested) in Python
        return super().call_module(m, forward, args, kwargs)


def _encoder_layers(encoder: nn.TransformerEncoder, x: Any) -> Any:
    """What nn.TransformerEncoder computes without masks and off its fused path: its layers, then its norm."""
    for layer in encoder.layers:
        x = layer(x)
    return encoder.norm(x) if encoder.norm is not None else x


class _Untraceable(Exception):
    def __init__(self, module: str | None, cause: Exception):
        super().__init__(module)
        self.module, self.cause = module, cause


@dataclass
class Traced:
    """The eval-mode graph of a model, with shapes, and what tracing had to keep whole."""

    root: nn.Module
    graph: fx.Graph
    opaque: list[str] = field(default_factory=list)  # modules that could not be traced into
    flag: TrainingFlag | None = None  # set when a graph node reads the training flag

    def resolve(self, target: str) -> Any:
        """The object a ``call_module``/``get_attr`` node names (shared, never copied)."""
        if target == FLAG:
            return self.flag
        return operator.attrgetter(target)(self.root)


@contextmanager
def modes(model: nn.Module, train: bool | None) -> Iterator[None]:
    """Set every module's training flag (None: leave them), and restore them afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    try:
        if train is not None:
            model.train(train)
        yield
    finally:
        for m, flag in flags:
            m.training = flag


@contextmanager
def no_fused_attention() -> Iterator[None]:
    """nn.TransformerEncoderLayer's fused inference path checks tensor properties in Python; off while tracing."""
    mha = getattr(torch.backends, "mha", None)
    if mha is None or not hasattr(mha, "set_fastpath_enabled"):
        yield
        return
    before = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(before)


def _concrete_args(model: nn.Module) -> dict[str, Any]:
    """Every forward argument after the first keeps its default (a mask=None stays None)."""
    params = list(inspect.signature(model.forward).parameters.values())[1:]
    missing = [
        p.name
        for p in params
        if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if missing:
        raise DiscoveryError(
            f"{type(model).__name__}.forward needs {', '.join(missing)} besides its input; "
            "discovery works on models called with one input"
        )
    return {p.name: p.default for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def _trace_once(model: nn.Module, opaque: set[str], explicit: set[int], train: bool) -> fx.Graph:
    tracer = _Tracer(opaque, explicit)
    with modes(model, train), no_fused_attention():
        try:
            return tracer.trace(model, concrete_args=_concrete_args(model))
        except DiscoveryError:
            raise
        except Exception as exc:  # any failure of a forward fed with proxies
            inner = next(reversed(tracer.module_stack.values()), None)
            raise _Untraceable(inner[0] if inner else None, exc) from None


def _key(node: fx.Node) -> tuple:
    """A node's identity for comparing the two modes' graphs, booleans blanked out."""

    def blank(a: Any) -> Any:
        return "<bool>" if isinstance(a, bool) else a

    args = fx.node.map_aggregate(node.args, blank)
    kwargs = fx.node.map_aggregate(node.kwargs, blank)
    return node.op, str(node.target), str(args), str(kwargs)


def _owner(node: fx.Node) -> str | None:
    """The innermost traced-into module around a node (None: the model's own forward)."""
    stack = [v[0] for v in (node.meta.get("nn_module_stack") or {}).values()]
    if node.op == "call_module" and stack:
        stack = stack[:-1]  # the leaf itself is not traced into
    return stack[-1] if stack and stack[-1] else None


def _first_difference(eval_graph: fx.Graph, train_graph: fx.Graph) -> fx.Node | None:
    a, b = list(eval_graph.nodes), list(train_graph.nodes)
    for i in range(max(len(a), len(b))):
        if i >= len(a) or i >= len(b) or _key(a[i]) != _key(b[i]):
            return b[i] if i < len(b) else a[i]
    return None


def _trace_both(model: nn.Module, explicit: set[int]) -> tuple[fx.Graph, fx.Graph, set[str]]:
    """Eval- and train-mode graphs of the same structure, making modules leaves as needed."""
    opaque: set[str] = set()
    name = type(model).__name__
    for _ in range(MAX_RETRACES):
        try:
            graphs = [_trace_once(model, opaque, explicit, train) for train in (False, True)]
        except _Untraceable as failed:
            if failed.module is None or failed.module in opaque:
                raise DiscoveryError(
                    f"cannot trace {name} with torch.fx ({type(failed.cause).__name__}: "
                    f"{str(failed.cause).splitlines()[0] if str(failed.cause) else ''}); {FALLBACK}"
                ) from None
            opaque.add(failed.module)
            continue
        diff = _first_difference(*graphs)
        if diff is None:
            return graphs[0], graphs[1], opaque
        owner = _owner(diff)
        if owner is None or owner in opaque:
            raise DiscoveryError(
                f"{name}.forward computes differently in train and eval mode (at {diff.format_node()}); {FALLBACK}"
            )
        opaque.add(owner)
    raise DiscoveryError(f"{name}: more than {MAX_RETRACES} modules could not be traced into; {FALLBACK}")


def _live_flags(eval_graph: fx.Graph, train_graph: fx.Graph) -> bool:
    """Replace booleans that follow the mode (False in eval, True in train) by the run-time flag."""
    flag = not_flag = None
    first = next(iter(eval_graph.nodes))
    for e, t in zip(eval_graph.nodes, train_graph.nodes):
        for where in ("args", "kwargs"):
            ev, tv = getattr(e, where), getattr(t, where)
            items = ev.items() if where == "kwargs" else enumerate(ev)
            changes = {k: v for k, v in items if isinstance(v, bool) and v != (tv[k])}
            if not changes:
                continue
            if flag is None:
                with eval_graph.inserting_after(first):
                    flag = eval_graph.call_module(FLAG)
                with eval_graph.inserting_after(flag):
                    not_flag = eval_graph.call_function(operator.not_, (flag,))
            new = dict(ev) if where == "kwargs" else list(ev)
            for k, v in changes.items():
                new[k] = not_flag if v else flag  # True in eval mode means "not training"
            setattr(e, where, new if where == "kwargs" else tuple(new))
    if not_flag is not None and not not_flag.users:
        eval_graph.erase_node(not_flag)
    return flag is not None


def trace(model: nn.Module, example: torch.Tensor, explicit: set[int] = frozenset()) -> Traced:
    """The model's eval-mode graph with ``tensor_meta`` on every node that carries tensors."""
    eval_graph, train_graph, opaque = _trace_both(model, set(explicit))
    traced = Traced(model, eval_graph, sorted(opaque))
    if _live_flags(eval_graph, train_graph):
        traced.flag = TrainingFlag()
    gm = fx.GraphModule({n.target: traced.resolve(n.target) for n in _targets(eval_graph)}, eval_graph)
    with modes(model, False), modes(gm, False), torch.no_grad(), no_fused_attention():
        try:
            ShapeProp(gm).propagate(example)
        except Exception as exc:  # the example input does not fit the model
            raise DiscoveryError(
                f"{type(model).__name__} fails on the example input of shape {tuple(example.shape)} "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
            ) from None
    for node in _targets(eval_graph):
        if node.op == "call_module":
            node.meta["kind"] = type(traced.resolve(node.target)).__name__
    return traced


def _targets(graph: fx.Graph) -> list[fx.Node]:
    return [n for n in graph.nodes if n.op in ("call_module", "get_attr")]


def graph_module(traced: Traced, graph: fx.Graph, class_name: str) -> fx.GraphModule:
    """A GraphModule over ``graph`` whose modules and tensors are the traced model's own objects."""
    return fx.GraphModule({n.target: traced.resolve(n.target) for n in _targets(graph)}, graph, class_name)
