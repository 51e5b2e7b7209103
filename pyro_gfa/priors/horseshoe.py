"""The horseshoe prior with closed-form (conditional-mode) updates of its scales.

Sparse VAE paper (004), appendix C.4.1, after Ghosh et al. (2019): every half-Cauchy scale
is written with an inverse-Gamma auxiliary, ``a ~ C+(0, b)  <=>  a^2 | l ~ IG(1/2, 1/l),
l ~ IG(1/2, 1/b^2)``. For every cell ``w_gk = W[g, :, k]`` (p entries)::

    tau_gk | l_gk ~ IG(1/2, 1/l_gk),   l_gk ~ IG(1/2, 1/b_loc^2)     (local variance)
    v_k | n_k ~ IG(1/2, 1/n_k),        n_k ~ IG(1/2, 1/b_glob^2)     (column variance)
    w_gk | tau, v ~ N(0, tau_gk v_k I_p)

Every scale's conditional posterior is inverse-Gamma, and the training loop sets it to its
mode after each gradient step (``IG(alpha, beta)`` has mode ``beta / (alpha + 1)``)::

    tau_gk = (||w_gk||^2 / (2 v_k) + 1/l_gk) / (p/2 + 3/2)
    v_k    = (sum_g ||w_gk||^2 / (2 tau_gk) + 1/n_k) / (G p/2 + 3/2)
    l_gk   = (1/tau_gk + 1/b_loc^2) / 2
    n_k    = (1/v_k + 1/b_glob^2) / 2

These are the paper's equations (67)-(70) with one difference, made on purpose: the paper
shares one auxiliary ``lambda_local`` among all cells and one ``lambda_global`` among all
columns. With shared auxiliaries the mode updates collapse: the unused cells drive
``lambda_local`` up geometrically, which drives every ``tau`` (used cells too) to zero, and
the split of ``tau v`` between cell and column is lost (``tests/test_horseshoe.py`` shows it).
With one auxiliary per scale, as in the horseshoe of Carvalho et al. (2010), unused cells
shrink (``tau ~ 1/t``) while used cells keep a stable scale. With ``p > 1`` this is the group
horseshoe on the columns of ``W^(g)``.

Given the scales the prior on ``W`` is Gaussian, with curvature ``1 / (tau v)`` that grows
without bound for unused cells, so a plain gradient step on it becomes unstable. The training
loop applies it by its proximal operator, the implicit step ``w <- w / (1 + step / (tau v))``,
stable for any scale; the scales are floored at ``1e-10``. The value written into the
objective is the joint log density of ``W`` and every scale and auxiliary at their current
values, of which the updates above are conditional modes (each update raises it). The
horseshoe gives no exact zeros: :meth:`Horseshoe.support` thresholds the shrinkage weight
``kappa_gk = 1 / (1 + tau_gk v_k / s^2)`` at 1/2 (Carvalho et al. 2010), with ``s`` the
``reference_scale``.
"""

from __future__ import annotations

import math

import torch

from .._checks import check_float
from .base import Prior, cell_norms


def _log_inv_gamma_half(x: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
    """``sum log IG(x; 1/2, rate)``."""
    rate = rate.expand_as(x)
    return (0.5 * rate.log() - 0.5 * math.log(math.pi) - 1.5 * x.log() - rate / x).sum()


class Horseshoe(Prior):
    """Horseshoe prior on the cells of ``W``, with closed-form scale updates.

    Parameters
    ----------
    b_global, b_local
        Scales of the half-Cauchy hyperpriors (the paper uses 1.0 for both).
    reference_scale
        ``s`` in the support rule: a cell is active while its prior variance
        ``tau_gk v_k`` exceeds ``s^2`` (shrinkage weight below 1/2).
    """

    handles = ("prox", "update")
    floor = 1e-10

    def __init__(self, b_global: float = 1.0, b_local: float = 1.0, reference_scale: float = 0.1):
        super().__init__()
        self.b_global = check_float(b_global, "b_global")
        self.b_local = check_float(b_local, "b_local")
        self.reference_scale = check_float(reference_scale, "reference_scale")
        self.register_buffer("tau", torch.ones(0, 0))
        self.register_buffer("v", torch.ones(0))
        self.register_buffer("aux_local", torch.ones(0, 0))
        self.register_buffer("aux_global", torch.ones(0))
        self._cached: tuple = (None, None)  # (the scales' identity, their log density)

    def setup(self, W):
        G, _, K = W.shape
        self.tau = W.new_ones(G, K)
        self.v = W.new_ones(K)
        self.aux_local = W.new_ones(G, K)
        self.aux_global = W.new_ones(K)

    def nonsmooth_log_prob(self, W):
        p = W.shape[-2]
        var = self.tau * self.v
        sq = W.pow(2).sum(-2)
        gauss = -(0.5 * sq / var + 0.5 * p * torch.log(2 * math.pi * var)).sum()
        return gauss + self._scales_log_prob()

    def _scales_log_prob(self) -> torch.Tensor:
        """The scales' hyperpriors (the updates are the joint density's conditional modes),
        recomputed only when a scale changes: not at every training step."""
        scales = (self.tau, self.v, self.aux_local, self.aux_global)
        key = tuple((t.data_ptr(), t._version) for t in scales)
        if key != self._cached[0]:
            value = (
                _log_inv_gamma_half(self.tau, 1 / self.aux_local)
                + _log_inv_gamma_half(self.aux_local, self.tau.new_tensor(self.b_local**-2))
                + _log_inv_gamma_half(self.v, 1 / self.aux_global)
                + _log_inv_gamma_half(self.aux_global, self.tau.new_tensor(self.b_global**-2))
            )
            self._cached = (key, value)
        return self._cached[1]

    @torch.no_grad()
    def prox(self, W, step):
        W.div_((1 + step / (self.tau * self.v)).unsqueeze(-2))

    @torch.no_grad()
    def update(self, W):
        G, p, K = W.shape
        sq = cell_norms(W).pow(2)
        self.tau = ((sq / (2 * self.v) + 1 / self.aux_local) / (p / 2 + 1.5)).clamp_min(self.floor)
        self.v = ((sq / (2 * self.tau)).sum(0) + 1 / self.aux_global) / (G * p / 2 + 1.5)
        self.v = self.v.clamp_min(self.floor)
        self.aux_local = (1 / self.tau + 1 / self.b_local**2) / 2
        self.aux_global = (1 / self.v + 1 / self.b_global**2) / 2

    @torch.no_grad()
    def support(self, W):
        return self.tau * self.v > self.reference_scale**2

    def _config(self):
        return {
            "b_global": self.b_global,
            "b_local": self.b_local,
            "reference_scale": self.reference_scale,
        }
