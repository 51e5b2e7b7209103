"""Per-feature observation models of the decoder-based models (Sparse VAE, VAE baselines).

A likelihood turns the decoder's ``(..., G)`` output into a distribution over one row of
``x`` (event shape ``(G,)``), owns its global parameters (the Gaussian noise scales) and
their prior, checks the data it is given and sets data-dependent constants once per fit
(:meth:`Likelihood.setup`).

- :class:`GaussianLikelihood`: ``x_ij ~ N(m_j + s_j * out_ij, sigma_j^2)`` with
  ``sigma_j^2 ~ InverseGamma(nu / 2, nu * xi / 2)`` (Sparse VAE appendix C.2). ``m_j, s_j``
  are the column mean and standard deviation of the training data (a fixed affine map of
  the network output, so the network works on the standardised scale while the likelihood
  is that of the raw data). ``xi`` is set from the data so that the 5% quantile of the
  column variances is the 90% quantile of the prior (:func:`calibrate_xi`).
- :class:`BernoulliLikelihood`: ``x_ij ~ Bernoulli(sigmoid(out_ij))``, ``x`` in ``{0, 1}``.
- :class:`MultinomialLikelihood`: ``x_i ~ Multinomial(n_i, softmax(out_i))`` over the
  features, with ``n_i = sum_j x_ij`` the row total (word counts, ratings).
"""

from __future__ import annotations

import math

import numpy as np
import pyro.distributions as dist
import torch
from pyro.distributions import TorchDistribution, constraints
from torch import nn

from .._checks import check_float, check_int

__all__ = [
    "BernoulliLikelihood",
    "GaussianLikelihood",
    "Likelihood",
    "MultinomialCounts",
    "MultinomialLikelihood",
    "calibrate_xi",
    "make_likelihood",
]


def calibrate_xi(
    X: np.ndarray, nu: float = 3.0, data_quantile: float = 0.05, prior_quantile: float = 0.9
) -> float:
    """Scale ``xi`` of the ``InverseGamma(nu / 2, nu xi / 2)`` prior on the noise variances.

    Sparse VAE appendix C.2 (the BART rule): ``xi`` is chosen so that the ``data_quantile``
    (5%) quantile of the column sample variances is the ``prior_quantile`` (90%) quantile
    of the prior. Since ``nu xi / sigma^2 ~ chi2(nu)`` under the prior,

        xi = v_q * chi2.ppf(1 - prior_quantile, nu) / nu,   v_q = quantile(var_j, data_quantile).

    (The authors' code takes the quantile of the standard deviations and squares it; with
    linear interpolation between columns this differs slightly from the text, which we follow.)

    Parameters
    ----------
    X
        ``(N, G)`` data.
    nu
        Degrees of freedom of the prior (the paper's ``nu = 3``).
    data_quantile, prior_quantile
        The two quantile levels matched.

    Returns
    -------
    float
        ``xi > 0``.
    """
    X = np.asarray(X, dtype=np.float64)
    v = X.var(axis=0, ddof=1) if X.shape[0] > 1 else np.ones(X.shape[1])
    vq = float(np.quantile(v, data_quantile))
    if not vq > 0:
        vq = float(v[v > 0].min()) if np.any(v > 0) else 1.0
    from scipy.stats import chi2  # here: scipy.stats takes a second to import

    return vq * float(chi2.ppf(1.0 - prior_quantile, nu)) / nu


class MultinomialCounts(TorchDistribution):
    """Multinomial over the last axis with a per-row total ``n_i = sum_j x_ij``.

    ``log p(x) = lgamma(n + 1) - sum_j lgamma(x_j + 1) + sum_j x_j log softmax(logits)_j``,
    the log-pmf of ``Multinomial(n_i, softmax(logits))`` for the observed row total.
    ``sample`` needs ``total_count``.
    """

    arg_constraints = {"logits": constraints.real_vector}
    support = constraints.independent(constraints.nonnegative_integer, 1)
    has_rsample = False

    def __init__(self, logits: torch.Tensor, total_count=None, validate_args=None):
        self.logits = logits - logits.logsumexp(-1, keepdim=True)
        self.total_count = total_count
        super().__init__(logits.shape[:-1], logits.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        logits = self.logits.expand(batch_shape + self.event_shape)
        return MultinomialCounts(logits, self.total_count, validate_args=False)

    @property
    def mean(self) -> torch.Tensor:
        if self.total_count is None:
            raise ValueError("the mean of MultinomialCounts needs total_count")
        return torch.as_tensor(self.total_count).unsqueeze(-1) * self.logits.exp()

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        n = value.sum(-1)
        return torch.lgamma(n + 1) - torch.lgamma(value + 1).sum(-1) + (value * self.logits).sum(-1)

    def sample(self, sample_shape: tuple = ()):
        if self.total_count is None:
            raise ValueError("sampling MultinomialCounts needs total_count")
        shape = torch.Size(sample_shape) + self.batch_shape
        n = torch.as_tensor(self.total_count, device=self.logits.device).expand(shape)
        n_max = int(n.max()) if n.numel() else 0
        counts = torch.zeros(shape + self.event_shape, device=self.logits.device)
        if n_max == 0:  # no counts to draw (torch refuses to draw 0 samples)
            return counts
        # n_max categorical draws per row; the first n_i of row i are its counts
        draws = dist.Categorical(logits=self.logits.expand(shape + self.event_shape))
        idx = draws.sample((n_max,)).movedim(0, -1)
        keep = torch.arange(n_max, device=n.device) < n.unsqueeze(-1)
        return counts.scatter_add_(-1, idx, keep.to(counts.dtype))


class Likelihood(nn.Module):
    """Base class: maps a decoder output ``(..., G)`` to a distribution of one row of ``x``."""

    name: str = "base"
    #: whether ``x`` holds counts whose row totals the likelihood takes as given
    counts: bool = False

    def check(self, X: np.ndarray) -> None:
        """Raise ``ValueError`` when ``X`` is outside the likelihood's support."""

    def _config(self) -> dict:
        """Constructor arguments, for :func:`pyro_gfa.io.save` (a subclass whose
        constructor takes arguments returns them)."""
        return {}

    def setup(self, X: np.ndarray) -> None:
        """Set data-dependent constants and initial values from the training data."""

    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        """The transform of ``x`` that the inference network sees."""
        return x

    def dist(self, out: torch.Tensor, x: torch.Tensor | None = None) -> TorchDistribution:
        """Distribution with batch shape ``out.shape[:-1]`` and event shape ``(G,)``; ``x``
        (the observed rows) gives count likelihoods the row totals of their draws, so that
        posterior predictive draws keep each row's total."""
        raise NotImplementedError

    def log_prior(self) -> torch.Tensor:
        """Log prior density of the likelihood's own global parameters."""
        return torch.zeros(())

    def mean(self, out: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """``E[x | out]`` (``x`` gives the row totals of count likelihoods)."""
        raise NotImplementedError

    def _no_totals(self, total_count) -> None:
        if total_count is not None:
            raise ValueError(
                "total_count sets the row totals of count likelihoods (multinomial,"
                f" negative_binomial); the {self.name} likelihood does not use it, got"
                f" total_count={total_count!r}"
            )

    def expected(self, out: torch.Tensor, total_count=None) -> torch.Tensor:
        """``E[x | out]`` for rows of the given totals (count likelihoods only; without
        them a count likelihood gives the composition)."""
        self._no_totals(total_count)
        return self.mean(out)

    def sample(self, out: torch.Tensor, total_count=None) -> torch.Tensor:
        """Draws of ``x``; ``total_count`` (row totals) is for count likelihoods only."""
        self._no_totals(total_count)
        return self.dist(out).sample()


class GaussianLikelihood(Likelihood):
    """``x_ij ~ N(m_j + s_j out_ij, sigma_j^2)``, ``sigma_j^2 ~ InverseGamma(nu/2, nu xi/2)``.

    Parameters
    ----------
    n_features
        ``G``.
    nu
        Degrees of freedom of the noise prior (paper: 3). ``nu = 0`` turns the prior off.
    xi
        Scale of the noise prior; ``None`` (default) sets it from the data at ``setup``
        with :func:`calibrate_xi`.
    sigma_init
        Starting noise sd: a fraction of each column's sd, ``"data_sd"`` (the column sd)
        or ``"prior_mode"`` (the mode of the noise prior).

    Notes
    -----
    The prior is a density on ``sigma_j^2`` (as in the paper) evaluated at the current
    value; the parameter is ``log sigma_j``, started as ``sigma_init`` says (by default
    at 0.3 of the column standard deviation). The MAP of ``sigma_j^2`` is therefore the mode of its
    posterior under the paper's prior, not of ``log sigma_j``.
    """

    name = "gaussian"

    def __init__(
        self,
        n_features: int,
        nu: float = 3.0,
        xi: float | None = None,
        sigma_init: str | float = 0.3,
    ):
        super().__init__()
        self.n_features = check_int(n_features, "n_features")
        self.nu = check_float(nu, "nu", allow_low=True)
        self.xi = None if xi is None else check_float(xi, "xi")
        if isinstance(sigma_init, str):
            if sigma_init not in ("data_sd", "prior_mode"):
                raise ValueError(
                    "sigma_init must be a positive number, 'data_sd' or 'prior_mode', got"
                    f" {sigma_init!r}"
                )
        else:
            sigma_init = check_float(sigma_init, "sigma_init")
        self.sigma_init = sigma_init
        # the xi in use (NaN until setup when xi is None; unused without the prior): a
        # buffer, so a saved model keeps it
        unset = 0.0 if self.nu == 0 else math.nan
        self.register_buffer("xi_", torch.tensor(unset if xi is None else float(xi)))
        self.log_sigma = nn.Parameter(torch.zeros(self.n_features))
        self.register_buffer("loc", torch.zeros(self.n_features))
        self.register_buffer("scale", torch.ones(self.n_features))

    def _config(self):
        return {
            "n_features": self.n_features,
            "nu": self.nu,
            "xi": self.xi,
            "sigma_init": self.sigma_init,
        }

    def setup(self, X: np.ndarray) -> None:
        sd = X.std(axis=0).astype(np.float64)
        sd = np.where(sd > 0, sd, 1.0)
        with torch.no_grad():
            self.loc.copy_(torch.as_tensor(X.mean(axis=0)))
            self.scale.copy_(torch.as_tensor(sd))
        if self.xi is None and self.nu > 0:
            self.xi_.fill_(calibrate_xi(X, self.nu))
        xi = float(self.xi_)
        if self.sigma_init == "data_sd" or (self.sigma_init == "prior_mode" and self.nu == 0):
            init = np.log(sd)
        elif self.sigma_init == "prior_mode":
            # mode of InverseGamma(nu/2, nu xi/2) for sigma^2: nu xi / (nu + 2)
            init = np.full_like(sd, 0.5 * math.log(self.nu * xi / (self.nu + 2.0)))
        else:
            init = np.log(float(self.sigma_init) * sd)
        with torch.no_grad():
            self.log_sigma.copy_(torch.as_tensor(init))

    def encoder_input(self, x):
        return (x - self.loc) / self.scale

    def sigma(self) -> torch.Tensor:
        """``(G,)`` noise standard deviations ``sigma_j = exp(log_sigma_j)`` (raw data scale)."""
        return self.log_sigma.exp()

    def dist(self, out, x=None):
        return dist.Normal(self.loc + self.scale * out, self.sigma()).to_event(1)

    def mean(self, out, x=None):
        return self.loc + self.scale * out

    def log_prior(self):
        if self.nu == 0 or torch.isnan(self.xi_):
            return self.log_sigma.new_zeros(())
        var = (2 * self.log_sigma).exp()
        a = 0.5 * self.nu
        rate = 0.5 * self.nu * self.xi_
        return (a * rate.log() - math.lgamma(a) - (a + 1) * var.log() - rate / var).sum()


class BernoulliLikelihood(Likelihood):
    """``x_ij ~ Bernoulli(sigmoid(out_ij))`` for binary data."""

    name = "bernoulli"

    def check(self, X):
        bad = (X != 0) & (X != 1)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise ValueError(
                f"the Bernoulli likelihood needs values in {{0, 1}}; X has {int(bad.sum())}"
                f" other values (first {float(X[r, c])!r} at row {r}, column {c})"
            )

    def dist(self, out, x=None):
        return dist.Bernoulli(logits=out).to_event(1)

    def mean(self, out, x=None):
        return torch.sigmoid(out)


def check_counts(X: np.ndarray, who: str) -> None:
    """Raise ``ValueError`` naming ``who`` unless ``X`` holds non-negative integers."""
    if (X < 0).any():
        r, c = np.argwhere(X < 0)[0]
        raise ValueError(f"{who} needs non-negative counts; X[{r}, {c}] = {X[r, c]}")
    frac = X != np.round(X)
    if frac.any():
        r, c = np.argwhere(frac)[0]
        raise ValueError(f"{who} needs integer counts; X[{r}, {c}] = {float(X[r, c])!r}")


class _CountComposition(Likelihood):
    """Count likelihoods whose mean is the row total times a softmax composition.

    ``mean_total`` is the mean row total of the training data, the default total of
    :meth:`sample`.
    """

    counts = True

    def __init__(self):
        super().__init__()
        self.register_buffer("mean_total", torch.tensor(100.0))

    def setup(self, X):
        self.mean_total.fill_(float(np.asarray(X).sum(axis=1).mean()))

    def _totals(self, out: torch.Tensor, total_count) -> torch.Tensor:
        """Row totals of a draw: ``total_count`` (a number or one per row), else the mean
        training total."""
        if total_count is None:
            total_count = round(float(self.mean_total))
        try:
            t = torch.as_tensor(total_count, device=out.device)
        except (TypeError, ValueError, RuntimeError):
            t = None
        # bool is not a count: True must not become a total of 1
        ok = t is not None and t.dtype != torch.bool and not t.is_complex()
        if ok:
            t = t.to(out.dtype)
            ok = bool(torch.isfinite(t).all() and (t >= 0).all() and (t == t.round()).all())
        if not ok:
            raise ValueError(
                "total_count must hold non-negative integers (one number or one per row), got"
                f" {total_count!r}"
            )
        try:
            return t.expand(out.shape[:-1])
        except RuntimeError:
            raise ValueError(
                f"total_count must be one number or one per row ({out.shape[0]}), got shape"
                f" {tuple(t.shape)}"
            ) from None

    def encoder_input(self, x):
        return torch.log1p(x)

    def mean(self, out, x=None):
        p = torch.softmax(out, -1)
        if x is None:
            return p
        return x.sum(-1, keepdim=True) * p

    def expected(self, out, total_count=None):
        if total_count is None:
            return self.mean(out)
        return self._totals(out, total_count).unsqueeze(-1) * self.mean(out)


class MultinomialLikelihood(_CountComposition):
    """``x_i ~ Multinomial(n_i, softmax(out_i))`` over the features (counts)."""

    name = "multinomial"

    def check(self, X):
        check_counts(X, "the multinomial likelihood")

    def dist(self, out, x=None):
        return MultinomialCounts(out, total_count=None if x is None else x.sum(-1))

    def sample(self, out, total_count=None):
        total = self._totals(out, total_count)
        if out.numel() == 0:  # no rows: torch's argument check fails on an empty batch
            return torch.zeros_like(out)
        return MultinomialCounts(out, total_count=total).sample()


class NegativeBinomialLikelihood(_CountComposition):
    """``x_ij ~ NB(mean = n_i softmax(out_i)_j, dispersion theta_j)`` for overdispersed counts.

    The mean is the row's observed total ``n_i`` (library size) times a composition over the
    features, as in scVI; ``theta_j`` is a learned per-feature inverse dispersion
    (``Var = mu + mu^2 / theta``), started at 1. ``theta -> infinity`` is the Poisson.
    """

    name = "negative_binomial"

    def __init__(self, n_features: int):
        super().__init__()
        self.n_features = check_int(n_features, "n_features")
        self.log_theta = nn.Parameter(torch.zeros(self.n_features))

    def _config(self):
        return {"n_features": self.n_features}

    def check(self, X):
        check_counts(X, "the negative binomial likelihood")

    def _nb(self, out: torch.Tensor, total: torch.Tensor) -> TorchDistribution:
        # a row of total 0 has mean ~0, so its zeros score ~0 nats (log(0) would give NaN)
        log_mu = torch.log_softmax(out, -1) + total.clamp_min(1e-8).log().unsqueeze(-1)
        return dist.NegativeBinomial(
            total_count=self.log_theta.exp(), logits=log_mu - self.log_theta
        )

    def dist(self, out, x=None):
        return _RowTotalNB(self, out, total_count=None if x is None else x.sum(-1))

    def sample(self, out, total_count=None):
        """Counts around ``total_count`` per row (the library size; NB row sums vary)."""
        total = self._totals(out, total_count)
        # a row of size 0 has no counts (_nb gives it a mean of ~0, not 0)
        return self._nb(out, total).sample() * (total > 0).unsqueeze(-1)


class _RowTotalNB(TorchDistribution):
    """The negative binomial of :class:`NegativeBinomialLikelihood`: its mean needs the row
    total of the value it scores, so the distribution is built inside ``log_prob``."""

    arg_constraints = {}
    support = constraints.independent(constraints.nonnegative_integer, 1)

    def __init__(
        self,
        lik: NegativeBinomialLikelihood,
        out: torch.Tensor,
        total_count=None,
        validate_args=None,
    ):
        self.lik, self.out, self.total_count = lik, out, total_count
        super().__init__(out.shape[:-1], out.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        out = self.out.expand(torch.Size(batch_shape) + self.event_shape)
        return _RowTotalNB(self.lik, out, self.total_count, validate_args=False)

    def sample(self, sample_shape: tuple = ()):
        """Draws around ``total_count`` per row (see :meth:`NegativeBinomialLikelihood.sample`)."""
        if self.total_count is None:
            raise ValueError("sampling this negative binomial needs total_count")
        out = self.out.expand(torch.Size(sample_shape) + self.out.shape)
        total = torch.as_tensor(self.total_count, device=out.device).expand(out.shape[:-1])
        return self.lik.sample(out.reshape(-1, out.shape[-1]), total.reshape(-1)).reshape(out.shape)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return self.lik._nb(self.out, value.sum(-1)).log_prob(value).sum(-1)


def make_likelihood(spec: str | Likelihood, n_features: int) -> Likelihood:
    """A likelihood from its name (``"gaussian"``, ``"bernoulli"``, ``"multinomial"``,
    ``"negative_binomial"``)."""
    if isinstance(spec, Likelihood):
        size = getattr(spec, "n_features", n_features)
        if size != n_features:
            raise ValueError(
                f"the likelihood was built for {size} features but the model has {n_features}"
            )
        return spec
    table = {
        "gaussian": GaussianLikelihood,
        "normal": GaussianLikelihood,
        "bernoulli": BernoulliLikelihood,
        "multinomial": MultinomialLikelihood,
        "softmax": MultinomialLikelihood,
        "negative_binomial": NegativeBinomialLikelihood,
        "nb": NegativeBinomialLikelihood,
    }
    if not isinstance(spec, str) or spec not in table:
        raise ValueError(
            "likelihood must be 'gaussian', 'bernoulli', 'multinomial' or"
            f" 'negative_binomial', got {spec!r}"
        )
    cls = table[spec]
    needs_g = (GaussianLikelihood, NegativeBinomialLikelihood)
    return cls(n_features) if cls in needs_g else cls()
