"""Sparse linear factor analysis: the linear limit of the Sparse VAE, fitted by exact EM.

Model (rows ``x_i`` of ``X``, ``G`` features, ``K`` factors)::

    z_i ~ N(0, I_K),    x_i | z_i ~ N(mu + W z_i, diag(psi)),    W ~ sparsity prior,

the Sparse VAE's model with the decoder ``f_theta`` replaced by the identity, so that the
mask and the loadings are one matrix ``W`` (MOFA+'s model class with the spike-and-slab
lasso of Rockova & George 2016 on the loadings). Everything is in closed form:

* E-step: ``z_i | x_i ~ N(Sigma W^T Psi^-1 (x_i - mu), Sigma)`` with
  ``Sigma = (I + W^T Psi^-1 W)^-1``, and for the spike-and-slab lasso the inclusion
  probabilities ``p*`` and weights ``lambda* = lambda_1 p* + lambda_0 (1 - p*)``.
* M-step: each row ``w_j`` minimises ``(w^T S_zz w - 2 w^T s_j) / (2 psi_j) +
  sum_k lambda*_jk |w_jk|`` (``S_zz = sum_i E[z_i z_i^T]``, ``s_j = sum_i x_ij E[z_i]``), a
  weighted lasso solved by coordinate descent (exact zeros); then ``psi_j`` and ``eta`` in
  closed form. No step lowers the log posterior (an ECM algorithm), which
  :attr:`SparseFA.history_` records.

The data are centred per feature and divided by **one** global scale (the sd of all centred
entries) before fitting, so the prior's rates do not depend on the units of ``X`` while the
features keep their relative variances; :meth:`SparseFA.loadings` is in the units of ``X``.
EM starts from the varimax rotation of the principal components: the likelihood is the same
for every rotation of ``W``, and EM moves along rotations only slowly.
"""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import torch
from tqdm.auto import tqdm

from .._checks import check_bool, check_float, check_int
from ..priors import Lasso, NoPrior, SpikeSlabLasso
from .base import NamedUnits, check_matrix, check_other_fit_options, feature_names_of, seeded

__all__ = ["SparseFA", "e_step", "m_step_loadings", "moments", "varimax"]


def e_step(Xc: torch.Tensor, W: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
    """``(N, K)`` posterior means ``E[z | x] = Sigma W^T Psi^-1 x`` of centred rows ``Xc``."""
    Wp = W / psi[:, None]
    return Xc @ Wp @ torch.linalg.inv(torch.eye(W.shape[1], dtype=W.dtype) + W.T @ Wp)


def moments(
    XtX: torch.Tensor, n: int, W: torch.Tensor, psi: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """E-step over all rows from their scatter matrix ``XtX = Xc^T Xc`` (cost free of ``n``).

    Parameters
    ----------
    XtX
        ``(G, G)`` scatter matrix of the centred rows.
    n
        Number of rows.
    W
        ``(G, K)`` loadings.
    psi
        ``(G,)`` noise variances (the diagonal of ``Psi``).

    Returns
    -------
    Szz : Tensor
        ``(K, K)`` ``sum_i E[z_i z_i^T]``.
    Sxz : Tensor
        ``(G, K)`` ``sum_i x_i E[z_i]^T``.
    loglik : Tensor
        Scalar marginal log-likelihood ``sum_i log N(x_i; 0, W W^T + Psi)`` (Woodbury and
        the matrix determinant lemma with ``M = I + W^T Psi^-1 W``).
    """
    G, K = W.shape
    Wp = W / psi[:, None]
    L = torch.linalg.cholesky(torch.eye(K, dtype=W.dtype) + W.T @ Wp)
    Sigma = torch.cholesky_inverse(L)
    CWp = XtX @ Wp
    B = Wp.T @ CWp
    quad = (XtX.diagonal() / psi).sum() - (Sigma * B).sum()
    logdet = 2 * L.diagonal().log().sum() + psi.log().sum()
    ll = -0.5 * (n * G * math.log(2 * math.pi) + n * logdet + quad)
    return n * Sigma + Sigma @ B @ Sigma, CWp @ Sigma, ll


def m_step_loadings(
    W: torch.Tensor,
    Szz: torch.Tensor,
    Sxz: torch.Tensor,
    psi: torch.Tensor,
    penalty: torch.Tensor,
    sweeps: int = 3,
) -> torch.Tensor:
    """Coordinate descent on every row's weighted lasso (a new ``(G, K)`` tensor).

    Row ``j`` minimises ``(w^T Szz w - 2 w^T Sxz[j]) / (2 psi_j) + sum_k penalty_jk |w_k|``;
    each coordinate update is exact, so every sweep lowers the objective.
    """
    W = W.clone()
    for _ in range(sweeps):
        for k in range(W.shape[1]):
            r = Sxz[:, k] - W @ Szz[:, k] + W[:, k] * Szz[k, k]
            W[:, k] = torch.sign(r) * (r.abs() - psi * penalty[:, k]).clamp_min(0) / Szz[k, k]
    return W


def varimax(W: torch.Tensor, max_iter: int = 100, tol: float = 1e-8) -> torch.Tensor:
    """The orthogonal rotation ``W R`` of the columns of ``W`` that maximises the varimax
    criterion (the variance of the squared loadings), Kaiser's rotation towards sparsity."""
    G, K = W.shape
    R = torch.eye(K, dtype=W.dtype)
    crit = 0.0
    for _ in range(max_iter):
        L = W @ R
        U, S, Vt = torch.linalg.svd(W.T @ (L**3 - L * (L**2).sum(0) / G))
        R = U @ Vt
        if S.sum() < crit * (1 + tol):
            break
        crit = S.sum()
    return W @ R


class SparseFA(NamedUnits):
    """Sparse linear factor analysis with closed-form EM (see the module docstring).

    Parameters
    ----------
    latent_dim
        Number of factors ``K``. With more than the data need, the spike-and-slab lasso
        empties the spare columns (a spare column may keep one feature, whose noise it
        then models).
    prior
        Prior on the loadings: :class:`~pyro_gfa.priors.SpikeSlabLasso` (default
        ``SpikeSlabLasso(lambda0=200, lambda1=5)``; rates for data of global sd 1),
        :class:`~pyro_gfa.priors.Lasso` or :class:`~pyro_gfa.priors.NoPrior` (maximum
        likelihood factor analysis). The spike-and-slab lasso's ``em_warmup_steps`` is not
        used: its EM updates run from the first iteration.
    min_noise
        Floor of the noise variances ``psi_j`` (in units of the global scale), which keeps
        a feature that one factor explains exactly from taking the likelihood to infinity.

    Attributes
    ----------
    history_ : list of dict
        One record at the start and after every iteration (``epoch``: the iteration, one
        pass over the data): ``log_posterior`` (log-likelihood plus log prior, on the scaled
        data; non-decreasing), ``loss`` (its negative per row, as the deep models record)
        and ``n_active`` (the size of the support); :func:`pyro_gfa.plots.plot_history`
        draws it.
    n_iter_ : int
        Iterations run.
    interrupted_ : bool
        Whether the last fit was stopped by Ctrl-C (``KeyboardInterrupt``); the model then
        holds the last completed iteration, whose record ends ``history_``. A fit that
        raises leaves the model as it was before the call.

    Examples
    --------
    ::

        m = SparseFA(latent_dim=15).fit(X)
        z = m.transform(X_test)            # posterior means
        m.loadings(), m.support()          # (G, K): exact zeros, the slab's entries
        m.log_likelihood(X_test).mean()    # exact held-out log-likelihood
    """

    def __init__(self, latent_dim: int, prior=None, min_noise: float = 1e-3):
        check_int(latent_dim, "latent_dim")
        prior = SpikeSlabLasso(lambda0=200.0, lambda1=5.0) if prior is None else prior
        if not isinstance(prior, (SpikeSlabLasso, Lasso, NoPrior)):
            raise TypeError(
                "SparseFA takes a SpikeSlabLasso, Lasso or NoPrior prior (a weighted L1"
                f" penalty in closed form), got {type(prior).__name__}"
            )
        self.latent_dim = int(latent_dim)
        self.prior = prior
        self.min_noise = check_float(min_noise, "min_noise")
        self.n_features: int | None = None
        self.W_: torch.Tensor | None = None

    # -- fitting -------------------------------------------------------------------------
    @staticmethod
    def _penalty(W: torch.Tensor, prior) -> torch.Tensor:
        """L1 weights of the M-step; for the spike-and-slab lasso after its E-step (``p*``
        from ``W``) and its ``eta`` update."""
        if isinstance(prior, SpikeSlabLasso):
            prior.em_step(W.unsqueeze(1))
            return prior.lambda_star()
        lam = prior.lam if isinstance(prior, Lasso) else 0.0
        return torch.full_like(W, lam)

    def fit(
        self,
        X,
        max_iter: int = 300,
        tol: float = 1e-7,
        sweeps: int = 3,
        progress: bool = True,
        seed: int | None = 0,
        **_ignored,
    ) -> SparseFA:
        """Fit by EM from the varimax-rotated principal components of ``X``.

        Parameters
        ----------
        X
            ``(N, G)`` data, rows are observations (no NaN).
        max_iter
            Most EM iterations.
        tol
            Stop when the log posterior rises by less than ``tol`` times its magnitude.
        sweeps
            Coordinate-descent sweeps over the columns of ``W`` per M-step.
        progress
            Show a progress bar.
        seed, **_ignored
            Accepted and ignored so that one call fits every model of the library (the deep
            models' ``epochs``, ``batch_size``, ...; a name their ``fit`` does not take
            raises ``TypeError``); the fit is deterministic (it starts from the rotated
            principal components).

        Notes
        -----
        A fit that raises leaves the model as it was; Ctrl-C keeps the last completed
        iteration (``interrupted_``).
        """
        check_other_fit_options("SparseFA", _ignored)
        check_int(max_iter, "max_iter", 0)
        check_int(sweeps, "sweeps")
        check_float(tol, "tol", allow_low=True)
        check_bool(progress, "progress")
        names = feature_names_of(X)
        X = check_matrix(X, None, dtype=np.float64)  # EM in float64 from the user's values
        N, G = X.shape
        K = self.latent_dim
        if K >= G:
            raise ValueError(f"latent_dim ({K}) must be smaller than the number of features ({G})")
        if N <= K:  # the principal components that start EM need K < N
            raise ValueError(f"X needs more rows than latent_dim ({K}), got {N}")
        # everything is fitted into locals and set together at the end, so that a fit that
        # fails leaves the model as it was, and an interrupted one at its last iteration
        mean = X.mean(0)
        Xc = X - mean
        scale = float(Xc.std()) or 1.0
        Xc = torch.from_numpy(Xc / scale)
        _, S, Vt = torch.linalg.svd(Xc, full_matrices=False)
        # from a dense start EM would keep a dense rotation of a sparse solution
        W = varimax(Vt[:K].T * S[:K] / N**0.5)
        psi = (Xc.var(0, correction=0) - (W**2).sum(1)).clamp_min(self.min_noise)
        prior = copy.deepcopy(self.prior)  # two fits never share the prior's state
        if isinstance(prior, SpikeSlabLasso):
            prior.setup(W.unsqueeze(1))
        XtX = Xc.T @ Xc
        history: list[dict] = []
        done = (W, psi, 0)  # the last iterate whose record is in history
        interrupted = False
        bar = tqdm(total=max_iter, disable=not progress, desc="SparseFA")
        try:
            for it in range(max_iter + 1):
                Szz, Sxz, ll = moments(XtX, N, W, psi)
                lp = float(ll + prior.nonsmooth_log_prob(W.unsqueeze(1)))
                n_active = int(self._support(W, prior).sum())
                history.append(
                    {"epoch": it, "loss": -lp / N, "log_posterior": lp, "n_active": n_active}
                )
                done = (W, psi, it)
                bar.set_postfix(log_post=f"{lp:.6g}", refresh=False)  # redrawn by update()
                change = abs(lp - history[-2]["log_posterior"]) if it else math.inf
                if it == max_iter or change <= tol * abs(lp):
                    break
                W_next = m_step_loadings(W, Szz, Sxz, psi, self._penalty(W, prior), sweeps)
                psi = (
                    XtX.diagonal() - 2 * (W_next * Sxz).sum(1) + ((W_next @ Szz) * W_next).sum(1)
                ) / N
                W, psi = W_next, psi.clamp_min(self.min_noise)
                bar.update()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            bar.close()
        if interrupted:
            kept = f"iteration {done[2]}" if history else "the SparseFA as it was before the call"
            warnings.warn(f"fit interrupted; it keeps {kept} (interrupted_ is True)", stacklevel=2)
            if not history:
                self.interrupted_ = True
                return self
        elif max_iter and change > tol * abs(lp):
            warnings.warn(
                f"SparseFA stopped at max_iter={max_iter} before converging: the log posterior"
                f" still rose by {change / abs(lp):.2g} of itself in the last iteration (tol ="
                f" {tol:g}); pass a larger max_iter to fit it further",
                stacklevel=2,
            )
        self.n_features, self.feature_names_ = G, names
        self.mean_, self.scale_, self.prior_, self.history_ = mean, scale, prior, history
        self.W_, self.psi_, self.n_iter_ = done
        self.interrupted_ = interrupted
        return self

    # -- results -------------------------------------------------------------------------
    def _fitted(self):
        if self.W_ is None:
            raise RuntimeError("this SparseFA is not fitted yet: call fit(X) first")

    def _scaled(self, X) -> torch.Tensor:
        self._fitted()
        X = check_matrix(X, self.n_features, dtype=np.float64, names=self.feature_names_)
        return torch.from_numpy((X - self.mean_) / self.scale_)

    def transform(self, X) -> np.ndarray:
        """``(N, K)`` posterior means ``E[z | x]`` of the rows of ``X``."""
        return e_step(self._scaled(X), self.W_, self.psi_).numpy()

    def loadings(self) -> np.ndarray:
        """``(G, K)`` loadings ``W`` in the units of ``X``. The M-step's zeros are exact; under
        the spike-and-slab lasso a small non-zero loading may still sit in the spike
        (``p* <= 0.5``), outside :meth:`support`."""
        self._fitted()
        return (self.W_ * self.scale_).numpy()

    def noise_variance(self) -> np.ndarray:
        """``(G,)`` noise variances ``psi`` in the units of ``X``."""
        self._fitted()
        return (self.psi_ * self.scale_**2).numpy()

    @staticmethod
    def _support(W: torch.Tensor, prior) -> torch.Tensor:
        if isinstance(prior, SpikeSlabLasso):
            return prior.support(W.unsqueeze(1))
        return W != 0

    def support(self) -> np.ndarray:
        """``(G, K)`` bool: non-zero loadings (for the spike-and-slab lasso also
        ``p* > 0.5``)."""
        self._fitted()
        return self._support(self.W_, self.prior_).numpy()

    def reconstruct(self, X) -> np.ndarray:
        """``(N, G)`` ``mu + W E[z | x]`` in the units of ``X``."""
        return self.decode(self.transform(X))

    def decode(self, Z) -> np.ndarray:
        """``(N, G)`` mean ``mu + W z`` of ``x`` given codes ``Z`` of shape ``(N, K)``, in the
        units of ``X``."""
        self._fitted()
        Z = check_matrix(Z, self.latent_dim, name="Z", dtype=np.float64, columns="factors")
        return self.mean_ + Z @ self.loadings().T

    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        """``(n, G)`` draws of ``x = mu + W z + e`` in the units of ``X``."""
        self._fitted()
        check_int(n, "n", 0)
        with seeded(seed, torch.device("cpu")):
            z = torch.randn(n, self.latent_dim, dtype=self.W_.dtype)
            e = torch.randn(n, self.n_features, dtype=self.W_.dtype) * self.psi_.sqrt()
        return self.mean_ + ((z @ self.W_.T + e) * self.scale_).numpy()

    def log_likelihood(self, X, num_samples: int = 100, seed: int | None = 0) -> np.ndarray:
        """``(N,)`` exact marginal log-likelihood ``log N(x; mu, W W^T + diag(psi))`` of each
        row, in the units of ``X``. The deep models' ``num_samples`` and ``seed`` are
        accepted and ignored (nothing is sampled)."""
        Xc = self._scaled(X)
        marginal = torch.distributions.LowRankMultivariateNormal(
            torch.zeros_like(self.psi_), self.W_, self.psi_
        )
        return (marginal.log_prob(Xc) - Xc.shape[1] * math.log(self.scale_)).numpy()
