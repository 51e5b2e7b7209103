"""The horseshoe prior with closed-form (conditional-mode) updates of its scales.

Sparse VAE paper (004), appendix C.4.1, after Ghosh et al. (2019): the half-Cauchy scales
are written with inverse-Gamma auxiliaries, for every cell ``w_gk = W[g, :, k]`` (p entries)::

    lambda_glob ~ IG(1/2, 1/b_glob^2)        lambda_loc ~ IG(1/2, 1/b_loc^2)
    v_k | lambda_glob ~ IG(1/2, 1/lambda_glob)   (column scale, a variance)
    tau_gk | lambda_loc ~ IG(1/2, 1/lambda_loc)  (cell scale, a variance)
    w_gk | tau, v ~ N(0, tau_gk v_k I_p)

Every scale's conditional posterior is inverse-Gamma, and the training loop sets it to its
mode after each gradient step (``IG(alpha, beta)`` has mode ``beta / (alpha + 1)``)::

    tau_gk      = (||w_gk||^2 / (2 v_k) + 1/lambda_loc) / (p/2 + 3/2)
    v_k         = (sum_g ||w_gk||^2 / (2 tau_gk) + 1/lambda_glob) / (G p/2 + 3/2)
    lambda_loc  = (sum_gk 1/tau_gk + 1/b_loc^2) / (G K/2 + 3/2)
    lambda_glob = (sum_k 1/v_k + 1/b_glob^2) / (K/2 + 3/2)

With ``p = 1`` these are the paper's equations (67)-(70) (whose extracted text garbles some
squares); with ``p > 1`` it is the group horseshoe on columns of ``W^(g)``. Given the scales
the prior on ``W`` is Gaussian, so it is the smooth part of the objective (no proximal step)
and gives no exact zeros: :meth:`Horseshoe.support` thresholds the shrinkage weight
``kappa_gk = 1 / (1 + tau_gk v_k / s^2)`` at 1/2 (Carvalho et al. 2010), with ``s`` the
``reference_scale``.
"""

from __future__ import annotations

import math

import torch

from .base import Prior, cell_norms


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

    handles = ("update",)

    def __init__(self, b_global: float = 1.0, b_local: float = 1.0, reference_scale: float = 0.1):
        super().__init__()
        for name, v in (
            ("b_global", b_global),
            ("b_local", b_local),
            ("reference_scale", reference_scale),
        ):
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number, got {v}")
        self.b_global, self.b_local, self.reference_scale = b_global, b_local, reference_scale
        self.register_buffer("tau", torch.ones(0, 0))
        self.register_buffer("v", torch.ones(0))
        self.register_buffer("lam_local", torch.ones(()))
        self.register_buffer("lam_global", torch.ones(()))

    def setup(self, W):
        G, _, K = W.shape
        self.tau = torch.ones(G, K, dtype=W.dtype, device=W.device)
        self.v = torch.ones(K, dtype=W.dtype, device=W.device)
        self.lam_local = torch.ones((), dtype=W.dtype, device=W.device)
        self.lam_global = torch.ones((), dtype=W.dtype, device=W.device)

    def smooth_log_prob(self, W):
        p = W.shape[-2]
        var = self.tau * self.v
        sq = W.pow(2).sum(-2)
        return -(0.5 * sq / var + 0.5 * p * torch.log(2 * math.pi * var)).sum()

    @torch.no_grad()
    def update(self, W):
        G, p, K = W.shape
        sq = cell_norms(W).pow(2)
        self.tau = (sq / (2 * self.v) + 1 / self.lam_local) / (p / 2 + 1.5)
        self.v = ((sq / (2 * self.tau)).sum(0) + 1 / self.lam_global) / (G * p / 2 + 1.5)
        self.lam_local = ((1 / self.tau).sum() + 1 / self.b_local**2) / (G * K / 2 + 1.5)
        self.lam_global = ((1 / self.v).sum() + 1 / self.b_global**2) / (K / 2 + 1.5)

    @torch.no_grad()
    def support(self, W):
        return self.tau * self.v > self.reference_scale**2

    def _config(self):
        return {
            "b_global": self.b_global,
            "b_local": self.b_local,
            "reference_scale": self.reference_scale,
        }
