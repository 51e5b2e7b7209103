"""pyro-gfa: interpretable deep generative factor models in Pyro."""

from . import data, inference, priors
from .models import LDA, NMF, OIVAE
from .models import FactVAE, JMVAEPlus
from .models import SparseVAE
from . import export, io, plots
from .io import load

__version__ = "0.1.0"

__all__ = ["OIVAE", "data", "inference", "priors"]
__all__ += ["FactVAE", "JMVAEPlus"]
__all__ += ["SparseVAE"]
__all__ += ["export", "io", "load", "plots"]
__all__ += ["LDA", "NMF"]
