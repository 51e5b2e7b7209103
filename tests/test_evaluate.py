"""The per-row evaluations of ``pyro_gfa.inference`` (ELBO, importance-sampled log-likelihood,
expected log-likelihood) against closed forms on a linear-Gaussian model, whose marginal
likelihood and posterior are Gaussian."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from torch import nn

from pyro_gfa.inference import elbo_rows, expected_log_lik_rows, log_likelihood_rows, log_weights
from pyro_gfa.priors import NoPrior

G, K, N = 5, 2, 7


class LinearGaussian(nn.Module):
    """``z ~ N(0, I)``, ``x | z ~ N(W z + b, diag(s^2))`` following the module protocol, with
    a global prior factor (which the per-row evaluations must leave out) and the ``1 / N``
    scale of the training objective (which they must remove). The guide is the exact
    posterior ``N(Sigma W^T S^-2 (x - b), Sigma)``, its scale (Cholesky factor) multiplied by
    ``inflate``."""

    def __init__(self, inflate: float = 1.0, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.W = nn.Parameter(torch.randn(G, 1, K, generator=g, dtype=torch.float64))
        self.b = torch.randn(G, generator=g, dtype=torch.float64)
        self.s = torch.rand(G, generator=g, dtype=torch.float64) + 0.5
        self.prior = NoPrior()
        self.latent_dim = K
        self.inflate = inflate

    @property
    def Wm(self):
        return self.W.detach().squeeze(1)

    def posterior(self, x):
        Wm, s2 = self.Wm, self.s**2
        Sigma = torch.linalg.inv(torch.eye(K, dtype=x.dtype) + Wm.T @ (Wm / s2[:, None]))
        loc = (x - self.b) @ (Wm / s2[:, None]) @ Sigma
        return loc, Sigma

    def marginal(self):
        cov = self.Wm @ self.Wm.T + torch.diag(self.s**2)
        return dist.MultivariateNormal(self.b, cov)

    def model(self, x):
        n = x.shape[0]
        pyro.factor("W_prior", torch.tensor(-123.0, dtype=x.dtype))  # global: excluded
        with pyro.plate("data", n), poutine.scale(scale=1.0 / n):
            z = pyro.sample("z", dist.Normal(x.new_zeros(n, K), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z @ self.Wm.T + self.b, self.s).to_event(1), obs=x)

    def guide(self, x):
        n = x.shape[0]
        loc, Sigma = self.posterior(x)
        tril = torch.linalg.cholesky(Sigma) * self.inflate
        with pyro.plate("data", n), poutine.scale(scale=1.0 / n):
            pyro.sample("z", dist.MultivariateNormal(loc, scale_tril=tril))


@pytest.fixture
def x():
    g = torch.Generator().manual_seed(1)
    return LinearGaussian().marginal().sample((N,)) + 0.5 * torch.randn(
        N, G, generator=g, dtype=torch.float64
    )


def _kl_q_posterior(m, x):
    """``KL(q || p(z | x))`` per row: the gap between ``log p(x)`` and the ELBO."""
    loc, Sigma = m.posterior(x)
    tril = torch.linalg.cholesky(Sigma)
    q = dist.MultivariateNormal(loc, scale_tril=tril * m.inflate)
    p = dist.MultivariateNormal(loc, scale_tril=tril)
    return torch.distributions.kl_divergence(q, p)


@pytest.mark.parametrize("num_samples", [1, 3, 50])
def test_with_the_exact_posterior_every_weight_is_the_marginal_likelihood(x, num_samples):
    # log p(x, z) - log q(z | x) = log p(x) for every z when q is the posterior, so the
    # ELBO and the importance-sampled estimate (logsumexp minus log S) are exact for any S
    m = LinearGaussian()
    exact = m.marginal().log_prob(x)
    lw = log_weights(m, [x], num_samples, chunk_rows=4)  # chunks of one row: chunking is free
    assert lw.shape == (num_samples, N)
    torch.testing.assert_close(lw, exact.expand(num_samples, N), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(log_likelihood_rows(m, [x], num_samples), exact)
    torch.testing.assert_close(elbo_rows(m, [x], num_samples), exact)


def _se(m, x, num_samples, observed_only=False):
    """Monte Carlo standard error of the mean of ``num_samples`` log weights, per row."""
    lw = log_weights(m, [x], num_samples, observed_only=observed_only)
    return lw.std(0) / math.sqrt(num_samples)


def test_an_inexact_guide_gives_the_elbo_below_and_the_is_estimate_at_the_likelihood(x):
    # q has 1.5 times the posterior's spread: ELBO = log p(x) - KL(q || p(z | x)) in closed
    # form, and importance sampling with many draws recovers log p(x) itself. Tolerances:
    # 5 Monte Carlo standard errors (the IS estimate's relative weight variance is
    # c^2K / (2c^2 - 1)^(K/2) - 1 = 0.45 here, so its error is about 0.01)
    m = LinearGaussian(inflate=1.5)
    exact = m.marginal().log_prob(x)
    kl = _kl_q_posterior(m, x)
    torch.testing.assert_close(kl, torch.full_like(kl, K * (1.5**2 / 2 - 0.5 - math.log(1.5))))
    S = 4000
    elbo = elbo_rows(m, [x], num_samples=S)
    assert ((elbo - (exact - kl)).abs() < 5 * _se(m, x, S)).all()
    assert (elbo < exact - 0.3).all()  # KL = 0.44 per row
    ll = log_likelihood_rows(m, [x], num_samples=S)
    torch.testing.assert_close(ll, exact, rtol=0, atol=0.05)


def test_expected_log_lik_is_the_reconstruction_term(x):
    # E_q[log N(x; W z + b, s^2)] = log N(x; W E[z] + b, s^2) - tr(W Sigma_q W^T / s^2) / 2
    m = LinearGaussian(inflate=1.5)
    loc, Sigma = m.posterior(x)
    Sq = Sigma * m.inflate**2
    s2 = m.s**2
    plug_in = dist.Normal(loc @ m.Wm.T + m.b, m.s).log_prob(x).sum(-1)
    exact = plug_in - 0.5 * ((m.Wm @ Sq) * m.Wm / s2[:, None]).sum()
    S = 4000
    got = expected_log_lik_rows(m, [x], num_samples=S)
    assert ((got - exact).abs() < 5 * _se(m, x, S, observed_only=True)).all()
    # the KL term makes the ELBO smaller than its reconstruction term
    assert (elbo_rows(m, [x], num_samples=S) < got).all()


def test_the_is_estimate_does_not_grow_with_the_sample_count(x):
    # log S is subtracted: a guide with exact weights gives the same value for S = 1 and
    # S = 1000 (without it the estimate would rise by log 1000)
    m = LinearGaussian()
    a = log_likelihood_rows(m, [x], num_samples=1)
    b = log_likelihood_rows(m, [x], num_samples=1000)
    torch.testing.assert_close(a, b)
    assert math.isfinite(float(a.sum()))
