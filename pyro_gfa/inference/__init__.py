"""Training loop (SVI with a proximal step on the sparse matrix) and per-row evaluation."""

from .evaluate import elbo_rows, expected_log_lik_rows, log_likelihood_rows, log_weights
from .train import ProximalSGD, train

__all__ = [
    "ProximalSGD",
    "elbo_rows",
    "expected_log_lik_rows",
    "log_likelihood_rows",
    "log_weights",
    "train",
]
