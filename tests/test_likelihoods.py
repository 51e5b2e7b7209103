import numpy as np
import pytest
import torch
from scipy.stats import invgamma

import pyro_gfa as gfa
from pyro_gfa.models.likelihoods import (
    BernoulliLikelihood,
    GaussianLikelihood,
    MultinomialCounts,
    MultinomialLikelihood,
    NegativeBinomialLikelihood,
    calibrate_xi,
    make_likelihood,
)


def test_xi_calibration_matches_the_quantile_rule():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 20)) * np.linspace(0.5, 3.0, 20)
    xi = calibrate_xi(X, nu=3.0)
    v05 = np.quantile(X.var(axis=0, ddof=1), 0.05)
    # the 90% quantile of InverseGamma(nu/2, nu xi / 2) is the 5% quantile of the variances
    assert invgamma(1.5, scale=1.5 * xi).ppf(0.9) == pytest.approx(v05, rel=1e-6)


def test_gaussian_log_prob_and_noise_prior():
    rng = np.random.default_rng(1)
    X = (rng.standard_normal((50, 4)) * [1.0, 2.0, 3.0, 0.5] + 4.0).astype(np.float32)
    lik = GaussianLikelihood(4)
    lik.setup(X)
    with torch.no_grad():
        lik.log_sigma.copy_(torch.tensor([-0.3, 0.1, 0.4, -1.0]))
    out = torch.randn(50, 4)
    x = torch.as_tensor(X)
    ref = torch.distributions.Normal(lik.loc + lik.scale * out, lik.log_sigma.exp())
    torch.testing.assert_close(lik.dist(out).log_prob(x), ref.log_prob(x).sum(-1))
    var = np.exp(2 * lik.log_sigma.detach().numpy().astype(np.float64))
    expected = invgamma(1.5, scale=1.5 * float(lik.xi_)).logpdf(var).sum()
    assert lik.log_prior().item() == pytest.approx(expected, rel=1e-5)
    assert float(lik.xi_) == pytest.approx(calibrate_xi(X, 3.0))
    assert lik.xi is None  # the setting stays as given; xi_ is the value in use


def test_bernoulli_log_prob_and_bad_values():
    lik = BernoulliLikelihood()
    out = torch.randn(10, 5)
    x = torch.randint(0, 2, (10, 5)).float()
    ref = torch.distributions.Bernoulli(logits=out).log_prob(x).sum(-1)
    torch.testing.assert_close(lik.dist(out).log_prob(x), ref)
    with pytest.raises(ValueError, match=r"\{0, 1\}"):
        lik.check(np.array([[0.0, 1.0], [0.5, 1.0]]))
    with pytest.raises(ValueError, match=r"\{0, 1\}"):
        gfa.SparseVAE(2, 2, likelihood="bernoulli").fit(np.array([[0.0, 2.0]] * 4), epochs=1)


def test_multinomial_log_prob_per_row_totals():
    torch.manual_seed(0)
    out = torch.randn(6, 8)
    x = torch.randint(0, 5, (6, 8)).float()
    lp = MultinomialLikelihood().dist(out).log_prob(x)
    for i in range(6):
        ref = torch.distributions.Multinomial(int(x[i].sum()), logits=out[i]).log_prob(x[i])
        assert lp[i].item() == pytest.approx(ref.item(), rel=1e-5)


def test_multinomial_sample_and_mean():
    torch.manual_seed(0)
    out = torch.randn(3, 4)
    d = MultinomialCounts(out, total_count=20)
    s = d.sample()
    assert s.shape == (3, 4) and torch.all(s.sum(-1) == 20)
    torch.testing.assert_close(d.mean, 20 * torch.softmax(out, -1))
    # one total per row, and the empirical mean of many draws matches n_i softmax(out_i)
    totals = torch.tensor([2.0, 10.0, 50.0])
    d = MultinomialCounts(out, total_count=totals)
    draws = d.sample((4000,))
    assert torch.equal(draws.sum(-1), totals.expand(4000, 3))
    torch.testing.assert_close(draws.mean(0), d.mean, atol=0.15, rtol=0.03)
    # rows of total 0 (empty documents) have no counts, also when every row is empty
    assert torch.equal(MultinomialCounts(out, total_count=0).sample(), torch.zeros(3, 4))


def test_count_vae_samples_rows_of_the_training_size_or_the_given_totals(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.poisson(3.0, size=(60, 5)).astype(np.float32)  # rows total about 15
    m = gfa.VAE(5, 2, hidden=(8,), likelihood="multinomial").fit(X, epochs=1, progress=False)
    assert np.all(m.sample(4, seed=0).sum(1) == round(X.sum(1).mean()))
    np.testing.assert_array_equal(m.sample(3, seed=0, total_count=[1, 7, 30]).sum(1), [1, 7, 30])
    with pytest.raises(ValueError, match="non-negative integers"):
        m.sample(3, total_count=2.5)
    with pytest.raises(ValueError, match="one per row"):
        m.sample(3, total_count=[1, 2])
    loaded = gfa.load(m.save(tmp_path / "m.zip"))  # the default total is saved
    np.testing.assert_array_equal(loaded.sample(2, seed=0), m.sample(2, seed=0))


@pytest.mark.parametrize(
    "X, msg",
    [
        (np.array([[1.0, -1.0], [2.0, 0.0]]), "non-negative"),
        (np.array([[1.0, 0.5], [2.0, 0.0]]), "integer"),
        # a fraction float32 would round away
        (np.array([[1.0, 1e7 + 0.25], [2.0, 0.0]]), r"integer counts; X\[0, 1\] = 10000000.25"),
    ],
)
def test_count_likelihoods_reject_bad_counts(X, msg):
    for lik, name in [
        (MultinomialLikelihood(), "multinomial"),
        (NegativeBinomialLikelihood(2), "nb"),
    ]:
        with pytest.raises(ValueError, match=msg):
            lik.check(X)
        with pytest.raises(ValueError, match=msg):
            gfa.SparseVAE(2, 2, likelihood=name).fit(X, epochs=1)


def test_count_models_refuse_counts_that_float32_cannot_hold():
    X = np.array([[1.0, 2.0**24 + 1], [2.0, 0.0]])  # float32 rounds it to 2**24
    for name in ("multinomial", "nb"):
        with pytest.raises(ValueError, match=r"up to 2\*\*24 = 16777216\); X\[0, 1\] = 16777217"):
            gfa.SparseVAE(2, 2, likelihood=name).fit(X, epochs=1)
    X[0, 1] = 2.0**25  # large, yet exact in float32
    gfa.SparseVAE(2, 2, likelihood="multinomial").fit(X, epochs=1, progress=False)


def test_negative_binomial_log_prob_against_the_pmf():
    torch.manual_seed(0)
    lik = NegativeBinomialLikelihood(5)
    with torch.no_grad():
        lik.log_theta.copy_(torch.linspace(-1.0, 2.0, 5))
    out = torch.randn(4, 5)
    x = torch.randint(0, 30, (4, 5)).float()
    lp = lik.dist(out).log_prob(x)
    theta = lik.log_theta.exp()
    for i in range(4):
        mu = x[i].sum() * torch.softmax(out[i], -1)
        # NB(x; mu, theta) = C(x + theta - 1, x) (theta / (theta + mu))^theta (mu / (theta + mu))^x
        ref = (
            torch.lgamma(x[i] + theta)
            - torch.lgamma(theta)
            - torch.lgamma(x[i] + 1)
            + theta * torch.log(theta / (theta + mu))
            + x[i] * torch.log(mu / (theta + mu))
        ).sum()
        assert lp[i].item() == pytest.approx(ref.item(), rel=1e-5)
    torch.testing.assert_close(lik.mean(out, x), x.sum(-1, keepdim=True) * torch.softmax(out, -1))
    # a row of total 0 has mean 0: its zeros have probability 1
    assert lik.dist(out[:1]).log_prob(torch.zeros(1, 5)).item() == pytest.approx(0.0, abs=1e-6)


def test_negative_binomial_vae_fits_overdispersed_counts():
    rng = np.random.default_rng(0)
    n, g = 400, 10
    mu = np.exp(rng.normal(1.0, 0.5, (n, 1)) + rng.normal(0, 1, (1, g)))
    X = rng.negative_binomial(2.0, 2.0 / (2.0 + mu)).astype(np.float32)  # theta = 2
    m = gfa.VAE(g, 2, hidden=(16,), likelihood="negative_binomial")
    m.fit(X, epochs=60, lr=1e-2, progress=False, seed=0)
    theta = np.exp(m.module.likelihood.log_theta.detach().numpy())
    assert 1.0 < np.median(theta) < 4.0
    assert m.sample(3, seed=0).shape == (3, g)


def test_make_likelihood_names():
    assert isinstance(make_likelihood("gaussian", 3), GaussianLikelihood)
    assert isinstance(make_likelihood("bernoulli", 3), BernoulliLikelihood)
    assert isinstance(make_likelihood("multinomial", 3), MultinomialLikelihood)
    assert isinstance(make_likelihood("negative_binomial", 3), NegativeBinomialLikelihood)
    for bad in ("poisson", ["gaussian"]):
        with pytest.raises(ValueError, match="likelihood must be"):
            make_likelihood(bad, 3)


def test_bad_likelihood_settings_fail_at_construction():
    with pytest.raises(ValueError, match="built for 5 features but the model has 7"):
        gfa.SparseVAE(7, 2, likelihood=GaussianLikelihood(5))
    with pytest.raises(ValueError, match="built for 5 features"):
        gfa.VAE(7, 2, likelihood=NegativeBinomialLikelihood(5))
    for cls in (GaussianLikelihood, NegativeBinomialLikelihood):
        for bad in (0, -1, 2.5):
            with pytest.raises(ValueError, match="n_features must be an integer >= 1"):
                cls(bad)
    for bad in (-0.3, 0.0, float("nan"), "data-sd"):
        with pytest.raises(ValueError, match="sigma_init"):
            GaussianLikelihood(3, sigma_init=bad)
    with pytest.raises(ValueError, match="nu"):
        GaussianLikelihood(3, nu=float("nan"))
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="sigma_init"):
            gfa.FactVAE([2, 2], 2, sigma_init=bad)


def test_a_saved_gaussian_model_keeps_its_noise_prior(tmp_path):
    X = np.random.default_rng(0).normal(size=(80, 6)).astype(np.float32)
    m = gfa.VAE(6, 2, hidden=(8,)).fit(X, epochs=2, progress=False, seed=0)
    loaded = gfa.load(m.save(tmp_path / "m.zip"))
    lik, lik2 = m.module.likelihood, loaded.module.likelihood
    assert float(lik2.xi_) == float(lik.xi_) > 0
    assert lik2.log_prior().item() == pytest.approx(lik.log_prior().item())


@pytest.mark.parametrize(
    "make",
    [
        lambda: GaussianLikelihood(6, nu=0.0, sigma_init="data_sd"),
        lambda: GaussianLikelihood(6, nu=5.0, xi=0.2, sigma_init=0.5),
        lambda: NegativeBinomialLikelihood(6),
        lambda: MultinomialLikelihood(),
    ],
)
def test_a_model_built_with_a_likelihood_object_fits_saves_and_loads(make, tmp_path):
    X = np.random.default_rng(0).poisson(3.0, size=(80, 6)).astype(np.float32)
    m = gfa.SparseVAE(6, 2, hidden=(8,), likelihood=make())
    m.fit(X, epochs=2, progress=False, seed=0, checkpoint=tmp_path / "ck.zip")
    loaded = gfa.load(m.save(tmp_path / "m.zip"))
    lik, lik2 = m.module.likelihood, loaded.module.likelihood
    assert type(lik2) is type(lik) and lik2._config() == lik._config()
    np.testing.assert_array_equal(loaded.reconstruct(X), m.reconstruct(X))
    np.testing.assert_array_equal(gfa.load(tmp_path / "ck.zip").transform(X), m.transform(X))


def test_negative_binomial_samples_scale_with_the_row_size():
    torch.manual_seed(0)
    lik = NegativeBinomialLikelihood(4)
    out = torch.randn(3, 4)
    draws = torch.stack([lik.sample(out, [0, 10, 200]) for _ in range(3000)])
    assert torch.all(draws[:, 0] == 0)  # a row of size 0 has no counts
    expect = torch.tensor([10.0, 200.0])[:, None] * torch.softmax(out[1:], -1)
    torch.testing.assert_close(draws[:, 1:].mean(0), expect, rtol=0.1, atol=0.3)


def test_total_count_is_refused_where_unused_and_checked_where_used():
    out = torch.zeros(2, 3)
    for lik in (GaussianLikelihood(3), BernoulliLikelihood()):
        with pytest.raises(ValueError, match=f"the {lik.name} likelihood does not use it"):
            lik.sample(out, total_count=4)
    for lik in (MultinomialLikelihood(), NegativeBinomialLikelihood(3)):
        for bad in (True, "a", float("inf"), [1.5, 2]):
            with pytest.raises(ValueError, match="total_count must hold non-negative integers"):
                lik.sample(out, total_count=bad)
        assert lik.sample(torch.zeros(0, 3), total_count=4).shape == (0, 3)  # no rows


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(nu=float("nan")), "nu"),
        (dict(xi=float("inf")), "xi"),
        (dict(xi=0.0), "xi"),
        (dict(sigma_init=[1.0]), "sigma_init"),
        (dict(sigma_init=True), "sigma_init"),
    ],
)
def test_gaussian_hyperparameters_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GaussianLikelihood(3, **kwargs)


def test_xi_calibration_falls_back_to_the_smallest_positive_variance():
    from scipy.stats import chi2

    # most columns constant: the 5% quantile of the variances is 0, so the smallest
    # positive variance takes its place; with no positive variance, 1
    rng = np.random.default_rng(0)
    X = np.zeros((40, 10))
    X[:, 7:] = rng.standard_normal((40, 3)) * [0.5, 2.0, 4.0]
    vmin = X[:, 7:].var(axis=0, ddof=1).min()
    assert calibrate_xi(X, nu=3.0) == pytest.approx(vmin * chi2.ppf(0.1, 3.0) / 3.0, rel=1e-9)
    assert calibrate_xi(np.ones((5, 4)), nu=3.0) == pytest.approx(chi2.ppf(0.1, 3.0) / 3.0)


def test_prior_mode_init_is_the_inverse_gamma_mode():
    # sigma^2 ~ InverseGamma(nu/2, nu xi/2), whose mode is (nu xi/2) / (nu/2 + 1)
    X = np.random.default_rng(0).normal(size=(30, 3)).astype(np.float32)
    lik = GaussianLikelihood(3, nu=3.0, xi=0.2, sigma_init="prior_mode")
    lik.setup(X)
    mode = (1.5 * 0.2) / (1.5 + 1.0)
    torch.testing.assert_close(lik.sigma() ** 2, torch.full((3,), mode))


def test_gaussian_constant_column_gets_unit_scale():
    # sd 0 would divide by zero in the standardisation and give log(0) as noise sd
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((30, 3)) * [1.0, 2.0, 0.5] + 3.0).astype(np.float32)
    X[:, 1] = 5.0
    lik = GaussianLikelihood(3)
    lik.setup(X)
    assert lik.scale[1].item() == 1.0 and lik.loc[1].item() == 5.0
    x = torch.as_tensor(X)
    z = lik.encoder_input(x)
    assert torch.isfinite(z).all() and torch.all(z[:, 1] == 0)
    assert torch.isfinite(lik.sigma()).all() and (lik.sigma() > 0).all()
    assert torch.isfinite(lik.dist(z).log_prob(x)).all()


def test_count_likelihoods_encode_log1p_counts():
    x = torch.tensor([[0.0, 1.0, 9.0], [3.0, 0.0, 99.0]])
    for lik in (MultinomialLikelihood(), NegativeBinomialLikelihood(3)):
        torch.testing.assert_close(lik.encoder_input(x), torch.log1p(x))


def test_mean_is_the_mean_of_the_distribution_for_every_likelihood():
    rng = np.random.default_rng(0)
    G = 4
    Xg = (rng.standard_normal((50, G)) * [1.0, 2.0, 3.0, 0.5] + [4.0, -2.0, 1.0, 7.0]).astype(
        np.float32
    )
    Xc = rng.poisson(4.0, size=(50, G)).astype(np.float32)
    torch.manual_seed(0)
    out = torch.randn(5, G)
    x = torch.as_tensor(Xc[:5])  # rows whose totals the count likelihoods take
    gauss = GaussianLikelihood(G)
    gauss.setup(Xg)
    assert not torch.allclose(gauss.scale, torch.ones(G))  # a non-trivial affine map
    torch.testing.assert_close(gauss.mean(out), gauss.dist(out).mean)
    bern = BernoulliLikelihood()
    torch.testing.assert_close(bern.mean(out), bern.dist(out).mean)
    torch.testing.assert_close(bern.mean(out), 1 / (1 + torch.exp(-out)))
    multi = MultinomialLikelihood()
    multi.setup(Xc)
    torch.testing.assert_close(multi.mean(out, x), multi.dist(out, x).mean)
    nb = NegativeBinomialLikelihood(G)
    nb.setup(Xc)
    with torch.no_grad():
        nb.log_theta.copy_(torch.linspace(-1.0, 1.0, G))
    torch.testing.assert_close(nb.mean(out, x), nb._nb(out, x.sum(-1)).mean)
    for lik in (multi, nb):  # without rows: the composition
        torch.testing.assert_close(lik.mean(out), torch.softmax(out, -1))


def test_count_expected_values_scale_with_the_given_totals():
    torch.manual_seed(0)
    out = torch.randn(3, 4)
    totals = torch.tensor([0.0, 7.0, 250.0])
    for lik in (MultinomialLikelihood(), NegativeBinomialLikelihood(4)):
        expect = totals[:, None] * torch.softmax(out, -1)
        torch.testing.assert_close(lik.expected(out, totals), expect)
        torch.testing.assert_close(lik.expected(out, 5), 5 * torch.softmax(out, -1))
        torch.testing.assert_close(lik.expected(out), torch.softmax(out, -1))
