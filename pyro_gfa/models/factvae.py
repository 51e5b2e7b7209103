"""factVAE (Ainsworth, Foti and Fox 2018): sparse VAE for multi-aspect data with missing groups,
and JMVAE+.

Generative model (the oi-VAE's), for groups ``g = 1..G`` of sizes ``d_g``::

    z ~ N(0, I_K)
    x^(g) ~ N(f_g(W^(g) z), diag(sigma_g^2))        scored on the observed groups only
    theta_g ~ N(0, I)                                generator weights and biases

Inference: one encoder per group, ``phi_g(x^(g)) in R^H``, gives an expert with mean
``mu_g = M_g^T phi_g`` and diagonal precision ``Lambda_g = |V^(g) (phi_g + b_g)|`` (``b_g`` a
learned offset, as in the authors' code). The scale of ``b_g`` sets the scale of ``V^(g)``
relative to ``W^(g)`` in the stacked cells, and how fast ``V^(g)`` moves under the plain
proximal SGD step (its gradient is proportional to ``phi_g + b_g``). The authors started
``b_g`` at 100; with our step sizes that made the readout unstable (expert precisions of
1e4 to 1e5 on the quadrant bars) and let the ``V`` half dominate the group norm, so the
default starts it at 1 (``precision_baseline``), where both halves of a cell have
comparable norms. The experts of the groups in the encoder set ``I`` are combined

- ``combine="poe"`` (factVAE): with the prior, in closed form (footnote 2 of the paper),
  ``Lambda = 1 + sum_{g in I} Lambda_g``, ``mu = Lambda^-1 sum_{g in I} Lambda_g mu_g``;
- ``combine="mixture"`` (JMVAE+, section 3): a uniform mixture over ``g in I`` of the
  single-group posteriors ``p(z) q_g(z | x^(g))`` (each expert times the prior, so that an
  expert with zero precision stays a proper distribution). Its KL term has no closed form;
  the ELBO uses the Monte Carlo ``log p(z) - log q(z | x)``.

``I`` is the set of observed groups, minus (in training) a random subset dropped at rate
``group_dropout``; at least one observed group is always kept.

Shared sparsity
---------------
The prior acts on the stacked matrix ``Phi^(g) = [W^(g)T, V^(g)]T``: the module's sparse
parameter ``W`` has shape ``(G, p + H, K)``; ``W[g, :p, k]`` is column ``k`` of the
latent-to-group matrix ``W^(g)`` and ``W[g, p:, k]`` is row ``k`` of ``V^(g)``. A cell
``W[g, :, k]`` is one column of ``Phi^(g)``, so the existing group-lasso prior and its
proximal step act on the stacked column with no new prior code: when a cell is zero,
latent ``k`` neither generates group ``g`` nor is inferred from it (the expert of ``g`` has
exactly zero precision on ``k``).

Missing data
------------
Model and guide take ``(x, observed)``: ``x`` of shape ``(N, D)`` with any value in the
entries of missing groups (NaN included: they are replaced by 0 before any log-prob) and
``observed`` an ``(N, G)`` bool mask. The likelihood is ``Normal(...).mask(feature_mask)``,
so masked entries contribute exactly zero to the objective and its gradient.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions import constraints
from pyro.distributions.torch_distribution import TorchDistribution
from torch import nn

from .._checks import check_bool, check_float, check_int
from ..data.groups import Groups
from ..priors import GroupLasso, NoPrior, Prior, cell_norms
from .base import Estimator, GFAModule, check_matrix, seeded
from .nets import GroupGenerators, _uniform_, check_widths

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = [
    "FactVAE",
    "FactVAEModule",
    "GroupEncoders",
    "JMVAEPlus",
    "UniformMixtureDiagNormal",
    "mask_groups",
    "product_of_experts",
]


# ----------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------
def product_of_experts(
    loc: torch.Tensor, precision: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-form product of the ``N(0, I)`` prior and the Gaussian experts in ``mask``.

    Parameters
    ----------
    loc, precision
        ``(..., G, K)`` means and diagonal precisions (``>= 0``) of the group experts.
    mask
        ``(..., G)`` bool: the experts that take part.

    Returns
    -------
    mean, precision : Tensor
        ``(..., K)``: ``Lambda = 1 + sum_g Lambda_g`` and ``mu = Lambda^-1 sum_g Lambda_g mu_g``
        over the experts in ``mask`` (Ainsworth, Foti and Fox 2018, footnote 2). Experts
        outside ``mask`` do not reach the result, not even as NaN.
    """
    m = mask.unsqueeze(-1)
    zero = precision.new_zeros(())
    prec = 1.0 + torch.where(m, precision, zero).sum(-2)
    mean = torch.where(m, precision * loc, zero).sum(-2) / prec
    return mean, prec


class UniformMixtureDiagNormal(TorchDistribution):
    """Uniform mixture of diagonal normals over the components in ``mask`` (JMVAE+).

    ``rsample`` draws a component uniformly among those in ``mask`` and then a
    reparameterised normal draw from it. The mixture weights are fixed, so this is a valid
    reparameterisation: the gradient of ``E_q[f(z)]`` is unbiased.

    Parameters
    ----------
    locs, scales
        ``(B, G, K)`` component means and standard deviations.
    mask
        ``(B, G)`` bool, at least one ``True`` per row.
    """

    arg_constraints = {"locs": constraints.real, "scales": constraints.positive}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, locs, scales, mask, validate_args=None):
        self.locs, self.scales, self.mask = locs, scales, mask
        self.n_comp = mask.sum(-1)
        super().__init__(locs.shape[:-2], locs.shape[-1:], validate_args=validate_args)

    def rsample(self, sample_shape=()):
        shape = torch.Size(sample_shape) + self.batch_shape
        probs = self.mask.to(self.locs.dtype).expand(shape + self.mask.shape[-1:])
        c = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1).reshape(shape)
        idx = c[..., None, None].expand(shape + (1, self.locs.shape[-1]))
        loc = torch.gather(self.locs.expand(shape + self.locs.shape[-2:]), -2, idx).squeeze(-2)
        sc = torch.gather(self.scales.expand(shape + self.scales.shape[-2:]), -2, idx).squeeze(-2)
        return loc + sc * torch.randn_like(loc)

    def log_prob(self, value):
        lp = dist.Normal(self.locs, self.scales).log_prob(value.unsqueeze(-2)).sum(-1)
        lp = torch.where(self.mask, lp, lp.new_full((), -math.inf))
        return torch.logsumexp(lp, -1) - self.n_comp.to(lp.dtype).log()

    @property
    def mean(self):
        w = self.mask.to(self.locs.dtype) / self.n_comp.unsqueeze(-1)
        return (w.unsqueeze(-1) * self.locs).sum(-2)

    @property
    def variance(self):
        w = (self.mask.to(self.locs.dtype) / self.n_comp.unsqueeze(-1)).unsqueeze(-1)
        # about the mixture's mean: E[x^2] - mean^2 cancels in float32
        spread = (self.locs - self.mean.unsqueeze(-2)) ** 2
        return (w * (self.scales**2 + spread)).sum(-2)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        tail = self.locs.shape[-2:]
        return UniformMixtureDiagNormal(
            self.locs.expand(batch_shape + tail),
            self.scales.expand(batch_shape + tail),
            self.mask.expand(batch_shape + self.mask.shape[-1:]),
        )


class GroupEncoders(nn.Module):
    """One MLP per group, evaluated for all groups at once on zero-padded group inputs.

    Group ``g``'s columns are gathered into a ``(B, G, d_max)`` tensor (padding and the
    entries of missing groups are zero); each hidden layer is one batched matrix product
    over groups, so a step has no Python loop over groups.

    Parameters
    ----------
    groups
        The group specification.
    hidden
        Hidden widths of every group's MLP (ReLU after each); empty: ``phi_g`` is the
        padded input itself.
    """

    def __init__(self, groups: Groups, hidden: Sequence[int] = ()):
        super().__init__()
        G, D = groups.n_groups, groups.n_features
        d_max = int(groups.sizes.max())
        index = torch.full((G, d_max), D, dtype=torch.long)  # D: an appended zero column
        for g, ix in enumerate(groups.index):
            index[g, : len(ix)] = torch.as_tensor(ix)
        self.register_buffer("index", index)
        dims = [d_max, *hidden]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for din, dout in zip(dims[:-1], dims[1:]):
            w, b = torch.empty(G, din, dout), torch.empty(G, dout)
            _uniform_(w, din)
            _uniform_(b, din)
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))
        self.out_dim = dims[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, D)`` (finite); returns ``(B, G, H)`` group features."""
        h = torch.cat([x, x.new_zeros(x.shape[:-1] + (1,))], -1)[..., self.index]
        for w, b in zip(self.weights, self.biases):
            h = torch.relu(torch.einsum("...gi,gio->...go", h, w) + b)
        return h


# ----------------------------------------------------------------------------------------
# The module (Pyro model/guide)
# ----------------------------------------------------------------------------------------
class FactVAEModule(GFAModule):
    """The factVAE's (or JMVAE+'s) Pyro model/guide pair and networks.

    ``model(x, observed)`` and ``guide(x, observed)`` take the data ``(N, D)`` and the
    ``(N, G)`` bool mask of observed groups. See :mod:`pyro_gfa.models.factvae`.
    """

    def __init__(
        self,
        groups: Groups,
        latent_dim: int,
        prior: Prior,
        combine: str = "poe",
        p: int = 1,
        generator_hidden: Sequence[int] = (),
        encoder_hidden: Sequence[int] = (32,),
        group_dropout: float = 0.5,
        precision_baseline: float = 1.0,
        theta_prior: bool = True,
        sigma_init: float = 1e-2,
        min_std: float = 1e-3,
    ):
        super().__init__()
        if combine not in ("poe", "mixture"):
            raise ValueError(f"combine must be 'poe' or 'mixture', got {combine!r}")
        self.latent_dim, self.p, self.combine = latent_dim, p, combine
        self.group_dropout, self.theta_prior, self.min_std = group_dropout, theta_prior, min_std
        G, D, K = groups.n_groups, groups.n_features, latent_dim
        self.n_groups = G
        self.register_buffer("feature_group", torch.as_tensor(groups.feature_group))
        self.encoders = GroupEncoders(groups, encoder_hidden)
        H = self.encoders.out_dim
        self.hidden_dim = H
        # Phi^(g) stacked: rows :p generate (W^(g)), rows p: read out precisions (V^(g)).
        # W^(g) ~ randn as in the oi-VAE; V^(g) scaled so the initial precisions are O(1).
        W = torch.randn(G, p + H, K)
        W[:, p:, :] /= precision_baseline * math.sqrt(H)
        self.W = nn.Parameter(W)
        self.precision_bias = nn.Parameter(torch.full((G, H), float(precision_baseline)))
        self.mean_readout = nn.Parameter(torch.empty(G, H, K))
        _uniform_(self.mean_readout, H)
        self.generators = GroupGenerators(self.feature_group, p, generator_hidden)
        self.log_sigma = nn.Parameter(torch.full((D,), math.log(sigma_init)))
        self.prior = copy.deepcopy(prior)  # its state is this module's; the caller's is untouched
        self.prior.setup(self.W.detach())

    # -- encoder side ------------------------------------------------------------------
    def experts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, G, K)`` means and precisions of the group experts (missing groups too)."""
        phi = self.encoders(x)
        loc = torch.einsum("bgh,ghk->bgk", phi, self.mean_readout)
        V = self.W[:, self.p :, :]
        prec = torch.einsum("bgh,ghk->bgk", phi + self.precision_bias, V).abs()
        return loc, prec

    def encoder_mask(self, observed: torch.Tensor) -> torch.Tensor:
        """The groups the encoder sees: ``observed`` minus, in training, a random dropout.

        One uniform draw per (row, group); a group is dropped when its draw is below
        ``group_dropout``. If every observed group of a row would be dropped, the one with
        the largest draw is kept. Model and plain-torch loss consume this draw identically.
        """
        if not self.training or self.group_dropout <= 0:
            return observed
        u = torch.rand(observed.shape, device=observed.device)
        keep = observed & (u >= self.group_dropout)
        none = ~keep.any(-1, keepdim=True)
        best = torch.where(observed, u, u.new_full((), -1.0)).argmax(-1, keepdim=True)
        first = torch.zeros_like(keep).scatter_(-1, best, True)
        return keep | (none & first)

    def posterior(self, x: torch.Tensor, enc_mask: torch.Tensor):
        """``q(z | x)`` from the experts in ``enc_mask`` (a Pyro distribution, event dim 1)."""
        loc, prec = self.experts(x)
        if self.combine == "poe":
            mean, lam = product_of_experts(loc, prec, enc_mask)
            scale = lam.rsqrt() * self.std_multiplier + self.min_std
            return dist.Normal(mean, scale).to_event(1)
        lam = 1.0 + prec  # each expert times the prior
        scales = lam.rsqrt() * self.std_multiplier + self.min_std
        return UniformMixtureDiagNormal(prec * loc / lam, scales, enc_mask)

    def encode(
        self, x: torch.Tensor, observed: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and standard deviation of ``z`` given the observed groups."""
        if observed is None:
            observed = torch.ones(x.shape[0], self.n_groups, dtype=torch.bool, device=x.device)
        x = self._fill(x, observed)
        q = self.posterior(x, observed)
        return q.mean, q.variance.sqrt()

    # -- generator side ----------------------------------------------------------------
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Every group's generator ``f_g(W^(g) z)``, from the generator rows ``W[:, :p, :]`` only:
        ``(..., K)`` codes to ``(..., D)`` means."""
        u = torch.einsum("...k,gpk->...gp", z, self.W[:, : self.p, :])
        return self.generators(u)

    def sigma(self) -> torch.Tensor:
        """``(D,)`` noise standard deviations of the columns, ``exp(log_sigma) + 1e-3``."""
        return self.log_sigma.exp() + 1e-3

    def sample_x(self, z: torch.Tensor) -> torch.Tensor:
        """Draws ``x ~ N(decode(z), diag(sigma^2))`` of all groups."""
        loc = self.decode(z)
        return loc + self.sigma() * torch.randn_like(loc)

    def theta_log_prob(self) -> torch.Tensor:
        """Scalar ``log N(theta; 0, I)`` of the generators' weights and biases.

        Computed whatever ``theta_prior`` says; :meth:`model` and :meth:`loss` add it only
        when ``theta_prior`` is set.
        """
        params = list(self.generators.parameters())
        sq = sum(q.pow(2).sum() for q in params)
        n = sum(q.numel() for q in params)
        return -0.5 * sq - 0.5 * n * math.log(2 * math.pi)

    def loadings(self) -> torch.Tensor:
        """``(G, K)`` norms of the stacked cells ``||Phi^(g)[:, k]||``."""
        return cell_norms(self.W.detach())

    # -- Pyro ----------------------------------------------------------------------------
    def _fill(self, x: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """Entries of missing groups set to 0 (in the support), so no NaN reaches anything."""
        fmask = observed[..., self.feature_group]
        return torch.where(fmask, x, x.new_zeros(()))

    def model(self, x: torch.Tensor, observed: torch.Tensor) -> None:
        """The generative model, scoring the observed groups only.

        Factors ``"W_prior"`` and (with ``theta_prior``) ``"theta_prior"``, weighted by
        ``prior_weight``; then, inside ``pyro.plate("data", N)`` scaled by ``1 / N``,
        ``"z" ~ N(0, I_K)`` and the observed site ``"x"``, masked to the columns of the
        observed groups (the other entries contribute exactly zero).

        Parameters
        ----------
        x
            ``(N, D)`` data; entries of missing groups may hold anything, NaN included.
        observed
            ``(N, G)`` bool mask of the observed groups.
        """
        n = x.shape[0]
        pyro.factor("W_prior", self.prior_weight * self.prior.log_factor(self.W))
        if self.theta_prior:
            pyro.factor("theta_prior", self.prior_weight * self.theta_log_prob())
        fmask = observed[..., self.feature_group]
        x = torch.where(fmask, x, x.new_zeros(()))
        with pyro.plate("data", n, device=x.device), poutine.scale(scale=1.0 / n):
            zero = x.new_zeros(n, self.latent_dim)
            z = pyro.sample("z", dist.Normal(zero, 1.0).to_event(1))
            lik = dist.Normal(self.decode(z), self.sigma()).mask(fmask).to_event(1)
            pyro.sample("x", lik, obs=x)

    def guide(self, x: torch.Tensor, observed: torch.Tensor) -> None:
        """The posterior: site ``"z"`` (``(N, K)``) from :meth:`posterior` on the groups of
        :meth:`encoder_mask` (``observed`` minus, in training, the group dropout), inside
        ``pyro.plate("data", N)`` scaled by ``1 / N``.

        Parameters
        ----------
        x
            ``(N, D)`` data; entries of missing groups may hold anything, NaN included.
        observed
            ``(N, G)`` bool mask of the observed groups.
        """
        n = x.shape[0]
        x = self._fill(x, observed)
        with pyro.plate("data", n, device=x.device), poutine.scale(scale=1.0 / n):
            pyro.sample("z", self.posterior(x, self.encoder_mask(observed)))

    def loss(self, x: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """The negative objective of :meth:`model`/:meth:`guide` in plain torch.

        Equal, value and gradient, to ``TraceMeanField_ELBO().differentiable_loss(model,
        guide, x, observed)`` for the same RNG state (the dropout draw, then ``z``, in the
        same order; checked by the trainer and the tests).
        """
        fmask = observed[..., self.feature_group]
        x = torch.where(fmask, x, x.new_zeros(()))
        q = self.posterior(x, self.encoder_mask(observed))
        z = q.rsample()
        lp = dist.Normal(self.decode(z), self.sigma()).log_prob(x)
        loglik = torch.where(fmask, lp, lp.new_zeros(())).sum(-1)
        if self.combine == "poe":
            base = q.base_dist
            prior = dist.Normal(torch.zeros_like(base.loc), 1.0)
            kl = torch.distributions.kl_divergence(base, prior).sum(-1)
        else:
            kl = q.log_prob(z) - dist.Normal(torch.zeros_like(z), 1.0).log_prob(z).sum(-1)
        objective = (loglik - kl).mean() + self.prior_weight * self.prior.log_factor(self.W)
        if self.theta_prior:
            objective = objective + self.prior_weight * self.theta_log_prob()
        return -objective


# ----------------------------------------------------------------------------------------
# Data with missing groups
# ----------------------------------------------------------------------------------------
def _observed_matrix(observed, n: int, groups: Groups) -> np.ndarray:
    """``(n, G)`` bool from a mask, a ``(G,)`` mask, or a list of group names / indices."""
    G = groups.n_groups
    if isinstance(observed, torch.Tensor):
        observed = observed.detach().cpu().numpy()
    arr = np.asarray(observed)
    numeric = np.issubdtype(arr.dtype, np.number) and arr.dtype != bool
    if numeric and arr.ndim == 1 and arr.shape == (G,) and np.isin(arr, (0, 1)).all():
        # [0, 1, 1] could be a 0/1 mask or the group indices 0, 1, 1: refuse to guess
        raise ValueError(
            f"observed = {arr.tolist()} is ambiguous: pass a bool mask of length {G} or a "
            "list of distinct group indices / names"
        )
    if arr.dtype == bool or (arr.ndim == 2 and numeric):
        if numeric and not np.isin(arr, (0, 1)).all():
            raise ValueError("a numeric observed mask must hold only 0 and 1")
        arr = arr.astype(bool)
        if arr.shape == (G,):
            return np.broadcast_to(arr, (n, G)).copy()
        if arr.shape != (n, G):
            raise ValueError(f"observed mask must have shape ({n}, {G}) or ({G},), got {arr.shape}")
        return arr
    out = np.zeros(G, dtype=bool)
    for g in np.atleast_1d(np.asarray(observed, dtype=object)):
        if isinstance(g, (int, np.integer)) and 0 <= int(g) < G:
            j = int(g)
        elif isinstance(g, str) and g in groups.names:
            j = groups.names.index(g)
        else:
            raise ValueError(f"unknown group {g!r}; groups are {list(groups.names)} or 0..{G - 1}")
        if out[j]:
            raise ValueError(f"group {g!r} is listed twice in observed")
        out[j] = True
    return np.broadcast_to(out, (n, G)).copy()


def mask_groups(
    X: npt.ArrayLike,
    groups: Groups | Sequence | Mapping,
    observed: npt.ArrayLike | Sequence[str | int],
) -> np.ndarray:
    """A float32 copy of ``X`` with the entries of unobserved groups set to NaN.

    Parameters
    ----------
    X
        ``(N, D)`` data.
    groups
        Group specification (anything :meth:`Groups.from_spec` accepts).
    observed
        ``(N, G)`` or ``(G,)`` bool mask, or a list of observed group names / indices.

    Returns
    -------
    ndarray, shape (N, D)
    """
    X = np.array(X, dtype=np.float32)
    groups = Groups.from_spec(groups, X.shape[1])
    obs = _observed_matrix(observed, X.shape[0], groups)
    X[~obs[:, groups.feature_group]] = np.nan
    return X


# ----------------------------------------------------------------------------------------
# Estimators
# ----------------------------------------------------------------------------------------
class FactVAE(Estimator):
    """factVAE (Ainsworth, Foti and Fox 2018): per-group encoders, product of experts,
    oi-VAE generators and shared encoder/decoder group sparsity; handles missing groups.

    Missing groups are given as NaN in ``X`` (all columns of a group NaN) and/or as an
    ``observed`` mask to the methods. Every row needs at least one observed group, and
    ``fit`` needs every group observed in at least one row.

    Parameters
    ----------
    groups
        Group specification: list of sizes (consecutive blocks), list of column-index
        lists, a mapping ``name -> columns`` or a :class:`~pyro_gfa.data.Groups`.
    latent_dim
        Number of latent factors ``K``.
    prior
        Prior on the stacked columns ``Phi^(g)[:, k] = [W^(g)[:, k]; V^(g)[k, :]]``
        (default ``GroupLasso(1.0)``; ``NoPrior()`` for ``lam = 0``).
    combine
        ``"poe"`` (factVAE) or ``"mixture"`` (JMVAE+, see :class:`JMVAEPlus`); ``None``
        (default): the class's own, ``"poe"`` here and ``"mixture"`` for JMVAE+.
    p
        Rows of each ``W^(g)`` (inputs of each generator).
    generator_hidden, encoder_hidden
        Hidden widths of each group's generator and encoder; the last encoder width is the
        size ``H`` of ``phi_g`` (``()``: the group's own, zero-padded, columns).
    group_dropout
        Rate at which observed groups are hidden from the encoder in training (the
        likelihood still scores them). The authors used 0.5 for bars, 0.1 for mocap.
    precision_baseline
        Initial value of the learned offset ``b_g`` in ``Lambda_g = |V^(g)(phi_g + b_g)|``
        (the authors used 100; see the module notes for why the default is 1).
    theta_prior
        Put the ``N(0, I)`` prior on the generator weights.
    prior_scale
        ``"paper"`` or ``"posterior"``; see :mod:`pyro_gfa.models.base`.
    sigma_init
        Initial noise standard deviation of every column.
    n_features
        Number of columns, when ``groups`` cannot tell.

    Examples
    --------
    >>> import pyro_gfa as gfa
    >>> X, _, obs = gfa.data.make_quadrant_bars(256, missing_rate=0.25)
    >>> Xm = gfa.models.factvae.mask_groups(X, gfa.data.quadrant_groups(), obs)
    >>> m = gfa.FactVAE(gfa.data.quadrant_groups(), latent_dim=8).fit(Xm, epochs=2, progress=False)
    >>> m.impute(Xm).shape
    (256, 64)
    """

    default_lr = 1e-2
    default_sparse_lr = 1e-4
    unit_scale = True
    _combine = "poe"

    def __init__(
        self,
        groups: Groups | Sequence | Mapping,
        latent_dim: int,
        prior: Prior | None = None,
        combine: str | None = None,
        p: int = 1,
        generator_hidden: Sequence[int] = (),
        encoder_hidden: Sequence[int] = (32,),
        group_dropout: float = 0.5,
        precision_baseline: float = 1.0,
        theta_prior: bool = True,
        prior_scale: str = "paper",
        sigma_init: float = 1e-2,
        n_features: int | None = None,
    ):
        super().__init__(latent_dim, self._default_prior() if prior is None else prior, prior_scale)
        combine = self._combine if combine is None else combine
        if combine not in ("poe", "mixture"):
            raise ValueError(f"combine must be 'poe' or 'mixture', got {combine!r}")
        if self._combine == "mixture" and combine != "mixture":  # JMVAE+ is its mixture
            raise ValueError(
                f"{type(self).__name__} combines the groups by a mixture; for the product of"
                " experts use FactVAE (combine='poe')"
            )
        self.combine = combine
        self.p = check_int(p, "p")
        self.generator_hidden = check_widths(generator_hidden, "generator_hidden")
        self.encoder_hidden = check_widths(encoder_hidden, "encoder_hidden")
        self.group_dropout = check_float(group_dropout, "group_dropout", 0.0, 1.0, allow_low=True)
        self.precision_baseline = check_float(precision_baseline, "precision_baseline")
        self.sigma_init = check_float(sigma_init, "sigma_init")
        self.theta_prior = check_bool(theta_prior, "theta_prior")
        self.groups = Groups.from_spec(groups, n_features)
        self.n_features = self.groups.n_features

    @staticmethod
    def _default_prior() -> Prior:
        return GroupLasso(1.0)

    def _build_module(self) -> FactVAEModule:
        return FactVAEModule(
            self.groups,
            self.latent_dim,
            self.prior,
            combine=self.combine,
            p=self.p,
            generator_hidden=self.generator_hidden,
            encoder_hidden=self.encoder_hidden,
            group_dropout=self.group_dropout,
            precision_baseline=self.precision_baseline,
            theta_prior=self.theta_prior,
            sigma_init=self.sigma_init,
        )

    # -- data checks ---------------------------------------------------------------------
    def _check(self, X) -> np.ndarray:
        """Float32 ``X``; NaN allowed only for whole groups; every row needs one."""
        X = check_matrix(
            X,
            self.n_features,
            allow_nan=True,
            names=self._expected_names(),
            note=self.groups.coverage(),
        )
        nan = np.isnan(X)
        for name, ix in zip(self.groups.names, self.groups.index):
            k = nan[:, ix].sum(1)
            partial = (k > 0) & (k < len(ix))
            if partial.any():
                r = int(np.flatnonzero(partial)[0])
                raise ValueError(
                    f"group {name!r} is partly missing in {int(partial.sum())} rows (first: row"
                    f" {r}); a group must be observed or missing as a whole (set all its"
                    " columns to NaN, or pass an observed mask)"
                )
        obs = self._observed_of(X)
        empty = ~obs.any(1)
        if empty.any():
            r = int(np.flatnonzero(empty)[0])
            raise ValueError(
                f"{int(empty.sum())} rows have no observed group (first: row {r}); every row"
                " needs at least one observed group"
            )
        return X

    def _observed_of(self, X: np.ndarray) -> np.ndarray:
        first = [int(ix[0]) for ix in self.groups.index]
        return ~np.isnan(X[:, first])

    def _tensors(self, X: np.ndarray, device: torch.device) -> list[torch.Tensor]:
        obs = self._observed_of(X)
        x = np.nan_to_num(X, nan=0.0)
        return [torch.as_tensor(x, device=device), torch.as_tensor(obs, device=device)]

    def _masked(self, X, observed) -> np.ndarray:
        X = self._check(X)
        if observed is None:
            return X
        return self._check(mask_groups(X, self.groups, observed))

    # -- fitting and results --------------------------------------------------------------
    def fit(self, X, *args, observed=None, **kwargs):
        """Fit to ``X`` (rows are observations; missing groups as NaN and/or ``observed``).

        Parameters
        ----------
        X
            ``(N, n_features)`` array, tensor or DataFrame; NaN marks missing groups.
        observed
            Optional ``(N, G)`` / ``(G,)`` bool mask or list of observed groups.
        **kwargs
            As :meth:`pyro_gfa.models.base.Estimator.fit` (epochs, batch_size, lr,
            sparse_lr, sparse_momentum, seed, device, progress, throttle_epochs,
            std_throttle, num_particles, callback).

        Returns
        -------
        self
        """
        X = self._masked(X, observed)
        never = ~self._observed_of(X).any(0)
        if never.any():
            # nothing would train the group's generator or encoder, yet impute would fill it
            names = [self.groups.names[g] for g in np.flatnonzero(never)]
            raise ValueError(
                f"groups {names} are missing (NaN or not in observed) in every training row;"
                " each group must be observed in at least one row of the data fit on"
            )
        return super().fit(X, *args, **kwargs)

    def observed_mask(self, X, *, observed=None) -> np.ndarray:
        """``(N, G)`` bool: the groups of each row that are observed (not NaN, in ``observed``)."""
        return self._observed_of(self._masked(X, observed))

    @torch.no_grad()
    def transform(self, X, *, observed=None) -> np.ndarray:
        """``(N, K)`` posterior means of ``z`` given the observed groups."""
        return super().transform(self._masked(X, observed))

    def posterior(self, X, *, observed=None) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of ``z``, each ``(N, K)``."""
        m = self._fitted()
        with torch.no_grad():
            x, obs = self._tensors(self._masked(X, observed), self.device)
            loc, sd = m.encode(x, obs)
        return loc.cpu().numpy(), sd.cpu().numpy()

    @torch.no_grad()
    def reconstruct(
        self, X, *, observed=None, num_samples: int | None = None, seed: int | None = 0
    ) -> np.ndarray:
        """All groups predicted from the observed ones.

        Parameters
        ----------
        X
            ``(N, n_features)``; NaN marks missing groups.
        observed
            Optional mask or list of groups to condition on (on top of the NaN).
        num_samples
            ``None``: the mean ``f(E[z | x_O])``, shape ``(N, D)``. An integer ``S``: draws
            ``x ~ p(x | z)``, ``z ~ q(z | x_O)``, shape ``(S, N, D)``.
        seed
            Seed of the draws.
        """
        m = self._fitted()
        if num_samples is not None:
            num_samples = check_int(num_samples, "num_samples")
        x, obs = self._tensors(self._masked(X, observed), self.device)
        if num_samples is None:
            return m.decode(m.encode(x, obs)[0]).cpu().numpy()
        with seeded(seed, self.device):
            q = m.posterior(m._fill(x, obs), obs)
            z = q.sample((num_samples,))
            return m.sample_x(z).cpu().numpy()

    def impute(
        self, X, *, observed=None, num_samples: int | None = None, seed: int | None = 0
    ) -> np.ndarray:
        """``X`` with the unobserved groups filled in from the observed ones.

        Observed entries are returned unchanged; the others are :meth:`reconstruct`'s mean
        (``num_samples=None``, shape ``(N, D)``) or draws (shape ``(S, N, D)``).
        """
        Xm = self._masked(X, observed)
        rec = self.reconstruct(Xm, num_samples=num_samples, seed=seed)
        fmask = self._observed_of(Xm)[:, self.groups.feature_group]
        X0 = self._check(X)
        return np.where(fmask, np.nan_to_num(X0), rec).astype(np.float32)

    def elbo(self, X, num_samples: int = 10, seed: int | None = 0, *, observed=None) -> np.ndarray:
        """``(N,)`` Monte Carlo ELBO of the observed groups of every row (nats)."""
        return super().elbo(self._masked(X, observed), num_samples=num_samples, seed=seed)

    def expected_log_lik(
        self, X, num_samples: int = 10, seed: int | None = 0, *, observed=None
    ) -> np.ndarray:
        """``(N,)`` Monte Carlo ``E_q[log p(x_O | z)]`` (nats)."""
        return super().expected_log_lik(
            self._masked(X, observed), num_samples=num_samples, seed=seed
        )

    def log_likelihood(
        self, X, num_samples: int = 100, seed: int | None = 0, *, observed=None
    ) -> np.ndarray:
        """``(N,)`` importance-sampled ``log p(x_O)`` of the observed groups of every row."""
        return super().log_likelihood(self._masked(X, observed), num_samples=num_samples, seed=seed)

    def generator_loadings(self) -> np.ndarray:
        """``(G, K)`` norms of the generator part ``||W^(g)[:, k]||`` alone."""
        m = self._fitted()
        return cell_norms(m.W.detach()[:, : m.p, :]).cpu().numpy()

    def encoder_loadings(self) -> np.ndarray:
        """``(G, K)`` norms of the encoder part ``||V^(g)[k, :]||`` alone."""
        m = self._fitted()
        return cell_norms(m.W.detach()[:, m.p :, :]).cpu().numpy()


class JMVAEPlus(FactVAE):
    """JMVAE+ (Ainsworth, Foti and Fox 2018, section 3): the factVAE with a uniform mixture of
    the single-group posteriors instead of the product of experts. Default prior: ``NoPrior()``.

    Same parameters and methods as :class:`FactVAE` (``combine`` is ``"mixture"``).
    """

    _combine = "mixture"

    @staticmethod
    def _default_prior() -> Prior:
        return NoPrior()
