"""pyro-gfa: interpretable deep generative factor models in Pyro."""

from . import data, inference, priors
from .models import OIVAE

__version__ = "0.1.0"

__all__ = ["OIVAE", "data", "inference", "priors"]
