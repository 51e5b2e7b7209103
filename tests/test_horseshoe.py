import math

import pytest
import torch

from pyro_gfa.priors.horseshoe import Horseshoe


def test_updates_against_hand_computation_entrywise():
    """G = 2 features, p = 1, K = 1; every scale starts at 1, b = 1."""
    W = torch.tensor([[[2.0]], [[0.0]]], dtype=torch.float64)  # (2, 1, 1)
    hs = Horseshoe()
    hs.setup(W)
    hs.update(W)
    # tau = (w^2 / (2 v) + 1/lam_loc) / (1/2 + 3/2)
    tau = torch.tensor([(4 / 2 + 1) / 2, (0 + 1) / 2], dtype=torch.float64)
    torch.testing.assert_close(hs.tau.flatten(), tau)
    # v = (sum_g w^2 / (2 tau) + 1/lam_glob) / (G/2 + 3/2)
    v = (4 / (2 * 1.5) + 0 + 1) / (2 / 2 + 1.5)
    assert hs.v.item() == pytest.approx(v)
    lam_loc = (1 / 1.5 + 1 / 0.5 + 1) / (2 / 2 + 1.5)
    assert hs.lam_local.item() == pytest.approx(lam_loc)
    lam_glob = (1 / v + 1) / (1 / 2 + 1.5)
    assert hs.lam_global.item() == pytest.approx(lam_glob)


def test_group_form_uses_cell_norms():
    W = torch.zeros(1, 3, 2, dtype=torch.float64)
    W[0, :, 0] = torch.tensor([1.0, 2.0, 2.0])  # norm^2 = 9, p = 3
    hs = Horseshoe()
    hs.setup(W)
    hs.update(W)
    assert hs.tau[0, 0].item() == pytest.approx((9 / 2 + 1) / (3 / 2 + 1.5))
    assert hs.tau[0, 1].item() == pytest.approx(1 / 3)


def test_log_prob_is_gaussian_given_scales_and_differentiable():
    W = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    hs = Horseshoe()
    hs.setup(W.detach())
    hs.tau = torch.rand(4, 3, dtype=torch.float64) + 0.5
    hs.v = torch.rand(3, dtype=torch.float64) + 0.5
    var = (hs.tau * hs.v).unsqueeze(1).expand(4, 2, 3)
    expected = torch.distributions.Normal(0.0, var.sqrt()).log_prob(W).sum()
    f = hs.log_factor(W)
    torch.testing.assert_close(f, expected)
    f.backward()
    torch.testing.assert_close(W.grad, -W.detach() / var)


def test_scales_shrink_unused_cells_and_support():
    W = torch.zeros(6, 1, 2, dtype=torch.float64)
    W[:3, 0, 0] = 1.0
    hs = Horseshoe(reference_scale=0.1)
    hs.setup(W)
    for _ in range(200):
        hs.update(W)
    assert (hs.tau[:3, 0] > 10 * hs.tau[3:, 0]).all()
    assert hs.support(W)[:3, 0].all() and not hs.support(W)[:, 1].any()


@pytest.mark.parametrize("kw", [dict(b_global=0), dict(b_local=-1), dict(reference_scale=math.nan)])
def test_bad_hyperparameters(kw):
    with pytest.raises(ValueError):
        Horseshoe(**kw)
