"""What every model shares: the module protocol and the estimator API.

Scaling of the objective
------------------------
Every model's Pyro objective, per step, is

    mean over the batch of [log p(x_i | z_i) + log p(z_i) - log q(z_i | x_i)]
      + prior_weight * [log p(W) + log p(theta)]

which is the collapsed objective of the oi-VAE paper (its eq. 8) when ``prior_weight = 1``
(``prior_scale="paper"``, the default of the oi-VAE and factVAE), and the log posterior
divided by ``N`` when ``prior_weight = 1 / N`` (``prior_scale="posterior"``). The papers'
values of ``lam`` are on the first scale. The per-row quantities (``elbo``,
``log_likelihood``) do not depend on this choice.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
from torch import nn

from ..inference import elbo_rows, expected_log_lik_rows, log_likelihood_rows, train
from ..priors import NoPrior, Prior, cell_norms


class GFAModule(nn.Module):
    """Protocol of a model the training loop can fit.

    A subclass defines ``W`` (an ``nn.Parameter`` of shape ``(G, p, K)``), ``prior`` (a
    :class:`~pyro_gfa.priors.Prior`), ``model(*batch)`` and ``guide(*batch)`` (Pyro
    callables with local sites inside ``pyro.plate("data", ...)``), ``encode(x)`` returning
    the posterior mean and standard deviation of ``z`` and ``decode(z)`` returning the mean
    of ``x``. The guide multiplies its standard deviations by ``std_multiplier``.
    """

    std_multiplier: float = 1.0
    prior_weight: float = 1.0
    latent_dim: int

    def loadings(self) -> torch.Tensor:
        return cell_norms(self.W.detach())


def resolve_device(device: str | torch.device) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@contextlib.contextmanager
def seeded(seed: int | None, device: torch.device):
    """Run a block with torch's RNG seeded, restoring the caller's RNG state afterwards."""
    if seed is None:
        yield
        return
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def check_matrix(X: Any, n_features: int | None, *, name: str = "X") -> np.ndarray:
    """Validate a data matrix and return it as a float32 ndarray.

    Accepts numpy arrays, torch tensors and pandas DataFrames.
    """
    if hasattr(X, "to_numpy") and hasattr(X, "columns"):
        X = X.to_numpy()
    elif isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    try:
        X = np.asarray(X, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must be a numeric 2-d array, got {type(X).__name__}") from e
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-d (rows x features), got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} has no rows")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"{name} has {X.shape[1]} columns but the model expects {n_features}")
    bad = ~np.isfinite(X)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(
            f"{name} has {int(bad.sum())} NaN or infinite values (first at row {r}, column {c});"
            " this model needs complete data"
        )
    return X


class Estimator:
    """Estimator-level API shared by the models (fit, transform, loadings, ...).

    Subclasses implement ``_build_module()`` and set ``n_features``, ``latent_dim`` and
    ``prior``. The fitted :class:`GFAModule` is ``self.module`` (``None`` before ``fit``).
    """

    n_features: int
    latent_dim: int
    prior: Prior
    #: default step sizes of ``fit`` (subclasses set the paper's values)
    default_lr: float = 1e-2
    default_sparse_lr: float = 1e-4
    default_sparse_momentum: float = 0.99

    def __init__(self, latent_dim: int, prior: Prior | None, prior_scale: str):
        if not isinstance(latent_dim, (int, np.integer)) or latent_dim <= 0:
            raise ValueError(f"latent_dim must be a positive integer, got {latent_dim!r}")
        if prior_scale not in ("paper", "posterior"):
            raise ValueError(f"prior_scale must be 'paper' or 'posterior', got {prior_scale!r}")
        if prior is None:
            prior = NoPrior()
        if not isinstance(prior, Prior):
            raise TypeError(f"prior must be a pyro_gfa.priors.Prior, got {type(prior).__name__}")
        self.latent_dim = int(latent_dim)
        self.prior = prior
        self.prior_scale = prior_scale
        self.module: GFAModule | None = None
        self.history_: list[dict] = []

    # -- to be provided by each model -------------------------------------------------
    def _build_module(self) -> GFAModule:
        raise NotImplementedError

    def _tensors(self, X: np.ndarray, device: torch.device) -> list[torch.Tensor]:
        """Row-aligned tensors passed to model and guide."""
        return [torch.as_tensor(X, device=device)]

    def _check(self, X) -> np.ndarray:
        return check_matrix(X, self.n_features)

    # -- fitting ----------------------------------------------------------------------
    def fit(
        self,
        X,
        epochs: int = 100,
        batch_size: int = 64,
        lr: float | None = None,
        sparse_lr: float | None = None,
        sparse_momentum: float | None = None,
        seed: int | None = 0,
        device: str | torch.device = "auto",
        progress: bool = True,
        throttle_epochs: int = 25,
        std_throttle: float = 0.1,
        num_particles: int = 1,
        callback=None,
    ):
        """Fit the model to ``X`` (rows are observations), starting from a fresh initialisation.

        Parameters
        ----------
        X
            ``(N, n_features)`` array, tensor or DataFrame.
        epochs, batch_size
            Passes over the data and rows per step.
        lr, sparse_lr
            Adam step size of the networks, and plain gradient step size of the sparse
            matrix before its proximal step (defaults: the paper's).
        sparse_momentum
            Gradient averaging in the proximal step (0: the paper's plain proximal SGD);
            see :class:`~pyro_gfa.inference.ProximalSGD`.
        seed
            Seed of initialisation, minibatches and Monte Carlo draws (``None``: the global
            torch RNG is used and not reset). The caller's RNG state is left untouched.
        device
            ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ...
        progress
            Show a progress bar.
        throttle_epochs, std_throttle
            Multiply the posterior standard deviations by ``std_throttle`` for the first
            ``throttle_epochs`` epochs (oi-VAE appendix D).
        num_particles
            Draws of ``z`` per row in each ELBO estimate.
        callback
            ``callback(epoch, record) -> bool``; returning ``True`` stops the fit.

        Returns
        -------
        self
        """
        X = self._check(X)
        dev = resolve_device(device)
        with seeded(seed, dev):
            self.module = self._build_module().to(dev)
            self.module.prior_weight = 1.0 if self.prior_scale == "paper" else 1.0 / X.shape[0]
            self.history_ = []
            train(
                self.module,
                self._tensors(X, dev),
                epochs=epochs,
                batch_size=batch_size,
                lr=self.default_lr if lr is None else lr,
                sparse_lr=self.default_sparse_lr if sparse_lr is None else sparse_lr,
                sparse_momentum=(
                    self.default_sparse_momentum if sparse_momentum is None else sparse_momentum
                ),
                std_throttle=std_throttle,
                throttle_epochs=throttle_epochs,
                num_particles=num_particles,
                progress=progress,
                callback=callback,
                history=self.history_,
            )
        return self

    # -- results ------------------------------------------------------------------------
    def _fitted(self) -> GFAModule:
        if self.module is None:
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet: call fit(X) first")
        return self.module

    @property
    def device(self) -> torch.device:
        return self._fitted().W.device

    def loadings(self) -> np.ndarray:
        """``(G, K)`` strength of every factor on every group or feature: ``||W[g, :, k]||``."""
        return self._fitted().loadings().cpu().numpy()

    def support(self) -> np.ndarray:
        """``(G, K)`` bool: the connections the prior considers active."""
        m = self._fitted()
        return m.prior.support(m.W.detach()).cpu().numpy()

    @torch.no_grad()
    def transform(self, X) -> np.ndarray:
        """``(N, K)`` posterior means of ``z``."""
        m = self._fitted()
        x = self._tensors(self._check(X), self.device)
        return m.encode(*x)[0].cpu().numpy()

    @torch.no_grad()
    def reconstruct(self, X) -> np.ndarray:
        """``(N, n_features)`` mean of ``x`` decoded from the posterior mean of ``z``."""
        m = self._fitted()
        x = self._tensors(self._check(X), self.device)
        return m.decode(m.encode(*x)[0]).cpu().numpy()

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        """``(n, n_features)`` draws of ``x`` from the generative model."""
        m = self._fitted()
        with seeded(seed, self.device):
            z = torch.randn(n, m.latent_dim, device=self.device)
            return m.sample_x(z).cpu().numpy()

    def elbo(self, X, num_samples: int = 10, seed: int | None = 0) -> np.ndarray:
        """``(N,)`` Monte Carlo ELBO of every row (nats)."""
        m = self._fitted()
        with seeded(seed, self.device):
            return elbo_rows(m, self._tensors(self._check(X), self.device), num_samples).numpy(
                force=True
            )

    def expected_log_lik(self, X, num_samples: int = 10, seed: int | None = 0) -> np.ndarray:
        """``(N,)`` Monte Carlo ``E_q[log p(x_i | z)]`` of every row (nats)."""
        m = self._fitted()
        with seeded(seed, self.device):
            x = self._tensors(self._check(X), self.device)
            return expected_log_lik_rows(m, x, num_samples).numpy(force=True)

    def log_likelihood(self, X, num_samples: int = 100, seed: int | None = 0) -> np.ndarray:
        """``(N,)`` importance-sampled ``log p(x_i)`` of every row (nats)."""
        m = self._fitted()
        with seeded(seed, self.device):
            return log_likelihood_rows(
                m, self._tensors(self._check(X), self.device), num_samples
            ).numpy(force=True)
