"""oi-VAE: output-interpretable VAE for nonlinear group factor analysis (papers 000/001).

Generative model, for groups ``g = 1..G`` of sizes ``d_g``::

    z ~ N(0, I_K)
    x^(g) ~ N(f_g(W^(g) z), diag(sigma_g^2))       W^(g) in R^{p x K}; sigma_g: one sd per
                                                     feature of group g, learned (not per row)
    theta_g ~ N(0, I)                                generator weights and biases
    W^(g)_{:,k} ~ collapsed group lasso (lam)        -> -lam * sum_{g,k} ||W^(g)_{:,k}||

Inference: ``q(z | x) = N(mu(x), diag(s(x)^2))`` with ``s = exp(.) * multiplier + 1e-3``
(appendix D). The latent-to-group matrices are stacked as ``W`` of shape ``(G, p, K)`` and
take a proximal gradient step (Algorithm 1); everything else takes Adam.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import nn

from .._checks import check_bool, check_float, check_int
from ..data.groups import Groups
from ..priors import GroupLasso, Prior
from .base import Estimator, GFAModule, check_matrix
from .nets import GroupGenerators, check_widths, mlp


class OIVAEModule(GFAModule):
    """The oi-VAE's Pyro model/guide pair and networks."""

    def __init__(
        self,
        groups: Groups,
        latent_dim: int,
        prior: Prior,
        p: int = 1,
        generator_hidden: Sequence[int] = (),
        encoder_hidden: Sequence[int] = (),
        theta_prior: bool = True,
        sigma_init: float = 1e-2,
        generator_activation: str | None = None,
    ):
        super().__init__()
        self.latent_dim = latent_dim
        self.theta_prior = theta_prior
        G, D = groups.n_groups, groups.n_features
        # Large on purpose, so the proximal step does not remove columns before the
        # generators learn to use them.
        self.W = nn.Parameter(torch.randn(G, p, latent_dim))
        self.generators = GroupGenerators(
            torch.as_tensor(groups.feature_group), p, generator_hidden, generator_activation
        )
        self.encoder = mlp(D, encoder_hidden, 2 * latent_dim)
        self.log_sigma = nn.Parameter(torch.full((D,), math.log(sigma_init)))
        self.prior = copy.deepcopy(prior)  # its state is this module's; the caller's is untouched
        self.prior.setup(self.W.detach())

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Every group's generator ``f_g(W^(g) z)``: ``(..., K)`` codes to ``(..., D)`` means."""
        u = torch.einsum("...k,gpk->...gp", z, self.W)
        return self.generators(u)

    def sigma(self) -> torch.Tensor:
        """``(D,)`` noise standard deviations of the features, ``exp(log_sigma) + 1e-3``."""
        return self.log_sigma.exp() + 1e-3

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, K)`` mean and standard deviation of ``q(z | x)``; ``scale = exp(.) *
        std_multiplier + 1e-3``."""
        loc, log_s = self.encoder(x).chunk(2, dim=-1)
        return loc, log_s.exp() * self.std_multiplier + 1e-3

    def theta_log_prob(self) -> torch.Tensor:
        """Scalar ``log N(theta; 0, I)`` of the generators' weights and biases.

        Computed whatever ``theta_prior`` says; :meth:`model` and :meth:`loss` add it only
        when ``theta_prior`` is set.
        """
        params = list(self.generators.parameters())
        sq = sum(p.pow(2).sum() for p in params)
        n = sum(p.numel() for p in params)
        return -0.5 * sq - 0.5 * n * math.log(2 * math.pi)

    def model(self, x: torch.Tensor) -> None:
        """Factors ``"W_prior"`` and (with ``theta_prior``) ``"theta_prior"``, then
        ``"z" ~ N(0, I_K)`` and the observed ``"x" ~ N(decode(z), diag(sigma^2))`` (see
        :class:`GFAModule` for the plate and scaling)."""
        n = x.shape[0]
        pyro.factor("W_prior", self.prior_weight * self.prior.log_factor(self.W))
        if self.theta_prior:
            pyro.factor("theta_prior", self.prior_weight * self.theta_log_prob())
        with pyro.plate("data", n, device=x.device), poutine.scale(scale=1.0 / n):
            zero = x.new_zeros(n, self.latent_dim)
            z = pyro.sample("z", dist.Normal(zero, 1.0).to_event(1))
            pyro.sample("x", dist.Normal(self.decode(z), self.sigma()).to_event(1), obs=x)

    def guide(self, x: torch.Tensor) -> None:
        """Site ``"z" ~ N(loc, diag(scale^2))`` of :meth:`encode`, in the plate and scale of
        :meth:`model`."""
        n = x.shape[0]
        with pyro.plate("data", n, device=x.device), poutine.scale(scale=1.0 / n):
            loc, scale = self.encode(x)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """The negative objective of :meth:`model`/:meth:`guide` in plain torch.

        Equal, value and gradient, to ``TraceMeanField_ELBO().differentiable_loss(model,
        guide, x)`` for the same random draw (tested); it skips Pyro's tracing, which costs
        more than the arithmetic of a small model's step.
        """
        loc, scale = self.encode(x)
        q = dist.Normal(loc, scale)
        z = q.rsample()
        loglik = dist.Normal(self.decode(z), self.sigma()).log_prob(x).sum(-1)
        kl = torch.distributions.kl_divergence(q, dist.Normal(torch.zeros_like(loc), 1.0)).sum(-1)
        objective = (loglik - kl).mean() + self.prior_weight * self.prior.log_factor(self.W)
        if self.theta_prior:
            objective = objective + self.prior_weight * self.theta_log_prob()
        return -objective

    def sample_x(self, z: torch.Tensor) -> torch.Tensor:
        """Draws ``x ~ N(decode(z), diag(sigma^2))``."""
        loc = self.decode(z)
        return loc + self.sigma() * torch.randn_like(loc)


class OIVAE(Estimator):
    """Output-interpretable VAE (Ainsworth et al. 2018).

    Parameters
    ----------
    groups
        Group specification: list of sizes (consecutive blocks), list of column-index
        lists, a mapping ``name -> columns`` or a :class:`~pyro_gfa.data.Groups`.
    latent_dim
        Number of latent factors ``K``.
    prior
        Prior on the columns of the latent-to-group matrices (default ``GroupLasso(1.0)``;
        ``NoPrior()`` for ``lam = 0``).
    p
        Rows of each ``W^(g)`` (inputs of each generator).
    generator_hidden
        Hidden layer widths of each group's generator; ``()`` for linear generators.
    encoder_hidden
        Hidden layer widths of the inference network; ``()`` for a linear encoder.
    theta_prior
        Put the ``N(0, I)`` prior on the generator weights.
    generator_activation
        ``None`` (default), ``"tanh"`` or ``"relu"``, applied to each generator's input
        ``W^(g) z``; ``"tanh"`` with ``generator_hidden=()`` is the paper's motion-capture
        generator ``W3 tanh(W^(g) z) + b3``.
    sigma_init
        Initial noise standard deviation of every feature.
    prior_scale
        ``"paper"`` (priors counted once against the per-row mean ELBO, as in the paper)
        or ``"posterior"`` (priors divided by ``N``); see :mod:`pyro_gfa.models.base`.
    n_features
        Number of columns, when ``groups`` cannot tell (e.g. a mapping of names).

    Examples
    --------
    >>> import pyro_gfa as gfa
    >>> X, _ = gfa.data.make_bars(512)
    >>> m = gfa.OIVAE(groups=gfa.data.bar_groups(), latent_dim=8).fit(X, epochs=2, progress=False)
    >>> m.loadings().shape
    (8, 8)
    """

    default_lr = 1e-2
    default_sparse_lr = 1e-4
    unit_scale = True

    def __init__(
        self,
        groups: Groups | Sequence | Mapping,
        latent_dim: int,
        prior: Prior | None = None,
        p: int = 1,
        generator_hidden: Sequence[int] = (),
        encoder_hidden: Sequence[int] = (),
        theta_prior: bool = True,
        prior_scale: str = "paper",
        n_features: int | None = None,
        generator_activation: str | None = None,
        sigma_init: float = 1e-2,
    ):
        super().__init__(latent_dim, GroupLasso(1.0) if prior is None else prior, prior_scale)
        if generator_activation not in GroupGenerators.ACTIVATIONS:
            raise ValueError(
                f"generator_activation must be None, 'tanh' or 'relu', got {generator_activation!r}"
            )
        self.generator_activation = generator_activation
        self.sigma_init = check_float(sigma_init, "sigma_init")
        self.p = check_int(p, "p")
        self.generator_hidden = check_widths(generator_hidden, "generator_hidden")
        self.encoder_hidden = check_widths(encoder_hidden, "encoder_hidden")
        self.groups = Groups.from_spec(groups, n_features)
        self.n_features = self.groups.n_features
        self.theta_prior = check_bool(theta_prior, "theta_prior")

    def _build_module(self) -> OIVAEModule:
        return OIVAEModule(
            self.groups,
            self.latent_dim,
            self.prior,
            p=self.p,
            generator_hidden=self.generator_hidden,
            encoder_hidden=self.encoder_hidden,
            theta_prior=self.theta_prior,
            sigma_init=self.sigma_init,
            generator_activation=self.generator_activation,
        )

    def _check(self, X):
        # The oi-VAE's single encoder needs every column; point users with missing groups
        # to the factVAE (same generators, per-group encoders).
        try:
            return check_matrix(
                X, self.n_features, names=self._expected_names(), note=self.groups.coverage()
            )
        except ValueError as e:
            if "NaN" not in str(e):
                raise
            raise ValueError(
                f"{e}. For rows with missing groups use pyro_gfa.FactVAE (the oi-VAE's"
                " generators with one encoder per group; NaN marks an unobserved group)"
            ) from None
