"""Variational sparse coding (VSC; Tonolini, Jensen and Murray-Smith 2020).

The baseline of the Sparse VAE paper (Moran et al. 2023) that puts sparsity on the *codes* rather
than on the factor-to-feature map. On the Sparse VAE's networks (dense decoder, no mask)::

    z_ik ~ (1 - alpha) delta_0 + alpha N(0, 1)                  spike-and-slab prior
    q(z_ik | x_i) = (1 - gamma_ik) delta_0 + gamma_ik N(mu_ik, s_ik^2)

with ``alpha`` the prior slab probability (0.01 in the paper's Table 6) and ``gamma``, ``mu``,
``s`` from the encoder. Both are densities with respect to the same measure (a point mass
at 0 plus Lebesgue measure), so the KL divergence is exact and closed form::

    KL = (1 - gamma) log((1 - gamma) / (1 - alpha)) + gamma log(gamma / alpha)
         + gamma KL(N(mu, s^2) || N(0, 1))

Training draws ``z = sigmoid(c (u + gamma - 1)) (mu + s eps)`` with ``u ~ U(0, 1)``,
``eps ~ N(0, 1)`` (the relaxed selection of the VSC paper, temperature ``c``), so the gate is
reparameterised; at evaluation (``module.eval()``) the gate is the hard ``u > 1 - gamma``, a
draw from ``q`` itself, so ELBOs and importance-sampled likelihoods are those of the exact
spike-and-slab posterior. Not included: the VSC paper's learned pseudo-input prior and its
warm-up schedule of ``c``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from torch.distributions import kl_divergence, register_kl
from torch.distributions.utils import broadcast_all

from .._checks import check_float, check_int
from .base import seeded
from .likelihoods import Likelihood
from .nets import mlp
from .sparse_vae import VAE, SparseVAEModule

__all__ = ["VSC", "SpikeAndSlab", "VSCModule"]

#: slab probabilities are kept in [EPS, 1 - EPS] so both log terms stay finite
EPS = 1e-6


class SpikeAndSlab(dist.TorchDistribution):
    """Elementwise ``(1 - slab_prob) delta_0 + slab_prob N(loc, scale^2)``.

    The density is with respect to a point mass at 0 plus Lebesgue measure:
    ``log(1 - slab_prob)`` at exactly 0, ``log slab_prob + log N(value; loc, scale^2)``
    elsewhere.

    Parameters
    ----------
    slab_prob, loc, scale
        Broadcastable tensors.
    temperature
        ``None``: exact draws (hard gate). A number ``c``: :meth:`rsample` returns the relaxed
        ``sigmoid(c (u + slab_prob - 1)) (loc + scale eps)``, differentiable in all three
        parameters (the hard gate is its ``c -> infinity`` limit for the same ``u``).
    """

    arg_constraints = {
        "slab_prob": constraints.unit_interval,
        "loc": constraints.real,
        "scale": constraints.positive,
    }
    support = constraints.real
    has_rsample = True

    def __init__(self, slab_prob, loc, scale, temperature: float | None = None, validate_args=None):
        self.slab_prob, self.loc, self.scale = broadcast_all(slab_prob, loc, scale)
        self.temperature = temperature
        super().__init__(self.loc.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        return SpikeAndSlab(
            self.slab_prob.expand(batch_shape),
            self.loc.expand(batch_shape),
            self.scale.expand(batch_shape),
            self.temperature,
            validate_args=False,
        )

    @property
    def mean(self) -> torch.Tensor:
        return self.slab_prob * self.loc

    @property
    def variance(self) -> torch.Tensor:
        p = self.slab_prob
        return p * (self.scale**2 + self.loc**2) - (p * self.loc) ** 2

    def rsample(self, sample_shape=()) -> torch.Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        eps = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        u = torch.rand(shape, dtype=self.loc.dtype, device=self.loc.device)
        slab = self.loc + self.scale * eps
        if self.temperature is None:
            gate = (u > 1.0 - self.slab_prob).to(slab.dtype)
        else:
            gate = torch.sigmoid(self.temperature * (u + self.slab_prob - 1.0))
        return gate * slab

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        p = self.slab_prob.clamp(EPS, 1.0 - EPS)
        slab = p.log() + dist.Normal(self.loc, self.scale).log_prob(value)
        return torch.where(value == 0, torch.log1p(-p), slab)


@register_kl(SpikeAndSlab, SpikeAndSlab)
def _kl_spike_and_slab(q: SpikeAndSlab, p: SpikeAndSlab) -> torch.Tensor:
    g = q.slab_prob.clamp(EPS, 1.0 - EPS)
    a = p.slab_prob.clamp(EPS, 1.0 - EPS)
    gate = (1 - g) * (torch.log1p(-g) - torch.log1p(-a)) + g * (g.log() - a.log())
    slab = kl_divergence(dist.Normal(q.loc, q.scale), dist.Normal(p.loc, p.scale))
    return gate + g * slab


class VSCModule(SparseVAEModule):
    """The Sparse VAE's networks with no mask, a spike-and-slab prior on ``z`` and an encoder
    that also outputs the slab probabilities ``gamma``."""

    def __init__(
        self,
        n_features: int,
        latent_dim: int,
        prior,
        likelihood: Likelihood,
        hidden: Sequence[int] = (50, 50, 50),
        encoder_hidden: Sequence[int] | None = None,
        slab_prob: float = 0.01,
        temperature: float = 50.0,
        warmup_epochs: int = 0,
        **kwargs,
    ):
        super().__init__(
            n_features,
            latent_dim,
            prior,
            likelihood,
            hidden=hidden,
            encoder_hidden=encoder_hidden,
            **kwargs,
        )
        enc_hidden = tuple(hidden) if encoder_hidden is None else tuple(encoder_hidden)
        self.encoder = mlp(n_features, enc_hidden, 3 * latent_dim)
        self.target_slab_prob = float(slab_prob)
        # a buffer, not a float: a fit shorter than the warm-up leaves it off target, and
        # save / load must restore where it was left
        self.register_buffer("slab_prob", torch.tensor(self.target_slab_prob))
        self.temperature = float(temperature)
        self.warmup_epochs = int(warmup_epochs)

    def start_epoch(self, epoch: int) -> None:
        """Warm-ups (called by the training loop): the KL annealing of the Sparse VAE, and
        the prior slab probability falling geometrically from 0.5 to its target over
        ``warmup_epochs``."""
        super().start_epoch(epoch)
        frac = min(1.0, epoch / self.warmup_epochs) if self.warmup_epochs > 0 else 1.0
        start = max(0.5, self.target_slab_prob)
        self.slab_prob.fill_(start ** (1 - frac) * self.target_slab_prob**frac)

    def posterior(self, x: torch.Tensor) -> dist.TorchDistribution:
        loc, log_s, logit = self.encoder(self.encoder_features(x)).chunk(3, dim=-1)
        scale = log_s.clamp(-12.0, 6.0).exp() * self.std_multiplier + 1e-4
        temperature = self.temperature if self.training else None
        return SpikeAndSlab(torch.sigmoid(logit), loc, scale, temperature).to_event(1)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of the spike-and-slab posterior ``q(z | x)``."""
        q = self.posterior(x).base_dist
        return q.mean, q.variance.clamp_min(0).sqrt()

    def z_prior(self, n: int, like: torch.Tensor) -> dist.TorchDistribution:
        """The spike-and-slab prior of ``n`` rows (arguments as for the Sparse VAE's):
        each ``z_ik`` is 0 with probability ``1 - slab_prob`` (the current value, during the
        warm-up too), else ``N(0, 1)``; an ``Independent(SpikeAndSlab, 1)``."""
        zeros = like.new_zeros(n, self.latent_dim)
        return SpikeAndSlab(zeros + self.slab_prob, zeros, zeros + 1.0).to_event(1)


class VSC(VAE):
    """Variational sparse coding (Tonolini et al. 2020) on the Sparse VAE's networks.

    Sparsity on the codes: each ``z_ik`` is exactly zero with prior probability
    ``1 - slab_prob``; the decoder is dense (no mask, no prior on ``W``). See
    :mod:`pyro_gfa.models.vsc` for the objective.

    Parameters
    ----------
    n_features, latent_dim, hidden, likelihood
        As for :class:`~pyro_gfa.models.sparse_vae.SparseVAE`.
    slab_prob
        Prior probability ``alpha`` that a code is active (0.01 in Table 6 of Moran et al. 2023).
    temperature
        ``c`` of the relaxed selection used while training.
    warmup
        Epochs over which the prior slab probability falls geometrically from 0.5 to
        ``slab_prob``. Starting at ``0.01`` the KL term switches every code off before the
        decoder has learned to use any (the fit collapses to the prior). A fit shorter than
        ``warmup`` ends with the prior where the warm-up left it.
    **kwargs
        Other :class:`~pyro_gfa.models.sparse_vae.SparseVAE` options (``encoder_hidden``, ...).

    Attributes
    ----------
    code_kl_ : numpy.ndarray
        ``(K,)`` mean ``KL(q(z_k | x) || p(z_k))`` per row on the training data, after fit.

    Examples
    --------
    >>> import pyro_gfa as gfa
    >>> from pyro_gfa.data.synthetic_sparse import make_sparse_vae_data
    >>> X, Z, W_true = make_sparse_vae_data(n=200, rho=0.0, seed=0)
    >>> m = gfa.VSC(n_features=7, latent_dim=5).fit(X, epochs=2, progress=False)
    >>> m.transform(X).shape
    (200, 5)
    """

    module_class = VSCModule

    def __init__(
        self,
        n_features: int,
        latent_dim: int,
        slab_prob: float = 0.01,
        temperature: float = 50.0,
        warmup: int = 20,
        hidden: Sequence[int] = (50, 50, 50),
        likelihood: str | Likelihood = "gaussian",
        **kwargs,
    ):
        slab_prob = check_float(slab_prob, "slab_prob", 0.0, 1.0)
        temperature = check_float(temperature, "temperature")
        warmup = check_int(warmup, "warmup", 0)
        if "prior_cov" in kwargs or "beta" in kwargs:
            raise ValueError("VSC's prior on z is the spike-and-slab: no prior_cov or beta")
        super().__init__(n_features, latent_dim, hidden=hidden, likelihood=likelihood, **kwargs)
        self.slab_prob, self.temperature, self.warmup = slab_prob, temperature, warmup

    def _module_options(self) -> dict:
        return {
            "slab_prob": self.slab_prob,
            "temperature": self.temperature,
            "warmup_epochs": self.warmup,
        }

    @torch.no_grad()
    def _code_kl(self, X: np.ndarray) -> np.ndarray:
        m = self._fitted()
        x = torch.as_tensor(X, device=self.device)
        q = m.posterior(x).base_dist
        kl = kl_divergence(q, m.z_prior(x.shape[0], x).base_dist)
        return kl.mean(0).cpu().numpy()

    @torch.no_grad()
    def slab_probabilities(self, X) -> np.ndarray:
        """``(N, K)`` posterior probability ``gamma_ik`` that code ``k`` of row ``i`` is nonzero."""
        m = self._fitted()
        x = torch.as_tensor(self._check(X), device=self.device)
        return m.posterior(x).base_dist.slab_prob.cpu().numpy()

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None, total_count=None) -> np.ndarray:
        """``(n, n_features)`` draws of ``x`` from the generative model (spike-and-slab ``z``).

        ``total_count``: row totals of a count likelihood, as in :meth:`SparseVAE.sample`.
        """
        m = self._fitted()
        n = check_int(n, "n", 0)
        with seeded(seed, self.device):
            like = torch.zeros((), device=self.device)
            z = m.z_prior(n, like).sample()
            return m.sample_x(z, total_count).cpu().numpy()
