"""VSC: the spike-and-slab distribution, its KL, the objective and a fit on sparse codes."""

import itertools
import math

import numpy as np
import pytest
import torch
from torch.distributions import kl_divergence

import pyro_gfa as gfa
from pyro_gfa.inference.train import check_loss
from pyro_gfa.models.vsc import EPS, SpikeAndSlab


def test_log_prob_is_the_mixed_density():
    d = SpikeAndSlab(torch.tensor([0.2, 0.7]), torch.tensor([0.5, -1.0]), torch.tensor([1.0, 2.0]))
    v = torch.tensor([0.0, 0.3])
    lp = d.log_prob(v)
    assert lp[0].item() == pytest.approx(math.log(0.8))
    slab = math.log(0.7) - 0.5 * ((0.3 + 1.0) / 2.0) ** 2 - math.log(2.0 * math.sqrt(2 * math.pi))
    assert lp[1].item() == pytest.approx(slab, rel=1e-6)


def test_hard_draws_have_the_slab_probability_and_the_slab_moments():
    torch.manual_seed(0)
    d = SpikeAndSlab(torch.tensor(0.3), torch.tensor(2.0), torch.tensor(0.5))
    z = d.sample((200_000,))
    on = z != 0
    assert on.float().mean().item() == pytest.approx(0.3, abs=0.005)
    assert z[on].mean().item() == pytest.approx(2.0, abs=0.01)
    assert z[on].std().item() == pytest.approx(0.5, abs=0.01)
    assert z.mean().item() == pytest.approx(d.mean.item(), abs=0.01)
    assert z.var().item() == pytest.approx(d.variance.item(), rel=0.02)


def test_relaxed_gate_tends_to_the_hard_gate():
    p, loc, scale = torch.tensor([0.4] * 5000), torch.ones(5000), torch.ones(5000)
    torch.manual_seed(1)
    hard = SpikeAndSlab(p, loc, scale).rsample()
    torch.manual_seed(1)
    soft = SpikeAndSlab(p, loc, scale, temperature=1e4).rsample()
    # they differ only where u lies within about 1 / temperature of the threshold
    assert ((soft - hard).abs() > 1e-3).float().mean().item() < 2e-3


def test_kl_closed_form_against_monte_carlo():
    q = SpikeAndSlab(torch.tensor(0.6), torch.tensor(0.8), torch.tensor(0.7))
    p = SpikeAndSlab(torch.tensor(0.05), torch.tensor(0.0), torch.tensor(1.0))
    g = 0.6
    kl_normal = math.log(1 / 0.7) + (0.7**2 + 0.8**2) / 2 - 0.5
    hand = 0.4 * math.log(0.4 / 0.95) + g * math.log(g / 0.05) + g * kl_normal
    assert kl_divergence(q, p).item() == pytest.approx(hand, rel=1e-5)
    torch.manual_seed(2)
    z = q.sample((400_000,))
    mc = (q.log_prob(z) - p.log_prob(z)).mean().item()
    assert mc == pytest.approx(hand, abs=0.02)


def _module(likelihood="gaussian"):
    m = gfa.VSC(6, 3, hidden=(8,), slab_prob=0.1, likelihood=likelihood)
    return m._build_module()


@pytest.mark.parametrize("training", [True, False])
def test_fast_loss_equals_pyro_elbo(training):
    torch.manual_seed(0)
    module = _module()
    module.train(training)
    check_loss(module, [torch.randn(10, 6)])


def test_relaxed_gate_passes_gradient_to_the_slab_logits():
    torch.manual_seed(0)
    module = _module()
    module.train()
    x = torch.randn(16, 6)
    module.loss(x).backward()
    # the last encoder layer's rows for the slab logits are the last K outputs
    last = [p for p in module.encoder.parameters() if p.dim() == 2][-1]
    assert last.grad[-3:].abs().sum() > 0


def test_fit_finds_sparse_codes():
    rng = np.random.default_rng(0)
    n, k, g = 1500, 3, 12
    active = rng.random((n, k)) < 0.3
    z = np.where(active, rng.normal(0, 1.5, (n, k)), 0.0)
    A = rng.normal(0, 1, (k, g))
    X = (z @ A + 0.1 * rng.normal(size=(n, g))).astype(np.float32)
    m = gfa.VSC(g, k, slab_prob=0.3, hidden=(32,), warmup=5)
    m.fit(X, epochs=60, progress=False, seed=0)
    gates = m.slab_probabilities(X) > 0.5
    # the fitted gates are the true on/off pattern of the codes (up to a permutation)
    agree = max(np.mean(gates[:, list(p)] == active) for p in itertools.permutations(range(k)))
    assert agree > 0.85
    # and on sparse codes the spike-and-slab fits better than the dense VAE
    dense = gfa.VAE(g, k, hidden=(32,)).fit(X, epochs=60, progress=False, seed=0)
    assert m.log_likelihood(X[:300]).mean() > dense.log_likelihood(X[:300]).mean()
    assert m.sample(5, seed=0).shape == (5, g)
    assert m.transform(X[:4]).shape == (4, k)


def test_fit_is_reproducible_and_saves(tmp_path):
    X = np.random.default_rng(0).normal(size=(64, 5)).astype(np.float32)
    a = gfa.VSC(5, 2, hidden=(4,)).fit(X, epochs=2, progress=False, seed=3)
    b = gfa.VSC(5, 2, hidden=(4,)).fit(X, epochs=2, progress=False, seed=3)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    a.save(tmp_path / "vsc")
    c = gfa.load(tmp_path / "vsc")
    assert isinstance(c, gfa.VSC) and c.slab_prob == a.slab_prob
    np.testing.assert_allclose(c.transform(X), a.transform(X), rtol=1e-6)


def test_fit_shorter_than_warmup_round_trips(tmp_path):
    """The prior's slab probability where the warm-up left it is saved state."""
    X = np.random.default_rng(0).normal(size=(64, 5)).astype(np.float32)
    a = gfa.VSC(5, 2, hidden=(4,), warmup=10).fit(X, epochs=3, progress=False, seed=0)
    assert float(a.module.slab_prob) > 0.1  # still warming up, far from the target 0.01
    c = gfa.load(a.save(tmp_path / "vsc.zip"))
    assert float(c.module.slab_prob) == float(a.module.slab_prob)
    np.testing.assert_array_equal(c.elbo(X, seed=0), a.elbo(X, seed=0))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"slab_prob": 0.0}, "slab_prob"),
        ({"slab_prob": 1.0}, "slab_prob"),
        ({"temperature": -1.0}, "temperature"),
        ({"warmup": -2}, "warmup"),
        ({"prior_cov": np.eye(2)}, "prior_cov"),
        ({"prior": gfa.priors.Lasso(1.0)}, "VSC .W fixed at ones. has no W to put a prior on"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gfa.VSC(5, 2, **kwargs)


@pytest.mark.parametrize("cls", ["VAE", "VSC"])
def test_a_mask_is_the_sparse_vaes(cls):
    with pytest.raises(TypeError, match=f"{cls} has no mask argument.*use SparseVAE"):
        getattr(gfa, cls)(5, 2, mask=True)


def test_prior_warmup_schedule():
    module = gfa.VSC(5, 2, slab_prob=0.02, warmup=10)._build_module()
    module.start_epoch(0)
    assert module.slab_prob == pytest.approx(0.5)
    module.start_epoch(5)
    assert module.slab_prob == pytest.approx(math.sqrt(0.5 * 0.02))
    module.start_epoch(25)
    assert module.slab_prob == pytest.approx(0.02)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"hidden": (0,)}, "hidden"),
        ({"encoder_hidden": (3, -1)}, "encoder_hidden"),
        ({"slab_prob": math.nan}, "slab_prob"),
        ({"temperature": math.inf}, "temperature"),
        ({"warmup": 1.5}, "warmup"),
    ],
)
def test_bad_arguments_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gfa.VSC(5, 2, **kwargs)


def test_sample_total_count_only_for_count_likelihoods():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 5)).astype(np.float32)
    m = gfa.VSC(5, 2, hidden=(8,)).fit(X, epochs=1, progress=False)
    with pytest.raises(ValueError, match="the gaussian likelihood does not use it"):
        m.sample(2, total_count=-1)
    counts = rng.poisson(2.0, size=(24, 5)).astype(np.float32)
    m = gfa.VSC(5, 2, hidden=(8,), likelihood="multinomial").fit(counts, epochs=1, progress=False)
    np.testing.assert_array_equal(m.sample(3, total_count=7).sum(1), [7, 7, 7])
    assert m.sample(0).shape == (0, 5)


def test_log_prob_stays_finite_at_slab_probabilities_zero_and_one():
    # slab probabilities are clamped to [EPS, 1 - EPS]: a saturated encoder gives log(EPS)
    d = SpikeAndSlab(torch.tensor([1.0, 0.0]), torch.zeros(2), torch.ones(2))
    lp = d.log_prob(torch.tensor([0.0, 0.5]))
    assert lp[0].item() == pytest.approx(math.log(EPS), rel=1e-3)
    slab = math.log(EPS) - 0.125 - 0.5 * math.log(2 * math.pi)
    assert lp[1].item() == pytest.approx(slab, rel=1e-3)


def test_posterior_scale_takes_the_std_multiplier():
    torch.manual_seed(0)
    module = _module()
    x = torch.randn(10, 6)
    full = module.posterior(x).base_dist.scale
    module.std_multiplier = 0.25
    torch.testing.assert_close(module.posterior(x).base_dist.scale, 0.25 * (full - 1e-4) + 1e-4)


def test_encode_gives_the_mean_and_sd_of_the_spike_and_slab_posterior():
    torch.manual_seed(0)
    module = _module()
    x = torch.randn(10, 6)
    q = module.posterior(x).base_dist
    g, mu, s = q.slab_prob, q.loc, q.scale
    loc, sd = module.encode(x)
    torch.testing.assert_close(loc, g * mu)
    torch.testing.assert_close(sd, (g * (s**2 + mu**2) - (g * mu) ** 2).sqrt())


def test_draws_are_relaxed_in_training_and_exact_in_evaluation():
    torch.manual_seed(0)
    module = _module()
    x = torch.randn(500, 6)
    module.train()
    assert (module.posterior(x).rsample() != 0).all()  # the sigmoid gate is never exactly 0
    module.eval()
    q = module.posterior(x)
    off = (q.rsample() == 0).float().mean().item()
    assert off == pytest.approx(1 - q.base_dist.slab_prob.mean().item(), abs=0.03)


def test_the_prior_on_z_uses_the_slab_probability_of_the_warm_up():
    module = gfa.VSC(5, 2, slab_prob=0.02, warmup=10)._build_module()
    module.start_epoch(0)
    prior = module.z_prior(3, torch.zeros(())).base_dist
    torch.testing.assert_close(prior.slab_prob, torch.full((3, 2), 0.5))


def test_code_kl_is_the_mean_closed_form_kl_per_row():
    X = np.random.default_rng(0).normal(size=(64, 5)).astype(np.float32)
    m = gfa.VSC(5, 2, hidden=(4,), warmup=10).fit(X, epochs=2, progress=False, seed=0)
    with torch.no_grad():
        q = m.module.posterior(torch.as_tensor(X)).base_dist
        g, mu, s = q.slab_prob.double(), q.loc.double(), q.scale.double()
    a = float(m.module.slab_prob)  # still warming up: not the target 0.01
    kl_normal = -s.log() + (s**2 + mu**2) / 2 - 0.5
    kl = (1 - g) * torch.log((1 - g) / (1 - a)) + g * torch.log(g / a) + g * kl_normal
    np.testing.assert_allclose(m.code_kl_, kl.mean(0).numpy(), rtol=1e-4)
