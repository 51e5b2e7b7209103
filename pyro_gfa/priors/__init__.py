"""Sparsity priors on a model's sparse matrix, behind one interface (:class:`Prior`)."""

from .base import Prior, cell_norms
from .horseshoe import Horseshoe
from .lasso import GroupLasso, Lasso, NoPrior
from .ssl import SpikeSlabLasso

__all__ = ["GroupLasso", "Lasso", "NoPrior", "Prior", "cell_norms"]
__all__ += ["SpikeSlabLasso"]
__all__ += ["Horseshoe"]
