"""The prior interface shared by every model.

A model's sparse matrix ``W`` has shape ``(G, p, K)``: ``G`` units (groups of an oi-VAE or
factVAE, features of a Sparse VAE), ``p`` rows per unit and ``K`` latent columns. A *cell*
``W[g, :, k]`` is the column of the latent-to-group matrix ``W^(g)`` that connects latent
``k`` to unit ``g``; with ``p = 1`` a cell is a single entry.

A prior splits its log density into a smooth part, which autograd differentiates, and a
non-smooth part, which the training loop handles with the prior's proximal operator. The
split is made here, once, in :meth:`Prior.log_factor`: the value of the non-smooth part is
in the objective but its gradient is not, so no model can count it twice.
"""

from __future__ import annotations

import torch
from torch import nn


def cell_norms(W: torch.Tensor) -> torch.Tensor:
    """``(G, K)`` Euclidean norms of the cells ``W[g, :, k]``."""
    return torch.linalg.vector_norm(W, dim=-2)


class Prior(nn.Module):
    """Base class of sparsity priors on a ``(G, p, K)`` matrix.

    Subclasses override any of :meth:`smooth_log_prob`, :meth:`nonsmooth_log_prob`,
    :meth:`prox`, :meth:`update` and :meth:`support`. A prior is an ``nn.Module`` so that
    its state (EM weights, scales) moves with ``.to(device)`` and is saved with the model.
    """

    #: what the training loop does for this prior after each gradient step, for reports.
    handles: tuple[str, ...] = ()

    def setup(self, W: torch.Tensor) -> None:
        """Initialise state that depends on the shape of ``W`` (called once per model)."""

    def smooth_log_prob(self, W: torch.Tensor) -> torch.Tensor:
        """Differentiable part of ``log p(W)``."""
        return W.new_zeros(())

    def nonsmooth_log_prob(self, W: torch.Tensor) -> torch.Tensor:
        """Part of ``log p(W)`` handled by :meth:`prox`, not by gradients."""
        return W.new_zeros(())

    def log_factor(self, W: torch.Tensor) -> torch.Tensor:
        """The term a model writes with ``pyro.factor``: value of the whole log prior,
        gradient of the smooth part only."""
        return self.smooth_log_prob(W) + self.nonsmooth_log_prob(W.detach())

    @torch.no_grad()
    def prox(self, W: torch.Tensor, step: float) -> None:
        """In place: ``W <- prox_{-step * nonsmooth_log_prob}(W)``."""

    @torch.no_grad()
    def update(self, W: torch.Tensor) -> None:
        """In place: closed-form updates of the prior's own state given ``W``."""

    @torch.no_grad()
    def support(self, W: torch.Tensor) -> torch.Tensor:
        """``(G, K)`` bool: the cells the prior considers active."""
        return cell_norms(W) > 0

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self._config().items())

    def _config(self) -> dict:
        return {}
