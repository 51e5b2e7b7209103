"""Closed-form checks of what the linear and deep sparse models report to a user.

Every value here is recomputed by hand (numpy, scipy, torch.distributions) from the fitted
parameters the models expose, so a wrong scale, sign or factor in the library shows up.
"""

import warnings

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

import pyro_gfa as gfa
from pyro_gfa import SparseFA
from pyro_gfa.metrics import anchor_report, variance_explained
from pyro_gfa.priors import NoPrior, SpikeSlabLasso


def _data(n=120, seed=0):
    """Two factors on 8 features, far from the origin and with a scale far from 1."""
    rng = np.random.default_rng(seed)
    W = np.zeros((8, 2))
    W[:4, 0], W[4:, 1] = rng.uniform(1, 2, 4), rng.uniform(1, 2, 4)
    X = rng.standard_normal((n, 2)) @ W.T + 0.4 * rng.standard_normal((n, 8))
    return 7.0 * X + 3.0


@pytest.fixture(scope="module")
def fitted():
    X = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # cut by max_iter on purpose
        m = SparseFA(2, prior=SpikeSlabLasso(50.0, 2.0)).fit(X, max_iter=15, progress=False)
    return m, X


def test_sparse_fa_transform_is_the_gaussian_posterior_mean(fitted):
    m, X = fitted
    W, psi, mu = m.loadings(), m.noise_variance(), X.mean(0)
    # (I + W^T Psi^-1 W)^-1 W^T Psi^-1 (x - mu), in the units of X
    prec = np.eye(2) + W.T @ (W / psi[:, None])
    hand = np.linalg.solve(prec, (W / psi[:, None]).T @ (X - mu).T).T
    np.testing.assert_allclose(m.transform(X), hand, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(m.reconstruct(X), mu + hand @ W.T, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(m.decode(np.zeros((3, 2))), np.tile(mu, (3, 1)), rtol=1e-12)


def test_sparse_fa_log_likelihood_is_the_marginal_gaussian_density(fitted):
    m, X = fitted
    W, psi = m.loadings(), m.noise_variance()
    hand = multivariate_normal(X.mean(0), W @ W.T + np.diag(psi)).logpdf(X[:10])
    np.testing.assert_allclose(m.log_likelihood(X[:10]), hand, rtol=1e-9)


def test_sparse_fa_noise_variance_is_in_the_units_of_x(fitted):
    m, X = fitted
    # one global scale: the sd of all centred entries, and psi scales with its square
    scale = (X - X.mean(0)).std()
    assert m.scale_ == pytest.approx(scale, rel=1e-12)
    np.testing.assert_allclose(m.noise_variance(), m.psi_.numpy() * scale**2, rtol=1e-12)
    np.testing.assert_allclose(m.loadings(), m.W_.numpy() * scale, rtol=1e-12)


def test_sparse_fa_samples_have_the_model_variance_of_every_feature(fitted):
    m, _ = fitted
    S = m.sample(100_000, seed=0)
    W = m.loadings()
    # per-feature variance w_j^T w_j + psi_j: the noise part alone moves it by about 20 %
    # here, while the sampling error of a variance from 1e5 draws is about 0.5 %
    np.testing.assert_allclose(S.var(0), (W**2).sum(1) + m.noise_variance(), rtol=0.03)


def test_sparse_fa_history_records_the_log_posterior_of_the_returned_parameters(fitted):
    m, X = fitted
    Xs = (X - X.mean(0)) / m.scale_
    W, psi = m.W_.numpy(), m.psi_.numpy()
    loglik = multivariate_normal(np.zeros(8), W @ W.T + np.diag(psi)).logpdf(Xs).sum()
    log_prior = float(m.prior_.nonsmooth_log_prob(m.W_.unsqueeze(1)))
    last = m.history_[-1]
    assert last["log_posterior"] == pytest.approx(loglik + log_prior, rel=1e-9)
    assert last["loss"] == pytest.approx(-last["log_posterior"] / len(X), rel=1e-12)
    assert [r["epoch"] for r in m.history_] == list(range(m.n_iter_ + 1))
    assert m.n_iter_ == 15


def test_sparse_fa_stops_at_the_first_relative_change_below_tol():
    X = _data(seed=1)
    tol = 1e-4
    m = SparseFA(2, prior=NoPrior()).fit(X, max_iter=500, tol=tol, progress=False)
    lp = np.array([r["log_posterior"] for r in m.history_])
    change = np.abs(np.diff(lp))
    assert m.n_iter_ == len(lp) - 1 < 500
    # the last step is the first whose change is at most tol times |log posterior|
    assert change[-1] <= tol * abs(lp[-1])
    assert (change[:-1] > tol * np.abs(lp[1:-1])).all()


def test_sparse_fa_noise_update_divides_by_n():
    # at a fixed point of maximum-likelihood FA the model's variances are the data's
    # (divided by N): diag(W W^T + Psi) = diag(S)
    X = _data(n=60, seed=2)
    m = SparseFA(2, prior=NoPrior()).fit(X, max_iter=2000, tol=1e-13, progress=False)
    W = m.loadings()
    np.testing.assert_allclose((W**2).sum(1) + m.noise_variance(), X.var(0), rtol=1e-5)


def test_sparse_fa_max_iter_zero_returns_the_start_without_a_warning():
    X = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = SparseFA(2).fit(X, max_iter=0, progress=False)
    assert m.n_iter_ == 0 and len(m.history_) == 1


# ------------------------------------------------------------------------------ Sparse VAE
def _vae(likelihood="gaussian", n=40, G=5, **kw):
    rng = np.random.default_rng(0)
    if likelihood == "multinomial":
        X = rng.poisson(3.0, (n, G)).astype(np.float32)
    else:
        X = rng.standard_normal((n, G)).astype(np.float32)
    m = gfa.SparseVAE(G, 2, hidden=(6,), likelihood=likelihood, em_warmup=0, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a one-epoch fit may collapse
        m.fit(X, epochs=1, batch_size=n, progress=False)
    return m, X


def test_sparse_vae_loss_weights_its_kl_term_by_kl_weight():
    m, X = _vae()
    mod, x = m.module, torch.as_tensor(X)
    mod.kl_weight, mod.prior_weight = 0.3, 0.0
    torch.manual_seed(5)
    loss = mod.loss(x)
    torch.manual_seed(5)  # the same draw of z
    q = mod.posterior(x)
    z = q.rsample()
    loglik = mod.likelihood.dist(mod.decoder_out(z)).log_prob(x)
    kl = torch.distributions.kl_divergence(
        torch.distributions.Normal(q.base_dist.loc, q.base_dist.scale),
        torch.distributions.Normal(0.0, 1.0),
    ).sum(-1)
    hand = -(loglik - 0.3 * kl).mean()
    torch.testing.assert_close(loss, hand, rtol=1e-5, atol=1e-5)


def test_sparse_vae_support_drops_factors_whose_code_kl_is_at_most_kl_tol():
    m, _ = _vae(prior=NoPrior())
    kl = m.code_kl_
    assert (m.loadings() != 0).all()  # NoPrior: only the code rule can empty a column
    # a threshold between the two codes' KL keeps exactly the more informative one
    m.kl_tol = float(kl.mean())
    keep = kl > m.kl_tol
    assert keep.sum() == 1
    np.testing.assert_array_equal(m.support(), np.tile(keep, (5, 1)))
    np.testing.assert_array_equal(m.identifiability().active_factors, np.flatnonzero(keep))
    m.kl_tol = float(kl.max())
    assert not m.support().any() and not m.identifiability().satisfied


def test_sparse_vae_decode_with_total_count_scales_the_composition():
    m, _ = _vae("multinomial")
    Z = np.random.default_rng(1).standard_normal((4, 2)).astype(np.float32)
    comp = m.decode(Z)
    np.testing.assert_allclose(comp.sum(1), 1.0, rtol=1e-5)
    totals = np.array([10, 0, 3, 250])
    np.testing.assert_allclose(m.decode(Z, total_count=totals), totals[:, None] * comp, rtol=1e-5)
    np.testing.assert_allclose(m.decode(Z, total_count=7), 7 * comp, rtol=1e-5)


# ------------------------------------------------------------- metrics and the SSL prior
def test_variance_explained_holds_each_factor_at_its_mean_on_held_out_rows(fitted):
    m, X = fitted
    Xn = X[:50] + np.linspace(-20.0, 20.0, 8)  # shifted rows: the codes' mean is not 0
    ve = variance_explained(m, Xn, groups={"a": [0, 1, 2, 3], "b": [4, 5, 6, 7]})
    Z, W = m.transform(Xn), m.loadings()
    assert np.abs(Z.mean(0)).min() > 0.1
    ss = ((Xn - Xn.mean(0)) ** 2).reshape(50, 2, 4).sum((0, 2))

    def sse(Zk):  # per group, of the linear decoder mu + W z
        return ((Xn - m.mean_ - Zk @ W.T) ** 2).reshape(50, 2, 4).sum((0, 2))

    np.testing.assert_allclose(ve.total, 1 - sse(Z) / ss, rtol=1e-9)
    for k in range(2):
        Zk = Z.copy()
        Zk[:, k] = Z[:, k].mean()
        np.testing.assert_allclose(ve.per_factor[:, k], (sse(Zk) - sse(Z)) / ss, rtol=1e-9)


def test_variance_explained_of_a_constant_column_is_nan(fitted):
    m, X = fitted
    Xn = X[:50].copy()
    Xn[:, 0] = 0.1  # its mean is not exactly 0.1 in floating point
    ve = variance_explained(m, Xn, groups="features")
    assert np.isnan(ve.total[0]) and np.isnan(ve.per_factor[0]).all()
    assert np.isfinite(ve.total[1:]).all() and np.isfinite(ve.per_factor[1:]).all()


def test_anchor_report_text_marks_two_anchors_as_enough():
    S = np.array([[1, 0], [1, 0], [0, 1], [1, 1]], dtype=bool)
    text = str(anchor_report(S))
    assert "factor 0: anchors [0, 1] (ok)" in text
    assert "factor 1: anchors [2] (fewer than 2 anchors)" in text
    assert text.endswith("anchor condition (>= 2 anchors per active factor): False")
    assert not anchor_report(np.zeros((3, 2), dtype=bool)).satisfied  # nothing active


def test_ssl_starts_every_eta_at_eta_init_and_uses_it():
    p = SpikeSlabLasso(10.0, 1.0, eta_init=0.2)
    W = torch.tensor([[[0.0]], [[0.5]]])
    p.setup(W)
    torch.testing.assert_close(p.eta, torch.tensor([0.2]))
    # p* at w = 0: eta l1 / (eta l1 + (1 - eta) l0) with the Laplace constants l / 2
    assert p.inclusion_probability(W)[0, 0].item() == pytest.approx(0.2 / (0.2 + 8.0), rel=1e-6)


def test_ssl_prox_is_the_weighted_soft_threshold():
    p = SpikeSlabLasso(20.0, 2.0)
    W = torch.tensor([[[0.9, -0.05]], [[-0.4, 0.3]], [[0.0, 2.0]]])
    p.setup(W)
    p.p_star = torch.tensor([[0.9, 0.1], [0.5, 0.2], [0.3, 0.99]])
    lam = 2.0 * p.p_star + 20.0 * (1 - p.p_star)  # lambda1 p* + lambda0 (1 - p*)
    w = W[:, 0, :].clone()
    hand = torch.sign(w) * (w.abs() - 0.02 * lam).clamp_min(0)
    p.prox(W, 0.02)
    torch.testing.assert_close(W[:, 0, :], hand)


def test_an_interrupted_fit_does_not_also_say_the_em_has_not_started(fail_at_step):
    X = np.random.default_rng(0).standard_normal((20, 5)).astype(np.float32)
    m = gfa.SparseVAE(5, 2, hidden=(6,), em_warmup=5)
    fail_at_step(2, KeyboardInterrupt)  # Ctrl-C in the warm-up
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m.fit(X, epochs=3, batch_size=20, progress=False)
    assert m.interrupted_
    messages = [str(w.message) for w in caught]
    assert any("interrupted" in s for s in messages)
    assert not any("EM has not started" in s for s in messages)
