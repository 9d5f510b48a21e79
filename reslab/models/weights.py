"""Trained weights into a net: reslab's own ``model.pt``, or a ``state_dict`` from another codebase.

``load_weights(net, path)`` reads the file with ``torch.load(weights_only=True)`` (a file
that needs pickled Python objects is refused unless ``allow_pickle=True``: unpickling can
run code stored in the file), finds the state_dict in it (top level, or nested under
``state_dict``, ``model_state_dict``, ``model`` or ``net``; a full pickled module's own),
strips a prefix every name shares (``module.`` from DataParallel, ``_orig_mod.`` from
``torch.compile``), and matches its tensors to the net's:

1. by name, when the names are the net's;
2. else by order: the same number of tensors with the same shapes and the same kinds
   (``weight``, ``bias``, ``running_mean``, ...) in the same order, which is what the
   same architecture written in another codebase gives;
3. else by shape, when every shape occurs once, so the match cannot be wrong.

Anything else is refused with the first difference (different shapes, or an order that
differs where several tensors share a shape: ambiguous). BatchNorm's batch counters
(``num_batches_tracked``) take part in none of this: they are kept from the file where
names match, else left as they are. Nothing is changed unless the whole match succeeds;
then a forward pass checks that a block-protocol net gives finite outputs (else the old
weights are put back).
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ReslabError

NESTED = ("state_dict", "model_state_dict", "model", "net")
PREFIXES = ("module.", "_orig_mod.")
COUNTER = "num_batches_tracked"


class WeightsError(ReslabError):
    """A weights file that cannot be read, or whose tensors do not fit the net."""


@dataclass(frozen=True)
class LoadedWeights:
    """How a file's tensors were matched to a net's."""

    path: str
    matched_by: str  # "name", "order" or "shape"
    tensors: int
    stripped_prefix: str


def read_weights(path: str | Path, allow_pickle: bool = False) -> Any:
    """``torch.load`` on the CPU, tensors only unless ``allow_pickle``; one clear error for each failure."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"no weights file at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except pickle.UnpicklingError as exc:
        if allow_pickle or not _needs_pickle(str(exc)):
            raise WeightsError(f"{path} is not a readable PyTorch file (its pickle data is corrupt)") from None
        raise WeightsError(
            f"{path} holds pickled Python objects besides tensors, and unpickling can run code stored in the file; "
            "if you trust it, allow it with allow_pickle=True (command line: --allow-pickle)"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise WeightsError(f"{path} is not a readable PyTorch file ({_first_line(exc)})") from None


def _needs_pickle(message: str) -> bool:
    """torch's weights-only loader names the Python global it refused; a corrupt file has none."""
    return "GLOBAL" in message or "Unsupported global" in message or "Unsupported class" in message


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def find_state_dict(obj: Any, path: str | Path, depth: int = 0) -> dict[str, torch.Tensor]:
    """The name -> tensor mapping in a loaded file (a module's own, or nested one or two levels)."""
    if isinstance(obj, nn.Module):
        return dict(obj.state_dict())
    if isinstance(obj, Mapping):
        tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors and len(tensors) >= len(obj) / 2:
            return tensors
        for key in NESTED:
            if key in obj and depth < 2:
                return find_state_dict(obj[key], path, depth + 1)
        keys = ", ".join(map(str, list(obj)[:8]))
        raise WeightsError(f"{path} holds no state_dict (names -> tensors); its top-level keys are: {keys}")
    raise WeightsError(f"{path} holds a {type(obj).__name__}, not a state_dict")


def strip_prefix(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """Remove ``module.``/``_orig_mod.`` when every name starts with it (repeatedly)."""
    stripped = ""
    while state:
        prefix = next((p for p in PREFIXES if all(k.startswith(p) for k in state)), None)
        if prefix is None:
            break
        state = {k[len(prefix) :]: v for k, v in state.items()}
        stripped += prefix
    return state, stripped


def _entries(state: Mapping[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    return [(k, v) for k, v in state.items() if not k.endswith(COUNTER)]


def _kind(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def _by_name(theirs: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for name, tensor in _entries(own):
        if _shape(theirs[name]) != _shape(tensor):
            raise WeightsError(
                f"{name} has shape {list(theirs[name].shape)} in the file but {list(tensor.shape)} in the net"
            )
    return {k: theirs.get(k, v) for k, v in own.items()}


def _by_order(theirs: list, own: list) -> dict[str, torch.Tensor] | None:
    if len(theirs) != len(own):
        return None
    fits = all(_shape(a) == _shape(b) and _kind(n) == _kind(m) for (n, a), (m, b) in zip(theirs, own))
    return {m: a for (_, a), (m, _) in zip(theirs, own)} if fits else None


def _by_shape(theirs: list, own: list, path: str | Path) -> dict[str, torch.Tensor]:
    """The last resort: a match by shape, refused unless it is forced (every shape once, the same set)."""
    their_shapes = sorted(_shape(t) for _, t in theirs)
    own_shapes = sorted(_shape(t) for _, t in own)
    if their_shapes != own_shapes:
        i = next((i for i, ((_, a), (_, b)) in enumerate(zip(theirs, own)) if _shape(a) != _shape(b)), None)
        where = (
            f"; in order, the first to differ is {theirs[i][0]} {list(theirs[i][1].shape)} vs the net's {own[i][0]} {list(own[i][1].shape)}"
            if i is not None
            else ""
        )
        raise WeightsError(
            f"{path} does not fit this net: {len(theirs)} tensors in the file, {len(own)} in the net{where}"
        )
    if len(set(their_shapes)) == len(their_shapes):
        by_shape = {_shape(t): t for _, t in theirs}
        return {m: by_shape[_shape(b)] for m, b in own}
    i = next(i for i, ((n, a), (m, b)) in enumerate(zip(theirs, own)) if _shape(a) != _shape(b) or _kind(n) != _kind(m))
    raise WeightsError(
        f"{path} has this net's shapes in another order (first at {theirs[i][0]} vs the net's {own[i][0]}), and "
        "several tensors share a shape, so the match is ambiguous; rename its keys to the net's (see net.state_dict())"
    )


def match_state(theirs: dict[str, torch.Tensor], net: nn.Module, path: str | Path) -> tuple[dict, str]:
    """A complete state_dict for ``net`` from the file's tensors, and how they were matched."""
    own = net.state_dict()
    if {k for k, _ in _entries(theirs)} == {k for k, _ in _entries(own)}:
        return _by_name(theirs, own), "name"
    mine, other = _entries(own), _entries(theirs)
    matched = _by_order(other, mine)
    how = "order"
    if matched is None:
        matched, how = _by_shape(other, mine, path), "shape"
    return {k: matched.get(k, v) for k, v in own.items()}, how


def _finite_forward(net: nn.Module) -> bool | None:
    """Whether a block-protocol net's output on a random batch is finite (None: no way to tell)."""
    example = getattr(net, "example_input", None)
    if example is None:
        return None
    flags = [(m, m.training) for m in net.modules()]
    try:
        net.eval()
        with torch.no_grad():
            device = next((p.device for p in net.parameters()), torch.device("cpu"))
            return bool(torch.isfinite(net(example(2).to(device))).all())
    finally:
        for m, flag in flags:
            m.training = flag


def load_weights(net: nn.Module, path: str | Path, *, allow_pickle: bool = False) -> LoadedWeights:
    """Load the file's weights into ``net`` in place (see the module docstring); returns how they matched."""
    state, prefix = strip_prefix(find_state_dict(read_weights(path, allow_pickle), path))
    new, how = match_state(state, net, path)
    old = {k: v.detach().clone() for k, v in net.state_dict().items()}
    net.load_state_dict(new)
    if _finite_forward(net) is False:
        net.load_state_dict(old)
        raise WeightsError(
            f"with the weights of {path} (matched by {how}) the net's output is not finite; "
            "the file is probably not this architecture's"
        )
    return LoadedWeights(str(path), how, len(_entries(new)), prefix)
