import math
import pickle

import numpy as np
import pytest
import torch
from sklearn.decomposition import FactorAnalysis

from pyro_gfa import SparseFA
from pyro_gfa.models.sparse_fa import e_step, m_step_loadings, moments, varimax
from pyro_gfa.priors import Horseshoe, Lasso, NoPrior, SpikeSlabLasso

# the fits here are cut short on purpose (speed); test_a_fit_cut_by_max_iter_says_so checks
# that warning itself
pytestmark = pytest.mark.filterwarnings("ignore:SparseFA stopped at max_iter")


def sparse_data(n=1000, seed=0):
    """Three factors, each loading on its own block of 8 of 24 features."""
    rng = np.random.default_rng(seed)
    W = np.zeros((24, 3))
    for k in range(3):
        W[8 * k : 8 * (k + 1), k] = rng.uniform(1.0, 2.0, 8) * rng.choice([-1, 1], 8)
    Z = rng.standard_normal((n, 3))
    X = 5.0 + Z @ W.T + 0.3 * rng.standard_normal((n, 24))
    return X, W


def test_moments_match_the_per_row_posterior_and_the_marginal_likelihood():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(50, 6, generator=g, dtype=torch.float64)
    W = torch.randn(6, 2, generator=g, dtype=torch.float64)
    psi = torch.rand(6, generator=g, dtype=torch.float64) + 0.2
    Szz, Sxz, ll = moments(X.T @ X, 50, W, psi)
    # per-row posterior: N(Sigma W^T Psi^-1 x, Sigma)
    Sigma = torch.linalg.inv(torch.eye(2, dtype=W.dtype) + W.T @ torch.diag(1 / psi) @ W)
    Ez = e_step(X, W, psi)
    torch.testing.assert_close(Ez, X @ torch.diag(1 / psi) @ W @ Sigma)
    torch.testing.assert_close(Szz, 50 * Sigma + Ez.T @ Ez)
    torch.testing.assert_close(Sxz, X.T @ Ez)
    cov = W @ W.T + torch.diag(psi)
    direct = torch.distributions.MultivariateNormal(torch.zeros(6, dtype=W.dtype), cov)
    torch.testing.assert_close(ll, direct.log_prob(X).sum())


def test_m_step_solves_the_weighted_lasso():
    g = torch.Generator().manual_seed(1)
    A = torch.randn(40, 4, generator=g, dtype=torch.float64)
    Szz = A.T @ A
    Sxz = torch.randn(5, 4, generator=g, dtype=torch.float64) * 5
    psi = torch.rand(5, generator=g, dtype=torch.float64) + 0.5
    W0 = torch.zeros(5, 4, dtype=torch.float64)
    # no penalty: the least-squares solution Sxz Szz^-1
    W = m_step_loadings(W0, Szz, Sxz, psi, torch.zeros(5, 4, dtype=torch.float64), sweeps=200)
    torch.testing.assert_close(W, Sxz @ torch.linalg.inv(Szz))
    # with a penalty: the optimality (KKT) conditions of every row's weighted lasso
    pen = torch.full((5, 4), 2.0, dtype=torch.float64)
    W = m_step_loadings(W0, Szz, Sxz, psi, pen, sweeps=500)
    grad = W @ Szz - Sxz  # gradient of the quadratic part times psi_j
    t = psi[:, None] * pen
    nz = W != 0
    assert (~nz).any() and nz.any()
    torch.testing.assert_close(grad[nz], -t[nz] * torch.sign(W[nz]))
    assert (grad[~nz].abs() <= t[~nz] + 1e-9).all()


@pytest.mark.parametrize("prior", [SpikeSlabLasso(200.0, 5.0), Lasso(5.0), NoPrior()])
def test_em_increases_the_log_posterior(prior):
    X, _ = sparse_data(300)
    m = SparseFA(3, prior=prior).fit(X, max_iter=60, progress=False)
    h = np.array([r["log_posterior"] for r in m.history_])
    assert len(h) == m.n_iter_ + 1
    assert (np.diff(h) >= -1e-8 * np.abs(h[1:])).all()


def test_without_prior_it_is_maximum_likelihood_factor_analysis():
    X, _ = sparse_data(500)
    m = SparseFA(3, prior=NoPrior()).fit(X, max_iter=3000, tol=1e-12, progress=False)
    fa = FactorAnalysis(3, tol=1e-8, max_iter=5000).fit(X)
    np.testing.assert_allclose(m.log_likelihood(X).mean(), fa.score(X), rtol=1e-5)
    # same model covariance
    cov = m.loadings() @ m.loadings().T + np.diag(m.noise_variance())
    np.testing.assert_allclose(cov, fa.get_covariance(), rtol=1e-3, atol=1e-3)


def test_a_large_offset_does_not_change_the_fit():
    # the EM runs on the user's float64 values: a float32 copy of 1e5 + x would lose x
    X, _ = sparse_data(300)
    a = SparseFA(3, prior=NoPrior()).fit(X, max_iter=50, progress=False)
    b = SparseFA(3, prior=NoPrior()).fit(X + 1e5, max_iter=50, progress=False)
    np.testing.assert_allclose(b.loadings(), a.loadings(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(b.log_likelihood(X + 1e5), a.log_likelihood(X), rtol=1e-6)


def test_spike_and_slab_lasso_recovers_the_sparse_loadings():
    X, W = sparse_data()
    m = SparseFA(3).fit(X, progress=False)
    S, truth = m.support(), W != 0
    off = m.loadings()[~S]
    # off the support: mostly exact zeros (the soft-threshold), the rest below 1 % of the
    # true loadings (the lasso's threshold shrinks like 1 / N)
    assert (off == 0).mean() > 0.7 and np.abs(off).max() < 0.01
    # match factors to true columns by overlap, then the supports must agree
    order = [int(np.argmax((S & truth[:, [k]]).sum(0))) for k in range(3)]
    assert sorted(order) == [0, 1, 2]
    np.testing.assert_array_equal(S[:, order], truth)
    # reconstruction is the posterior mean's image: close to the noiseless data
    assert np.abs(m.reconstruct(X) - X).mean() < 0.4


def test_spare_factors_are_switched_off():
    X, W = sparse_data()
    m = SparseFA(6).fit(X, max_iter=1000, progress=False)
    counts = np.sort(m.support().sum(0))[::-1]
    # the three true blocks, then three factors left with at most one feature each (a
    # factor can take over one feature's noise, the usual factor-analysis degeneracy)
    np.testing.assert_array_equal(counts[:3], [8, 8, 8])
    assert (counts[3:] <= 1).all()


def test_names_and_plots_from_a_dataframe():
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd

    from pyro_gfa import plots

    X, _ = sparse_data(300)
    df = pd.DataFrame(X, columns=[f"gene{j}" for j in range(24)])
    m = SparseFA(3).fit(df, progress=False)
    frame = m.loadings_frame()
    assert list(frame.index) == list(df.columns) and frame.shape == (24, 3)
    top = plots.top_units(m, k=8)
    for k in range(3):  # each factor's 8 strongest genes are one true block
        genes = {int(g.removeprefix("gene")) // 8 for g in top[top["latent"] == f"z{k}"]["unit"]}
        assert len(genes) == 1
    plots.plot_loadings(m)
    assert m.history_[-1]["n_active"] == 24
    plots.plot_history(m)


def test_samples_have_the_model_mean_and_covariance():
    X, _ = sparse_data(300)
    m = SparseFA(3).fit(X, progress=False)
    S = m.sample(200_000, seed=1)
    W = m.loadings()
    cov = W @ W.T + np.diag(m.noise_variance())
    np.testing.assert_allclose(S.mean(0), m.mean_, atol=0.03)
    np.testing.assert_allclose(np.cov(S.T), cov, atol=0.05 * np.abs(cov).max())
    np.testing.assert_array_equal(m.sample(5, seed=2), m.sample(5, seed=2))
    assert not np.array_equal(m.sample(5), m.sample(5))


def test_fits_are_deterministic_and_do_not_share_prior_state():
    X, _ = sparse_data(300)
    prior = SpikeSlabLasso(200.0, 5.0)
    a = SparseFA(3, prior=prior).fit(X, progress=False)
    b = SparseFA(3, prior=prior).fit(X[:, :20], progress=False)
    c = SparseFA(3, prior=prior).fit(X, progress=False)
    assert prior.eta.numel() == 0  # the user's prior object is left as given
    assert a.prior_.b_ == 24 and b.prior_.b_ == 20
    np.testing.assert_array_equal(a.loadings(), c.loadings())


def test_errors():
    X, _ = sparse_data(50)
    with pytest.raises(ValueError, match="latent_dim"):
        SparseFA(0)
    with pytest.raises(TypeError, match="Horseshoe"):
        SparseFA(3, prior=Horseshoe())
    for bad in (0.0, -1.0, float("inf"), float("nan")):  # inf: every psi inf, log p = -inf
        with pytest.raises(ValueError, match="min_noise must be > 0 and finite"):
            SparseFA(3, min_noise=bad)
    with pytest.raises(ValueError, match="smaller than the number of features"):
        SparseFA(24).fit(X, progress=False)
    with pytest.raises(ValueError, match=r"more rows than latent_dim \(3\), got 3"):
        SparseFA(3).fit(X[:3], progress=False)
    bad = X.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        SparseFA(3).fit(bad, progress=False)
    for call in (lambda m: m.transform(X), lambda m: m.sample(3), lambda m: m.reconstruct(X)):
        with pytest.raises(RuntimeError, match="not fitted"):
            call(SparseFA(3))
    for option, match in [
        ({"epoch": 5}, "unexpected keyword arguments \\['epoch'\\]"),
        ({"max_iter": -1}, "max_iter must be an integer >= 0"),
        ({"sweeps": 0}, "sweeps must be an integer >= 1"),
        ({"tol": float("nan")}, "tol must be >= 0"),
        ({"tol": "1e-3"}, "tol must be >= 0 and finite, got '1e-3'"),
    ]:
        with pytest.raises((TypeError, ValueError), match=match):
            SparseFA(3).fit(X, progress=False, **option)
    with pytest.raises(ValueError, match="progress must be True or False"):
        SparseFA(3).fit(X, progress="False")
    with pytest.raises(ValueError, match="latent_dim must be an integer >= 1, got True"):
        SparseFA(True)
    m = SparseFA(3).fit(X, max_iter=5, progress=False)
    with pytest.raises(ValueError, match="columns"):
        m.transform(X[:, :10])
    with pytest.raises(TypeError, match="not a SparseFA.*pickle"):
        m.save("unused.zip")
    with pytest.raises(ValueError, match="n must be an integer >= 0"):
        m.sample(-1)
    with pytest.raises(TypeError, match="num_sample"):
        m.log_likelihood(X, num_sample=3)  # misspelt: not silently ignored
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(m)).transform(X), m.transform(X))


def test_ctrl_c_keeps_the_last_iterate_and_a_failed_refit_keeps_the_earlier_fit(monkeypatch):
    from pyro_gfa.models import sparse_fa

    X, _ = sparse_data(300)
    X2 = 3.0 * sparse_data(300, seed=1)[0]
    m = SparseFA(3).fit(X, max_iter=8, progress=False)
    z = m.transform(X)
    real, calls = sparse_fa.m_step_loadings, [0]

    def m_step(*args):
        calls[0] += 1
        if calls[0] == 5:  # the M-step from iterate 4 to 5
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(sparse_fa, "m_step_loadings", m_step)
    with pytest.warns(UserWarning, match="interrupted; it keeps iteration 4"):
        m.fit(X2, progress=False)
    assert m.interrupted_ and m.n_iter_ == 4 and len(m.history_) == 5
    monkeypatch.undo()
    four = SparseFA(3).fit(X2, max_iter=4, progress=False)
    assert not four.interrupted_
    np.testing.assert_array_equal(m.loadings(), four.loadings())
    np.testing.assert_array_equal(m.transform(X2), four.transform(X2))
    np.testing.assert_array_equal(m.support(), four.support())

    monkeypatch.setattr(sparse_fa, "m_step_loadings", lambda *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        four.fit(X, progress=False)
    np.testing.assert_array_equal(four.transform(X2), m.transform(X2))  # as it was
    assert z.shape == (300, 3)


def test_in_the_ablation_runner():
    from pyro_gfa import ablation

    spec = {
        "data": "sparse_synthetic",
        "data_params": {"n": 300, "n_test": 500},
        "seed": 0,
        "model": "sparse_fa",
        "model_params": {"latent_dim": 2},
        "prior": "ssl",
        "prior_params": {},
        "fit": {"epochs": 5},  # the deep models' settings are accepted and ignored
    }
    row = ablation.run_one(spec)
    # the runner scores the exact held-out likelihood of the same (deterministic) fit
    data = ablation.DATA["sparse_synthetic"](n=300, n_test=500, seed=0)
    m = SparseFA(2, prior=SpikeSlabLasso()).fit(data.X, progress=False)  # "ssl", its defaults
    assert row["test_nll"] == pytest.approx(-m.log_likelihood(data.X_test).mean(), rel=1e-12)
    assert row["n_active"] == int(m.support().sum()) and "support_f1" in row
    with pytest.raises(TypeError, match="Horseshoe"):
        ablation.run_one({**spec, "prior": "horseshoe"})


def test_a_fit_cut_by_max_iter_says_so():
    import warnings

    X, _ = sparse_data(300)
    with pytest.warns(UserWarning, match="stopped at max_iter=5 before converging"):
        m = SparseFA(3).fit(X, max_iter=5, progress=False)
    assert m.n_iter_ == 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = SparseFA(3).fit(X, tol=1e-3, progress=False)
    assert m.n_iter_ < 300


def _varimax_criterion(L):
    """Kaiser's varimax criterion: the sum over columns of the variance of squared loadings."""
    return (L**2).var(-2, correction=0).sum(-1)


def test_varimax_is_the_best_rotation_of_two_factors_by_grid_search():
    # with K = 2 every rotation is R(theta), and the criterion has period pi / 2 up to column
    # signs and order: the best of a fine grid of angles is the varimax solution (quartimax,
    # which maximises sum L^4 without the column means, gives another rotation here)
    g = torch.Generator().manual_seed(2)
    W = torch.randn(8, 2, generator=g, dtype=torch.float64)
    L = varimax(W)
    th = torch.linspace(0, math.pi / 2, 20001, dtype=torch.float64)[:-1]
    c, s = th.cos(), th.sin()
    R = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    rotated = W @ R
    best = rotated[_varimax_criterion(rotated).argmax()]
    if (best[:, [1, 0]] * L).sum(0).abs().sum() > (best * L).sum(0).abs().sum():
        best = best[:, [1, 0]]
    best = best * torch.sign((best * L).sum(0))
    torch.testing.assert_close(L, best, rtol=0, atol=2e-3)  # grid step 8e-5 rad


def test_varimax_is_an_orthogonal_rotation_at_a_stationary_point_of_its_criterion():
    g = torch.Generator().manual_seed(0)
    W = torch.randn(12, 3, generator=g, dtype=torch.float64)
    L = varimax(W)
    R = torch.linalg.lstsq(W, L).solution  # L = W R with R orthogonal
    torch.testing.assert_close(L, W @ R)
    torch.testing.assert_close(R.T @ R, torch.eye(3, dtype=W.dtype))
    # stationary on the rotations: L^T dV/dL is symmetric, dV/dL ~ L^3 - L mean(L^2)
    A = L.T @ (L**3 - L * (L**2).mean(0))
    assert (A - A.T).abs().max() < 1e-5 * A.abs().max()
    # and no random rotation does better
    Q = torch.linalg.qr(torch.randn(500, 3, 3, generator=g, dtype=W.dtype)).Q
    assert (_varimax_criterion(W @ Q) <= _varimax_criterion(L) + 1e-12).all()


def test_the_noise_floor_holds_when_a_feature_is_explained_exactly():
    # column 1 is a copy of column 0: a factor can explain both exactly and maximum
    # likelihood would take their noise variances to 0; the floor min_noise (in units of
    # the global scale) keeps them there and the likelihood finite
    X, _ = sparse_data(300)
    X[:, 1] = X[:, 0]
    for min_noise in (1e-3, 1e-2):
        m = SparseFA(3, prior=NoPrior(), min_noise=min_noise).fit(X, max_iter=30, progress=False)
        psi = m.noise_variance() / m.scale_**2
        assert psi.min() >= min_noise * (1 - 1e-12)
        np.testing.assert_allclose(psi[:2], min_noise)
        assert np.isfinite(m.log_likelihood(X)).all()


def _capture_m_steps(monkeypatch):
    """Record the arguments of every M-step (and still run it)."""
    from pyro_gfa.models import sparse_fa

    real, seen = sparse_fa.m_step_loadings, []

    def m_step(*args):
        seen.append(args)
        return real(*args)

    monkeypatch.setattr(sparse_fa, "m_step_loadings", m_step)
    return seen


def _kkt_residual(W, Szz, Sxz, psi, lam):
    """Largest violation of the optimality conditions of the rows' weighted lasso
    ``(w^T Szz w - 2 w^T s_j) / (2 psi_j) + lam |w|_1`` (0 at the minimiser)."""
    grad, t, nz = W @ Szz - Sxz, psi[:, None] * lam, W != 0
    on = (grad + t * torch.sign(W))[nz].abs()
    off = (grad.abs() - t)[~nz].clamp_min(0)
    return float(torch.cat([on, off]).max())


def test_the_lasso_rate_enters_the_m_step(monkeypatch):
    # after one EM iteration W is the M-step's solution of the weighted lasso with rate lam,
    # so it satisfies that lasso's optimality conditions, with exact zeros
    X, _ = sparse_data(300)
    seen = _capture_m_steps(monkeypatch)
    m = SparseFA(3, prior=Lasso(100.0)).fit(X, max_iter=1, sweeps=200, progress=False)
    W0, Szz, Sxz, psi, _, _ = seen[0]
    assert _kkt_residual(m.W_, Szz, Sxz, psi, 100.0) < 1e-10 * float(Sxz.abs().max())
    assert (m.W_ == 0).sum() > 10 and (W0 != 0).all()
    # a rate beyond every |s_j| / psi_j leaves no loading, none leaves no zero
    assert (SparseFA(3, prior=Lasso(1e6)).fit(X, max_iter=2, progress=False).loadings() == 0).all()
    assert (SparseFA(3, prior=NoPrior()).fit(X, max_iter=2, progress=False).loadings() != 0).all()


def test_more_sweeps_solve_the_m_step_further(monkeypatch):
    # one coordinate-descent sweep does not solve the M-step's lasso (Szz is not diagonal);
    # 50 sweeps do, with a lower objective: the fit must pass sweeps on
    X, _ = sparse_data(300)
    seen = _capture_m_steps(monkeypatch)
    fits = {
        s: SparseFA(3, prior=Lasso(20.0)).fit(X, max_iter=1, sweeps=s, progress=False)
        for s in (1, 50)
    }
    _, Szz, Sxz, psi, pen, _ = seen[0]
    torch.testing.assert_close(seen[1][1], Szz)  # both fits start from the same E-step

    def objective(W):
        quad = ((W @ Szz) * W).sum(1) - 2 * (W * Sxz).sum(1)
        return float((quad / (2 * psi) + (pen * W.abs()).sum(1)).sum())

    tol = 1e-10 * float(Sxz.abs().max())
    assert _kkt_residual(fits[50].W_, Szz, Sxz, psi, 20.0) < tol
    assert _kkt_residual(fits[1].W_, Szz, Sxz, psi, 20.0) > 1e3 * tol
    assert objective(fits[50].W_) < objective(fits[1].W_)
