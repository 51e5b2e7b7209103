import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from pyro_gfa.priors import GroupLasso, Lasso, NoPrior, cell_norms
from pyro_gfa.priors.lasso import group_lasso_log_density, group_soft_threshold


def test_group_prox_matches_closed_form():
    W = torch.randn(5, 3, 4, dtype=torch.float64)
    step, lam = 0.3, 2.0
    prior = GroupLasso(lam)
    out = W.clone()
    prior.prox(out, step)
    for g in range(5):
        for k in range(4):
            w = W[g, :, k]
            r = w.norm()
            expected = w / r * max(r.item() - step * lam, 0.0)
            torch.testing.assert_close(out[g, :, k], expected)


def test_group_prox_exact_zeros_and_threshold_boundary():
    t = 0.5
    W = torch.zeros(1, 2, 4, dtype=torch.float64)
    W[0, :, 0] = torch.tensor([0.0, 0.5])  # norm 0.5: exactly at the threshold -> 0
    # just above the threshold -> tiny, nonzero
    W[0, :, 1] = torch.tensor([0.0, 0.5 * (1 + 1e-9)], dtype=torch.float64)
    W[0, :, 2] = torch.tensor([0.6, 0.8])  # norm 1 -> norm 0.5, same direction
    W[0, :, 3] = torch.tensor([0.1, 0.0])  # below -> exact zero
    out = group_soft_threshold(W, t)
    assert (out[0, :, 0] == 0).all() and (out[0, :, 3] == 0).all()
    assert out[0, 1, 1] > 0 and out[0, :, 1].norm() < 1e-8
    torch.testing.assert_close(out[0, :, 2], torch.tensor([0.3, 0.4], dtype=torch.float64))
    # an all-zero cell stays zero (no division by zero)
    assert torch.isfinite(group_soft_threshold(torch.zeros(2, 3, 2), 0.1)).all()


def test_lasso_prox_is_soft_threshold_and_equals_group_prox_for_p1():
    W = torch.tensor([[[-2.0, -0.5, 0.5, 0.2, 3.0]]]).transpose(1, 2)  # (1, 5, 1)
    out = W.clone()
    Lasso(1.0).prox(out, 0.5)
    torch.testing.assert_close(out.flatten(), torch.tensor([-1.5, 0.0, 0.0, 0.0, 2.5]))
    V = torch.randn(6, 1, 3)
    a, b = V.clone(), V.clone()
    Lasso(0.7).prox(a, 0.4)
    GroupLasso(0.7).prox(b, 0.4)
    torch.testing.assert_close(a, b)


def test_group_lasso_factor_value_and_gradient():
    W = torch.randn(4, 3, 5, requires_grad=True)
    prior = GroupLasso(1.5)
    f = prior.log_factor(W)
    expected = -1.5 * sum(W[g, :, k].norm() for g in range(4) for k in range(5))
    torch.testing.assert_close(f, expected)
    # the non-smooth term is handled by the prox: no gradient flows through the factor
    assert not f.requires_grad


def test_no_prior_is_flat_and_keeps_support():
    W = torch.randn(3, 2, 4)
    W[0, :, 1] = 0
    p = NoPrior()
    assert p.log_factor(W) == 0
    V = W.clone()
    p.prox(V, 1.0)
    torch.testing.assert_close(V, W)
    assert p.support(W).sum() == 11


@pytest.mark.parametrize("p", [1, 2, 3])
def test_collapsed_group_lasso_is_the_marginal_of_the_hierarchy(p):
    """w | g2 ~ N(0, g2 I_p), g2 ~ Gamma((p+1)/2, rate lam^2/2)  =>  log p(w) of the prior."""
    lam = 1.3
    w = np.linspace(0.2, 0.9, p)
    r2 = float((w**2).sum())

    def integrand(g2):
        normal = (2 * math.pi * g2) ** (-p / 2) * math.exp(-r2 / (2 * g2))
        return normal * stats.gamma.pdf(g2, a=(p + 1) / 2, scale=2 / lam**2)

    marginal, _ = integrate.quad(integrand, 0, np.inf, limit=200)
    closed = group_lasso_log_density(torch.tensor(w), lam).item()
    assert math.log(marginal) == pytest.approx(closed, rel=1e-6)


def test_support_and_norms():
    W = torch.zeros(2, 3, 2)
    W[1, 0, 0] = 2.0
    np.testing.assert_array_equal(cell_norms(W).numpy(), [[0, 0], [2, 0]])
    np.testing.assert_array_equal(GroupLasso(1).support(W).numpy(), [[False, False], [True, False]])


@pytest.mark.parametrize("lam", [-1.0, float("nan"), float("inf")])
def test_bad_lambda(lam):
    with pytest.raises(ValueError, match="lam"):
        GroupLasso(lam)
    with pytest.raises(ValueError, match="lam"):
        Lasso(lam)


@pytest.mark.parametrize("lam", ["a", True, None])
def test_lambda_must_be_a_number(lam):
    with pytest.raises(ValueError, match="lam must be >= 0"):
        GroupLasso(lam)
    assert GroupLasso(np.float32(0.5)).lam == 0.5 and Lasso(0).lam == 0.0  # 0: no sparsity


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(lambda0=math.inf), "lambda0"),
        (dict(lambda1=math.nan), "lambda1"),
        (dict(a=math.nan), "a must"),
        (dict(b=math.inf), "b must"),
        (dict(eta_init=math.nan), "eta_init"),
        (dict(eta_init=1.0), "eta_init"),
        (dict(em_warmup_steps=1.5), "em_warmup_steps"),
        (dict(em_warmup_steps=-1), "em_warmup_steps"),
        (dict(em_warmup_steps=True), "em_warmup_steps"),
    ],
)
def test_spike_slab_hyperparameters_named(kw, msg):
    from pyro_gfa.priors import SpikeSlabLasso

    with pytest.raises(ValueError, match=msg):
        SpikeSlabLasso(**kw)
    assert SpikeSlabLasso(em_warmup_steps=np.int64(3)).em_warmup_steps == 3


def test_lasso_factor_is_minus_lam_times_the_l1_norm():
    W = torch.tensor([[[-2.0, 0.5], [1.0, -0.25]]])
    f = Lasso(0.5).log_factor(W)
    assert f.item() == pytest.approx(-0.5 * 3.75)


def test_repr_names_the_rate():
    # the estimators' repr shows the prior: its rate must be in it
    assert repr(GroupLasso(2.0)) == "GroupLasso(lam=2.0)"
    assert repr(Lasso(0.5)) == "Lasso(lam=0.5)"
