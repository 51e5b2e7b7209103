"""Linear baselines through scikit-learn behind the library's fit/transform API: NMF and LDA.

They are not Pyro models; they share the estimator surface that comparisons use
(``fit``, ``transform``, ``loadings``, ``support``, ``reconstruct``) so that a benchmark or
the ablation runner can put them in the same table as the deep models.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_int, check_seed
from .base import NamedUnits, check_matrix, check_other_fit_options, feature_names_of
from .likelihoods import check_counts


class _Linear(NamedUnits):
    n_features: int | None = None

    def __init__(self, latent_dim: int, **kwargs):
        self.latent_dim = check_int(latent_dim, "latent_dim")
        ours = {"n_components": "latent_dim", "random_state": "fit(seed=...)"}
        taken = [f"{k} (use {ours[k]})" for k in kwargs if k in ours]
        if taken:
            raise TypeError(f"{type(self).__name__} sets {', '.join(taken)} itself")
        self.kwargs = kwargs
        self.estimator_ = None
        self._make(None)  # scikit-learn refuses an unknown option now, not at fit

    def _check(self, X, fitting: bool = False) -> np.ndarray:
        # float64, as scikit-learn computes (float32 would round large counts first)
        if fitting:  # a refit may have other columns
            X = check_matrix(X, None, dtype=np.float64)
        else:
            X = check_matrix(X, self.n_features, names=self.feature_names_, dtype=np.float64)
        if (X < 0).any():
            raise ValueError(
                f"{type(self).__name__} needs non-negative data; X has negative values"
            )
        return X

    def _fitted(self):
        if self.estimator_ is None:
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet: call fit(X) first")
        return self.estimator_

    def fit(self, X, seed: int | None = 0, progress: bool = False, **_ignored):
        """Fit to ``X`` (rows are observations). ``progress`` and other options of the deep
        models' ``fit`` are accepted and ignored, so the same call fits every model (a name
        their ``fit`` does not take raises ``TypeError``)."""
        check_other_fit_options(type(self).__name__, _ignored)
        check_seed(seed)
        names = feature_names_of(X)
        X = self._check(X, fitting=True)  # a refit may have other columns
        estimator = self._make(seed).fit(X)  # a failure leaves the earlier fit as it was
        self.n_features, self.feature_names_ = X.shape[1], names
        self.estimator_ = estimator
        return self

    def transform(self, X) -> np.ndarray:
        """``(N, K)`` factor scores of the rows of ``X``."""
        return self._fitted().transform(self._check(X))

    def loadings(self) -> np.ndarray:
        """``(n_features, K)`` non-negative loadings."""
        return self._fitted().components_.T.copy()

    def support(self) -> np.ndarray:
        """``(n_features, K)``: the loadings that are not exactly zero."""
        return self.loadings() > 0


class NMF(_Linear):
    """Non-negative matrix factorisation, ``X ~ Z H`` (scikit-learn ``NMF``).

    Extra keyword arguments go to :class:`sklearn.decomposition.NMF` (e.g.
    ``beta_loss="kullback-leibler", solver="mu"`` for count data).
    """

    def _make(self, seed):
        from sklearn.decomposition import NMF as _SkNMF  # here: sklearn takes seconds to import

        # scikit-learn's default start: nndsvda, random where K > min(rows, columns)
        kw = {"max_iter": 500, **self.kwargs}
        return _SkNMF(n_components=self.latent_dim, random_state=seed, **kw)

    def reconstruct(self, X) -> np.ndarray:
        """The rows of ``X`` rebuilt from their factor scores.

        Parameters
        ----------
        X
            ``(N, n_features)`` non-negative data.

        Returns
        -------
        ndarray
            ``(N, n_features)`` reconstruction ``Z H`` (``Z = transform(X)``, ``H`` the
            fitted components).
        """
        return self.transform(X) @ self._fitted().components_


class LDA(_Linear):
    """Latent Dirichlet allocation for count data (scikit-learn, variational Bayes).

    ``transform`` gives the topic proportions of each document; ``loadings`` the topic-word
    pseudo-counts; ``reconstruct`` the expected counts ``n_d * theta_d @ beta``.
    """

    def _check(self, X, fitting: bool = False) -> np.ndarray:
        X = super()._check(X, fitting)
        check_counts(X, "LDA")
        return X

    def _make(self, seed):
        from sklearn.decomposition import LatentDirichletAllocation

        return LatentDirichletAllocation(
            n_components=self.latent_dim, random_state=seed, **self.kwargs
        )

    def topic_word(self) -> np.ndarray:
        """``(K, n_features)`` topic-word probabilities."""
        c = self._fitted().components_
        return c / c.sum(1, keepdims=True)

    def reconstruct(self, X) -> np.ndarray:
        """Expected counts of the rows of ``X`` under their topic proportions.

        Parameters
        ----------
        X
            ``(N, n_features)`` counts.

        Returns
        -------
        ndarray
            ``(N, n_features)`` expected counts ``n_d * theta_d @ beta``: the row total
            ``n_d`` times the topic proportions (:meth:`transform`) times the topic-word
            probabilities (:meth:`topic_word`).
        """
        X = self._check(X)
        return X.sum(1, keepdims=True) * (self.transform(X) @ self.topic_word())

    def log_likelihood(self, X) -> np.ndarray:
        """``(N,)`` plug-in multinomial log-likelihood of each row under its fitted mixture
        (the topic proportions are estimated from the same row, so it is optimistic)."""
        from scipy.special import gammaln

        X = self._check(X)
        p = np.clip(self.transform(X) @ self.topic_word(), 1e-300, None)
        n = X.sum(1)
        return gammaln(n + 1) - gammaln(X + 1).sum(1) + (X * np.log(p)).sum(1)
