"""Roughness numbers for loss surfaces (Li2018): negative curvature on a grid, Hessian extremes.

Definitions (studies compare surfaces with them):
- ``negative_curvature_share``: the share of interior grid points where the second
  difference L[i-1] - 2 L[i] + L[i+1] along either axis is below -tol x |L[i]| (tol =
  ``tol``, default 1e-3): a local, relative threshold, so evaluation noise does not count
  and the huge losses far from the centre (where BN in eval mode lets activations blow up)
  do not hide the bumps near it. A convex bowl scores 0; a chaotic surface scores high; a
  basin whose rim flattens out (a loss saturating at chance) scores its rim. A non-finite
  point (a diverged loss) counts as rough.
- ``hessian_extremes``: the extreme eigenvalues of the loss Hessian at the given weights
  by Lanczos iteration with Hessian-vector products; Li2018 Fig. 7 maps |lambda_min/lambda_max|.
  Lanczos finds lambda_max accurately; its lambda_min is the lowest Ritz value, an upper
  bound of the true smallest eigenvalue that tightens with more iterations.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._evaluation import check_data, chunks, eval_state, model_device

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def mean_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged over samples (and tokens, for per-position outputs)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))


def negative_curvature_share(loss: np.ndarray, tol: float = 1e-3) -> float:
    """Share of interior points whose second difference along either axis is < -tol x |loss there|."""
    loss = np.asarray(loss, dtype=np.float64)
    if loss.ndim not in (1, 2) or min(loss.shape) < 3:
        return float("nan")
    with np.errstate(invalid="ignore"):
        if loss.ndim == 1:
            c = loss[1:-1]
            d2 = loss[:-2] - 2 * c + loss[2:]
            return float((~(d2 >= -tol * np.abs(c))).mean())  # NaN compares False: counted as rough
        c = loss[1:-1, 1:-1]
        d2a = loss[:-2, 1:-1] - 2 * c + loss[2:, 1:-1]
        d2b = loss[1:-1, :-2] - 2 * c + loss[1:-1, 2:]
        flat = tol * np.abs(c)
        return float((~((d2a >= -flat) & (d2b >= -flat))).mean())


def hessian_extremes(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    loss_fn: LossFn = mean_cross_entropy,
    iters: int = 20,
    batch_size: int = 250,
    seed: int = 0,
) -> tuple[float, float]:
    """(lambda_min, lambda_max) of the loss Hessian over all trainable parameters, by Lanczos.

    Eval mode (BN uses its running statistics); fp32; full reorthogonalization, so
    ``iters`` Hessian-vector products give ``iters`` Ritz values whose extremes are returned.
    """
    check_data(x, y)
    params = [p for p in model.parameters() if p.requires_grad]
    device = model_device(model)
    batches = list(chunks(x, y, batch_size, device))

    def hvp(v: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(v)
        for xb, yb in batches:
            loss = loss_fn(model(xb), yb) * (len(yb) / len(x))
            grads = torch.autograd.grad(loss, params, create_graph=True)
            flat = torch.cat([g.reshape(-1) for g in grads])
            hv = torch.autograd.grad(flat @ v, params)
            out += torch.cat([h.reshape(-1) for h in hv])
        return out

    size = sum(p.numel() for p in params)
    gen = torch.Generator().manual_seed(int(seed))
    v = torch.randn(size, generator=gen).to(device)
    v /= v.norm()
    basis, diag, off = [v], [], []
    with eval_state(model), torch.enable_grad():
        w = hvp(v)
        for j in range(min(iters, size)):
            a = float(w @ basis[-1])
            diag.append(a)
            w = w - a * basis[-1] - (off[-1] * basis[-2] if off else 0)
            for q in basis:  # full reorthogonalization keeps the Ritz values honest
                w -= (w @ q) * q
            beta = float(w.norm())
            if j == iters - 1 or beta < 1e-8:
                break
            off.append(beta)
            basis.append(w / beta)
            w = hvp(basis[-1])
    t = np.diag(diag) + np.diag(off[: len(diag) - 1], 1) + np.diag(off[: len(diag) - 1], -1)
    ritz = np.linalg.eigvalsh(t)
    return float(ritz[0]), float(ritz[-1])
