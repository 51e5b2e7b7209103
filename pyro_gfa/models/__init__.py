"""The models: one file per model, each with its Pyro model/guide pair and estimator."""

from .base import Estimator, GFAModule
from .oivae import OIVAE, OIVAEModule

__all__ = ["OIVAE", "Estimator", "GFAModule", "OIVAEModule"]
