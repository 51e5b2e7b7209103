import math

import numpy as np
import pytest
import torch

from pyro_gfa.priors.horseshoe import Horseshoe


def test_updates_against_hand_computation_entrywise():
    """G = 2 features, p = 1, K = 1; every scale starts at 1, b = 1."""
    W = torch.tensor([[[2.0]], [[0.0]]], dtype=torch.float64)  # (2, 1, 1)
    hs = Horseshoe()
    hs.setup(W)
    hs.update(W)
    # tau = (w^2 / (2 v) + 1/l) / (1/2 + 3/2)
    tau = torch.tensor([(4 / 2 + 1) / 2, (0 + 1) / 2], dtype=torch.float64)
    torch.testing.assert_close(hs.tau.flatten(), tau)
    # v = (sum_g w^2 / (2 tau) + 1/n) / (G/2 + 3/2)
    v = (4 / (2 * 1.5) + 0 + 1) / (2 / 2 + 1.5)
    assert hs.v.item() == pytest.approx(v)
    torch.testing.assert_close(hs.aux_local.flatten(), (1 / tau + 1) / 2)
    assert hs.aux_global.item() == pytest.approx((1 / v + 1) / 2)


def test_shared_auxiliaries_would_collapse_but_per_scale_ones_do_not():
    """The paper's shared lambda_local grows geometrically when cells are zero; ours do not."""
    G, K = 6, 2
    tau = torch.full((G, K), 0.5, dtype=torch.float64)
    lam = torch.tensor(1.0, dtype=torch.float64)
    for _ in range(20):  # eq. (67) and (69) with w = 0 everywhere
        tau = (1 / lam) / 2
        lam = (G * K / tau + 1) / (G * K / 2 + 1.5)
    assert lam > 1e9
    W = torch.zeros(G, 1, K, dtype=torch.float64)
    W[:3, 0, 0] = 1.0
    hs = Horseshoe(reference_scale=0.1)
    hs.setup(W)
    for _ in range(2000):
        hs.update(W)
    used, unused = hs.tau[:3, 0] * hs.v[0], hs.tau[3:, :] * hs.v
    assert (used > 0.1).all() and (used < 10).all()  # a stable scale for the used cells
    assert (unused < 1e-3).all()  # unused cells shrink
    np.testing.assert_array_equal(hs.support(W)[:, 0].numpy(), [1, 1, 1, 0, 0, 0])
    assert not hs.support(W)[:, 1].any()


def test_group_form_uses_cell_norms():
    W = torch.zeros(1, 3, 2, dtype=torch.float64)
    W[0, :, 0] = torch.tensor([1.0, 2.0, 2.0])  # norm^2 = 9, p = 3
    hs = Horseshoe()
    hs.setup(W)
    hs.update(W)
    assert hs.tau[0, 0].item() == pytest.approx((9 / 2 + 1) / (3 / 2 + 1.5))
    assert hs.tau[0, 1].item() == pytest.approx(1 / 3)


def test_log_prob_is_the_joint_density_and_prox_is_the_implicit_step():
    W = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    hs = Horseshoe(b_global=0.7, b_local=1.3)
    hs.setup(W.detach())
    hs.tau = torch.rand(4, 3, dtype=torch.float64) + 0.5
    hs.v = torch.rand(3, dtype=torch.float64) + 0.5
    hs.aux_local = torch.rand(4, 3, dtype=torch.float64) + 0.5
    hs.aux_global = torch.rand(3, dtype=torch.float64) + 0.5
    var = (hs.tau * hs.v).unsqueeze(1).expand(4, 2, 3)
    IG = torch.distributions.InverseGamma
    half = torch.tensor(0.5, dtype=torch.float64)
    expected = (
        torch.distributions.Normal(0.0, var.sqrt()).log_prob(W).sum()
        + IG(half, 1 / hs.aux_local).log_prob(hs.tau).sum()
        + IG(half, torch.tensor(1.3**-2)).log_prob(hs.aux_local).sum()
        + IG(half, 1 / hs.aux_global).log_prob(hs.v).sum()
        + IG(half, torch.tensor(0.7**-2)).log_prob(hs.aux_global).sum()
    )
    f = hs.log_factor(W)
    torch.testing.assert_close(f, expected)
    assert not f.requires_grad  # applied by the proximal step, not by gradients
    # the scales' part is cached between updates: a scale changed in place is seen
    hs.aux_local.mul_(2.0)
    moved = IG(half, torch.tensor(1.3**-2)).log_prob(hs.aux_local).sum()
    moved = moved - IG(half, torch.tensor(1.3**-2)).log_prob(hs.aux_local / 2).sum()
    moved = moved + (IG(half, 1 / hs.aux_local).log_prob(hs.tau).sum())
    moved = moved - IG(half, 2 / hs.aux_local).log_prob(hs.tau).sum()
    torch.testing.assert_close(hs.log_factor(W), expected + moved)
    hs.aux_local.div_(2.0)
    # prox of step * ||w||^2 / (2 var): argmin_u ||u - w||^2 / 2 + step ||u||^2 / (2 var)
    V = W.detach().clone()
    hs.prox(V, 0.3)
    torch.testing.assert_close(V, W.detach() / (1 + 0.3 / var))
    # stable however small the scales: a huge curvature shrinks to ~0 instead of exploding
    hs.tau = torch.full((4, 3), 1e-10, dtype=torch.float64)
    hs.prox(V, 0.3)
    assert V.abs().max() < 1e-8


def test_every_update_raises_the_joint_density():
    torch.manual_seed(0)
    W = torch.randn(6, 1, 4, dtype=torch.float64) * torch.tensor([3.0, 1.0, 0.1, 0.01])
    hs = Horseshoe()
    hs.setup(W)
    values = [hs.log_factor(W).item()]
    for _ in range(20):
        hs.update(W)
        values.append(hs.log_factor(W).item())
    assert all(b >= a - 1e-9 * abs(a) for a, b in zip(values, values[1:]))
    assert values[-1] > values[0]


@pytest.mark.parametrize("kw", [dict(b_global=0), dict(b_local=-1), dict(reference_scale=math.nan)])
def test_bad_hyperparameters(kw):
    with pytest.raises(ValueError):
        Horseshoe(**kw)


@pytest.mark.parametrize(
    "kw, name",
    [
        (dict(b_global=math.inf), "b_global"),
        (dict(b_local="a"), "b_local"),
        (dict(reference_scale=0.0), "reference_scale"),
        (dict(reference_scale=True), "reference_scale"),
    ],
)
def test_bad_hyperparameters_are_named(kw, name):
    with pytest.raises(ValueError, match=f"{name} must be > 0"):
        Horseshoe(**kw)


def test_scales_stay_above_the_floor_on_zero_cells_of_several_entries():
    # p = 5: a zero cell's tau roughly halves at every update (2 / (p/2 + 3/2) = 1/2), so
    # without the floor it underflows to 0 and the joint density is no longer finite
    W = torch.zeros(3, 5, 2)
    W[0, :, 0] = 1.0
    hs = Horseshoe()
    hs.setup(W)
    for _ in range(200):
        hs.update(W)
    assert (hs.tau >= Horseshoe.floor).all() and (hs.v >= Horseshoe.floor).all()
    assert torch.isfinite(hs.log_factor(W))
    assert hs.tau[0, 0] * hs.v[0] > hs.reference_scale**2  # the used cell keeps its scale


def test_auxiliary_updates_use_their_own_hyperprior_scale():
    # b_global != b_local: l_gk uses b_local, n_k uses b_global
    W = torch.tensor([[[2.0]], [[0.0]]], dtype=torch.float64)
    hs = Horseshoe(b_global=0.7, b_local=1.3)
    hs.setup(W)
    hs.update(W)
    tau = torch.tensor([(4 / 2 + 1) / 2, (0 + 1) / 2], dtype=torch.float64)
    v = (4 / (2 * 1.5) + 0 + 1) / (2 / 2 + 1.5)
    torch.testing.assert_close(hs.tau.flatten(), tau)
    assert hs.v.item() == pytest.approx(v)
    torch.testing.assert_close(hs.aux_local.flatten(), (1 / tau + 1 / 1.3**2) / 2)
    assert hs.aux_global.item() == pytest.approx((1 / v + 1 / 0.7**2) / 2)
