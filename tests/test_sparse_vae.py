import warnings

import numpy as np
import pytest
import torch
from pyro.infer import TraceMeanField_ELBO

import pyro_gfa as gfa
from pyro_gfa.data.synthetic_sparse import make_sparse_vae_data
from pyro_gfa.inference.train import check_loss
from pyro_gfa.metrics import anchor_report, factors_recovered, heldout_nll, support_f1
from pyro_gfa.models.sparse_vae import SparseDecoder
from pyro_gfa.priors import Lasso, NoPrior, SpikeSlabLasso

torch.set_num_threads(1)


# ------------------------------------------------------------------------------- decoder
@pytest.mark.parametrize("normalize_first", [True, False])
def test_vectorised_decoder_matches_the_loop(normalize_first):
    torch.manual_seed(0)
    dec = SparseDecoder(13, 4, hidden=(8, 6, 5), normalize_first=normalize_first)
    z = torch.randn(9, 4)
    W = torch.randn(13, 4)
    W[W.abs() < 0.5] = 0.0
    torch.testing.assert_close(dec(z, W), dec.forward_loop(z, W), rtol=1e-5, atol=1e-5)
    # W = None (no mask) is the loop with an all-ones mask
    ones = torch.ones(13, 4)
    torch.testing.assert_close(dec(z, None), dec.forward_loop(z, ones), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "chunk, block",
    [(3, None), (None, 3), (None, 1), (4, 3)],
    ids=["chunks", "blocks", "one-feature-blocks", "blocks-in-chunks"],
)
def test_chunked_and_blocked_decoder_match_values_and_gradients(chunk, block):
    """Memory chunks (checkpointed) and cache blocks, alone and nested, on 2-D and 3-D codes,
    give one pass's values and gradients; the loop agrees too."""
    torch.manual_seed(1)
    dec = SparseDecoder(10, 3, hidden=(7, 7), normalize_first=True, block_elements=None)
    for z in (torch.randn(5, 3), torch.randn(2, 5, 3)):
        W = torch.randn(10, 3, requires_grad=True)
        params = [W, dec.first, dec.weights[0], dec.out_weight]
        dec.max_elements, dec.block_elements = 2**24, None
        full = dec(z, W)
        g_full = torch.autograd.grad(full.pow(2).sum(), params)
        per_feature = z[..., 0].numel() * 7  # activations of one feature in a layer
        dec.max_elements = 2**24 if chunk is None else per_feature * chunk
        dec.block_elements = None if block is None else per_feature * block
        split = dec(z, W)
        g_split = torch.autograd.grad(split.pow(2).sum(), params)
        torch.testing.assert_close(split, full, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(dec.forward_loop(z, W), full, rtol=1e-5, atol=1e-5)
        for a, b in zip(g_split, g_full):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        with torch.no_grad():  # the unrecorded path (transform, decode) splits the same way
            torch.testing.assert_close(dec(z, W), full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(block_elements=0), "block_elements"),
        (dict(block_elements=2.5), "block_elements"),
        (dict(max_elements=-1), "max_elements"),
    ],
)
def test_decoder_sizes_must_be_positive_integers(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SparseDecoder(4, 2, hidden=(5,), **kwargs)


def test_mask_zero_column_cuts_the_factor():
    torch.manual_seed(2)
    dec = SparseDecoder(4, 2, hidden=(5,))
    W = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    z1 = torch.tensor([[0.3, -1.0]])
    z2 = torch.tensor([[0.3, 2.0]])
    a, b = dec(z1, W), dec(z2, W)
    assert a[0, 0] == b[0, 0]  # feature 0 ignores factor 1
    assert a[0, 3] == b[0, 3]  # feature 3 ignores both
    assert a[0, 1] != b[0, 1]


def test_decoder_matches_a_hand_written_reference():
    """f(w_j (.) z)_j = v_j . relu(A relu(H1 (w_j (.) z)) + a) + c_j, H1 with unit-norm columns,
    computed feature by feature in float64 numpy (the vectorised path and the loop share
    first_weight and _trunk, so only an outside reference checks them)."""
    torch.manual_seed(3)
    dec = SparseDecoder(4, 3, hidden=(5, 4), normalize_first=True)
    z = torch.randn(6, 3)
    W = torch.randn(4, 3)
    W[0, 1] = 0.0
    H1 = dec.first.detach().double().numpy()
    H1 = H1 / np.sqrt((H1**2).sum(0, keepdims=True))  # column k of the (H, K) weight: norm 1
    A, a = dec.weights[0].detach().double().numpy(), dec.biases[0].detach().double().numpy()
    V, c = dec.out_weight.detach().double().numpy(), dec.out_bias.detach().double().numpy()
    zn, Wn = z.double().numpy(), W.double().numpy()
    ref = np.empty((6, 4))
    for i in range(6):
        for j in range(4):
            h = np.maximum(H1 @ (Wn[j] * zn[i]), 0.0)
            h = np.maximum(A @ h + a, 0.0)
            ref[i, j] = V[j] @ h + c[j]
    with torch.no_grad():
        np.testing.assert_allclose(dec(z, W).numpy(), ref, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(dec.forward_loop(z, W).numpy(), ref, rtol=1e-5, atol=1e-6)
        # the property itself: unit-norm columns (H != K, so rows would differ)
        norms = dec.first_weight().norm(dim=0).numpy()
    np.testing.assert_allclose(norms, np.ones(3), rtol=1e-6)


# ---------------------------------------------------------------------- model objective
def _module(likelihood, X, prior=None, prior_cov=None, mask=True):
    m = gfa.SparseVAE(
        X.shape[1],
        3,
        hidden=(6, 6),
        likelihood=likelihood,
        prior=prior,
        prior_cov=prior_cov,
        mask=mask,
    )
    m._fit_data = X
    mod = m._build_module()
    mod.prior_weight = 1.0 / X.shape[0]
    return mod


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli", "multinomial"])
def test_loss_equals_the_pyro_elbo(likelihood):
    rng = np.random.default_rng(0)
    if likelihood == "gaussian":
        X = rng.standard_normal((20, 5)).astype(np.float32)
    elif likelihood == "bernoulli":
        X = rng.integers(0, 2, (20, 5)).astype(np.float32)
    else:
        X = rng.poisson(3.0, (20, 5)).astype(np.float32)
    torch.manual_seed(0)
    mod = _module(likelihood, X)
    check_loss(mod, [torch.as_tensor(X)])  # raises on disagreement
    # and the gradients agree too
    x = torch.as_tensor(X)
    state = torch.random.get_rng_state()
    ref = TraceMeanField_ELBO().differentiable_loss(mod.model, mod.guide, x)
    g_ref = torch.autograd.grad(ref, mod.decoder.first)[0]
    torch.random.set_rng_state(state)
    g_fast = torch.autograd.grad(mod.loss(x), mod.decoder.first)[0]
    torch.testing.assert_close(g_fast, g_ref, rtol=1e-4, atol=1e-6)


def test_loss_with_a_prior_covariance():
    X = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
    cov = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 2.0]])
    mod = _module("gaussian", X, prior_cov=cov)
    check_loss(mod, [torch.as_tensor(X)])
    with pytest.raises(ValueError, match="positive definite"):
        gfa.SparseVAE(4, 2, prior_cov=[[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(TypeError, match="prior_cov must be a numeric"):
        gfa.SparseVAE(4, 2, prior_cov=[[1, "a"], ["a", 1]])


def test_theta_prior_is_the_standard_normal_log_density_of_the_decoder():
    X = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
    mod = _module("gaussian", X)
    ref = sum(
        torch.distributions.Normal(0.0, 1.0).log_prob(p).sum() for p in mod.decoder.parameters()
    )
    assert mod.theta_log_prob().item() == pytest.approx(ref.item(), rel=1e-6)


def test_encoder_scale_is_multiplied_by_std_multiplier():
    """scale = exp(clamp(log_s)) * std_multiplier + 1e-4 (the std throttle acts through it)."""
    X = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
    mod = _module("gaussian", X)
    x = torch.as_tensor(X)
    with torch.no_grad():
        loc1, s1 = mod.encode(x)
        mod.std_multiplier = 0.1
        loc2, s2 = mod.encode(x)
        mod.std_multiplier = 0.0
        _, s0 = mod.encode(x)
    assert torch.equal(loc2, loc1)  # the mean is untouched
    np.testing.assert_allclose(s2.numpy(), 0.1 * (s1.numpy() - 1e-4) + 1e-4, rtol=1e-5)
    np.testing.assert_allclose(s0.numpy(), 1e-4, rtol=1e-6)


def test_learned_prior_correlation():
    X = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
    mod = _module("gaussian", X, prior_cov="learn")
    with torch.no_grad():
        mod.cov_raw.normal_()
    check_loss(mod, [torch.as_tensor(X)])  # the MVN prior's KL agrees with Pyro's
    L = mod.prior_scale_tril()
    torch.testing.assert_close(torch.diagonal(L @ L.T), torch.ones(3))  # a correlation
    with pytest.raises(ValueError, match="prior_cov"):
        gfa.SparseVAE(4, 2, prior_cov="estimate")


def test_vae_baseline_freezes_w_at_one():
    X, _, _ = make_sparse_vae_data(n=200, seed=0)
    m = gfa.SparseVAE(7, 3, hidden=(8,), mask=False).fit(X, epochs=2, progress=False)
    assert isinstance(m.module.prior, NoPrior)
    assert not m.module.W.requires_grad
    np.testing.assert_array_equal(m.loadings(), np.ones((7, 3)))
    with pytest.raises(ValueError, match="mask=False"):
        gfa.SparseVAE(7, 3, mask=False, prior=Lasso(1.0))


def test_default_prior_and_estimator_api():
    X, _, _ = make_sparse_vae_data(n=200, seed=0)
    m = gfa.SparseVAE(7, 4, hidden=(8,))
    assert isinstance(m.prior, SpikeSlabLasso)
    m.fit(X, epochs=2, progress=False)
    assert m.loadings().shape == (7, 4)
    assert m.support().shape == (7, 4) and m.support().dtype == bool
    assert m.inclusion_probabilities().shape == (7, 4)
    assert m.transform(X).shape == (200, 4)
    assert m.reconstruct(X).shape == (200, 7)
    assert m.sample(5, seed=0).shape == (5, 7)
    assert np.isfinite(heldout_nll(m, X[:20], num_samples=5))
    # the module's prior is a copy: the estimator's prior keeps its unfitted state
    assert m.prior.p_star.numel() == 0


def test_multinomial_reconstruct_uses_row_totals():
    X = np.random.default_rng(0).poisson(2.0, (30, 6)).astype(np.float32)
    m = gfa.SparseVAE(6, 2, hidden=(8,), likelihood="multinomial").fit(X, epochs=1, progress=False)
    np.testing.assert_allclose(m.reconstruct(X).sum(1), X.sum(1), rtol=1e-4)


# --------------------------------------------------------------- identifiability report
def test_anchor_report():
    S = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]], dtype=bool)
    r = anchor_report(S)
    assert r.active_factors.tolist() == [0, 1]
    assert r.anchors[0].tolist() == [0, 1] and r.anchors[1].tolist() == [2, 3]
    assert r.satisfied
    S2 = S.copy()
    S2[3, 1] = False  # factor 1 keeps a single anchor
    assert not anchor_report(S2).satisfied
    assert "factor 1" in str(anchor_report(S2))


def test_factors_recovered():
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((500, 2))
    codes = np.c_[np.exp(Z[:, 1]), rng.standard_normal(500), -(Z[:, 0] ** 3)]
    assert factors_recovered(codes, Z).tolist() == [True, True]
    mixed = np.c_[Z[:, 0] + Z[:, 1], rng.standard_normal(500)]
    assert factors_recovered(mixed, Z).sum() <= 1
    assert factors_recovered(codes, Z, active=[True, False, False]).tolist() == [False, True]


# ---------------------------------------------------------------------------- fitting
def test_short_fit_finds_the_two_true_factors():
    data = make_sparse_vae_data(n=1000, rho=0.0, seed=0)
    test = make_sparse_vae_data(n=1000, rho=0.0, seed=10_000)
    m = gfa.SparseVAE(n_features=7, latent_dim=5)
    m.fit(data.X, epochs=60, batch_size=100, seed=0, progress=False, device="cpu")
    S = m.support()
    active = S.any(axis=0)
    assert active.sum() == 2  # the three extra columns are emptied
    W = m.loadings()
    assert np.all(np.abs(W[:, ~active]) < 0.05)  # and their weights are ~0
    assert factors_recovered(m.transform(test.X), test.Z, active).all()
    assert support_f1(S, data.W_true).f1 >= 0.8
    assert m.identifiability().satisfied


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli", "multinomial"])
def test_heldout_log_likelihood_is_a_real_bound(likelihood):
    rng = np.random.default_rng(0)
    if likelihood == "gaussian":
        X = rng.standard_normal((40, 5)).astype(np.float32)
    elif likelihood == "bernoulli":
        X = rng.integers(0, 2, (40, 5)).astype(np.float32)
    else:
        X = rng.poisson(3.0, (40, 5)).astype(np.float32)
    m = gfa.SparseVAE(5, 2, hidden=(8,), likelihood=likelihood).fit(X, epochs=2, progress=False)
    ll = m.log_likelihood(X, num_samples=50)
    elbo = m.elbo(X, num_samples=50)
    assert ll.shape == (40,) and np.all(np.isfinite(ll))
    # importance sampling with the encoder as proposal tightens the ELBO (same draws' mean)
    assert ll.mean() >= elbo.mean() - 1e-3


def test_beta_vae_weights_the_kl_and_matches_pyro(tmp_path):
    X = np.random.default_rng(0).normal(size=(64, 5)).astype(np.float32)
    x = torch.as_tensor(X)
    losses = {}
    for beta in (1.0, 3.0):
        m = gfa.VAE(n_features=5, latent_dim=2, beta=beta, hidden=(8,))
        with torch.random.fork_rng():
            torch.manual_seed(0)
            mod = m._build_module()
        check_loss(mod, [x])  # plain-torch loss == Pyro ELBO with the KL scaled by beta
        torch.manual_seed(1)
        losses[beta] = mod.loss(x).item()
        torch.manual_seed(1)
        pyro_loss = TraceMeanField_ELBO().differentiable_loss(mod.model, mod.guide, x).item()
        assert pyro_loss == pytest.approx(losses[beta], rel=1e-5)
        loc, scale = mod.encode(x)
        kl = (0.5 * (loc**2 + scale**2 - 1) - scale.log()).sum(-1).mean().item()
    assert losses[3.0] - losses[1.0] == pytest.approx(2.0 * kl, rel=1e-4)
    m.fit(X, epochs=2, progress=False)
    assert m.module.kl_weight == 3.0 and not m.module.W.requires_grad
    m.save(tmp_path / "vae")
    back = gfa.load(tmp_path / "vae")
    assert back.beta == 3.0 and back.module.kl_weight == 3.0
    np.testing.assert_array_equal(back.transform(X), m.transform(X))
    with pytest.raises(ValueError, match="beta"):
        gfa.VAE(n_features=5, latent_dim=2, beta=0.0)


def test_restarts_keep_the_fit_with_the_best_training_elbo():
    X, _, _ = make_sparse_vae_data(n=200, rho=0.0, seed=0)
    m = gfa.SparseVAE(7, 3, hidden=(8,)).fit(X, epochs=3, progress=False, seed=1, n_restarts=3)
    assert len(m.restart_elbos_) == 3 and len(set(m.restart_elbos_)) == 3
    assert m.elbo(X, seed=1).mean() == pytest.approx(max(m.restart_elbos_), rel=1e-5)
    single = gfa.SparseVAE(7, 3, hidden=(8,)).fit(X, epochs=3, progress=False, seed=1)
    first = gfa.SparseVAE(7, 3, hidden=(8,)).fit(X, epochs=3, progress=False, seed=1001)
    assert single.elbo(X, seed=1).mean() == pytest.approx(m.restart_elbos_[0], rel=1e-5)
    assert first.elbo(X, seed=1).mean() == pytest.approx(m.restart_elbos_[1], rel=1e-5)
    with pytest.raises(ValueError, match="n_restarts"):
        gfa.SparseVAE(7, 3).fit(X, epochs=1, n_restarts=2, validation_data=X, progress=False)
    with pytest.raises(ValueError, match="n_restarts"):
        gfa.SparseVAE(7, 3).fit(X, epochs=1, n_restarts=0, progress=False)


def test_kl_annealing_schedule():
    module = gfa.VAE(7, 2, beta=2.0, kl_warmup=4)._build_module()
    weights = []
    for epoch in range(6):
        module.start_epoch(epoch)
        weights.append(module.kl_weight)
    assert weights == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.0, 2.0])
    with pytest.raises(ValueError, match="kl_warmup"):
        gfa.SparseVAE(7, 2, kl_warmup=-1)
    # the annealed objective is still the model/guide's (checked on the first batch)
    X, _, _ = make_sparse_vae_data(n=100, rho=0.0, seed=0)
    m = gfa.SparseVAE(7, 2, hidden=(8,), kl_warmup=3).fit(X, epochs=2, progress=False)
    assert m.module.kl_weight == pytest.approx(2 / 3)


@pytest.mark.filterwarnings("ignore:the fit ended with no active factor")  # one epoch
@pytest.mark.parametrize("cls", [gfa.SparseVAE, gfa.VAE, gfa.VSC])
def test_input_dropout_zeroes_the_encoder_input_while_training_only(cls, tmp_path):
    X = np.random.default_rng(0).poisson(3.0, (64, 12)).astype(np.float32)
    m = cls(12, 3, hidden=(8,), likelihood="multinomial", input_dropout=0.25, em_warmup=0)
    m.fit(X, epochs=1, progress=False, seed=3)
    # the dropout draws come from the fit's seed: a refit repeats the fit exactly
    again = cls(**m.get_config()).fit(X, epochs=1, progress=False, seed=3)
    np.testing.assert_array_equal(again.transform(X), m.transform(X))
    x = torch.as_tensor(X)
    h = m.module.likelihood.encoder_input(x)
    m.module.train()
    torch.manual_seed(0)
    draws = torch.stack([m.module.encoder_features(x) for _ in range(400)])
    kept = draws != 0
    # inverted dropout: a kept entry is scaled by 1 / (1 - p), so its mean stays h
    torch.testing.assert_close(draws, kept * (h / 0.75))
    assert (~kept[:, h != 0]).float().mean().item() == pytest.approx(0.25, abs=0.01)
    # evaluation sees the whole row: no dropout, deterministic codes
    m.module.eval()
    assert torch.equal(m.module.encoder_features(x), h)
    np.testing.assert_array_equal(m.transform(X), m.transform(X))
    # the setting survives save / load, and its default is off
    m2 = gfa.load(m.save(tmp_path / "m.zip"))
    assert m2.input_dropout == m2.module.input_dropout == 0.25
    assert cls(12, 3)._build_module().input_dropout == 0.0


def test_a_collapsed_fit_warns_and_says_what_to_change():
    data = make_sparse_vae_data(n=200, rho=0.0, seed=0)
    prior = SpikeSlabLasso(lambda0=1e6, lambda1=1e5)
    m = gfa.SparseVAE(n_features=7, latent_dim=3, prior=prior, em_warmup=0)
    with pytest.warns(UserWarning, match=r"no active factor.*lambda0 = 1e\+06.*200 rows"):
        m.fit(data.X, epochs=3, progress=False)
    assert not m.support().any() and np.all(m.loadings() == 0)
    # a fit that keeps its factors stays quiet
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gfa.SparseVAE(n_features=7, latent_dim=3, em_warmup=1).fit(data.X, epochs=3, progress=False)


def test_a_fit_shorter_than_the_em_warm_up_says_w_is_not_sparse_yet():
    data = make_sparse_vae_data(n=200, rho=0.0, seed=0)
    m = gfa.SparseVAE(n_features=7, latent_dim=3, em_warmup=5)
    match = r"EM has not started .* \(4 of its 10 warm-up steps, em_warmup = 5 epochs\)"
    with pytest.warns(UserWarning, match=match) as w:
        m.fit(data.X, epochs=2, progress=False)
    assert w[0].filename == __file__ and m.support().all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 6 epochs in all: the EM has run
        m.fit(data.X, epochs=4, progress=False, warm_start=True)
    assert not m.support().all()


def test_em_warm_up_counts_the_last_partial_batch_as_a_step():
    """250 rows in batches of 100 are 3 steps an epoch, so em_warmup=2 epochs is 6 steps."""
    X = np.random.default_rng(0).standard_normal((250, 5)).astype(np.float32)
    m = gfa.SparseVAE(n_features=5, latent_dim=2, hidden=(4,), em_warmup=2)
    with pytest.warns(UserWarning, match=r"\(3 of its 6 warm-up steps"):
        m.fit(X, epochs=1, batch_size=100, progress=False)
    assert m.module.prior.em_warmup_steps == 6 and int(m.module.prior.steps) == 3


def test_a_collapsed_beta_vae_is_told_to_lower_beta():
    X = np.random.default_rng(0).standard_normal((100, 4)).astype(np.float32)  # no structure
    m = gfa.VAE(n_features=4, latent_dim=2, beta=50.0, hidden=(8,))
    with pytest.warns(UserWarning, match="no active factor.*a smaller beta"):
        m.fit(X, epochs=30, progress=False)
    assert np.all(m.code_kl_ < m.kl_tol)


def test_modules_built_from_one_prior_object_do_not_share_its_state():
    from pyro_gfa.models.likelihoods import GaussianLikelihood
    from pyro_gfa.models.sparse_vae import SparseVAEModule

    prior = SpikeSlabLasso()
    a = SparseVAEModule(10, 3, prior, GaussianLikelihood(10), hidden=(4,))
    b = SparseVAEModule(6, 3, prior, GaussianLikelihood(6), hidden=(4,))
    assert prior.b is None and prior.p_star.numel() == 0  # the caller's object is untouched
    assert a.prior.b_ == 10 and b.prior.b_ == 6
    assert a.prior.p_star.shape == (10, 3) and b.prior.p_star.shape == (6, 3)
    assert torch.isfinite(a.loss(torch.randn(5, 10)))


def test_sample_draws_codes_with_the_prior_covariance(monkeypatch):
    """sample() draws z ~ N(0, Sigma) = L eps; L^T L (here [[4.25, .25], [.25, .25]]) is not
    Sigma for a non-diagonal Sigma, so the sample covariance tells them apart."""
    cov = np.array([[4.0, 1.0], [1.0, 0.5]])
    m = gfa.SparseVAE(3, 2, hidden=(4,), prior_cov=cov)
    m.module = m._build_module()
    monkeypatch.setattr(m.module, "sample_x", lambda z, total_count=None: z)  # expose z
    z = m.sample(40_000, seed=0).astype(np.float64)
    # sd of a sample covariance entry: sqrt((S_ik S_jk + S_ij^2) / n) <= 0.03 here
    np.testing.assert_allclose(np.cov(z.T), cov, atol=0.1)
    np.testing.assert_allclose(z.mean(0), 0.0, atol=0.05)


def test_code_information_is_measured_against_the_prior_marginals():
    X = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    cov = np.array([[4.0, 1.0], [1.0, 0.5]])
    m = gfa.SparseVAE(4, 2, hidden=(8,), prior_cov=cov).fit(X, epochs=1, progress=False)
    loc, scale = m.module.encode(torch.as_tensor(X))
    marg = torch.distributions.Normal(0.0, torch.tensor(np.sqrt(np.diag(cov)), dtype=torch.float32))
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(loc, scale), marg).mean(0)
    np.testing.assert_allclose(m.code_kl_, ref.detach().numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(hidden=(0,)), "hidden"),
        (dict(hidden=(-5,)), "hidden"),
        (dict(hidden=(2.5,)), "hidden"),
        (dict(hidden=()), "hidden"),  # the decoder needs a hidden layer
        (dict(hidden=5), "hidden"),
        (dict(encoder_hidden=(0,)), "encoder_hidden"),  # fits, but ignores its input
        (dict(em_warmup=1.5), "em_warmup"),
        (dict(kl_warmup=-1), "kl_warmup"),
        (dict(input_dropout=1.0), "input_dropout"),  # nothing left to encode
        (dict(input_dropout=-0.1), "input_dropout"),
        (dict(w_init=-1.0), "w_init"),
        (dict(w_init=float("nan")), "w_init"),
        (dict(max_elements=0), "max_elements"),
        (dict(prior_cov=np.full((2, 2), np.nan)), "prior_cov"),
        (dict(mask="False"), "mask must be True or False, got 'False'"),  # truthy
        (dict(normalize_first=0), "normalize_first must be True or False"),
        (dict(theta_prior=None), "theta_prior must be True or False"),
    ],
)
def test_bad_hyperparameters_fail_in_the_constructor(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gfa.SparseVAE(6, 2, **kwargs)


def test_counts_must_be_integers_not_bools():
    with pytest.raises(ValueError, match="n_features"):
        gfa.SparseVAE(True, 2)
    m = gfa.SparseVAE(np.int64(6), 2, hidden=[np.int64(4)], em_warmup=np.int32(3))
    assert (m.n_features, m.hidden, m.em_warmup) == (6, (4,), 3)


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli", "multinomial"])
def test_sample_zero_rows_and_total_count(likelihood):
    rng = np.random.default_rng(0)
    X = (rng.random((24, 6)) > 0.5).astype(np.float32)  # in every likelihood's support
    m = gfa.SparseVAE(6, 2, hidden=(8,), likelihood=likelihood).fit(X, epochs=1, progress=False)
    assert m.sample(0).shape == (0, 6)
    with pytest.raises(ValueError, match="n must"):
        m.sample(2.5)
    if likelihood == "multinomial":
        assert m.sample(0, total_count=5).shape == (0, 6)
        np.testing.assert_array_equal(m.sample(2, total_count=5).sum(1), [5, 5])
        bad = (-1, float("nan"), True)
        msg = "total_count must hold non-negative integers"
    else:
        bad = (5, -1, float("nan"))
        msg = f"the {likelihood} likelihood does not use it"
    for total in bad:
        with pytest.raises(ValueError, match=msg):
            m.sample(2, total_count=total)
