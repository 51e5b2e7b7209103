import math

import numpy as np
import pytest
import torch
from scipy.stats import beta as beta_dist

from pyro_gfa.priors import Lasso, SpikeSlabLasso


def _prior(G=3, K=2, **kw):
    p = SpikeSlabLasso(**kw)
    p.setup(torch.zeros(G, 1, K))
    return p


def test_defaults_a1_bG():
    p = _prior(G=7, K=3, lambda0=10.0, lambda1=1.0)
    assert p.a == 1.0 and p.b is None and p.b_ == 7.0  # b = None resolves to G at setup
    assert torch.allclose(p.p_star, torch.full((7, 3), 0.5))
    assert torch.allclose(p.eta, torch.full((3,), 0.5))


def test_inclusion_probability_hand_values():
    p = _prior(G=2, K=1, lambda0=10.0, lambda1=1.0)
    W = torch.tensor([[[0.0]], [[0.5]]])
    ps = p.inclusion_probability(W)
    # w = 0: eta*l1 / (eta*l1 + (1-eta)*l0) = 1 / 11
    assert ps[0, 0].item() == pytest.approx(1.0 / 11.0, rel=1e-6)
    # w = 0.5: e^-0.5 / (e^-0.5 + 10 e^-5)
    expected = math.exp(-0.5) / (math.exp(-0.5) + 10 * math.exp(-5.0))
    assert ps[1, 0].item() == pytest.approx(expected, rel=1e-6)
    # the sign of w does not matter
    assert p.inclusion_probability(-W)[1, 0].item() == pytest.approx(expected, rel=1e-6)


def test_inclusion_probability_uses_eta():
    p = _prior(G=1, K=1, lambda0=4.0, lambda1=2.0)
    W = torch.tensor([[[0.25]]])
    eta = torch.tensor([0.2])
    num = 0.2 * 2.0 * math.exp(-0.5)
    den = num + 0.8 * 4.0 * math.exp(-1.0)
    assert p.inclusion_probability(W, eta)[0, 0].item() == pytest.approx(num / den, rel=1e-6)


def test_eta_update_hand_values():
    p = _prior(G=4, K=2, lambda0=10.0, lambda1=1.0, a=2.0, b=3.0)
    ps = torch.tensor([[1.0, 0.0], [0.5, 0.0], [0.25, 0.0], [0.25, 0.0]])
    eta = p.eta_update(ps)
    # (sum p* + a - 1) / (a + b + G - 2) = (2 + 1) / 7 and (0 + 1) / 7
    assert eta[0].item() == pytest.approx(3.0 / 7.0)
    assert eta[1].item() == pytest.approx(1.0 / 7.0)


def test_em_step_then_lambda_star_and_prox():
    p = _prior(G=2, K=1, lambda0=10.0, lambda1=1.0)
    W = torch.tensor([[[0.0]], [[0.5]]])
    p.em_step(W)
    p0, p1 = 1.0 / 11.0, math.exp(-0.5) / (math.exp(-0.5) + 10 * math.exp(-5.0))
    assert p.p_star[:, 0].tolist() == pytest.approx([p0, p1], rel=1e-6)
    # a = 1, b = G = 2: eta = (p0 + p1) / (1 + 2 + 2 - 2)
    assert p.eta[0].item() == pytest.approx((p0 + p1) / 3.0, rel=1e-6)
    lam = p.lambda_star()[:, 0]
    assert lam.tolist() == pytest.approx([p0 + 10 * (1 - p0), p1 + 10 * (1 - p1)], rel=1e-6)
    # prox: weighted soft-threshold with threshold step * lambda*
    V = torch.tensor([[[0.3]], [[-0.5]]])
    p.prox(V, 0.01)
    assert V[0, 0, 0].item() == pytest.approx(0.3 - 0.01 * lam[0].item(), rel=1e-6)
    assert V[1, 0, 0].item() == pytest.approx(-0.5 + 0.01 * lam[1].item(), rel=1e-6)
    Z = torch.tensor([[[0.05]], [[0.0]]])
    p.prox(Z, 0.01)
    assert Z[0, 0, 0].item() == 0.0  # below its threshold: exactly zero


def test_warmup_delays_em_and_prox():
    p = SpikeSlabLasso(10.0, 1.0, em_warmup_steps=2)
    W = torch.tensor([[[0.0]], [[2.0]]])
    p.setup(W)
    V = W.clone() + 0.01
    p.prox(V, 0.1)
    assert torch.equal(V, W + 0.01)  # no shrinkage during the warm-up
    p.update(W)
    assert torch.allclose(p.eta, torch.tensor([0.5]))  # not yet
    p.update(W)
    assert not torch.allclose(p.eta, torch.tensor([0.5]))  # EM ran at the second step


def test_log_prob_is_marginal_mixture_plus_beta():
    p = _prior(G=3, K=2, lambda0=10.0, lambda1=1.0)
    p.eta = torch.tensor([0.3, 0.6])
    W = torch.tensor([[[0.1, -0.4]], [[0.0, 1.2]], [[-2.0, 0.05]]])
    w = W[:, 0, :].numpy().astype(np.float64)
    eta = np.array([0.3, 0.6])
    slab = 0.5 * 1.0 * np.exp(-1.0 * np.abs(w))
    spike = 0.5 * 10.0 * np.exp(-10.0 * np.abs(w))
    expected = np.log(eta * slab + (1 - eta) * spike).sum()
    expected += beta_dist(1.0, 3.0).logpdf(eta).sum()
    assert p.log_factor(W).item() == pytest.approx(expected, rel=1e-5)
    # log_factor's gradient is left to the proximal step (non-smooth part)
    Wg = W.clone().requires_grad_(True)
    assert not p.log_factor(Wg).requires_grad


def test_penalty_weight_is_the_gradient_of_the_mixture():
    """d/dw log(eta psi1 + (1-eta) psi0) = -lambda* sign(w): the prox is the EM step."""
    p = _prior(G=3, K=1, lambda0=10.0, lambda1=1.0)
    W = torch.tensor([[[0.1]], [[-0.3]], [[0.8]]], requires_grad=True)
    p.nonsmooth_log_prob(W).backward()
    p.em_step(W.detach())
    p.eta = torch.tensor([0.5])
    p.p_star = p.inclusion_probability(W.detach())
    expected = -p.lambda_star()[:, 0] * torch.sign(W.detach()[:, 0, 0])
    torch.testing.assert_close(W.grad[:, 0, 0], expected, rtol=1e-5, atol=1e-6)


def test_support_rule():
    p = _prior(G=3, K=1, lambda0=10.0, lambda1=1.0)
    # threshold at eta = 0.5: |w| > log(10) / 9
    t = math.log(10.0) / 9.0
    W = torch.tensor([[[t - 0.01]], [[t + 0.01]], [[0.0]]])
    assert p.support(W)[:, 0].tolist() == [False, True, False]


def test_lambda0_equal_lambda1_is_the_lasso():
    p = _prior(G=2, K=1, lambda0=2.0, lambda1=2.0)
    W = torch.tensor([[[0.3]], [[-1.0]]])
    p.em_step(W)
    assert torch.allclose(p.lambda_star(), torch.full((2, 1), 2.0))
    V1, V2 = W.clone(), W.clone()
    p.prox(V1, 0.1)
    Lasso(2.0).prox(V2, 0.1)
    torch.testing.assert_close(V1, V2)


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(lambda0=1.0, lambda1=5.0), "lambda0 >= lambda1"),
        (dict(lambda0=10.0, lambda1=1.0, a=0.0), "a must be > 0"),
        (dict(lambda0=10.0, lambda1=1.0, a=-1.0), "a must be > 0"),
        (dict(lambda0=10.0, lambda1=1.0, b=0.0), "b must be > 0"),
        (dict(lambda0=10.0, lambda1=0.0), "> 0"),
    ],
)
def test_bad_hyperparameters(kw, msg):
    with pytest.raises(ValueError, match=msg):
        SpikeSlabLasso(**kw)


def test_group_form_on_cells_of_several_rows():
    """p = 2 cells (the oi-VAE's columns of W^(g)): p* uses the group-Laplace constants."""
    W = torch.zeros(2, 2, 1, dtype=torch.float64)
    W[0, :, 0] = torch.tensor([0.3, 0.4])  # norm 0.5
    prior = SpikeSlabLasso(lambda0=10.0, lambda1=1.0)
    prior.setup(W)
    # log psi1 - log psi0 = p (log lam1 - log lam0) - (lam1 - lam0) ||w||
    logit = 2 * (math.log(1.0) - math.log(10.0)) + 9.0 * 0.5
    p = prior.inclusion_probability(W)
    assert p[0, 0].item() == pytest.approx(1 / (1 + math.exp(-logit)))
    assert p[1, 0].item() == pytest.approx(1 / (1 + 100.0))  # zero cell: odds lam1^2 / lam0^2
    prior.em_step(W)
    lam_star = 1.0 * p[0, 0] + 10.0 * (1 - p[0, 0])
    V = W.clone()
    prior.prox(V, 0.01)
    expected = W[0, :, 0] * (1 - 0.01 * lam_star / 0.5)
    torch.testing.assert_close(V[0, :, 0], expected)


def test_every_setting_survives_save_and_load(tmp_path):
    import pyro_gfa as gfa

    prior = SpikeSlabLasso(20.0, 2.0, a=2.0, b=5.0, eta_init=0.3, em_warmup_steps=7)
    m = gfa.OIVAE(groups=[2, 2], latent_dim=2, prior=prior)
    loaded = gfa.load(m.save(tmp_path / "m.zip"))
    assert loaded.prior._config() == prior._config()
    assert loaded.prior.eta_init == 0.3 and loaded.prior.em_warmup_steps == 7


def test_eta_update_stays_strictly_inside_the_unit_interval():
    # a < 1 with no active cell, or a small b with every cell active, would put the raw
    # update outside (0, 1), where log(eta) and log(1 - eta) are not finite
    p = _prior(G=4, K=1, lambda0=10.0, lambda1=1.0, a=0.5, b=0.5)
    none = p.eta_update(torch.zeros(4, 1))  # raw (0 - 0.5) / 3 < 0
    every = p.eta_update(torch.ones(4, 1))  # raw (4 - 0.5) / 3 > 1
    assert none.item() == pytest.approx(1e-6)
    assert every.item() == pytest.approx(1.0 - 1e-6)
    for eta in (none, every):
        p.eta = eta
        assert torch.isfinite(p.nonsmooth_log_prob(torch.zeros(4, 1, 1)))


def test_a_zero_cell_is_never_in_the_support():
    # lambda0 == lambda1: p* equals eta for every cell, so eta > 0.5 puts p* above 1/2
    p = _prior(G=2, K=1, lambda0=2.0, lambda1=2.0, eta_init=0.8)
    W = torch.tensor([[[0.3]], [[0.0]]])
    assert p.inclusion_probability(W)[:, 0].tolist() == pytest.approx([0.8, 0.8])
    assert p.support(W)[:, 0].tolist() == [True, False]


def test_two_em_steps_from_eta_not_one_half_hand_values():
    # each step: p* at the current eta, then eta from that p* (a = 1, b = G = 2)
    p = _prior(G=2, K=1, lambda0=10.0, lambda1=1.0, eta_init=0.3)
    W = torch.tensor([[[0.0]], [[0.5]]])

    def p_star(eta, w):
        slab = eta * 1.0 * math.exp(-1.0 * w)
        return slab / (slab + (1 - eta) * 10.0 * math.exp(-10.0 * w))

    eta = 0.3
    for _ in range(2):
        ps = [p_star(eta, 0.0), p_star(eta, 0.5)]
        eta = sum(ps) / (1 + 2 + 2 - 2)
        p.em_step(W)
        assert p.p_star[:, 0].tolist() == pytest.approx(ps, rel=1e-5)
        assert p.eta.item() == pytest.approx(eta, rel=1e-5)
