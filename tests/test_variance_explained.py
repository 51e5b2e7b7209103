"""Variance explained per group and factor (metrics.variance_explained) and the models'
``decode`` it rests on: closed forms on a linear model, exact zeros off the support,
missing groups and count likelihoods, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pyro_gfa as gfa
from pyro_gfa.metrics import VarianceExplained, variance_explained


class _Linear:
    """``x = mu + W z``, the codes given: the stand-in for a fitted linear model."""

    def __init__(self, Z, W, mu):
        self.Z, self.W, self.mu = Z, W, mu
        self.n_features = W.shape[0]
        self.feature_names = tuple(f"x{j}" for j in range(self.n_features))

    def transform(self, X):
        return self.Z

    def decode(self, Z):
        return self.mu + Z @ self.W.T


def _uncorrelated_scores(rng, N: int) -> tuple[np.ndarray, np.ndarray]:
    """``(B, Z)``: an orthonormal basis whose first column is the constant, and three
    centred, mutually orthogonal score columns of sd ratio 5 : 3 : 1 spanned by it."""
    B = np.linalg.qr(np.column_stack([np.ones(N), rng.standard_normal((N, 3))]))[0]
    return B, B[:, 1:] * [5.0, 3.0, 1.0]


def test_linear_shares_are_mofas_closed_form_and_add_up():
    rng = np.random.default_rng(0)
    N, D, K = 200, 6, 3
    # residuals orthogonal to the scores and to the ones
    B, Z = _uncorrelated_scores(rng, N)
    W = rng.standard_normal((D, K))
    W[[0, 1], 2] = 0.0  # group 0 does not read factor 2
    E = rng.standard_normal((N, D))
    E -= B @ (B.T @ E)
    mu = rng.standard_normal(D)
    X = mu + Z @ W.T + E
    groups = [[0, 1], [2, 3, 4], [5]]
    # scores off-centre (a factor is held at its mean, not at 0)
    c = np.array([2.0, -1.0, 0.5])
    ve = variance_explained(_Linear(Z + c, W, mu - c @ W.T), X, groups=groups)
    for g, ix in enumerate(groups):
        ss = ((X[:, ix] - X[:, ix].mean(0)) ** 2).sum()
        want = (W[ix] ** 2).sum(0) * (Z**2).sum(0) / ss
        np.testing.assert_allclose(ve.per_factor[g], want, rtol=1e-9, atol=1e-12)
        assert ve.total[g] == pytest.approx(1 - (E[:, ix] ** 2).sum() / ss, rel=1e-9)
    np.testing.assert_allclose(ve.per_factor.sum(1), ve.total, rtol=1e-9)
    assert ve.per_factor[0, 2] == 0.0
    assert ve.group_names == ("group0", "group1", "group2")


def test_linear_shares_are_mofas_definition_when_residuals_carry_the_scores():
    # posterior means are shrunk, so residuals correlate with the scores: the shares are
    # still MOFA+'s 1 - ||X_c - z_k w_k^T||^2 / SS and add up to R^2
    rng = np.random.default_rng(1)
    N, D, K = 200, 5, 3
    _, Z = _uncorrelated_scores(rng, N)
    W = rng.standard_normal((D, K))
    E = rng.standard_normal((N, D))
    X = Z @ (W.T + 0.5 * rng.standard_normal((K, D))) + E - E.mean(0)
    ve = variance_explained(_Linear(Z, W, np.zeros(D)), X, groups=[list(range(D))])
    Xc = X - X.mean(0)
    ss = (Xc**2).sum()
    want = [1 - ((Xc - np.outer(Z[:, k], W[:, k])) ** 2).sum() / ss for k in range(K)]
    np.testing.assert_allclose(ve.per_factor[0], want, rtol=1e-9, atol=1e-12)
    assert ve.per_factor[0].sum() == pytest.approx(ve.total[0], rel=1e-9)


def test_sparse_fa_decode_and_total_r2():
    X, _ = gfa.data.make_bars(300, seed=0)
    fa = gfa.SparseFA(latent_dim=8).fit(X, max_iter=200, tol=1e-4)
    Z = fa.transform(X)
    np.testing.assert_allclose(fa.decode(Z), fa.reconstruct(X))
    np.testing.assert_allclose(fa.decode(np.zeros((2, 8))), np.tile(fa.mean_, (2, 1)))
    ve = variance_explained(fa, X, groups="features")
    R = fa.reconstruct(X)
    want = 1 - ((X - R) ** 2).sum(0) / ((X - X.mean(0)) ** 2).sum(0)
    np.testing.assert_allclose(ve.total, want, rtol=1e-5)
    assert ve.group_names == fa.feature_names
    # the loadings that are exactly zero carry exactly nothing
    L = fa.loadings()
    assert (L == 0).any()
    assert (ve.per_factor[L == 0] == 0).all()
    # one group of all features by default
    assert variance_explained(fa, X).group_names == ("all features",)


def test_oivae_factor_the_group_does_not_read_has_share_exactly_zero():
    X, _ = gfa.data.make_bars(256, seed=0)
    m = gfa.OIVAE(groups=gfa.data.bar_groups(), latent_dim=4)
    m.fit(X, epochs=2, progress=False)
    with torch.no_grad():
        m.module.W[3, :, 1] = 0.0  # group 3's generator no longer reads z1
    ve = variance_explained(m, X)
    assert ve.per_factor.shape == (8, 4)
    assert ve.group_names == m.group_names
    assert ve.per_factor[3, 1] == 0.0
    assert (ve.per_factor[np.arange(8) != 3, 1] != 0).all()
    R = m.reconstruct(X)
    ix = m.groups.index[3]
    want = 1 - ((X[:, ix] - R[:, ix]) ** 2).sum() / ((X[:, ix] - X[:, ix].mean(0)) ** 2).sum()
    assert ve.total[3] == pytest.approx(want, rel=1e-5)
    df = ve.frame()
    assert list(df.columns) == ["z0", "z1", "z2", "z3", "total"]
    assert list(df.index) == list(m.group_names)


def test_missing_groups_are_left_out():
    X, _ = gfa.data.make_bars(128, seed=0)
    groups = gfa.data.bar_groups()
    X[:40, groups[0]] = np.nan
    m = gfa.FactVAE(groups=groups, latent_dim=3).fit(X, epochs=2, progress=False)
    ve = variance_explained(m, X)
    assert np.isfinite(ve.per_factor).all() and np.isfinite(ve.total).all()
    R = m.reconstruct(X)
    obs = X[40:, groups[0]]
    want = 1 - ((obs - R[40:, groups[0]]) ** 2).sum() / ((obs - obs.mean(0)) ** 2).sum()
    assert ve.total[0] == pytest.approx(want, rel=1e-5)


def test_count_likelihood_decodes_with_row_totals():
    rng = np.random.default_rng(0)
    X = rng.poisson(3.0, size=(80, 10)).astype(np.float32)
    m = gfa.SparseVAE(n_features=10, latent_dim=2, hidden=(8,), likelihood="multinomial")
    m.fit(X, epochs=2, progress=False)
    Z = m.transform(X)
    np.testing.assert_allclose(m.decode(Z).sum(1), 1.0, rtol=1e-5)
    totals = X.sum(1)
    np.testing.assert_allclose(m.decode(Z, total_count=totals), m.reconstruct(X), rtol=1e-5)
    np.testing.assert_allclose(m.decode(Z[:3], total_count=7).sum(1), 7.0, rtol=1e-5)
    with pytest.raises(ValueError, match="non-negative integers"):
        m.decode(Z, total_count=-1)
    ve = variance_explained(m, X)
    R = m.reconstruct(X)
    want = 1 - ((X - R) ** 2).sum() / ((X - X.mean(0)) ** 2).sum()
    assert ve.total[0] == pytest.approx(want, rel=1e-4)


def test_bad_inputs():
    X, _ = gfa.data.make_bars(64, seed=0)
    m = gfa.SparseVAE(n_features=64, latent_dim=2, hidden=(8,)).fit(X, epochs=1, progress=False)
    with pytest.raises(ValueError, match="Z has 3 columns"):
        m.decode(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="total_count sets the row totals"):
        m.decode(np.zeros((4, 2)), total_count=5)
    with pytest.raises(ValueError, match="Z has 2 NaN or infinite values [^;]*$"):
        m.decode(np.full((1, 2), np.nan))
    with pytest.raises(ValueError, match=r"Z must be 2-d \(rows x factors\)"):
        m.decode(np.zeros(2))
    with pytest.raises(ValueError, match="'features' or a group specification, got 'feature'"):
        variance_explained(m, X, groups="feature")
    with pytest.raises(ValueError, match="cover"):
        variance_explained(m, X, groups=[[0, 1]])
    with pytest.raises(ValueError, match="X has 10 columns but the model expects 64"):
        variance_explained(m, X[:, :10])
    nmf = gfa.NMF(2).fit(np.abs(X))
    with pytest.raises(TypeError, match="NMF"):
        variance_explained(nmf, np.abs(X))


def test_non_finite_predictions_are_an_error_not_a_perfect_fit():
    X, _ = gfa.data.make_bars(64, seed=0)
    m = gfa.OIVAE(groups=gfa.data.bar_groups(), latent_dim=2).fit(X, epochs=1, progress=False)
    with torch.no_grad():
        next(m.module.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(ValueError, match="OIVAE predicts non-finite values"):
        variance_explained(m, X)


def test_repeated_column_names_get_their_positions_per_feature():
    pd = pytest.importorskip("pandas")
    X, _ = gfa.data.make_bars(128, seed=0)
    df = pd.DataFrame(X[:, :4], columns=["a", "b", "a", "c"])
    fa = gfa.SparseFA(latent_dim=2).fit(df, max_iter=50, tol=1e-3)
    ve = variance_explained(fa, df, groups="features")
    assert ve.group_names == ("a (column 0)", "b (column 1)", "a (column 2)", "c (column 3)")


def test_a_group_without_variance_gets_nan():
    X, _ = gfa.data.make_bars(128, seed=0)
    X = X.astype(np.float64)
    X[:, :2] = 0.1  # its float64 mean is not exactly 0.1: the group must still be NaN
    fa = gfa.SparseFA(latent_dim=3).fit(X, max_iter=200, tol=1e-3)
    ve = variance_explained(fa, X, groups={"flat": [0, 1], "rest": list(range(2, 64))})
    assert np.isnan(ve.total[0]) and np.isnan(ve.per_factor[0]).all()
    assert np.isfinite(ve.total[1])
    assert isinstance(ve, VarianceExplained)
