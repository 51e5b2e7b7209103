"""factVAE and JMVAE+ (Ainsworth, Foti and Fox 2018): product of experts, masks, missing data,
imputation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pyro
import pytest
import torch
from pyro.infer import TraceMeanField_ELBO

import pyro_gfa as gfa
from pyro_gfa.data.groups import Groups
from pyro_gfa.models.factvae import (
    FactVAEModule,
    UniformMixtureDiagNormal,
    mask_groups,
    product_of_experts,
)
from pyro_gfa.priors import GroupLasso, NoPrior


def _close(a, b, rtol=1.3e-6, atol=1e-5):
    # torch.testing.assert_close costs seconds of lazy imports on its first call
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert torch.allclose(a, b.to(a.dtype), rtol=rtol, atol=atol), (a, b)


def _module(combine="poe", dropout=0.5, theta_prior=True, seed=0):
    torch.manual_seed(seed)
    groups = Groups.from_spec([3, 1, 4, 2])
    m = FactVAEModule(
        groups,
        latent_dim=3,
        prior=GroupLasso(1.0),
        combine=combine,
        p=2,
        generator_hidden=(5,),
        encoder_hidden=(6,),
        group_dropout=dropout,
        theta_prior=theta_prior,
    )
    return m, groups


def _batch(groups, n=7, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, groups.n_features, generator=g)
    obs = torch.rand(n, groups.n_groups, generator=g) < 0.6
    obs[:, 0] |= ~obs.any(1)
    return x, obs


# -- product of experts ------------------------------------------------------------------
def test_product_of_experts_closed_form():
    g = torch.Generator().manual_seed(0)
    loc = torch.randn(5, 4, 3, generator=g)
    prec = torch.rand(5, 4, 3, generator=g) * 3
    mask = torch.rand(5, 4, generator=g) < 0.5
    mean, lam = product_of_experts(loc, prec, mask)
    for i in range(5):
        # the product of N(0, 1) and N(loc_g, 1 / prec_g) over the groups in the mask
        P = torch.ones(3, dtype=torch.float64)
        h = torch.zeros(3, dtype=torch.float64)
        for j in range(4):
            if mask[i, j]:
                P += prec[i, j].double()
                h += (prec[i, j] * loc[i, j]).double()
        _close(lam[i].double(), P)
        _close(mean[i].double(), h / P)


def test_product_of_experts_ignores_nan_of_masked_experts():
    loc = torch.tensor([[[1.0, 2.0], [math.nan, math.nan]]])
    prec = torch.tensor([[[2.0, 0.5], [math.nan, math.nan]]])
    mask = torch.tensor([[True, False]])
    mean, lam = product_of_experts(loc, prec, mask)
    _close(lam, torch.tensor([[3.0, 1.5]]))
    _close(mean, torch.tensor([[2.0 / 3.0, 1.0 / 1.5]]))


def test_entropy_never_grows_when_a_group_is_added():
    m, groups = _module()
    m.eval()
    x, _ = _batch(groups, n=20)
    G = groups.n_groups
    with torch.no_grad():
        for subset in itertools.product([False, True], repeat=G):
            base = torch.tensor(subset)
            for g in range(G):
                if subset[g]:
                    continue
                more = base.clone()
                more[g] = True
                obs_a = base.expand(20, G)
                obs_b = more.expand(20, G)
                q_a = m.posterior(x, obs_a)
                q_b = m.posterior(x, obs_b)
                assert (q_b.entropy() <= q_a.entropy() + 1e-6).all()
                # with no group at all the posterior is the prior
                if not subset.count(True):
                    _close(q_a.base_dist.loc, torch.zeros(20, 3))


def test_zero_cell_means_no_information_from_that_group():
    """A zero column of Phi^(g) gives exactly zero precision from group g on latent k."""
    m, groups = _module()
    with torch.no_grad():
        m.W[1, :, 2] = 0.0
    x, _ = _batch(groups, n=10)
    _, prec = m.experts(x)
    assert (prec[:, 1, 2] == 0).all()
    assert (prec[:, 1, :2] > 0).all()


@pytest.mark.parametrize("combine", ["poe", "mixture"])
def test_posterior_is_the_closed_form_of_the_experts_with_std_multiplier_and_min_std(combine):
    """factVAE: N(mu, (1 + sum_g Lambda_g)^-1/2 * mult + min_std) with mu the precision-weighted
    mean; JMVAE+: components N(Lambda_g mu_g / (1 + Lambda_g), (1 + Lambda_g)^-1/2 * mult +
    min_std), each expert times the prior, mixed uniformly over the mask."""
    m, groups = _module(combine=combine)
    m.eval()
    m.std_multiplier, m.min_std = 0.5, 0.01
    x, obs = _batch(groups, n=6)
    with torch.no_grad():
        loc, prec = m.experts(x)
        q = m.posterior(x, obs)
    loc, prec = loc.double(), prec.double()
    assert (prec > 0.1).any()  # precisions away from 0 (and 1 + prec away from 1)
    for i in range(6):
        g = obs[i]
        if combine == "poe":
            lam = 1.0 + prec[i, g].sum(0)
            _close(q.base_dist.loc[i].double(), (prec[i, g] * loc[i, g]).sum(0) / lam)
            _close(q.base_dist.scale[i].double(), 0.5 / lam.sqrt() + 0.01)
        else:
            lam = 1.0 + prec[i]
            means, sds = prec[i] * loc[i] / lam, 0.5 / lam.sqrt() + 0.01
            _close(q.locs[i].double(), means)
            _close(q.scales[i].double(), sds)
            _close(q.mean[i].double(), means[g].mean(0))
            spread = (means[g] - means[g].mean(0)) ** 2
            _close(q.variance[i].double(), (sds[g] ** 2 + spread).mean(0))


def test_mixture_entropy_can_grow_but_poe_not():
    """JMVAE+'s mixture gets wider when a group that disagrees is added (paper, sec. 3)."""
    locs = torch.tensor([[[-3.0, 0.0], [3.0, 0.0]]])
    scales = torch.full((1, 2, 2), 0.3)
    one = UniformMixtureDiagNormal(locs, scales, torch.tensor([[True, False]]))
    two = UniformMixtureDiagNormal(locs, scales, torch.tensor([[True, True]]))
    torch.manual_seed(0)
    h1 = -one.log_prob(one.rsample((4000,))).mean()
    h2 = -two.log_prob(two.rsample((4000,))).mean()
    assert h2 > h1 + 0.5  # about log 2 more
    _close(two.mean, torch.zeros(1, 2))
    _close(two.variance, torch.tensor([[9.0 + 0.09, 0.09]]))
    # far from 0 in float32: E[x^2] - mean^2 would cancel to 0 (or below) here
    far = UniformMixtureDiagNormal(locs + 100.0, scales / 30, torch.tensor([[True, False]]))
    torch.testing.assert_close(far.variance, torch.full((1, 2), 1e-4), rtol=1e-5, atol=0)


# -- the plain-torch loss equals Pyro's ELBO, masks and dropout included ---------------------
@pytest.mark.parametrize("combine", ["poe", "mixture"])
def test_loss_equals_pyro_elbo_value_and_gradient(combine):
    m, groups = _module(combine=combine)
    m.train()
    x, obs = _batch(groups)
    x[~obs[:, torch.as_tensor(groups.feature_group)]] = math.nan  # NaN in missing groups
    params = [p for p in m.parameters()]
    torch.manual_seed(3)
    with pyro.validation_enabled(True):
        ref = TraceMeanField_ELBO().differentiable_loss(m.model, m.guide, x, obs)
    g_ref = torch.autograd.grad(ref, params, allow_unused=True)
    torch.manual_seed(3)
    fast = m.loss(x, obs)
    g_fast = torch.autograd.grad(fast, params, allow_unused=True)
    assert torch.isfinite(fast)
    _close(fast, ref, rtol=1e-5, atol=1e-4)
    for a, b in zip(g_fast, g_ref):
        if a is None or b is None:
            assert a is None and b is None
        else:
            assert torch.isfinite(a).all()
            _close(a, b, rtol=1e-4, atol=1e-4)


def test_encoder_dropout_keeps_a_subset_of_observed_and_at_least_one():
    m, groups = _module(dropout=0.9)
    m.train()
    _, obs = _batch(groups, n=500)
    torch.manual_seed(0)
    keep = m.encoder_mask(obs)
    assert not (keep & ~obs).any()
    assert keep.any(1).all()
    assert keep.sum() < obs.sum()
    m.eval()
    assert torch.equal(m.encoder_mask(obs), obs)


def test_encoder_dropout_drops_groups_at_the_given_rate():
    """With every group observed, each is kept with probability 1 - group_dropout = 0.8 (plus
    the rare rescue of an all-dropped row: 0.2^4 / 4 = 4e-4)."""
    m, groups = _module(dropout=0.2)
    m.train()
    obs = torch.ones(5000, groups.n_groups, dtype=torch.bool)
    torch.manual_seed(0)
    frac = m.encoder_mask(obs).float().mean().item()
    sd = math.sqrt(0.8 * 0.2 / obs.numel())  # binomial sd of the kept fraction, about 0.003
    assert abs(frac - (0.8 + 0.2**4 / 4)) < 4 * sd, frac


# -- masked groups contribute exactly nothing ----------------------------------------------
def test_masked_groups_contribute_nothing_to_likelihood_and_gradient():
    m, groups = _module(dropout=0.0, theta_prior=False)
    m.eval()  # no dropout: the encoder sees every observed group
    x, obs = _batch(groups, n=9)
    fmask = obs[:, torch.as_tensor(groups.feature_group)]
    results = []
    for fill in (math.nan, 0.0, 1e6):
        xf = x.clone()
        xf[~fmask] = fill
        m.zero_grad()
        torch.manual_seed(5)
        loss = m.loss(xf, obs)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
        results.append((loss.detach(), grads))
    for loss, grads in results[1:]:
        assert torch.equal(loss, results[0][0])
        for k in grads:
            assert torch.equal(grads[k], results[0][1][k]), k
    # a feature missing in every row gets no likelihood gradient at all
    obs_all = obs.clone()
    obs_all[:, 2] = False
    obs_all[:, 0] = True
    m.zero_grad()
    m.loss(x, obs_all).backward()
    cols = torch.as_tensor(groups.index[2])
    assert (m.log_sigma.grad[cols] == 0).all()
    assert (m.generators.out_weight.grad[cols] == 0).all()
    # the per-row log-likelihood of the Pyro model is the sum over observed columns only
    tr = pyro.poutine.trace(m.guide).get_trace(x, obs)
    mt = pyro.poutine.trace(pyro.poutine.replay(m.model, trace=tr)).get_trace(x, obs)
    mt.compute_log_prob()
    z = tr.nodes["z"]["value"]
    lp = torch.distributions.Normal(m.decode(z), m.sigma()).log_prob(x)
    expect = torch.where(fmask, lp, torch.zeros(())).sum(-1)
    site = mt.nodes["x"]
    _close(site["log_prob"] / site["scale"], expect)


# -- the estimator ---------------------------------------------------------------------
def test_rows_without_any_observed_group_are_rejected():
    X, _, _ = gfa.data.make_quadrant_bars(20)
    grp = gfa.data.quadrant_groups()
    X[4] = np.nan
    with pytest.raises(ValueError, match="no observed group.*row 4"):
        gfa.FactVAE(grp, latent_dim=2).fit(X, epochs=1, progress=False)
    obs = np.ones((20, 4), bool)
    obs[7] = False
    X2, _, _ = gfa.data.make_quadrant_bars(20)
    with pytest.raises(ValueError, match="no observed group.*row 7"):
        gfa.FactVAE(grp, latent_dim=2).fit(X2, observed=obs, epochs=1, progress=False)


def test_partly_missing_group_is_rejected():
    X, _, _ = gfa.data.make_quadrant_bars(20)
    X[3, 0] = np.nan
    with pytest.raises(ValueError, match="partly missing"):
        gfa.FactVAE(gfa.data.quadrant_groups(), latent_dim=2).fit(X, epochs=1, progress=False)


def test_groups_that_do_not_cover_the_columns_are_named():
    X, _, _ = gfa.data.make_quadrant_bars(20)  # 64 columns
    m = gfa.FactVAE([16, 16, 16], latent_dim=2)
    with pytest.raises(ValueError, match="64 columns but the model expects 48 .its 3 groups"):
        m.fit(X, epochs=1, progress=False)


def test_oivae_rejects_nan_and_points_to_factvae():
    X, _, _ = gfa.data.make_quadrant_bars(20)
    X[2, 5] = np.nan
    with pytest.raises(ValueError, match=r"1 NaN.*row 2, column 5.*FactVAE"):
        gfa.OIVAE(gfa.data.quadrant_groups(), latent_dim=2).fit(X, epochs=1, progress=False)


def test_mask_groups_and_observed_specs():
    X, _, obs = gfa.data.make_quadrant_bars(30, missing_rate=0.3, seed=2)
    grp = gfa.data.quadrant_groups()
    Xm = mask_groups(X, grp, obs)
    g = Groups.from_spec(grp)
    assert np.array_equal(np.isnan(Xm), ~obs[:, g.feature_group])
    by_name = mask_groups(X, grp, ["top_left", "bottom_left"])
    by_index = mask_groups(X, grp, [0, 2])
    assert np.array_equal(np.isnan(by_name), np.isnan(by_index))
    assert np.isnan(by_name[:, grp["top_right"]]).all()
    assert not np.isnan(by_name[:, grp["top_left"]]).any()
    with pytest.raises(ValueError, match="unknown group"):
        mask_groups(X, grp, ["middle"])
    # a bool mask and a 0/1 matrix are masks; a 0/1 vector of length G is refused, not guessed
    mask = np.array([True, False, True, False])
    assert np.array_equal(np.isnan(mask_groups(X, grp, mask)), np.isnan(by_index))
    as_int = mask_groups(X, grp, np.tile(mask, (30, 1)).astype(int))
    assert np.array_equal(as_int, by_index, equal_nan=True)
    with pytest.raises(ValueError, match="ambiguous"):
        mask_groups(X, grp, np.array([1, 0, 1, 0]))
    with pytest.raises(ValueError, match="listed twice"):
        mask_groups(X, grp, [0, "top_left"])
    with pytest.raises(ValueError, match="only 0 and 1"):
        mask_groups(X, grp, np.full((30, 4), 2))


@pytest.fixture(scope="module")
def quadrant_fit():
    torch.set_num_threads(1)
    grp = gfa.data.quadrant_groups()
    X, _, obs = gfa.data.make_quadrant_bars(1024, missing_rate=0.25, seed=0)
    Xm = mask_groups(X, grp, obs)
    m = gfa.FactVAE(grp, latent_dim=8, p=4, group_dropout=0.25)
    m.fit(Xm, epochs=40, sparse_lr=1e-3, progress=False, seed=0)
    return m, X


def test_imputation_of_held_out_groups_beats_mean_imputation(quadrant_fit):
    m, X = quadrant_fit
    grp = gfa.data.quadrant_groups()
    Xt, _, _ = gfa.data.make_quadrant_bars(500, seed=11)
    right = np.concatenate([grp["top_right"], grp["bottom_right"]])
    imp = m.impute(Xt, observed=["top_left", "bottom_left"])
    rmse = np.sqrt(((imp[:, right] - Xt[:, right]) ** 2).mean())
    rmse_mean = np.sqrt(((X[:, right].mean(0) - Xt[:, right]) ** 2).mean())
    assert rmse < 0.75 * rmse_mean, (rmse, rmse_mean)
    # the observed half is returned as given
    left = np.concatenate([grp["top_left"], grp["bottom_left"]])
    assert np.array_equal(imp[:, left], Xt[:, left])


def test_estimator_api_with_missing_groups(quadrant_fit):
    m, _ = quadrant_fit
    Xt, _, obs = gfa.data.make_quadrant_bars(50, missing_rate=0.4, seed=12)
    Xm = mask_groups(Xt, gfa.data.quadrant_groups(), obs)
    assert m.transform(Xm).shape == (50, 8)
    loc, sd = m.posterior(Xm)
    assert loc.shape == sd.shape == (50, 8) and (sd > 0).all()
    assert m.reconstruct(Xm).shape == (50, 64)
    draws = m.impute(Xm, num_samples=3)
    assert draws.shape == (3, 50, 64) and np.isfinite(draws).all()
    ll = m.log_likelihood(Xm, num_samples=5)
    assert ll.shape == (50,) and np.isfinite(ll).all()
    # a mask and NaN are the same thing
    np.testing.assert_allclose(m.elbo(Xt, observed=obs), m.elbo(Xm), rtol=1e-5)
    assert m.loadings().shape == (4, 8)
    assert m.generator_loadings().shape == m.encoder_loadings().shape == (4, 8)
    assert np.array_equal(m.support(), m.loadings() > 0)


def test_jmvae_plus_runs_behind_the_same_api():
    grp = gfa.data.quadrant_groups()
    X, _, obs = gfa.data.make_quadrant_bars(128, missing_rate=0.3, seed=3)
    Xm = mask_groups(X, grp, obs)
    m = gfa.JMVAEPlus(grp, latent_dim=4, p=4).fit(Xm, epochs=2, progress=False)
    assert m.combine == "mixture" and isinstance(m.prior, NoPrior)
    assert np.isfinite(m.log_likelihood(Xm, num_samples=4)).all()
    assert m.impute(Xm).shape == X.shape
    assert gfa.FactVAE(grp, 4, combine="mixture").combine == "mixture"
    with pytest.raises(ValueError, match="combine"):
        gfa.FactVAE(grp, 4, combine="sum")
    with pytest.raises(ValueError, match="JMVAEPlus combines the groups by a mixture"):
        gfa.JMVAEPlus(grp, 4, combine="poe")


def test_pyro_path_trains_with_masks():
    """The Pyro ELBO path (model/guide under SVI) takes NaN-masked data as well."""
    grp = gfa.data.quadrant_groups()
    X, _, obs = gfa.data.make_quadrant_bars(64, missing_rate=0.3, seed=4)
    m = gfa.FactVAE(grp, latent_dim=3, p=4)
    m.fit(mask_groups(X, grp, obs), epochs=2, progress=False, pyro_elbo=True)
    assert all(np.isfinite(h["loss"]) for h in m.history_)


def test_restarts_with_missing_groups():
    X, _ = gfa.data.make_bars(128, seed=0)
    X = X.copy()
    X[:32, :8] = np.nan  # first row-group missing in a quarter of the images
    m = gfa.FactVAE(gfa.data.bar_groups(), latent_dim=3)
    m.fit(X, epochs=2, progress=False, seed=0, n_restarts=2)
    assert len(m.restart_elbos_) == 2
    assert m.elbo(X, seed=0).mean() == pytest.approx(max(m.restart_elbos_), rel=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(encoder_hidden=(-1,)), "encoder_hidden"),
        (dict(encoder_hidden=(0,)), "encoder_hidden"),
        (dict(generator_hidden=(2.5,)), "generator_hidden"),
        (dict(precision_baseline=float("inf")), "precision_baseline"),
        (dict(precision_baseline=float("nan")), "precision_baseline"),
        (dict(precision_baseline=0.0), "precision_baseline"),
        (dict(group_dropout=1.0), "group_dropout"),
        (dict(group_dropout=float("nan")), "group_dropout"),
        (dict(sigma_init=-1.0), "sigma_init"),
        (dict(p=np.float64(2)), "p must"),
        (dict(theta_prior=1), "theta_prior must be True or False"),
    ],
)
def test_bad_hyperparameters_fail_in_the_constructor(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gfa.FactVAE([2, 2, 2], 2, **kwargs)


def test_reconstruct_needs_a_positive_integer_num_samples():
    X = np.random.default_rng(0).normal(size=(24, 6)).astype(np.float32)
    m = gfa.FactVAE([2, 2, 2], 2).fit(X, epochs=1, progress=False)
    for bad in (2.7, -1, 0, True):
        with pytest.raises(ValueError, match="num_samples"):
            m.reconstruct(X, num_samples=bad)
    assert m.impute(X, num_samples=np.int64(2)).shape == (2, 24, 6)


def test_fit_refuses_a_group_never_observed():
    X = np.random.default_rng(0).normal(size=(24, 6)).astype(np.float32)
    m = gfa.FactVAE({"a": [0, 1], "b": [2, 3], "c": [4, 5]}, 2)
    Xn = X.copy()
    Xn[:, 4:] = np.nan
    with pytest.raises(ValueError, match=r"groups \['c'\] are missing .* every training row"):
        m.fit(Xn, epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"groups \['a', 'c'\]"):
        m.fit(X, observed=["b"], epochs=1, progress=False)
    assert m.module is None  # nothing was fitted
