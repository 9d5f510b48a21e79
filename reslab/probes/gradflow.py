"""Gradient flow (claim ``vanishing``): where the backward signal grows, shrinks or splits.

- ``gradient_norms``: per weight layer ‖∂E/∂W‖ and per block ‖∂E/∂x_l‖ for one batch (at
  initialization, or at any point), optionally in float64: a depth-50 unit-Gaussian MLP
  reaches ~1e50 in its forward pass, past float32's range, and float64 shows the whole
  explosion honestly.
- ``shortcut_shares``: per residual block, how much of the backward signal at its input
  arrives through the shortcut and how much through the branch.
- ``layer_responses``: He2015 Fig. 7, the std of each 3x3 conv's output after its BN.
- ``GradientFlowRecorder`` (in ``gradflow_record``): the same norms sampled every N
  training steps into layer x step matrices.

A note for reading the numbers: in a bias-free ReLU net (positively homogeneous) the
weight gradient of layer l is the product of the forward activation entering it and
the backward signal leaving it, and the two scale in opposite directions, so per-layer
*weight* gradient norms stay nearly level under small or unit init; the vanishing and
the explosion show in the *activation* gradients ‖∂E/∂x_l‖.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..models.block import block_modes
from ..models.net import follows_block_protocol
from .backward import cast_input, forked_rng, norms, probe_loss, probe_view, set_rng_state, walk
from .result import ProbeResult


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Every weight matrix or kernel (parameters with >= 2 dims), input to output, by name."""
    return [(name, p) for name, p in model.named_parameters() if p.dim() >= 2 and p.requires_grad]


@dataclass
class GradientNorms(ProbeResult):
    """He2015's "vanishing/exploding gradients" at one point of training, for one batch.

    Norms are Frobenius norms over the whole batch. Activation points: x_0 is the stem's
    output (the first block's input), x_l the output of block l, x_L the last block's.
    """

    layer_names: list[str]
    weight_grad_norms: np.ndarray  # (layers,) ‖∂E/∂W‖
    weight_norms: np.ndarray  # (layers,) ‖W‖
    activation_grad_norms: np.ndarray  # (blocks + 1,) ‖∂E/∂x_l‖; empty for a net without blocks
    activation_norms: np.ndarray  # (blocks + 1,) ‖x_l‖
    loss: float
    dtype: str
    finite: bool  # every number finite (false when float32 overflowed)

    @property
    def weight_grad_orders(self) -> float:
        """log10(‖∂E/∂W_first‖ / ‖∂E/∂W_last‖): > 0 grows toward the input, < 0 vanishes."""
        return _orders(self.weight_grad_norms)

    @property
    def activation_grad_orders(self) -> float:
        """log10(‖∂E/∂x_0‖ / ‖∂E/∂x_L‖): orders of magnitude gained (+) or lost (-) from top to bottom."""
        return _orders(self.activation_grad_norms)


def _orders(values: np.ndarray) -> float:
    if len(values) < 2 or not np.all(np.isfinite(values[[0, -1]])) or values[-1] <= 0 or values[0] <= 0:
        return float("nan")
    return float(np.log10(values[0] / values[-1]))


def gradient_norms(
    model: nn.Module,
    x: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    dtype: torch.dtype | None = None,
    seed: int = 0,
) -> GradientNorms:
    """Per-layer weight-gradient and per-block activation-gradient norms for one batch.

    He2015 Sec. 1 / Glorot & Bengio 2010: the quantity that vanishes or explodes with
    depth. ``targets``: class ids (cross-entropy), float targets (MSE) or None (a fixed
    random read-out, see ``probe_loss``). ``dtype=torch.float64`` computes on a float64
    copy. The model's mode (train/eval) is used as it is; BatchNorm statistics are not
    updated. Works on any module; activation norms need the block protocol.
    """
    with probe_view(model, dtype) as net:
        xin = cast_input(x, net)
        layers = weight_layers(net)
        if follows_block_protocol(net):
            w = walk(net, xin, targets, seed)
            acts, loss = w.inputs, w.loss
        else:
            acts, loss = [], probe_loss(net(xin), targets, seed)
        grads = torch.autograd.grad(loss, acts + [p for _, p in layers], allow_unused=True)
        values = {
            "weight_grad_norms": norms(list(grads[len(acts) :])),
            "weight_norms": norms([p.detach() for _, p in layers]),
            "activation_grad_norms": norms(list(grads[: len(acts)])),
            "activation_norms": norms([a.detach() for a in acts]),
        }
        arrays = {k: np.asarray(v, dtype=np.float64) for k, v in values.items()}
        loss_value = float(loss.detach())
        finite = bool(np.isfinite(loss_value) and all(np.isfinite(a).all() for a in arrays.values()))
        dtype_name = str(next(p.dtype for _, p in layers)).replace("torch.", "") if layers else "none"
    return GradientNorms(layer_names=[n for n, _ in layers], loss=loss_value, dtype=dtype_name, finite=finite, **arrays)


@dataclass
class ShortcutShares(ProbeResult):
    """Per block: the backward signal at its input, split into the shortcut's and the branch's part.

    With g = ∂E/∂(block output), the block's input receives J_s^T g through the shortcut
    (branch detached: block mode ``grad-skip-only``) and J_F^T g through the branch
    (``grad-branch-only``). ``shortcut_share`` = ‖J_s^T g‖ / (‖J_s^T g‖ + ‖J_F^T g‖):
    1 when everything comes through the shortcut, 0.5 for equal parts, 0 for a plain
    block. For additive merges the two parts sum to the total; for gated merges the
    gate's own derivative appears in both parts.
    """

    block_names: list[str]
    has_shortcut: np.ndarray  # (blocks,) bool
    shortcut_norms: np.ndarray  # (blocks,)
    branch_norms: np.ndarray  # (blocks,)
    total_norms: np.ndarray  # (blocks,) ‖∂E/∂x_l‖ with both paths
    shortcut_share: np.ndarray  # (blocks,)
    recompute_error: float  # max relative gap between a block recomputed alone and the whole-net backward

    @property
    def mean_share(self) -> float:
        """Mean shortcut share over the blocks that have a shortcut (NaN if none)."""
        s = self.shortcut_share[self.has_shortcut]
        return float(s.mean()) if s.size else float("nan")


def shortcut_shares(
    net: nn.Module,
    x: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    dtype: torch.dtype | None = None,
    seed: int = 0,
) -> ShortcutShares:
    """How much of each block's backward signal comes through its shortcut (He2016 Sec. 3).

    One forward and backward pass for the gradients at every block output, then each block
    is recomputed alone (same input, same dropout draws) with the backward routed through
    one path only. Cost: about three passes through the net.
    """
    with probe_view(net, dtype) as m, forked_rng(x):
        w = walk(m, cast_input(x, m), targets, seed)
        grads = torch.autograd.grad(w.loss, w.inputs, allow_unused=True)
        grads = [g if g is not None else torch.zeros_like(a) for g, a in zip(grads, w.inputs)]
        rows, mismatch = [], 0.0
        for i, block in enumerate(m.blocks):

            def routed(mode: str, i: int = i, block: nn.Module = block) -> torch.Tensor:
                xi = w.inputs[i].detach().requires_grad_()
                set_rng_state(w.rng[i], xi.device)
                with block_modes([block], mode):
                    (gi,) = torch.autograd.grad(block(xi), xi, grads[i + 1], allow_unused=True)
                return gi if gi is not None else torch.zeros_like(xi)

            full = routed("full")  # must reproduce the whole-net backward (same input, same draws)
            scale = float(torch.linalg.vector_norm(grads[i].double()))
            mismatch = max(mismatch, float(torch.linalg.vector_norm((full - grads[i]).double())) / max(scale, 1e-300))
            if block.has_shortcut:
                rows.append((scale, *norms([routed("grad-skip-only"), routed("grad-branch-only")])))
            else:  # a plain block: everything passes through its branch
                rows.append((scale, 0.0, scale))
    total, skip, branch = (np.asarray(c, dtype=np.float64) for c in zip(*rows))
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(skip + branch > 0, skip / (skip + branch), np.nan)
    return ShortcutShares(
        block_names=[f"blocks.{i}" for i in range(len(rows))],
        has_shortcut=np.array([b.has_shortcut for b in net.blocks]),
        shortcut_norms=skip,
        branch_norms=branch,
        total_norms=total,
        shortcut_share=share,
        recompute_error=mismatch,
    )


@dataclass
class LayerResponses(ProbeResult):
    """He2015 Fig. 7: std of each 3x3 conv layer's response, after BN, before ReLU/addition.

    ``after_bn[i]`` says whether layer i's response was read after a following BatchNorm
    (the conv's next sibling in its Sequential) or, with none, at the conv output.
    Responses are in the order of the forward pass.
    """

    layer_names: list[str]
    std: np.ndarray  # (layers,)
    after_bn: np.ndarray  # (layers,) bool


def layer_responses(model: nn.Module, x: torch.Tensor, kernel_size: int | None = 3) -> LayerResponses:
    """Std of every conv response (3x3 only by default; ``None``: every conv and linear layer).

    The std is over all elements of the response for the batch (samples, channels,
    positions). He2015 measure trained nets in evaluation mode: call ``model.eval()``
    first for that; in training mode BN responses have std ~1 by construction.
    """
    targets = _response_points(model, kernel_size)
    found: dict[int, torch.Tensor] = {}
    hooks = [
        point.register_forward_hook(lambda mod, inp, out, k=k: found.__setitem__(k, out.detach()))
        for k, (_, point, _) in enumerate(targets)
    ]
    try:
        with probe_view(model) as m, torch.no_grad():
            m(cast_input(x, m))
    finally:
        for h in hooks:
            h.remove()
    order = [k for k in found]  # forward order
    return LayerResponses(
        layer_names=[targets[k][0] for k in order],
        std=np.array([float(found[k].double().std()) for k in order], dtype=np.float64),
        after_bn=np.array([targets[k][2] for k in order], dtype=bool),
    )


def _response_points(model: nn.Module, kernel_size: int | None) -> list[tuple[str, nn.Module, bool]]:
    """(name, module to read, read after BN) for every selected layer."""
    following: dict[int, nn.Module] = {}
    for seq in model.modules():
        if isinstance(seq, nn.Sequential):
            kids = list(seq)
            for a, b in zip(kids, kids[1:]):
                if isinstance(b, nn.modules.batchnorm._BatchNorm):
                    following[id(a)] = b
    points = []
    for name, m in model.named_modules():
        if kernel_size is None:
            wanted = isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))
        else:
            wanted = isinstance(m, nn.Conv2d) and m.kernel_size == (kernel_size, kernel_size)
        if wanted:
            bn = following.get(id(m))
            points.append((name, bn if bn is not None else m, bn is not None))
    return points
