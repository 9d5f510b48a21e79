"""Signal propagation (He2016 Sec. 3, Eq. 4-5; claim ``propagation``).

With identity shortcuts and nothing after the addition, x_L = x_l + Σ_{i=l}^{L-1} F_i(x_i),
so ∂E/∂x_l = ∂E/∂x_L (1 + ∂(Σ F_i)/∂x_l): the "1" carries the error from the top to any
lower unit without passing through a weight layer. ``signal_propagation`` measures, for
every block boundary x_l (x_0 the stem output, x_L the last block's output):

- the ratio ‖∂E/∂x_l‖ / ‖∂E/∂x_L‖ (He2016's argument: it stays >= about 1 with identity
  shortcuts, collapses in a plain stack, and becomes Π λ_i with shortcuts scaled by λ_i).
  Norms are over whole tensors, so a downsampling block (``changes_shape``) changes the
  ratio even with nothing but its shortcut: He2015's option A keeps the gradient of one
  position in four and drops that of the zero-padded channels (about 1/(2√2) per
  downsampling). He2016's identity argument holds within a stage;
- the **identity term** d_l: the gradient at x_l carried by the path that takes the
  shortcut in every block from l to L (all blocks in mode ``grad-skip-only``: the
  forward pass is unchanged, the backward signal may not enter any branch). With
  identity shortcuts and no operation after the addition, d_l = ∂E/∂x_L exactly; with
  constant scaling it is Π λ_i ∂E/∂x_L; through a post-addition ReLU it carries the
  ReLU masks; a plain block (no shortcut) cuts it, so d_l = 0 below one. The **branch
  term** is r_l = ∂E/∂x_l − d_l (the ∂E/∂x_L · ∂ΣF/∂x_l part), and the **identity
  share** is ‖d_l‖ / (‖d_l‖ + ‖r_l‖): 1 when the branches add nothing, 0.5 for equal
  sizes, 0 when the direct path is cut.

**Branches scaled by s** (``branch_scale``): every block's branch output F_i(x) is
multiplied by s through a temporary forward hook on the branch; no weight is copied or
changed. This equals scaling the branch's last affine map (its final BatchNorm's γ and β,
or its last weight layer and bias) by s. For a plain block the branch is the whole
block, so s scales the block's output. s = 0 deletes every branch's contribution.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..models.block import block_modes
from ..models.net import follows_block_protocol
from .backward import cast_input, forked_rng, norms, probe_view, walk
from .result import ProbeResult


@dataclass
class Propagation(ProbeResult):
    """Backward signal at every block boundary x_0..x_L (see the module docstring)."""

    has_shortcut: np.ndarray  # (blocks,) bool
    changes_shape: np.ndarray  # (blocks,) bool: downsampling blocks, whose shortcut need not keep the norm
    grad_norms: np.ndarray  # (blocks + 1,) ‖∂E/∂x_l‖
    ratio: np.ndarray  # (blocks + 1,) ‖∂E/∂x_l‖ / ‖∂E/∂x_L‖
    identity_norms: np.ndarray  # (blocks + 1,) ‖d_l‖
    branch_norms: np.ndarray  # (blocks + 1,) ‖∂E/∂x_l − d_l‖
    identity_share: np.ndarray  # (blocks + 1,) ‖d_l‖ / (‖d_l‖ + ‖r_l‖)
    branch_scale: float
    loss: float
    dtype: str

    @property
    def min_ratio(self) -> float:
        return float(np.nanmin(self.ratio))

    @property
    def bottom_ratio(self) -> float:
        """The ratio at x_0, the first block's input: how much of the top's error reaches the bottom."""
        return float(self.ratio[0])


@contextmanager
def scaled_branches(net: nn.Module, scale: float) -> Iterator[None]:
    """Temporarily multiply every block's branch output by ``scale`` (forward hooks; weights untouched)."""
    if scale == 1.0:
        yield
        return
    handles = [b.branch.register_forward_hook(lambda mod, inp, out: out * scale) for b in net.blocks]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def _cut_at_plain_blocks(net: nn.Module) -> Iterator[None]:
    """Stop the backward signal at the output of every block without a shortcut."""
    handles = [
        b.register_forward_hook(lambda mod, inp, out: out.detach().requires_grad_())
        for b in net.blocks
        if not b.has_shortcut
    ]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def signal_propagation(
    net: nn.Module,
    x: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    branch_scale: float = 1.0,
    dtype: torch.dtype | None = None,
    seed: int = 0,
) -> Propagation:
    """He2016 Sec. 3: ‖∂E/∂x_l‖ / ‖∂E/∂x_L‖ and the identity term's share, for every block.

    ``net``: any block-protocol net (plain, residual, He2016's modified shortcuts: scaling,
    gates, 1x1 conv, dropout). ``targets``: class ids, float targets or None (a fixed
    random read-out, ``backward.probe_loss``). Two forward/backward passes with the same
    random draws (dropout), in the model's current mode; BatchNorm statistics are not
    updated. ``dtype=torch.float64`` computes on a float64 copy.
    """
    if not follows_block_protocol(net):
        raise ConfigError(f"signal_propagation needs a block-protocol net, got {type(net).__name__}")
    with probe_view(net, dtype) as m, forked_rng(x), scaled_branches(m, branch_scale):
        xin = cast_input(x, m)
        torch.manual_seed(seed)
        full = walk(m, xin, targets, seed)
        total = torch.autograd.grad(full.loss, full.inputs, allow_unused=True)
        torch.manual_seed(seed)
        with ExitStack() as stack:
            stack.enter_context(block_modes(m.blocks, "grad-skip-only"))
            stack.enter_context(_cut_at_plain_blocks(m))
            direct_walk = walk(m, xin, targets, seed)
            direct = torch.autograd.grad(direct_walk.loss, direct_walk.inputs, allow_unused=True)
        rest = [
            (t if t is not None else 0) - (d if d is not None else 0) if t is not None or d is not None else None
            for t, d in zip(total, direct)
        ]
        g, d_n, r_n = (np.asarray(norms(list(v)), dtype=np.float64) for v in (total, direct, rest))
        loss = float(full.loss.detach())
        dtype_name = str(full.loss.dtype).replace("torch.", "")
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = g / g[-1]
        share = np.where(d_n + r_n > 0, d_n / (d_n + r_n), np.nan)
    return Propagation(
        has_shortcut=np.array([b.has_shortcut for b in net.blocks]),
        changes_shape=np.array([b.changes_shape for b in net.blocks]),
        grad_norms=g,
        ratio=ratio,
        identity_norms=d_n,
        branch_norms=r_n,
        identity_share=share,
        branch_scale=float(branch_scale),
        loss=loss,
        dtype=dtype_name,
    )
