import warnings

import numpy as np
import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import TraceMeanField_ELBO

import pyro_gfa as gfa
from pyro_gfa.inference.train import check_loss

GROUPS = [[0, 1, 2], [3], [4, 5]]  # variable sizes, 1 to 3 columns


def small_module(p=2, hidden=(), theta_prior=True, prior_weight=1.0):
    m = gfa.OIVAE(
        groups=GROUPS, latent_dim=3, p=p, generator_hidden=hidden, theta_prior=theta_prior
    )
    mod = m._build_module()
    mod.prior_weight = prior_weight
    return mod


@pytest.mark.parametrize("hidden", [(), (5, 4)])
def test_trace_shapes(hidden):
    mod = small_module(hidden=hidden)
    x = torch.randn(7, 6)
    guide_tr = poutine.trace(mod.guide).get_trace(x)
    model_tr = poutine.trace(poutine.replay(mod.model, trace=guide_tr)).get_trace(x)
    model_tr.compute_log_prob()
    guide_tr.compute_log_prob()
    assert guide_tr.nodes["z"]["value"].shape == (7, 3)
    assert model_tr.nodes["z"]["fn"].event_shape == (3,)
    assert model_tr.nodes["x"]["fn"].batch_shape == (7,)
    assert model_tr.nodes["x"]["fn"].event_shape == (6,)
    assert model_tr.nodes["x"]["log_prob"].shape == (7,)
    assert mod.W.shape == (3, 2, 3)
    assert mod.decode(torch.randn(4, 2, 3)).shape == (4, 2, 6)  # any leading batch dims


def test_model_guide_pair_is_valid_pyro():
    """Runs under validation with no warnings, and is fit by a plain Pyro SVI loop."""
    mod = small_module()
    x = torch.randn(20, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TraceMeanField_ELBO().differentiable_loss(mod.model, mod.guide, x)
    elbo_module = TraceMeanField_ELBO()(mod.model, mod.guide)  # Pyro's ELBO-as-module style
    opt = torch.optim.Adam(mod.parameters(), lr=1e-2)
    first = elbo_module(x).item()
    for _ in range(200):
        opt.zero_grad()
        loss = elbo_module(x)
        loss.backward()
        opt.step()
    assert loss.item() < first
    assert len(pyro.get_param_store()) == 0  # nothing leaks into the global param store


@pytest.mark.parametrize("theta_prior", [True, False])
@pytest.mark.parametrize("prior_weight", [1.0, 1 / 300])
def test_fast_loss_equals_pyro_elbo_value_and_gradient(theta_prior, prior_weight):
    mod = small_module(hidden=(4,), theta_prior=theta_prior, prior_weight=prior_weight)
    x = torch.randn(9, 6)
    grads = []
    values = []
    for f in (
        lambda: TraceMeanField_ELBO().differentiable_loss(mod.model, mod.guide, x),
        lambda: mod.loss(x),
    ):
        torch.manual_seed(3)
        mod.zero_grad()
        loss = f()
        loss.backward()
        values.append(loss.detach())
        grads.append([p.grad.clone() for p in mod.parameters()])
    torch.testing.assert_close(values[0], values[1])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)
    check_loss(mod, [x])  # the trainer's own check agrees


def test_objective_value_against_closed_form():
    """With the posterior std -> 0 the objective is computable by hand."""
    mod = small_module(p=1)
    mod.std_multiplier = 0.0  # q(z|x) = N(mu(x), 1e-3^2): z is mu up to 1e-3 noise
    x = torch.randn(5, 6, dtype=torch.float64)
    mod = mod.double()
    mu, s = mod.encode(x)
    recon = torch.distributions.Normal(mod.decode(mu), mod.sigma()).log_prob(x).sum(-1)
    kl = 0.5 * (mu.pow(2) + s.pow(2) - 1 - 2 * s.log()).sum(-1)
    theta = sum(
        torch.distributions.Normal(0.0, 1.0).log_prob(p).sum() for p in mod.generators.parameters()
    )
    lasso = -1.0 * mod.W.norm(dim=1).sum()
    expected = -((recon - kl).mean() + theta + lasso)
    torch.testing.assert_close(mod.loss(x), expected, rtol=1e-3, atol=1e-3)


def test_importance_sampled_loglik_matches_exact_linear_gaussian_marginal():
    """Linear generators make the oi-VAE linear-Gaussian: x ~ N(c, M M^T + diag(sigma^2))."""
    X, _ = gfa.data.make_bars(256, size=4, seed=0)
    m = gfa.OIVAE(groups=gfa.data.bar_groups(4), latent_dim=4, prior=gfa.priors.NoPrior())
    m.fit(X, epochs=60, batch_size=64, seed=0, progress=False, throttle_epochs=5)
    mod = m.module
    with torch.no_grad():
        fg = mod.generators.feature_group
        M = torch.einsum("jp,jpk->jk", mod.generators.out_weight, mod.W[fg])
        cov = M @ M.T + torch.diag(mod.sigma() ** 2)
        mvn = torch.distributions.MultivariateNormal(mod.generators.out_bias, cov)
        exact = mvn.log_prob(torch.as_tensor(X[:64])).double().numpy()
    is_ll = m.log_likelihood(X[:64], num_samples=2000).astype(np.float64)
    elbo = m.elbo(X[:64], num_samples=200)
    assert np.all(elbo <= exact + 0.5)  # a lower bound (up to Monte Carlo error)
    assert np.abs(is_ll - exact).mean() < 0.05 * np.abs(exact).mean() + 0.5
    assert is_ll.mean() >= elbo.mean()


def test_fit_recovers_bars_structure():
    """The paper's bars run (appendix A): one latent per row-group, exact zeros elsewhere.

    About 40 s on one core: the structure emerges only after ~10,000 of the 20,000 steps.
    """
    X, _ = gfa.data.make_bars(2048, seed=0)
    groups = gfa.data.bar_groups()
    m = gfa.OIVAE(groups=groups, latent_dim=8, prior=gfa.priors.GroupLasso(1.0))
    m.fit(X, epochs=625, batch_size=64, seed=0, progress=False)
    L = m.loadings()
    nz = L > 0
    assert (nz.sum(1) == 1).all(), L  # every row-group driven by exactly one latent
    assert (nz.sum(0) == 1).all(), L  # every latent drives exactly one row-group
    assert (L[nz] > 0.2).all()
    np.testing.assert_array_equal(m.support(), nz)
    # without the prior the same data give a dense pattern
    dense = gfa.OIVAE(groups=groups, latent_dim=8, prior=gfa.priors.NoPrior(), theta_prior=False)
    dense.fit(X[:256], epochs=5, batch_size=64, seed=0, progress=False)
    assert (dense.loadings() > 0).all()


def test_estimator_outputs_shapes():
    X, _ = gfa.data.make_bars(128, size=4, seed=0)
    m = gfa.OIVAE(groups=gfa.data.bar_groups(4), latent_dim=3).fit(X, epochs=2, progress=False)
    assert m.transform(X).shape == (128, 3)
    assert m.reconstruct(X).shape == (128, 16)
    assert m.sample(5, seed=1).shape == (5, 16)
    np.testing.assert_array_equal(m.sample(5, seed=1), m.sample(5, seed=1))
    assert m.loadings().shape == (4, 3)
    assert m.elbo(X).shape == (128,) and m.log_likelihood(X, num_samples=5).shape == (128,)
    assert [h["epoch"] for h in m.history_] == [0, 1]
    assert all(np.isfinite(h["loss"]) for h in m.history_)


def test_same_seed_same_fit_and_fits_share_no_state():
    X, _ = gfa.data.make_bars(128, size=4, seed=0)
    prior = gfa.priors.GroupLasso(1.0)
    a = gfa.OIVAE(groups=gfa.data.bar_groups(4), latent_dim=3, prior=prior)
    b = gfa.OIVAE(groups=gfa.data.bar_groups(4), latent_dim=3, prior=prior)
    a.fit(X, epochs=3, seed=5, progress=False)
    b.fit(X, epochs=3, seed=5, progress=False)
    np.testing.assert_array_equal(a.loadings(), b.loadings())
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    assert a.module.prior is not b.module.prior and a.module.prior is not prior
    assert len(pyro.get_param_store()) == 0
    c = gfa.OIVAE(groups=gfa.data.bar_groups(4), latent_dim=3).fit(
        X, epochs=3, seed=6, progress=False
    )
    assert not np.array_equal(a.loadings(), c.loadings())
    # the caller's RNG is not touched by a seeded fit
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    a.fit(X, epochs=1, seed=1, progress=False)
    assert torch.rand(1) == before


def test_non_finite_objective_fails_clearly_and_keeps_earlier_work(tmp_path):
    X, _ = gfa.data.make_bars(128, size=4, seed=0)
    m = gfa.OIVAE(groups=gfa.data.bar_groups(4), latent_dim=3)

    def corrupt(epoch, record):
        if epoch == 1:
            with torch.no_grad():
                m.module.log_sigma.fill_(float("nan"))

    with pytest.raises(FloatingPointError, match="epoch 2") as info:
        m.fit(X, epochs=10, progress=False, callback=corrupt, checkpoint=tmp_path / "ck.zip")
    assert "end of epoch 1" in "".join(info.value.__notes__)
    # the earlier work is kept: the parameters of the end of epoch 1, in memory and on disk
    assert len(m.history_) == 2
    assert all(torch.isfinite(t).all() for t in m.module.state_dict().values())
    saved = gfa.load(tmp_path / "ck.zip")
    np.testing.assert_array_equal(saved.loadings(), m.loadings())
    np.testing.assert_allclose(saved.elbo(X), m.elbo(X))


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(groups=[[0, 1], [2]], latent_dim=2, n_features=4), ValueError, "cover"),
        (dict(groups=[[0, 1], [1, 2, 3]], latent_dim=2), ValueError, "more than one"),
        (dict(groups=[2, 2], latent_dim=0), ValueError, "latent_dim"),
        (dict(groups=[2, 2], latent_dim=-3), ValueError, "latent_dim"),
        (dict(groups=[2, 2], latent_dim=2.5), ValueError, "latent_dim"),
        (dict(groups=[2, 2], latent_dim=2, prior="lasso"), TypeError, "prior"),
        (dict(groups=[2, 2], latent_dim=2, p=0), ValueError, "p must"),
        (dict(groups=[2, 2], latent_dim=2, prior_scale="x"), ValueError, "prior_scale"),
        (dict(groups=[2, 2], latent_dim=2, generator_activation="gelu"), ValueError, "activ"),
        (dict(groups=[2, 2], latent_dim=2, sigma_init=0.0), ValueError, "sigma_init"),
    ],
)
def test_bad_construction(kwargs, err, match):
    with pytest.raises(err, match=match):
        gfa.OIVAE(**kwargs)


def test_negative_lambda():
    with pytest.raises(ValueError, match="lam"):
        gfa.OIVAE(groups=[2, 2], latent_dim=2, prior=gfa.priors.GroupLasso(-1.0))


def test_bad_data():
    m = gfa.OIVAE(groups=[2, 2], latent_dim=2)
    X = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite.*row 3, column 1"):
        m.fit(bad, epochs=1, progress=False)
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        m.fit(bad, epochs=1, progress=False)
    with pytest.raises(ValueError, match="5 columns but the model expects 4 .its 2 groups cover 4"):
        m.fit(np.zeros((3, 5)), epochs=1, progress=False)
    with pytest.raises(RuntimeError, match="not fitted"):
        m.transform(X)
    m.fit(X, epochs=1, progress=False)
    with pytest.raises(ValueError, match="3 columns but the model expects 4"):
        m.transform(X[:, :3])
    with pytest.raises(ValueError, match="2-d"):
        m.transform(X[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_fit_matches_cpu_shapes():
    X, _ = gfa.data.make_bars(256, seed=0)
    m = gfa.OIVAE(groups=gfa.data.bar_groups(), latent_dim=8)
    m.fit(X, epochs=3, device="cuda", progress=False)
    assert m.device.type == "cuda"
    assert m.transform(X).shape == (256, 8)
    assert np.isfinite(m.log_likelihood(X[:32], num_samples=10)).all()


@pytest.mark.parametrize("groups, hidden", [([3, 1, 2], ()), ([1] * 6, (2,)), ([6], (8, 8))])
def test_generators_both_output_paths_agree_with_a_loop(groups, hidden):
    """Few-groups (matmul) and many-groups (gather) output paths equal a per-group loop."""
    from pyro_gfa.models.nets import GroupGenerators

    spec = gfa.data.Groups.from_spec(groups)
    gen = GroupGenerators(torch.as_tensor(spec.feature_group), p=2, hidden=hidden).double()
    u = torch.randn(5, spec.n_groups, 2, dtype=torch.float64)
    out = gen(u)
    expected = torch.empty(5, spec.n_features, dtype=torch.float64)
    for g, ix in enumerate(spec.index):
        h = u[:, g]
        for w, b in zip(gen.weights, gen.biases):
            h = torch.relu(h @ w[g] + b[g])
        expected[:, ix] = h @ gen.out_weight[ix].T + gen.out_bias[ix]
    torch.testing.assert_close(out, expected)


def test_tanh_generators_are_the_papers_mocap_form():
    # mu_j = W3_j . tanh(W^(g(j)) z) + b3_j with a linear generator after the tanh
    m = gfa.OIVAE(groups=[2, 3], latent_dim=4, p=3, generator_activation="tanh", sigma_init=0.05)
    module = m._build_module()
    z = torch.randn(6, 4)
    u = torch.einsum("nk,gpk->ngp", z, module.W)
    gen = module.generators
    group = gen.feature_group
    ref = (torch.tanh(u)[:, group, :] * gen.out_weight).sum(-1) + gen.out_bias
    torch.testing.assert_close(module.decode(z), ref)
    torch.testing.assert_close(module.sigma(), torch.full((5,), 0.05 + 1e-3))


def test_bad_validation_data_or_checkpoint_path_fail_before_training(tmp_path):
    X, _ = gfa.data.make_bars(64, size=4, seed=0)
    m = gfa.OIVAE(groups=gfa.data.bar_groups(4), latent_dim=3)
    epochs_run = []

    def count(epoch, record):
        epochs_run.append(epoch)

    with pytest.raises(ValueError, match="validation_data: .*columns"):
        m.fit(X, epochs=5, progress=False, validation_data=X[:, :5], eval_every=3, callback=count)
    (tmp_path / "notes.txt").write_text("not a folder")
    with pytest.raises(OSError):
        m.fit(
            X,
            epochs=5,
            progress=False,
            checkpoint=tmp_path / "notes.txt" / "ck.zip",
            checkpoint_every=3,
            callback=count,
        )
    assert epochs_run == []


@pytest.mark.parametrize("make", [gfa.data.make_bars, gfa.data.make_quadrant_bars])
def test_bar_generators_reject_non_finite_settings(make):
    for kw in (dict(noise_sd=float("nan")), dict(noise_sd=-1.0), dict(value=float("inf"))):
        with pytest.raises(ValueError, match="finite"):
            make(10, **kw)


def test_warm_start_continues_a_loaded_checkpoint(tmp_path):
    X, _ = gfa.data.make_bars(128, size=4, seed=0)
    m = gfa.OIVAE(groups=gfa.data.bar_groups(4), latent_dim=3)
    with pytest.raises(ValueError, match="needs a fitted or loaded model"):
        m.fit(X, epochs=1, progress=False, warm_start=True)
    m.fit(X, epochs=3, progress=False, checkpoint=tmp_path / "ck.zip")
    resumed = gfa.load(tmp_path / "ck.zip")
    start = {k: v.clone() for k, v in resumed.module.state_dict().items()}
    seen = []
    resumed.fit(X, epochs=2, progress=False, warm_start=True, callback=lambda e, r: seen.append(e))
    # the epoch count goes on (schedules such as the std throttle continue) and the
    # parameters moved on from the checkpoint's, not from a new initialisation
    assert seen == [3, 4] and [r["epoch"] for r in resumed.history_] == [0, 1, 2, 3, 4]
    assert resumed.history_[:3] == m.history_
    loss = [r["loss"] for r in resumed.history_]
    assert abs(loss[3] - loss[2]) < abs(loss[3] - loss[0])  # not back at a fresh start
    assert not torch.equal(start["W"], resumed.module.W.detach())
    with pytest.raises(ValueError, match="n_restarts"):
        resumed.fit(X, epochs=1, progress=False, warm_start=True, n_restarts=2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(encoder_hidden=(0,)), "encoder_hidden"),  # fits, but ignores its input
        (dict(encoder_hidden=(2.5,)), "encoder_hidden"),
        (dict(generator_hidden=(-3,)), "generator_hidden"),
        (dict(generator_hidden=4), "generator_hidden"),
        (dict(generator_hidden=(True,)), "generator_hidden"),
        (dict(p=True), "p must"),
        (dict(p=2.0), "p must"),
        (dict(sigma_init=float("inf")), "sigma_init"),
        (dict(sigma_init="x"), "sigma_init"),
        (dict(theta_prior="False"), "theta_prior must be True or False"),
    ],
)
def test_bad_hyperparameters_fail_in_the_constructor(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gfa.OIVAE([2, 2], 2, **kwargs)


def test_numpy_integers_are_integers():
    m = gfa.OIVAE([2, 2], np.int64(2), p=np.int64(2), generator_hidden=[np.int32(3)])
    assert (m.latent_dim, m.p, m.generator_hidden) == (2, 2, (3,))
    assert all(type(v) is int for v in (m.latent_dim, m.p, *m.generator_hidden))


@pytest.mark.parametrize("cls", ["OIVAE", "FactVAE"])
def test_data_far_from_unit_scale_warn_and_a_first_step_overflow_says_so(cls):
    X, _ = gfa.data.make_bars(64, seed=0)
    make = getattr(gfa, cls)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # unit-scale data: no warning
        make(groups=gfa.data.bar_groups(), latent_dim=2).fit(X, epochs=1, progress=False)
    m = make(groups=gfa.data.bar_groups(), latent_dim=2)
    with pytest.warns(UserWarning, match="columns of sd up to 2.*standardise") as caught:
        try:
            m.fit(1e4 * X, epochs=1, progress=False)
            overflowed = False
        except FloatingPointError as err:
            assert "at the first step, before any update" in str(err)
            overflowed = True
    assert caught[0].filename == __file__
    # as the oi-VAE's networks start, x ~ 1e4 overflows (the factor VAE trains, slowly)
    assert overflowed is (cls == "OIVAE") and (m.module is None) is overflowed


def test_theta_log_prob_is_the_standard_normal_density_of_the_generator_parameters():
    # checked on its own: inside the whole objective its error hides behind the likelihood
    mod = small_module(hidden=(4,))
    normal = torch.distributions.Normal(0.0, 1.0)
    expected = sum(normal.log_prob(p).sum() for p in mod.generators.parameters())
    torch.testing.assert_close(mod.theta_log_prob(), expected)


def test_theta_prior_false_leaves_the_generator_prior_out_of_the_objective():
    mod = small_module(hidden=(4,), theta_prior=False).double()  # float64: a difference of
    x = torch.randn(9, 6, dtype=torch.float64)  # two large losses
    torch.manual_seed(0)
    without = mod.loss(x)
    mod.theta_prior = True
    torch.manual_seed(0)
    with_theta = mod.loss(x)
    torch.testing.assert_close(without - with_theta, mod.theta_log_prob())
    mod.theta_prior = False
    trace = poutine.trace(mod.model).get_trace(x)
    assert "theta_prior" not in trace.nodes and "W_prior" in trace.nodes


def test_default_prior_is_the_group_lasso_with_rate_one():
    m = gfa.OIVAE([2, 2], 2)
    assert type(m.prior) is gfa.priors.GroupLasso and m.prior.lam == 1.0


def test_sample_x_adds_noise_of_standard_deviation_sigma():
    mod = small_module()
    with torch.no_grad():
        mod.log_sigma.copy_(torch.linspace(-2.0, 0.0, 6))
        z = torch.zeros(20_000, 3)
        x = mod.sample_x(z)
        resid = x - mod.decode(z)
    torch.testing.assert_close(resid.std(0), mod.sigma().detach(), rtol=0.03, atol=0.0)


def _fitted_linear(prior=None):
    X, _ = gfa.data.make_bars(128, size=4, seed=0)
    m = gfa.OIVAE(groups=gfa.data.bar_groups(4), latent_dim=3, p=2, prior=prior)
    return m.fit(X, epochs=2, progress=False, seed=0), X


def test_loadings_are_the_norms_of_the_cells_and_reconstruct_decodes_the_posterior_mean():
    m, X = _fitted_linear()
    W = m.module.W.detach().numpy()  # (G, p, K): a loading is ||W[g, :, k]||, not a sum
    np.testing.assert_allclose(m.loadings(), np.linalg.norm(W, axis=1), rtol=1e-6)
    np.testing.assert_allclose(m.reconstruct(X), m.decode(m.transform(X)), rtol=1e-6)


def test_samples_follow_the_linear_gaussian_marginal():
    """Linear generators: x = c + M z + noise, z ~ N(0, I), so cov(x) = M M^T + diag(sigma^2)."""
    m, _ = _fitted_linear()
    mod = m.module
    with torch.no_grad():
        fg = mod.generators.feature_group
        M = torch.einsum("jp,jpk->jk", mod.generators.out_weight, mod.W[fg]).double()
        cov = (M @ M.T + torch.diag(mod.sigma().double() ** 2)).numpy()
    x = m.sample(20_000, seed=0).astype(np.float64)
    np.testing.assert_allclose(x.mean(0), mod.generators.out_bias.detach(), atol=0.1)
    assert np.linalg.norm(np.cov(x.T) - cov) < 0.05 * np.linalg.norm(cov)


class _FirstLatentOnly(gfa.priors.Prior):
    """A prior whose rule keeps latent 0 only, whatever the norms of the cells."""

    def support(self, W):
        keep = torch.zeros(W.shape[0], W.shape[2], dtype=torch.bool)
        keep[:, 0] = True
        return keep


def test_support_is_the_priors_rule_not_the_nonzero_loadings():
    m, _ = _fitted_linear(prior=_FirstLatentOnly())
    assert (m.loadings() > 0).all()
    expected = np.zeros((4, 3), dtype=bool)
    expected[:, 0] = True
    np.testing.assert_array_equal(m.support(), expected)


def test_columns_of_sd_above_ten_warn_and_below_do_not():
    X, _ = gfa.data.make_bars(64, seed=0)  # column sd up to 0.21
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gfa.OIVAE(groups=gfa.data.bar_groups(), latent_dim=2).fit(40 * X, epochs=1, progress=False)
    m = gfa.OIVAE(groups=gfa.data.bar_groups(), latent_dim=2)
    with pytest.warns(UserWarning, match="columns of sd up to 21.1"):
        try:
            m.fit(100 * X, epochs=1, progress=False)
        except FloatingPointError:  # the overflow the warning is about; not what is tested
            pass
