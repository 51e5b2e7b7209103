"""The training loop and the fit machinery, checked against hand values: which rows a step
sees, the proximal step, the non-finite checks, restarts, early stopping, checkpoints and
continued fits."""

from __future__ import annotations

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from test_fit import _assert_same_state, _model, _state

import pyro_gfa as gfa
from pyro_gfa.inference import train
from pyro_gfa.models.base import Checkpoint, EarlyStopping


class _Mean(torch.nn.Module):
    """``x_i ~ N(mu, I)`` with ``mu`` the sparse matrix ``W`` (``(D, 1, 1)``) and no latent:
    the objective is the batch mean of ``-log N(x_i; mu, I)``, its gradient ``mu - mean(x)``.
    It records the rows of every call of ``model`` (one per step, and one for the check
    after the last step); the ``poison``-th call (1-based) scores ``1e30 x`` instead, which
    overflows (Pyro's ELBO is then NaN), or with ``poison_buffer`` sets the buffer ``extra``
    to NaN (a diverged parameter)."""

    std_multiplier, prior_weight = 1.0, 1.0

    def __init__(self, mu, prior=None, poison=None, poison_buffer=False):
        super().__init__()
        self.W = torch.nn.Parameter(
            torch.as_tensor(mu, dtype=torch.float32).reshape(-1, 1, 1).clone()
        )
        self.register_buffer("extra", torch.zeros(2))
        self.prior = gfa.priors.NoPrior() if prior is None else prior
        self.latent_dim = 1
        self.calls, self.poison, self.poison_buffer = [], poison, poison_buffer

    def model(self, x):
        self.calls.append(x.detach().clone())
        if len(self.calls) == self.poison:
            if self.poison_buffer:
                self.extra.fill_(math.nan)
            else:
                x = x * 1e30
        with pyro.plate("data", x.shape[0]), poutine.scale(scale=1.0 / x.shape[0]):
            pyro.sample("x", dist.Normal(self.W.reshape(-1), 1.0).to_event(1), obs=x)

    def guide(self, x):
        pass


class _MeanLoss(_Mean):
    """``_Mean`` with the plain-torch ``loss`` of the protocol, which the loop then uses
    (after checking it once against Pyro's ELBO); its ``poison``-th call (1-based, the
    check's included) is ``+inf``."""

    def loss(self, x):
        self.loss_calls = getattr(self, "loss_calls", 0) + 1
        nll = 0.5 * ((x - self.W.reshape(-1)) ** 2).sum(1).mean() + 1.5 * math.log(2 * math.pi)
        return nll + (math.inf if self.loss_calls == self.poison else 0.0)


def _x(n=10, d=3):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(0))


# -- the training loop -----------------------------------------------------------------------
@pytest.mark.parametrize("n, batch_size", [(10, 4), (10, 10), (7, 3)])
def test_every_row_is_seen_exactly_once_per_epoch_in_a_new_order(n, batch_size):
    x = _x(n)
    x[:, 0] = torch.arange(n)  # the row number, to tell the rows apart
    module = _Mean(torch.zeros(3))
    train(module, [x], epochs=3, batch_size=batch_size, sparse_lr=1e-30, progress=False)
    steps = math.ceil(n / batch_size)
    assert len(module.calls) == 3 * steps + 1  # and the check after the last step
    orders = []
    for e in range(3):
        batches = module.calls[e * steps : (e + 1) * steps]
        assert [len(b) for b in batches[:-1]] == [batch_size] * (steps - 1)
        rows = torch.cat(batches)
        orders.append(rows[:, 0].long().tolist())
        assert sorted(orders[-1]) == list(range(n))  # each row once
        torch.testing.assert_close(rows, x[rows[:, 0].long()], rtol=0, atol=0)  # whole rows
    if steps > 1:
        assert orders[0] != orders[1] != orders[2]  # reshuffled every epoch


def test_the_proximal_step_is_the_prior_prox_of_a_gradient_step():
    # one full-batch step: W1 = soft_threshold(W0 - lr (W0 - mean x), lr * prior_weight * lam)
    x = _x(8)
    mu0 = torch.tensor([0.3, -2.0, 1.5])
    module = _Mean(mu0, prior=gfa.priors.Lasso(3.0))
    module.prior_weight = 0.5
    train(module, [x], epochs=1, batch_size=8, sparse_lr=0.2, progress=False)
    v = mu0 - 0.2 * (mu0 - x.mean(0))
    want = torch.sign(v) * torch.clamp(v.abs() - 0.2 * 0.5 * 3.0, min=0.0)
    torch.testing.assert_close(module.W.detach().reshape(-1), want)
    assert (want == 0).any() and (want != 0).any()  # the threshold matters here


@pytest.mark.parametrize("beta", [0.3, 0.9])
def test_sparse_momentum_averages_the_gradients(beta):
    # two full-batch steps (NoPrior): m1 = (1 - b) g1, m2 = b m1 + (1 - b) g2, W -= lr m
    x, lr = _x(8), 0.1
    mu0 = torch.tensor([0.3, -2.0, 1.5])
    module = _Mean(mu0)
    train(module, [x], epochs=2, batch_size=8, sparse_lr=lr, sparse_momentum=beta, progress=False)
    g1 = mu0 - x.mean(0)
    m1 = (1 - beta) * g1
    w1 = mu0 - lr * m1
    m2 = beta * m1 + (1 - beta) * (w1 - x.mean(0))
    torch.testing.assert_close(module.W.detach().reshape(-1), w1 - lr * m2)


def test_the_record_counts_the_active_cells_and_continues_the_epochs():
    x = _x()
    x[:, 1] = 0.0  # the gradient of the middle cell is 0: it stays at 0, inactive
    module, hist = _Mean(torch.tensor([1.0, 0.0, 2.0])), []
    train(module, [x], epochs=2, batch_size=4, progress=False, history=hist)
    train(module, [x], epochs=2, batch_size=4, progress=False, history=hist)
    assert [r["epoch"] for r in hist] == [0, 1, 2, 3]
    assert [r["n_active"] for r in hist] == [2] * 4  # the cells of non-zero norm


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: _MeanLoss(torch.zeros(3), poison=1 + 5), "the objective became inf at epoch 1"),
        (lambda: _Mean(torch.zeros(3), poison=5, poison_buffer=True), "a parameter became non-f"),
    ],
    ids=["infinite objective", "NaN state"],
)
def test_a_non_finite_objective_or_state_restores_the_last_completed_epoch(make, match):
    # 3 steps per epoch; the 5th step (epoch 1) diverges
    module, seen, hist = make(), {}, []

    def remember(epoch, record):
        seen[epoch] = {k: v.clone() for k, v in module.state_dict().items()}

    with pytest.raises(FloatingPointError, match=match) as info:
        train(
            module, [_x()], epochs=4, batch_size=4, sparse_lr=0.1, progress=False,
            callback=remember, history=hist,
        )  # fmt: skip
    assert [r["epoch"] for r in hist] == [0] and list(seen) == [0]
    assert "end of epoch 0" in info.value.__notes__[-1]
    _assert_same_state(dict(module.state_dict()), seen[0])


def test_a_continued_fit_checks_the_objective_after_its_last_step():
    # 1 step per epoch: calls 1, 2 are the first fit's step and check, call 3 the second
    # fit's step, call 4 the check after it
    module, hist = _Mean(torch.zeros(3), poison=4), []
    train(module, [_x()], epochs=1, batch_size=10, progress=False, history=hist)
    with pytest.raises(FloatingPointError, match="after epoch 1"):
        train(module, [_x()], epochs=1, batch_size=10, progress=False, history=hist)
    assert len(module.calls) == 4 and [r["epoch"] for r in hist] == [0]


def test_a_callback_returning_true_stops_the_loop():
    module = _Mean(torch.zeros(3))
    hist = train(
        module, [_x()], epochs=5, batch_size=10, progress=False, callback=lambda e, r: e == 1
    )
    assert [r["epoch"] for r in hist] == [0, 1] and len(module.calls) == 2


# -- restarts -----------------------------------------------------------------------------
def _score(m, data):  # the training ELBO fit compares restarts by (10 draws, seed 0)
    return float(m.elbo(data, num_samples=10, seed=0).mean())


def test_restarts_keep_the_best_training_elbo_and_use_seeds_a_thousand_apart(data):
    m = _model().fit(data, epochs=2, n_restarts=3, progress=False, seed=0)
    singles = [_model().fit(data, epochs=2, progress=False, seed=s) for s in (0, 1000, 2000)]
    want = [_score(s, data) for s in singles]
    assert m.restart_elbos_ == pytest.approx(want, rel=1e-6)
    assert len(set(want)) == 3  # the restarts differ, so which is kept matters
    best = int(np.argmax(want))
    assert _score(m, data) == pytest.approx(max(m.restart_elbos_), rel=1e-6)
    np.testing.assert_array_equal(m.transform(data), singles[best].transform(data))
    assert [r["loss"] for r in m.history_] == [r["loss"] for r in singles[best].history_]


def test_a_restart_stopped_by_the_callback_ends_the_restarts(data):
    m = _model().fit(data, epochs=4, n_restarts=3, progress=False, callback=lambda e, r: e == 1)
    assert len(m.restart_elbos_) == 1 and len(m.history_) == 2


# -- early stopping ---------------------------------------------------------------------------
def _scripted(monkeypatch, est, values):
    """The held-out ELBO of the successive evaluations is ``values``."""
    it = iter(values)
    monkeypatch.setattr(est, "elbo", lambda X, *a, **k: np.full(len(X), next(it)))


@pytest.mark.parametrize(
    "values, min_delta, patience, stops, best",
    [
        # 1.05 is not better than 1.0 by 0.1; 1.2 is; then two evaluations without
        ([1.0, 1.05, 1.2, 1.2, 1.25], 0.1, 2, [False, False, False, False, True], 2),
        ([1.0, 1.0, 1.0], 0.0, 2, [False, False, True], 0),  # equal is no improvement
        ([1.0, 0.5, 2.0, 0.5, 0.5, 0.5], 0.0, 3, [False] * 5 + [True], 2),  # counter resets
        ([1.0, 0.0, 0.0, 0.0], 0.0, None, [False] * 4, 0),  # patience None never stops
    ],
)
def test_early_stopping_counts_evaluations_without_an_improvement(
    data, monkeypatch, values, min_delta, patience, stops, best
):
    m = _model().fit(data, epochs=1, progress=False)
    _scripted(monkeypatch, m, values)
    stopper = EarlyStopping(m, data[:16], patience=patience, min_delta=min_delta)
    records = [{} for _ in values]
    assert [stopper(e, r) for e, r in enumerate(records)] == stops
    assert [r["val_elbo"] for r in records] == values
    assert stopper.best_epoch == best and stopper.best == values[best]


def test_early_stopping_evaluates_every_k_epochs(data, monkeypatch):
    m = _model().fit(data, epochs=1, progress=False)
    _scripted(monkeypatch, m, [1.0, 2.0, 3.0])
    stopper = EarlyStopping(m, data[:16], patience=None, every=2)
    records = [{} for _ in range(6)]
    for e, r in enumerate(records):
        stopper(e, r)
    assert ["val_elbo" in r for r in records] == [False, True] * 3  # epochs 1, 3, 5
    assert stopper.best_epoch == 5


@pytest.mark.parametrize("restore_best", [True, False])
def test_fit_ends_with_the_parameters_of_the_best_held_out_epoch(data, monkeypatch, restore_best):
    m, seen = _model(), {}
    monkeypatch.setattr(
        type(m), "elbo", lambda self, X, *a, **k: np.full(len(X), [1.0, 3.0, 2.0, 0.0][len(seen)])
    )

    def remember(epoch, record):  # runs after the early stopping's evaluation
        seen[epoch] = _state(m)

    m.fit(data, epochs=4, progress=False, validation_data=data[:16], callback=remember,
          restore_best=restore_best)  # fmt: skip
    assert [r["val_elbo"] for r in m.history_] == [1.0, 3.0, 2.0, 0.0]
    assert m.best_epoch_ == 1
    _assert_same_state(_state(m), seen[1 if restore_best else 3])


# -- checkpoints and continued fits ------------------------------------------------------------
def test_checkpoints_are_written_every_k_epochs_and_at_the_end(data, tmp_path, monkeypatch):
    saved = []
    real = Checkpoint.save

    def save(self):
        saved.append(len(self.estimator.history_))
        real(self)

    monkeypatch.setattr(Checkpoint, "save", save)
    m = _model().fit(data, epochs=5, progress=False, checkpoint=tmp_path, checkpoint_every=2)
    assert saved == [2, 4, 5]
    assert len(gfa.load(tmp_path).history_) == 5
    np.testing.assert_array_equal(gfa.load(tmp_path).transform(data), m.transform(data))


def test_a_continued_fit_appends_to_the_history(data):
    m = _model().fit(data, epochs=2, progress=False)
    first = list(m.history_)
    m.fit(data, epochs=3, progress=False, warm_start=True)
    assert m.history_[:2] == first
    assert [r["epoch"] for r in m.history_] == [0, 1, 2, 3, 4]


def test_a_seeded_fit_leaves_the_callers_random_stream(data):
    torch.manual_seed(5)
    want = torch.rand(3)
    torch.manual_seed(5)
    _model().fit(data, epochs=1, progress=False, seed=3)
    assert torch.equal(torch.rand(3), want)


@pytest.mark.parametrize("prior_scale, weight", [("paper", 1.0), ("posterior", 1 / 128)])
def test_the_prior_weight_is_one_over_the_training_rows_not_the_batch(data, prior_scale, weight):
    m = gfa.OIVAE(groups=gfa.data.bar_groups(4), latent_dim=3, prior_scale=prior_scale)
    m.fit(data, epochs=1, batch_size=32, progress=False)
    assert m.module.prior_weight == pytest.approx(weight)


@pytest.mark.parametrize("batch_size", [64, 24, 100])
def test_the_recorded_loss_is_the_mean_objective_per_row(batch_size):
    # with a vanishing step W stays put, so every epoch's record is the full-data mean of
    # -log N(x_i; mu, I), whatever the batches (64 rows in 1, 3 (24, 24, 16) or 1 step)
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
    mu = torch.tensor([0.5, -1.0, 2.0])
    module = _Mean(mu)
    hist = train(module, [x], epochs=2, batch_size=batch_size, sparse_lr=1e-30, progress=False)
    want = (0.5 * ((x - mu) ** 2).sum(1) + 1.5 * math.log(2 * math.pi)).mean().item()
    assert [r["epoch"] for r in hist] == [0, 1]
    for r in hist:
        assert r["loss"] == pytest.approx(want, rel=1e-5)
    torch.testing.assert_close(module.W.detach().reshape(-1), mu)


def test_the_std_throttle_lasts_exactly_throttle_epochs():
    # std_multiplier is std_throttle in epochs 0 .. throttle_epochs - 1 of the fit's
    # history (continued fits go on counting), 1 afterwards and after the fit
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(0))

    def fit(module, epochs, throttle_epochs, history=None):
        seen = []

        def record(epoch, rec):
            seen.append((epoch, module.std_multiplier))

        train(
            module, [x], epochs=epochs, batch_size=16, std_throttle=0.25,
            throttle_epochs=throttle_epochs, progress=False, callback=record, history=history,
        )  # fmt: skip
        assert module.std_multiplier == 1.0  # reset after the fit
        return seen

    module, hist = _Mean(torch.zeros(3)), []
    assert fit(module, 2, 3, hist) == [(0, 0.25), (1, 0.25)]
    assert fit(module, 3, 3, hist) == [(2, 0.25), (3, 1.0), (4, 1.0)]
    assert fit(_Mean(torch.zeros(3)), 2, 1) == [(0, 0.25), (1, 1.0)]
    assert fit(_Mean(torch.zeros(3)), 2, 0) == [(0, 1.0), (1, 1.0)]
