"""d(output)/d(input) of many same-shaped nets at once, on a batch of 1-D inputs.

The shattered-gradient probe needs the input gradient of 20+ random nets per family, at
every depth, on a 256-point grid. Two routes compute the same numbers:

- ``stacked_prefix_gradients``: the nets' weights stacked along a leading seed axis and a
  forward pass that carries the tangent beside the activation (forward-mode
  differentiation with input tangent 1), written out for the parts MLPs are built from. After every block it applies the head to
  (activation, tangent), so one pass through a depth-L net gives the input gradient of
  all its prefixes (the depth-d prefix of a random depth-L net is distributed exactly
  like a random depth-d net). This is several times faster than
  ``vmap(jvp(functional_call))``, whose BatchNorm tangents cost more than the matrix products.
- ``input_gradients``: ``torch.func.jvp`` on any single model; the cross-check.

BatchNorm couples the inputs of a batch, so "the gradient at one input" needs a
definition. Both routes use the same one: **the batch statistics are computed on the
whole grid and then held fixed**, so each grid point's gradient is that of the net in
which every BatchNorm is the fixed affine map the grid's statistics give (mean and
biased variance, as BatchNorm's training mode normalizes). In ``eval()`` mode the
running statistics are used instead.
"""

from __future__ import annotations

import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn
from torch.func import jvp

from ..errors import ConfigError
from ..models.block import Block
from ..models.merges import Add
from ..models.parts import CReLU, DropPath, FixedScale, LearnedScalar


def _frozen_bn_forward(self: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm with the batch's statistics detached: the per-input map is a fixed affine one."""
    if not self.training and self.running_mean is not None:
        mean, var = self.running_mean, self.running_var
    else:
        dims = [d for d in range(x.dim()) if d != 1]
        mean = x.mean(dims).detach()
        var = x.var(dims, unbiased=False).detach()
    shape = [1, -1] + [1] * (x.dim() - 2)
    scale = torch.rsqrt(var + self.eps)
    if self.weight is not None:
        scale = scale * self.weight
    out = (x - mean.view(shape)) * scale.view(shape)
    return out + self.bias.view(shape) if self.bias is not None else out


@contextmanager
def frozen_batch_statistics(model: nn.Module) -> Iterator[nn.Module]:
    """Temporarily make every BatchNorm of ``model`` treat its batch statistics as constants.

    No running statistics are updated inside the context; the model is restored on exit.
    """
    patched = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.__dict__.get("forward") for m in patched]
    for m in patched:
        m.forward = types.MethodType(_frozen_bn_forward, m)
    try:
        yield model
    finally:
        for m, old in zip(patched, saved):
            if old is None:
                del m.forward
            else:
                m.forward = old


def input_gradients(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """d(model(x)[i]) / d(x[i]) for every row of a batch of 1-D inputs ``x`` (N, 1); returns (N,).

    Forward-mode (``torch.func.jvp`` with tangent 1): per-input gradients in one pass,
    BatchNorm statistics of the batch held fixed (see the module docstring). The model
    must have one input feature and one output.
    """
    if x.dim() != 2 or x.shape[1] != 1:
        raise ConfigError(f"input_gradients needs inputs of shape (N, 1), got {tuple(x.shape)}")
    with frozen_batch_statistics(model), torch.no_grad():
        out, tangent = jvp(model, (x,), (torch.ones_like(x),))
    if out.dim() != 2 or out.shape[1] != 1:
        raise ConfigError(f"input_gradients needs a model with one output, got output shape {tuple(out.shape)}")
    return tangent[:, 0]


class StackedNets:
    """Same-architecture nets evaluated together, with the forward-mode tangent beside the value.

    The state is one tensor z of shape (S, F, 2, N): for S nets, F features and N inputs,
    z[:, :, 0] holds the activations and z[:, :, 1] their derivatives along the input
    tangent. Every supported op except a bias or shift acts on both halves alike (ReLU
    multiplies both by the same mask), so value and tangent share one matrix product and
    one elementwise pass per op, and reductions over the inputs run along contiguous
    memory. Parameters are stacked per module when used, which keeps memory flat.
    Supported parts: Linear, BatchNorm1d (frozen statistics), ReLU, CReLU, Tanh, FixedScale,
    LearnedScalar, Identity, Flatten (no-op on (N, F) inputs), Dropout/DropPath in eval
    mode, Sequential, and ``Block`` in mode ``full`` with an additive merge.
    """

    def __init__(self, nets: Sequence[nn.Module]):
        if not nets:
            raise ConfigError("StackedNets needs at least one net")
        self.nets = list(nets)
        self.base = self.nets[0]
        self._prefix = {id(m): name for name, m in self.base.named_modules()}
        self._stats: tuple | None = None  # (input, mean, var) of the last batch-statistics BatchNorm

    def stacked(self, module: nn.Module, name: str) -> torch.Tensor | None:
        """The tensor ``name`` of ``module`` (a submodule of the first net) stacked over all nets."""
        if getattr(module, name, None) is None:
            return None
        prefix = self._prefix[id(module)]
        full = f"{prefix}.{name}" if prefix else name
        get = (
            (lambda net: net.get_parameter(full)) if name in module._parameters else (lambda net: net.get_buffer(full))
        )
        return torch.stack([get(net).detach() for net in self.nets])

    def run(self, module: nn.Module, z: torch.Tensor) -> torch.Tensor:
        if isinstance(module, nn.Sequential):
            for child in module:
                z = self.run(child, z)
            return z
        if isinstance(module, Block):
            return self._block(module, z)
        if isinstance(module, nn.Linear):
            s, f, _, n = z.shape
            out = torch.bmm(self.stacked(module, "weight"), z.reshape(s, f, 2 * n)).view(s, -1, 2, n)
            if module.bias is not None:
                out[:, :, 0] += self.stacked(module, "bias").unsqueeze(-1)
            return out
        if isinstance(module, nn.BatchNorm1d):
            return self._batchnorm(module, z)
        if isinstance(module, nn.ReLU):
            return z * (z[:, :, :1] > 0)
        if isinstance(module, CReLU):
            if module.dim not in (1, -1):
                raise ConfigError("StackedNets supports CReLU along the feature dimension only")
            return torch.cat([z * (z[:, :, :1] > 0), -(z * (z[:, :, :1] < 0))], 1)
        if isinstance(module, nn.Tanh):
            t = torch.tanh(z[:, :, 0])
            return torch.stack([t, z[:, :, 1] * (1 - t * t)], 2)
        if isinstance(module, FixedScale):
            return z * module.factor
        if isinstance(module, LearnedScalar):
            return z * self.stacked(module, "weight").view(-1, 1, 1, 1)
        if isinstance(module, (nn.Identity, nn.Flatten)):
            return z
        if isinstance(module, (nn.Dropout, DropPath)) and (not module.training or module.p == 0):
            return z
        raise ConfigError(
            f"StackedNets cannot evaluate {type(module).__name__}; use input_gradients() for general models"
        )

    def _batchnorm(self, module: nn.BatchNorm1d, z: torch.Tensor) -> torch.Tensor:
        if module.training or module.running_mean is None:
            if self._stats is not None and self._stats[0] is z:  # e.g. the head and the next block's BN
                mean, var = self._stats[1:]
            else:
                h = z[:, :, 0]
                mean = h.mean(-1, keepdim=True)
                centred = h - mean
                var = (centred * centred).mean(-1, keepdim=True)  # two passes: faster than var_mean here
                self._stats = (z, mean, var)
        else:
            mean = self.stacked(module, "running_mean").unsqueeze(-1)
            var = self.stacked(module, "running_var").unsqueeze(-1)
        scale = torch.rsqrt(var + module.eps)
        if module.weight is not None:
            scale = scale * self.stacked(module, "weight").unsqueeze(-1)
        shift = -mean * scale
        if module.bias is not None:
            shift = shift + self.stacked(module, "bias").unsqueeze(-1)
        shifts = torch.stack([shift, torch.zeros_like(shift)], 2)  # the tangent is not shifted
        return torch.addcmul(shifts, z, scale.unsqueeze(2))

    def _block(self, block: Block, z: torch.Tensor) -> torch.Tensor:
        if block.mode != "full" or not isinstance(block.merge, Add):
            raise ConfigError("StackedNets supports blocks in mode 'full' with an additive merge only")
        f = self.run(block.branch, z)
        if block.shortcut is not None:
            f = f + self.run(block.shortcut, z)
        return self.run(block.post, f)


def stacked_prefix_gradients(nets: Sequence[nn.Module], x: torch.Tensor, include_stem: bool = True) -> torch.Tensor:
    """Input gradients of every prefix of block-protocol nets, all nets at once.

    ``nets``: same-architecture MLP ``BlockNet``s with one input feature and one output
    (e.g. one per seed). Returns (P, S, N): entry [p, s, i] is d/dx of
    ``head(blocks[:k](stem(x)))`` of net s at grid point i, with k = p if
    ``include_stem`` (so p = 0 is the stem alone) and k = p + 1 otherwise.
    """
    if x.dim() != 2 or x.shape[1] != 1:
        raise ConfigError(f"inputs must have shape (N, 1), got {tuple(x.shape)}")
    stack = StackedNets(nets)
    net = stack.base
    param = next(net.parameters())
    pair = torch.stack([x[:, 0], torch.ones_like(x[:, 0])]).to(param.device, param.dtype)  # (2, N)
    z = pair.expand(len(stack.nets), 1, 2, len(x)).contiguous()
    with torch.no_grad():
        z = stack.run(net.stem, z)
        out = [stack.run(net.head, z)[:, :, 1]] if include_stem else []
        for block in net.blocks:
            z = stack.run(block, z)
            out.append(stack.run(net.head, z)[:, :, 1])
    grads = torch.stack(out)  # (P, S, outputs, N)
    if grads.shape[2] != 1:
        raise ConfigError(f"nets must have one output, got {grads.shape[2]}")
    return grads[:, :, 0]
