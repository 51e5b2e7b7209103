"""Sparsity priors on a model's sparse matrix, behind one interface (:class:`Prior`)."""

from .base import Prior, cell_norms
from .lasso import GroupLasso, Lasso, NoPrior

__all__ = ["GroupLasso", "Lasso", "NoPrior", "Prior", "cell_norms"]
