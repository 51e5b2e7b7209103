"""No prior, the lasso and the (collapsed) group lasso.

Group lasso (oi-VAE, eq. 5-6): ``W[g, :, k] | gamma^2 ~ N(0, gamma^2 I_p)`` with
``gamma^2 ~ Gamma((p + 1) / 2, rate = lam^2 / 2)``. Integrating ``gamma^2`` out gives

    p(w) = lam^p / (2^p pi^((p-1)/2) Gamma((p+1)/2)) * exp(-lam ||w||_2),

so the collapsed MAP objective carries the penalty ``-lam * sum_{g,k} ||W[g, :, k]||_2``
and the proximal operator of ``step * lam * ||w||`` is the block soft-threshold
``w / ||w|| * (||w|| - step * lam)_+``, which yields exact zeros.
"""

from __future__ import annotations

import math

import torch

from .._checks import check_float
from .base import Prior, cell_norms


def group_soft_threshold(W: torch.Tensor, threshold: float | torch.Tensor) -> torch.Tensor:
    """Block soft-threshold of every cell ``W[g, :, k]`` (a new tensor)."""
    norms = cell_norms(W).unsqueeze(-2)
    shrink = torch.clamp(1.0 - threshold / norms.clamp_min(1e-30), min=0.0)
    return W * shrink


def soft_threshold(W: torch.Tensor, threshold: float | torch.Tensor) -> torch.Tensor:
    """Entry-wise soft-threshold ``sign(w) (|w| - t)_+`` (a new tensor)."""
    return torch.sign(W) * torch.clamp(W.abs() - threshold, min=0.0)


def log_group_laplace_const(p: int, lam: float) -> float:
    """``log(lam^p / (2^p pi^((p-1)/2) Gamma((p+1)/2)))``: normaliser of ``exp(-lam ||w||)``
    in ``R^p`` (the collapsed group-lasso density; the Laplace's ``lam / 2`` for ``p = 1``)."""
    return (
        p * math.log(lam)
        - p * math.log(2.0)
        - 0.5 * (p - 1) * math.log(math.pi)
        - math.lgamma(0.5 * (p + 1))
    )


def group_lasso_log_density(w: torch.Tensor, lam: float) -> torch.Tensor:
    """Normalised log density of the collapsed group-lasso prior of one cell ``w`` (p,)."""
    return log_group_laplace_const(w.shape[-1], lam) - lam * torch.linalg.vector_norm(w, dim=-1)


class NoPrior(Prior):
    """No sparsity prior (``lam = 0``): a flat prior on ``W``, every cell active."""


class GroupLasso(Prior):
    """Collapsed hierarchical group lasso on the cells ``W[g, :, k]``, handled by a proximal step.

    Parameters
    ----------
    lam : float
        Rate of the group lasso (``lam = 0`` is no sparsity).
    """

    handles = ("prox",)

    def __init__(self, lam: float = 1.0):
        super().__init__()
        self.lam = check_float(lam, "lam", allow_low=True)

    def nonsmooth_log_prob(self, W):
        return -self.lam * cell_norms(W).sum()

    @torch.no_grad()
    def prox(self, W, step):
        W.copy_(group_soft_threshold(W, step * self.lam))

    def _config(self):
        return {"lam": self.lam}


class Lasso(Prior):
    """Entry-wise Laplace prior, ``-lam * sum |W|``, handled by soft-thresholding.

    On a matrix with ``p = 1`` (the Sparse VAE mask) it coincides with :class:`GroupLasso`.
    """

    handles = ("prox",)

    def __init__(self, lam: float = 1.0):
        super().__init__()
        self.lam = check_float(lam, "lam", allow_low=True)

    def nonsmooth_log_prob(self, W):
        return -self.lam * W.abs().sum()

    @torch.no_grad()
    def prox(self, W, step):
        W.copy_(soft_threshold(W, step * self.lam))

    def _config(self):
        return {"lam": self.lam}
