"""pyro-gfa: interpretable deep generative factor models in Pyro."""

from . import ablation, data, export, inference, io, metrics, plots, priors
from .io import load
from .models import LDA, NMF, OIVAE, VAE, VSC, FactVAE, JMVAEPlus, SparseFA, SparseVAE

__version__ = "0.1.0"

__all__ = [
    "LDA",
    "NMF",
    "OIVAE",
    "FactVAE",
    "JMVAEPlus",
    "SparseFA",
    "SparseVAE",
    "VAE",
    "VSC",
    "ablation",
    "data",
    "export",
    "inference",
    "io",
    "load",
    "metrics",
    "plots",
    "priors",
]
