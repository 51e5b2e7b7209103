"""Sparse VAE: identifiable deep generative factor model via sparse decoding (Moran et al. 2023).

Generative model, for features ``j = 1..G``::

    z_i ~ N(0, Sigma)                         Sigma = I_K by default (eq. 1)
    x_ij ~ p(x_ij | f_theta(w_j (.) z_i)_j)    one shared network, per-feature mask w_j in R^K
    W ~ prior (default SpikeSlabLasso(lambda0=1000, lambda1=100, a=1, b=G))

with a Gaussian (noise prior ``sigma_j^2 ~ InverseGamma(nu/2, nu xi/2)``, ``xi`` from the data),
Bernoulli or multinomial likelihood (:mod:`pyro_gfa.models.likelihoods`). Inference:
``q(z | x) = N(mu(x), diag(s(x)^2))``; MAP on ``W``, ``theta``, ``sigma`` and the SSL state.

Decoder (:class:`SparseDecoder`). The first layer has no bias and is linear, so feature
``j``'s first pre-activation is ``H1 (w_j (.) z_i) = sum_k H1[:, k] w_jk z_ik``: one contraction
gives all ``G`` of them as a ``(B, G, H)`` tensor. The hidden layers run on that tensor as one
matrix product, and output ``j`` needs only row ``j`` of the last weight (a per-feature dot
product). On a GPU this is one pass over all features; on a CPU the features go in blocks of
about ``block_elements`` activations, which stay in the cache (1.3 to 2.4 times faster than
one pass). Features are processed in chunks (with activation checkpointing while training)
when ``B x G x H`` exceeds ``max_elements``.
:meth:`SparseDecoder.forward_loop` is the naive per-feature loop of the authors' code, kept as
the reference the tests and the speed benchmark compare with.

Design choices (``docs/results.md``, "Sparse VAE: synthetic study", tests them)
-----------------------------------------------------------------------------
- Scaling: ``prior_scale="posterior"`` by default: the per-step objective is the per-row
  mean ELBO plus ``(1/N) [log p(W) + log p(theta) + log p(sigma^2)]``, the log posterior of
  the paper's eq. 7-8 divided by ``N``. (The authors' code averages the likelihood over
  batch x features and divides global priors by the batch size, which weights the priors
  about ``G N / B`` times more than the posterior does.) On this scale the SSL rates are
  rates of the posterior, so the defaults are ``lambda0 = 1000, lambda1 = 100`` (the paper's
  10 / 1 act on the authors' scale; on ours they leave ``W`` dense for ``N = 1000``).
- Prior covariance: ``Sigma`` is learned as a correlation matrix by default. With
  ``Sigma = I`` the prior rewards decorrelated codes, and for correlated factors the
  decorrelated basis (``z1 +- z2``) is a rotation the sparse mask then has to fight; with a
  learned correlation only the sparsity of the mask decides the basis.
- Scale of ``W``: the decoder's first layer has unit-norm columns (``normalize_first``) and
  the decoder weights carry the ``N(0, I)`` prior (``theta_prior``, as in the oi-VAE), so the
  L1 penalty cannot be dodged by shrinking ``W`` and growing the network behind it, and the
  ``p*`` threshold on ``|w|`` means the same thing for every column.
- EM schedule: ``W`` takes gradient-averaged SGD steps (step 0.3, averaging 0.9) with no
  penalty for the first ``em_warmup`` epochs (``p* = 0.5``); then after every step the
  weighted soft-threshold prox with ``lambda*`` and the EM updates of ``p*`` and ``eta``
  (Algorithm 1). The warm-up stops the spike from zeroing a column the decoder has not yet
  learned to use (a lost true factor); the large SGD step lets the mask settle into a
  sparse pattern before the networks commit to a rotated or split code.
- Noise scales start at 0.3 x the column standard deviations: starting at the standard
  deviations (the authors' choice) lets the posterior collapse (the decoder ignores ``z``)
  with a learned noise scale.
- Support rule: ``p*_jk > 0.5`` at the final ``eta`` and ``w_jk != 0`` (a threshold on
  ``|w_jk|`` set by the prior, not by hand), and factor ``k`` used at all: a factor whose
  posterior is its prior on the training data (mean KL < ``kl_tol``) is reported empty.
- VAE baseline: ``mask=False`` freezes ``W`` at ones and uses no prior (the same network;
  the decoder then shares one hidden pass over all features).
- ``input_dropout`` (off by default): while training, the encoder sees its input with a
  random fraction of the entries zeroed, the denoising encoder of Liang et al. (2018); the
  likelihood still scores the whole row, so the codes learn to predict features they did
  not see (the fold-in task of recommendation and document completion).
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import nn
from torch.utils.checkpoint import checkpoint

from .._checks import check_bool, check_float, check_int
from ..metrics import AnchorReport, anchor_report
from ..priors import NoPrior, Prior
from ..priors.ssl import SpikeSlabLasso
from .base import Estimator, GFAModule, check_matrix, seeded, user_stacklevel
from .likelihoods import Likelihood, make_likelihood
from .nets import _uniform_, check_widths, mlp

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["SparseDecoder", "SparseVAE", "SparseVAEModule"]


class SparseDecoder(nn.Module):
    """The shared decoder ``f_theta`` of the Sparse VAE, evaluated for every feature at once.

    ``f_theta(u)_j = v_j . phi(... phi(A_2 phi(H1 u)) ...) + c_j`` with ``H1`` bias-free
    (``u = w_j (.) z``), ReLU ``phi``, hidden layers ``A_l`` with biases, and a per-feature
    output row ``v_j`` and bias ``c_j`` (the authors' per-feature heads).

    Parameters
    ----------
    n_features
        ``G``.
    latent_dim
        ``K``.
    hidden
        Widths of the hidden layers (at least one); the paper's synthetic setting is
        ``(50, 50, 50)``.
    max_elements
        Most ``B x G_chunk x H`` activations of a layer held at once (about 0.5 GiB for
        three layers at the default); beyond it features are processed in chunks whose
        activations are recomputed in the backward pass (activation checkpointing).
    block_elements
        On a CPU, features are evaluated in blocks of about this many ``B x g x H``
        activations, whose temporaries then stay in the cache: 1.3 to 2.4 times faster than
        one pass over all features (``docs/results.md``, "Sparse VAE: decoder speed").
        ``None``: one pass (the order of earlier versions of the package: the same values,
        gradients summed in another order). Not used on a GPU.
    normalize_first
        Give the first layer unit-norm columns (:meth:`first_weight`), so that the scale of
        factor ``k``'s input to feature ``j`` is carried by ``w_jk`` alone.
    """

    def __init__(
        self,
        n_features: int,
        latent_dim: int,
        hidden: Sequence[int] = (50, 50, 50),
        max_elements: int = 2**25,
        normalize_first: bool = False,
        block_elements: int | None = 2**18,
    ):
        super().__init__()
        self.normalize_first = normalize_first
        hidden = check_widths(hidden, "hidden", allow_empty=False)
        self.n_features, self.latent_dim, self.hidden = n_features, latent_dim, hidden
        self.max_elements = check_int(max_elements, "max_elements")
        self.block_elements = (
            None if block_elements is None else check_int(block_elements, "block_elements")
        )
        self.first = nn.Parameter(torch.empty(hidden[0], latent_dim))
        _uniform_(self.first, latent_dim)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for din, dout in zip(hidden[:-1], hidden[1:]):
            w = torch.empty(dout, din)
            b = torch.empty(dout)
            _uniform_(w, din)
            _uniform_(b, din)
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))
        self.out_weight = nn.Parameter(torch.empty(n_features, hidden[-1]))
        self.out_bias = nn.Parameter(torch.empty(n_features))
        _uniform_(self.out_weight, hidden[-1])
        _uniform_(self.out_bias, hidden[-1])

    def first_weight(self) -> torch.Tensor:
        """``(H, K)`` first-layer weight; with ``normalize_first`` its columns have unit norm,
        so the scale of factor ``k``'s input to feature ``j`` is carried by ``w_jk`` alone."""
        if not self.normalize_first:
            return self.first
        return self.first / self.first.norm(dim=0, keepdim=True).clamp_min(1e-12)

    def _trunk(self, u: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
        """Last hidden layer ``(..., H)`` for first-layer inputs ``u`` ``(..., K)``."""
        # All layers run on 2-D (rows, H) tensors: each product is then a fresh tensor, so
        # ReLU in place saves one rows x H buffer per layer. On the 3-D views F.linear
        # returns, the in-place ReLU made autograd copy every activation back into its base
        # (about a third of a training step's time; same values either way).
        h = u.reshape(-1, u.shape[-1]).mm(first.t()).relu_()
        for w, b in zip(self.weights, self.biases):
            h = torch.addmm(b, h, w.t()).relu_()
        return h.view(*u.shape[:-1], h.shape[-1])

    def _chunk(
        self, z: torch.Tensor, W: torch.Tensor, lo: int, hi: int, block: int
    ) -> torch.Tensor:
        first = self.first_weight()
        outs = []
        # split, not a slice per block: the backward then builds each gradient once
        parts = (t[lo:hi].split(block) for t in (W, self.out_weight, self.out_bias))
        for w, v, c in zip(*parts):
            # (..., K) x (g, K) -> (..., g, K): every feature's masked input, then the network.
            h = self._trunk(z.unsqueeze(-2) * w, first)
            outs.append((h * v).sum(-1) + c)
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)

    def forward(self, z: torch.Tensor, W: torch.Tensor | None) -> torch.Tensor:
        """Decoder output ``(..., G)`` for codes ``z`` ``(..., K)`` and mask ``W`` ``(G, K)``.

        ``W=None`` means no mask (every feature sees all of ``z``): one shared hidden pass.
        """
        if W is None:
            h = self._trunk(z, self.first_weight())
            return torch.nn.functional.linear(h, self.out_weight, self.out_bias)
        G = W.shape[0]
        rows = max(1, z[..., 0].numel())
        per_feature = rows * max(self.hidden)
        chunk = max(1, self.max_elements // per_feature)
        block = chunk
        if z.device.type == "cpu" and self.block_elements is not None:
            # A GPU wants one large product; a CPU core is faster on blocks that fit its cache.
            block = min(chunk, max(1, self.block_elements // per_feature))
        if chunk >= G:
            return self._chunk(z, W, 0, G, block)
        outs = []
        for lo in range(0, G, chunk):
            hi = min(G, lo + chunk)
            if torch.is_grad_enabled():
                # Recompute the chunk's activations in the backward pass instead of storing
                # them, so memory stays at one chunk's B x chunk x H.
                outs.append(checkpoint(self._chunk, z, W, lo, hi, block, use_reentrant=False))
            else:
                outs.append(self._chunk(z, W, lo, hi, block))
        return torch.cat(outs, dim=-1)

    def forward_loop(self, z: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        """Reference: the naive loop over features (``G`` forward passes), as in the
        authors' code. Same result as :meth:`forward`."""
        outs = []
        first = self.first_weight()
        for j in range(W.shape[0]):
            h = self._trunk(z * W[j], first)
            outs.append(h @ self.out_weight[j] + self.out_bias[j])
        return torch.stack(outs, dim=-1)


class SparseVAEModule(GFAModule):
    """The Sparse VAE's Pyro model/guide pair, networks and likelihood.

    ``W`` is the ``(G, 1, K)`` mask (``p = 1`` cells, the shape of the prior interface).
    """

    def __init__(
        self,
        n_features: int,
        latent_dim: int,
        prior: Prior,
        likelihood: Likelihood,
        hidden: Sequence[int] = (50, 50, 50),
        encoder_hidden: Sequence[int] | None = None,
        mask: bool = True,
        prior_cov: torch.Tensor | None = None,
        max_elements: int = 2**25,
        theta_prior: bool = True,
        normalize_first: bool = True,
        w_init: float = 1.0,
    ):
        super().__init__()
        self.latent_dim = latent_dim
        self.n_features = n_features
        self.mask = mask
        self.theta_prior = theta_prior
        if mask:
            self.W = nn.Parameter(w_init * torch.randn(n_features, 1, latent_dim))
        else:
            self.W = nn.Parameter(torch.ones(n_features, 1, latent_dim), requires_grad=False)
        self.decoder = SparseDecoder(n_features, latent_dim, hidden, max_elements, normalize_first)
        enc_hidden = tuple(hidden) if encoder_hidden is None else tuple(encoder_hidden)
        self.encoder = mlp(n_features, enc_hidden, 2 * latent_dim)
        self.likelihood = likelihood
        self.learn_cov = isinstance(prior_cov, str) and prior_cov == "learn"
        if self.learn_cov:
            # Unconstrained lower triangle of the Cholesky factor of a correlation matrix
            # (rows normalised in prior_scale_tril), learned by MAP with a flat LKJ(1) prior.
            self.cov_raw = nn.Parameter(torch.zeros(latent_dim, latent_dim))
            self.prior_cov = None
        elif prior_cov is None:
            self.prior_cov = None
        else:
            self.register_buffer("prior_cov", torch.as_tensor(prior_cov, dtype=torch.float32))
        self.prior = copy.deepcopy(prior)  # its state is this module's; the caller's is untouched
        self.prior.setup(self.W.detach())
        self.beta = 1.0  # of the beta-VAE
        self.kl_weight = 1.0  # beta, times the KL warm-up's factor while it lasts
        self.kl_warmup_epochs = 0
        self.input_dropout = 0.0

    def start_epoch(self, epoch: int) -> None:
        """KL annealing (called by the training loop): the weight of the KL term rises
        linearly to ``beta`` over the first ``kl_warmup_epochs`` epochs."""
        if self.kl_warmup_epochs > 0:
            self.kl_weight = self.beta * min(1.0, (epoch + 1) / self.kl_warmup_epochs)
        else:
            self.kl_weight = self.beta

    # -- networks ------------------------------------------------------------------------
    def mask_matrix(self) -> torch.Tensor | None:
        """The ``(G, K)`` mask ``W[:, 0, :]`` the decoder applies to ``z`` (a view, with its
        gradient), or ``None`` for ``mask=False`` (every feature sees all of ``z``)."""
        return self.W[:, 0, :] if self.mask else None

    def decoder_out(self, z: torch.Tensor) -> torch.Tensor:
        """Raw decoder output ``f_theta(w_j (.) z)_j``, shape ``(..., G)``."""
        return self.decoder(z, self.mask_matrix())

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The likelihood's mean of :meth:`decoder_out`; for the count likelihoods, which need a
        row total, the composition ``softmax(out)`` (rows summing to 1)."""
        return self.likelihood.mean(self.decoder_out(z))

    def encoder_features(self, x: torch.Tensor) -> torch.Tensor:
        """What the inference network sees: the likelihood's
        :meth:`~pyro_gfa.models.likelihoods.Likelihood.encoder_input` of ``x``, and while
        training (``module.train()``) with each entry zeroed with probability
        ``input_dropout`` and the others scaled by ``1 / (1 - input_dropout)``."""
        h = self.likelihood.encoder_input(x)
        if self.training and self.input_dropout > 0:
            h = torch.nn.functional.dropout(h, self.input_dropout)
        return h

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, K)`` mean and standard deviation of ``q(z | x)`` from the inference network
        on :meth:`encoder_features`; ``scale = exp(clamp(., -12, 6)) * std_multiplier + 1e-4``."""
        loc, log_s = self.encoder(self.encoder_features(x)).chunk(2, dim=-1)
        return loc, log_s.clamp(-12.0, 6.0).exp() * self.std_multiplier + 1e-4

    def prior_scale_tril(self) -> torch.Tensor | None:
        """Cholesky factor of the prior covariance of ``z`` (``None`` for the identity)."""
        if self.learn_cov:
            eye = torch.eye(self.latent_dim, device=self.cov_raw.device)
            L = torch.tril(self.cov_raw, -1) + eye
            return L / L.norm(dim=1, keepdim=True)
        if self.prior_cov is None:
            return None
        return torch.linalg.cholesky(self.prior_cov)

    def z_prior(self, n: int, like: torch.Tensor) -> dist.TorchDistribution:
        """The prior ``p(z)`` of ``n`` rows: ``N(0, Sigma)`` with ``Sigma`` the learned
        correlation matrix (``prior_cov="learn"``), the fixed ``prior_cov``, or ``I_K``.

        Parameters
        ----------
        n
            Rows.
        like
            Any tensor of the device and dtype of the result (the data).

        Returns
        -------
        TorchDistribution
            Batch shape ``(n,)``, event shape ``(K,)``.
        """
        if self.learn_cov:
            return dist.MultivariateNormal(
                like.new_zeros(n, self.latent_dim), scale_tril=self.prior_scale_tril()
            )
        if self.prior_cov is None:
            return dist.Normal(like.new_zeros(n, self.latent_dim), 1.0).to_event(1)
        return dist.MultivariateNormal(
            like.new_zeros(n, self.latent_dim), covariance_matrix=self.prior_cov
        )

    def theta_log_prob(self) -> torch.Tensor:
        """``log N(theta; 0, I)`` of the decoder's weights and biases (0 without the prior)."""
        if not self.theta_prior:
            return self.W.new_zeros(())
        params = list(self.decoder.parameters())
        sq = sum(p.pow(2).sum() for p in params)
        n = sum(p.numel() for p in params)
        return -0.5 * sq - 0.5 * n * math.log(2 * math.pi)

    def global_log_prior(self) -> torch.Tensor:
        """``log p(W) + log p(theta) + log p(noise)`` (the global terms, unscaled)."""
        return self.prior.log_factor(self.W) + self.theta_log_prob() + self.likelihood.log_prior()

    # -- Pyro ----------------------------------------------------------------------------
    def model(self, x: torch.Tensor) -> None:
        """Factors ``"W_prior"``, ``"theta_prior"`` and ``"noise_prior"`` (the likelihood's
        :meth:`~pyro_gfa.models.likelihoods.Likelihood.log_prior`), then ``"z"`` from
        :meth:`z_prior`, further scaled by ``kl_weight`` (beta times the KL warm-up), and the
        observed ``"x"`` from the likelihood of :meth:`decoder_out` (see :class:`GFAModule` for
        the plate and scaling)."""
        n = x.shape[0]
        pyro.factor("W_prior", self.prior_weight * self.prior.log_factor(self.W))
        pyro.factor("theta_prior", self.prior_weight * self.theta_log_prob())
        pyro.factor("noise_prior", self.prior_weight * self.likelihood.log_prior())
        with pyro.plate("data", n, device=x.device), poutine.scale(scale=1.0 / n):
            with poutine.scale(scale=self.kl_weight):
                z = pyro.sample("z", self.z_prior(n, x))
            pyro.sample("x", self.likelihood.dist(self.decoder_out(z), x), obs=x)

    def posterior(self, x: torch.Tensor) -> dist.TorchDistribution:
        """``q(z | x)`` for the rows of ``x`` (batch shape ``(N,)``, event shape ``(K,)``)."""
        loc, scale = self.encode(x)
        return dist.Normal(loc, scale).to_event(1)

    def guide(self, x: torch.Tensor) -> None:
        """Site ``"z"`` from :meth:`posterior`, in the plate and scales of :meth:`model`
        (``kl_weight`` included)."""
        n = x.shape[0]
        with pyro.plate("data", n, device=x.device), poutine.scale(scale=1.0 / n):
            q = self.posterior(x)
            with poutine.scale(scale=self.kl_weight):
                pyro.sample("z", q)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Negative objective of :meth:`model`/:meth:`guide` in plain torch (same value and
        gradient as ``TraceMeanField_ELBO``; checked by the trainer on the first batch)."""
        q = self.posterior(x)
        z = q.rsample()
        loglik = self.likelihood.dist(self.decoder_out(z)).log_prob(x)
        kl = torch.distributions.kl_divergence(q, self.z_prior(x.shape[0], x))
        objective = (loglik - self.kl_weight * kl).mean()
        objective = objective + self.prior_weight * self.global_log_prior()
        return -objective

    def sample_x(
        self, z: torch.Tensor, total_count: int | npt.ArrayLike | None = None
    ) -> torch.Tensor:
        """Draws ``x ~ p(x | z)`` from the likelihood of :meth:`decoder_out`.

        Parameters
        ----------
        z
            ``(..., K)`` codes.
        total_count
            Row totals of a count likelihood: one non-negative integer or one per row
            (default: the training data's mean row total, rounded). Exact for the
            multinomial; for the negative binomial the library size its means are scaled
            to, so the draws' sums vary around it. The Gaussian and Bernoulli likelihoods
            reject it.

        Returns
        -------
        Tensor
            ``(..., G)`` draws.
        """
        return self.likelihood.sample(self.decoder_out(z), total_count)

    def loadings(self) -> torch.Tensor:
        """``(G, K)`` the mask ``W[:, 0, :]`` itself, signed (detached), not cell norms."""
        return self.W.detach()[:, 0, :]


class SparseVAE(Estimator):
    """Sparse VAE (Moran, Sridhar, Wang and Blei 2022): a per-feature sparse mask on a shared
    decoder, with the spike-and-slab lasso prior.

    Parameters
    ----------
    n_features
        Number of observed features ``G``.
    latent_dim
        Number of latent factors ``K`` (an overestimate is fine: the prior empties the
        columns it does not need; with correlated factors a generous one helps, e.g. 10
        codes for 2 true factors recover both more often than 5, ``docs/results.md``).
    hidden
        Hidden layer widths of the decoder (and of the encoder unless ``encoder_hidden``);
        the paper uses 3 layers of 50 (synthetic), 100 (PeerRead, Zeisel) or 300 (MovieLens).
    likelihood
        ``"gaussian"`` (default), ``"bernoulli"``, ``"multinomial"``, ``"negative_binomial"`` or a
        :class:`~pyro_gfa.models.likelihoods.Likelihood`.
    prior
        Prior on ``W`` (default ``SpikeSlabLasso(lambda0=1000, lambda1=100)``, ``a = 1``,
        ``b = G``: rates on the posterior scale, see the module notes); ``Lasso(lam)`` and
        ``NoPrior()`` are the ablations.
    mask
        ``False`` gives the VAE baseline on the same network: ``W`` is frozen at ones and
        there is no prior on it.
    prior_cov
        ``"learn"`` (default): ``Sigma`` is a correlation matrix (unit diagonal) estimated by
        MAP with the rest (eq. 1 of the paper has a general ``Sigma``); ``None``: the
        identity (the paper's experiments); or a fixed ``(K, K)`` covariance matrix.
    encoder_hidden
        Hidden widths of the inference network (default: ``hidden``).
    em_warmup
        Epochs of plain gradient steps on ``W`` before the spike-and-slab EM updates and
        the proximal step start (SSL priors only).
    kl_warmup
        Epochs over which the weight of the KL term rises linearly from ``1 / kl_warmup``
        to 1 (KL annealing, as in Liang et al. 2018 for the multinomial likelihood);
        ``0``: no annealing. It keeps the codes from collapsing to the prior early on.
    input_dropout
        Probability with which each entry of the encoder's input is zeroed while training
        (the denoising encoder of Liang et al. 2018, who use 0.5; ``0``: off). The
        likelihood scores the whole row; ``transform``, ``elbo`` and ``log_likelihood``
        see the whole row.
    prior_scale
        ``"posterior"`` (default; global priors divided by ``N``, the log posterior per row)
        or ``"paper"`` (global priors counted once against the per-row mean ELBO); see
        :mod:`pyro_gfa.models.base`.
    theta_prior
        ``N(0, I)`` prior on the decoder's weights and biases.
    normalize_first
        Unit-norm columns of the decoder's first layer (the scale of factor ``k`` in
        feature ``j`` is then carried by ``w_jk``).
    w_init
        Standard deviation of the normal initialisation of ``W``.
    max_elements
        Most ``batch x features x hidden`` activations of a decoder layer held at once
        (:class:`SparseDecoder`; larger batches are processed in checkpointed chunks).

    Attributes
    ----------
    code_kl_ : numpy.ndarray
        ``(K,)`` mean ``KL(q(z_k | x) || p(z_k))`` per row on the training data, after fit.

    Examples
    --------
    >>> import pyro_gfa as gfa
    >>> from pyro_gfa.data.synthetic_sparse import make_sparse_vae_data
    >>> X, Z, W_true = make_sparse_vae_data(n=1000, rho=0.0, seed=0)
    >>> m = gfa.SparseVAE(n_features=7, latent_dim=5, em_warmup=1)
    >>> m = m.fit(X, epochs=2, progress=False)  # a short fit: the EM starts after 1 epoch
    >>> m.loadings().shape
    (7, 5)
    """

    module_class: type[SparseVAEModule] = SparseVAEModule
    default_lr = 1e-2
    default_sparse_lr = 0.3
    default_sparse_momentum = 0.9
    #: a factor whose mean KL(q(z_k | x) || p(z_k)) per row is below this (nats) is inactive
    kl_tol = 1e-2

    def __init__(
        self,
        n_features: int,
        latent_dim: int,
        hidden: Sequence[int] = (50, 50, 50),
        likelihood: str | Likelihood = "gaussian",
        prior: Prior | None = None,
        mask: bool = True,
        prior_cov: str | np.ndarray | None = "learn",
        encoder_hidden: Sequence[int] | None = None,
        em_warmup: int = 20,
        kl_warmup: int = 0,
        input_dropout: float = 0.0,
        prior_scale: str = "posterior",
        theta_prior: bool = True,
        normalize_first: bool = True,
        w_init: float = 1.0,
        max_elements: int = 2**25,
    ):
        n_features = check_int(n_features, "n_features")
        if not mask:
            if prior is not None and not isinstance(prior, NoPrior):
                who = "mask=False" if type(self) is SparseVAE else type(self).__name__
                raise ValueError(
                    f"{who} (W fixed at ones) has no W to put a prior on; use SparseVAE"
                )
            prior = NoPrior()
        elif prior is None:
            prior = SpikeSlabLasso(lambda0=1000.0, lambda1=100.0)
        super().__init__(latent_dim, prior, prior_scale)
        self.n_features = n_features
        self.hidden = check_widths(hidden, "hidden", allow_empty=False)
        if encoder_hidden is not None:
            encoder_hidden = check_widths(encoder_hidden, "encoder_hidden")
        self.encoder_hidden = encoder_hidden
        self.likelihood = make_likelihood(likelihood, self.n_features)
        self.mask = check_bool(mask, "mask")
        if isinstance(prior_cov, str):
            if prior_cov != "learn":
                raise ValueError(f"prior_cov must be None, 'learn' or a matrix, got {prior_cov!r}")
        elif prior_cov is not None:
            cov = torch.from_numpy(
                check_matrix(prior_cov, self.latent_dim, name="prior_cov", columns="factors")
            )
            if cov.shape != (self.latent_dim, self.latent_dim):
                raise ValueError(f"prior_cov must be {self.latent_dim} x {self.latent_dim}")
            if not torch.allclose(cov, cov.T) or torch.linalg.eigvalsh(cov).min() <= 0:
                raise ValueError("prior_cov must be a symmetric positive definite matrix")
            prior_cov = cov
        self.prior_cov = prior_cov
        self.em_warmup = check_int(em_warmup, "em_warmup", 0)
        self.kl_warmup = check_int(kl_warmup, "kl_warmup", 0)
        self.input_dropout = check_float(input_dropout, "input_dropout", 0.0, 1.0, allow_low=True)
        self.max_elements = check_int(max_elements, "max_elements")
        self.theta_prior = check_bool(theta_prior, "theta_prior")
        self.normalize_first = check_bool(normalize_first, "normalize_first")
        self.w_init = check_float(w_init, "w_init", allow_low=True)
        self._fit_data: np.ndarray | None = None
        self._steps_per_epoch = 1

    def _check(self, X) -> np.ndarray:
        if not self.likelihood.counts:
            X = check_matrix(X, self.n_features, names=self._expected_names())
            self.likelihood.check(X)
            return X
        # counts are checked before the cast to float32, which rounds fractions of large
        # counts away, and must survive it exactly
        X64 = check_matrix(X, self.n_features, names=self._expected_names(), dtype=np.float64)
        self.likelihood.check(X64)
        X = X64.astype(np.float32)
        if (X != X64).any():
            r, c = np.argwhere(X != X64)[0]
            raise ValueError(
                f"the {self.likelihood.name} likelihood needs counts that float32 holds exactly"
                f" (all up to 2**24 = {2**24}); X[{r}, {c}] = {X64[r, c]:.0f}"
            )
        return X

    def _build_module(self) -> SparseVAEModule:
        lik = copy.deepcopy(self.likelihood)
        if self._fit_data is not None:
            lik.setup(self._fit_data)
        module = self.module_class(
            self.n_features,
            self.latent_dim,
            self.prior,  # the module takes its own copy
            lik,
            hidden=self.hidden,
            encoder_hidden=self.encoder_hidden,
            mask=self.mask,
            prior_cov=self.prior_cov,
            max_elements=self.max_elements,
            theta_prior=self.theta_prior,
            normalize_first=self.normalize_first,
            w_init=self.w_init,
            **self._module_options(),
        )
        module.kl_warmup_epochs = self.kl_warmup
        module.input_dropout = self.input_dropout
        if isinstance(module.prior, SpikeSlabLasso):
            module.prior.em_warmup_steps = self.em_warmup * self._steps_per_epoch
        return module

    def _module_options(self) -> dict:
        """Extra keyword arguments of :attr:`module_class` (none for the Sparse VAE)."""
        return {}

    def fit(
        self,
        X,
        epochs: int = 200,
        batch_size: int = 100,
        throttle_epochs: int = 0,
        std_throttle: float = 1.0,
        **kwargs,
    ):
        """Fit to ``X`` (rows are observations); other options as in :meth:`Estimator.fit`.

        Defaults are the paper's synthetic settings (200 epochs, batch 100, Adam 1e-2 on
        the networks) plus proximal SGD on ``W`` (step ``0.3``, gradient averaging 0.9)
        and no posterior-std throttling.
        """
        Xc = self._check(X)
        self._fit_data = Xc
        self.code_kl_ = None  # a refit must not carry the old one
        self._steps_per_epoch = math.ceil(Xc.shape[0] / check_int(batch_size, "batch_size"))
        try:
            super().fit(
                X,
                epochs=epochs,
                batch_size=batch_size,
                throttle_epochs=throttle_epochs,
                std_throttle=std_throttle,
                **kwargs,
            )
        finally:  # Estimator.fit has derived code_kl_ from _fit_data
            self._fit_data = None
        prior = self.module.prior if self.module is not None else None
        if isinstance(prior, SpikeSlabLasso) and not prior.em_active and not self.interrupted_:
            warnings.warn(
                "the spike-and-slab EM has not started in the parameters this fit returns"
                f" ({int(prior.steps)} of its {prior.em_warmup_steps} warm-up steps,"
                f" em_warmup = {self.em_warmup} epochs), so W is not sparse yet and"
                " support() is every entry; fit on (warm_start=True) or lower em_warmup",
                UserWarning,
                stacklevel=user_stacklevel(),
            )
        elif not self.interrupted_ and not self.support().any():
            message = self._collapse_message(Xc.shape[0])
            warnings.warn(message, UserWarning, stacklevel=user_stacklevel())
        return self

    def _collapse_message(self, n_rows: int) -> str:
        """Why a fit can end with no active factor, and what to change."""
        return (
            "the fit ended with no active factor: no column of W is nonzero with a code that "
            f"carries information (mean KL(q(z_k | x) || p(z_k)) > kl_tol = {self.kl_tol}), so "
            f"the decoder ignores z. Try {', '.join(self._collapse_hints(n_rows))}."
        )

    def _collapse_hints(self, n_rows: int) -> list[str]:
        hints = ["kl_warmup > 0", "a smaller network", "more epochs"]
        if isinstance(self.prior, SpikeSlabLasso) and self.prior.lambda0 > 1.0:
            # a weak spike (a lasso-like prior) is not what emptied the columns
            hints.insert(
                0,
                f"a smaller lambda0 (lambda0 = {self.prior.lambda0:g} may be too strong for "
                f"{n_rows} rows; e.g. SpikeSlabLasso(lambda0=50, lambda1=5))",
            )
        return hints

    def _refresh_fitted(self) -> None:
        if self._fit_data is not None and self.module is not None:
            self.code_kl_ = self._code_kl(self._fit_data)

    @torch.no_grad()
    def _code_kl(self, X: np.ndarray) -> np.ndarray:
        m = self._fitted()
        x = torch.as_tensor(X, device=self.device)
        loc, scale = m.encode(x)
        # against the prior's marginal N(0, Sigma_kk) of each code
        L = m.prior_scale_tril()
        var = torch.ones_like(loc[0]) if L is None else (L**2).sum(1)
        kl = 0.5 * ((loc**2 + scale**2) / var - 1.0 + var.log()) - scale.log()
        return kl.mean(0).cpu().numpy()

    # -- results -----------------------------------------------------------------------
    def loadings(self) -> np.ndarray:
        """``(G, K)`` the mask ``W`` (signed; ones for ``mask=False``)."""
        return self._fitted().loadings().cpu().numpy()

    def inclusion_probabilities(self) -> np.ndarray:
        """``(G, K)`` ``p*_jk = E[gamma_jk | w_jk, eta_k]`` under the SSL prior."""
        m = self._fitted()
        if not isinstance(m.prior, SpikeSlabLasso):
            raise TypeError("inclusion probabilities need a SpikeSlabLasso prior")
        with torch.no_grad():
            return m.prior.inclusion_probability(m.W.detach()).cpu().numpy()

    def support(self) -> np.ndarray:
        """``(G, K)`` bool estimated nonzero pattern of ``W``.

        Entry ``(j, k)`` is active when the prior's rule says so (``p*_jk > 0.5`` and
        ``w_jk != 0`` under the SSL prior, ``w_jk != 0`` under the others) and factor ``k``
        is used at all: its mean ``KL(q(z_k | x) || p(z_k))`` on the training data
        (``code_kl_``) is above ``kl_tol``. A factor whose posterior is its prior for every
        row carries no information, so its column of ``W`` is not identified (the decoder
        can scale its first-layer input to nothing) and is reported empty.
        """
        s = super().support()
        kl = getattr(self, "code_kl_", None)
        if kl is not None and s.shape[1] == kl.shape[0]:
            s = s & (kl > self.kl_tol)[None, :]
        return s

    def identifiability(self) -> AnchorReport:
        """Anchor features of every active factor (Theorems 1-2: each needs at least two)."""
        return anchor_report(self.support())

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None, total_count=None) -> np.ndarray:
        """``(n, n_features)`` draws of ``x`` from the generative model (``z ~ N(0, Sigma)``).

        ``total_count`` sets the row totals of a count likelihood (a non-negative integer,
        or one per row; exact for the multinomial, the library size around which the
        negative binomial's draws vary); by default every row gets the training data's mean
        row total, rounded.
        The Gaussian and Bernoulli likelihoods have no row totals and reject it.
        """
        m = self._fitted()
        n = check_int(n, "n", 0)
        with seeded(seed, self.device):
            z = torch.randn(n, m.latent_dim, device=self.device)
            L = m.prior_scale_tril()
            if L is not None:
                z = z @ L.T
            return m.sample_x(z, total_count).cpu().numpy()

    @torch.no_grad()
    def decode(self, Z, total_count=None) -> np.ndarray:
        """``(N, G)`` mean of ``x`` given codes ``Z`` of shape ``(N, K)``; for a count
        likelihood the composition (rows summing to 1), or with ``total_count`` (a
        non-negative integer, or one per row) the expected counts. The Gaussian and
        Bernoulli likelihoods reject ``total_count``."""
        m = self._fitted()
        return m.likelihood.expected(m.decoder_out(self._codes(Z)), total_count).cpu().numpy()

    @torch.no_grad()
    def reconstruct(self, X) -> np.ndarray:
        """``(N, G)`` mean of ``x`` decoded from the posterior mean of ``z`` (for the
        multinomial likelihood, with each row's observed total)."""
        m = self._fitted()
        x = torch.as_tensor(self._check(X), device=self.device)
        out = m.decoder_out(m.encode(x)[0])
        return m.likelihood.mean(out, x).cpu().numpy()


class VAE(SparseVAE):
    """The VAE and beta-VAE baselines on the Sparse VAE's networks.

    The same encoder, decoder and likelihoods as :class:`SparseVAE` with the mask fixed at
    ones and no prior on it (``SparseVAE(mask=False)``), and the KL term of the ELBO
    weighted by ``beta`` (Higgins et al. 2017; ``beta = 1`` is the VAE). The prior on ``z``
    is ``N(0, I)`` unless ``prior_cov`` says otherwise.

    Parameters
    ----------
    n_features, latent_dim, hidden, likelihood, prior_cov
        As for :class:`SparseVAE` (here ``prior_cov=None`` is ``N(0, I)``).
    beta
        Weight of ``KL(q(z | x) || p(z))``; ``elbo`` and ``log_likelihood`` always report
        the unweighted (``beta = 1``) quantities.
    **kwargs
        Other :class:`SparseVAE` options (``encoder_hidden``, ...).
    """

    def __init__(
        self,
        n_features: int,
        latent_dim: int,
        beta: float = 1.0,
        hidden: Sequence[int] = (50, 50, 50),
        likelihood: str | Likelihood = "gaussian",
        prior_cov=None,
        **kwargs,
    ):
        beta = check_float(beta, "beta")
        if "mask" in kwargs:
            raise TypeError(
                f"{type(self).__name__} has no mask argument (its W is fixed at ones); for a"
                " learned sparse W use SparseVAE"
            )
        super().__init__(
            n_features,
            latent_dim,
            hidden=hidden,
            likelihood=likelihood,
            mask=False,
            prior_cov=prior_cov,
            **kwargs,
        )
        self.beta = beta

    def _build_module(self) -> SparseVAEModule:
        module = super()._build_module()
        module.beta = module.kl_weight = self.beta
        return module

    def _collapse_hints(self, n_rows: int) -> list[str]:
        hints = super()._collapse_hints(n_rows)
        return ["a smaller beta", *hints] if self.beta > 1.0 else hints
