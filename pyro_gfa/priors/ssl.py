"""Spike-and-slab lasso (Rockova & George 2018) on the cells of a ``(G, p, K)`` matrix.

Hierarchy (Sparse VAE, Moran et al. 2023, eq. 2-4)::

    eta_k ~ Beta(a, b),   gamma_gk ~ Bernoulli(eta_k),
    w_gk | gamma_gk ~ gamma_gk psi_1(w_gk) + (1 - gamma_gk) psi_0(w_gk),

with ``psi_s`` the Laplace density of rate ``lambda_s`` (for ``p > 1`` the collapsed group
lasso density of rate ``lambda_s`` on the cell norm, which is the Laplace for ``p = 1``) and
``lambda_0 >> lambda_1``.

Training (Algorithm 1 and appendix B.1): after every gradient step the closed-form EM
updates

    p*_gk  = eta_k psi_1(w_gk) / (eta_k psi_1(w_gk) + (1 - eta_k) psi_0(w_gk)),
    eta_k  = (sum_g p*_gk + a - 1) / (a + b + G - 2),

and the weighted-L1 penalty ``-sum lambda*_gk |w_gk|`` with
``lambda*_gk = lambda_1 p*_gk + lambda_0 (1 - p*_gk)`` handled by its proximal operator
(a weighted soft-threshold, which gives exact zeros). The normalising constants
``lambda_s / 2`` of the Laplace densities are kept (the authors' code drops them, which
multiplies the odds of every ``p*`` by ``lambda_0 / lambda_1``: towards the slab).

The value written into the objective (:meth:`SpikeSlabLasso.nonsmooth_log_prob`) is the
real marginal log prior ``sum log(eta psi_1 + (1 - eta) psi_0) + sum log Beta(eta; a, b)``
at the current ``eta``; its gradient in ``w`` is exactly ``-lambda* sign(w)``, so the
proximal step with ``lambda*`` is the EM (majorise-minimise) step on it.
"""

from __future__ import annotations

import math

import torch

from .._checks import check_float, check_int
from .base import Prior, cell_norms
from .lasso import group_soft_threshold, log_group_laplace_const

__all__ = ["SpikeSlabLasso"]


class SpikeSlabLasso(Prior):
    """Spike-and-slab lasso with closed-form EM updates of ``p*`` and ``eta``.

    Parameters
    ----------
    lambda0
        Rate of the spike (large: negligible entries).
    lambda1
        Rate of the slab (small: free entries); ``lambda0 >= lambda1 > 0``. With
        ``lambda0 == lambda1`` the prior is the lasso.
    a, b
        Beta prior on the column inclusion probabilities ``eta_k``; defaults ``a = 1`` and
        ``b = G`` (appendix C.2; ``b = None`` is resolved to ``G`` as ``b_`` at :meth:`setup`).
    eta_init
        Starting value of every ``eta_k`` (the authors start at uniform draws; a fixed value
        keeps fits reproducible and every column equally likely at the start).
    em_warmup_steps
        The EM updates and the proximal step start after this many calls of :meth:`update`
        (training steps). Before, ``p*`` stays at 0.5 and ``W`` takes plain gradient steps,
        so the decoder learns which columns it uses before the spike can pull a column
        that is still being learned to zero (the way a true factor gets lost early in a fit).
        :class:`~pyro_gfa.SparseVAE` sets this from its ``em_warmup`` epochs.

    Attributes
    ----------
    p_star : torch.Tensor
        ``(G, K)`` current conditional inclusion probabilities ``E[gamma | w, eta]``.
    eta : torch.Tensor
        ``(K,)`` current column inclusion probabilities.

    Notes
    -----
    On cells of ``p > 1`` entries (the latent-to-group matrices of oi-VAE and factVAE) this
    is the group spike-and-slab lasso: its Laplace constants scale as ``lambda^p``, so at
    ``eta = 1/2`` a cell is active only when ``||w_gk|| > p log(lambda0 / lambda1) /
    (lambda0 - lambda1)``. The threshold grows with ``p`` (33-entry cells at the default
    rates: 8.4, far above the rates' ``p = 1`` threshold of 0.26); choose the rates for the
    cell size, or use :class:`~pyro_gfa.priors.GroupLasso` there.
    """

    handles = ("prox", "update")

    def __init__(
        self,
        lambda0: float = 10.0,
        lambda1: float = 1.0,
        a: float = 1.0,
        b: float | None = None,
        eta_init: float = 0.5,
        em_warmup_steps: int = 0,
    ):
        super().__init__()
        lambda0, lambda1 = check_float(lambda0, "lambda0"), check_float(lambda1, "lambda1")
        if lambda0 < lambda1:
            raise ValueError(
                f"the spike must be narrower than the slab: need lambda0 >= lambda1, got"
                f" lambda0={lambda0} < lambda1={lambda1}"
            )
        self.lambda0, self.lambda1 = lambda0, lambda1
        self.a = check_float(a, "a")
        self.b = None if b is None else check_float(b, "b")
        self.eta_init = check_float(eta_init, "eta_init", 0.0, 1.0)
        self.em_warmup_steps = check_int(em_warmup_steps, "em_warmup_steps", 0)
        self.register_buffer("p_star", torch.zeros(0, 0))
        self.register_buffer("eta", torch.zeros(0))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    # -- state ---------------------------------------------------------------------------
    def setup(self, W: torch.Tensor) -> None:
        G, _, K = W.shape
        # b = None means b = G, resolved per model so one prior object can serve several
        self.b_ = float(G) if self.b is None else self.b
        self.p_star = W.new_full((G, K), 0.5)
        self.eta = W.new_full((K,), self.eta_init)
        self.steps = torch.zeros((), dtype=torch.long, device=W.device)

    @property
    def em_active(self) -> bool:
        return int(self.steps) >= self.em_warmup_steps

    # -- closed forms ------------------------------------------------------------------
    def _log_psi(self, norms: torch.Tensor, p: int, lam: float) -> torch.Tensor:
        return log_group_laplace_const(p, lam) - lam * norms

    def inclusion_probability(self, W: torch.Tensor, eta: torch.Tensor | None = None):
        """``(G, K)`` ``p*_gk = E[gamma_gk | w_gk, eta_k]`` (appendix B.1, eq. 57)."""
        eta = self.eta if eta is None else eta
        norms = cell_norms(W)
        p = W.shape[-2]
        logit = (
            torch.log(eta)
            - torch.log1p(-eta)
            + self._log_psi(norms, p, self.lambda1)
            - self._log_psi(norms, p, self.lambda0)
        )
        return torch.sigmoid(logit)

    def eta_update(self, p_star: torch.Tensor) -> torch.Tensor:
        """``(K,)`` ``eta_k = (sum_g p*_gk + a - 1) / (a + b + G - 2)``, kept inside (0, 1)."""
        G = p_star.shape[0]
        eta = (p_star.sum(0) + self.a - 1.0) / (self.a + self.b_ + G - 2.0)
        return eta.clamp(1e-6, 1.0 - 1e-6)

    def lambda_star(self) -> torch.Tensor:
        """``(G, K)`` penalty weights ``lambda_1 p* + lambda_0 (1 - p*)`` (eq. 58)."""
        return self.lambda1 * self.p_star + self.lambda0 * (1.0 - self.p_star)

    # -- Prior interface -----------------------------------------------------------------
    def nonsmooth_log_prob(self, W):
        norms = cell_norms(W)
        p = W.shape[-2]
        eta = self.eta
        mix = torch.logaddexp(
            torch.log(eta) + self._log_psi(norms, p, self.lambda1),
            torch.log1p(-eta) + self._log_psi(norms, p, self.lambda0),
        ).sum()
        log_beta = (
            (self.a - 1.0) * torch.log(eta)
            + (self.b_ - 1.0) * torch.log1p(-eta)
            - (math.lgamma(self.a) + math.lgamma(self.b_) - math.lgamma(self.a + self.b_))
        ).sum()
        return mix + log_beta

    @torch.no_grad()
    def prox(self, W, step):
        if not self.em_active:
            return
        W.copy_(group_soft_threshold(W, step * self.lambda_star().unsqueeze(-2)))

    @torch.no_grad()
    def update(self, W):
        self.steps += 1
        if not self.em_active:
            return
        self.em_step(W)

    @torch.no_grad()
    def em_step(self, W: torch.Tensor) -> None:
        """One EM update: ``p*`` from ``W`` and the current ``eta``, then ``eta`` from ``p*``."""
        self.p_star = self.inclusion_probability(W)
        self.eta = self.eta_update(self.p_star)

    @torch.no_grad()
    def support(self, W):
        """Active cells: ``p*_gk > 0.5`` at the current ``eta`` and ``w_gk != 0``.

        ``p* > 0.5`` is the cell's posterior inclusion probability given ``W`` and ``eta``;
        it is a threshold on ``|w|`` (``|w| > log((1 - eta) lambda_0 / (eta lambda_1)) /
        (lambda_0 - lambda_1)`` for ``p = 1``), so the small non-zero values that stochastic
        gradients leave on unused cells do not count as active.
        """
        return (self.inclusion_probability(W) > 0.5) & (cell_norms(W) > 0)

    def _config(self):
        return {
            "lambda0": self.lambda0,
            "lambda1": self.lambda1,
            "a": self.a,
            "b": self.b,
            "eta_init": self.eta_init,
            "em_warmup_steps": self.em_warmup_steps,
        }
