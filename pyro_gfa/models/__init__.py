"""The models: one file per model, each with its Pyro model/guide pair and estimator."""

from .base import Estimator, GFAModule
from .factvae import FactVAE, FactVAEModule, JMVAEPlus
from .linear import LDA, NMF
from .oivae import OIVAE, OIVAEModule
from .sparse_fa import SparseFA
from .sparse_vae import VAE, SparseDecoder, SparseVAE, SparseVAEModule
from .vsc import VSC, SpikeAndSlab, VSCModule

__all__ = ["OIVAE", "Estimator", "GFAModule", "OIVAEModule"]
__all__ += ["FactVAE", "FactVAEModule", "JMVAEPlus"]
__all__ += ["SparseDecoder", "SparseFA", "SparseVAE", "SparseVAEModule"]
__all__ += ["LDA", "NMF"]
__all__ += ["VAE", "VSC", "SpikeAndSlab", "VSCModule"]
