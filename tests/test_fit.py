"""The contract of ``Estimator.fit`` shared by the deep models: what Ctrl-C and errors leave
behind, checkpoints that are kept, continued fits, argument and column-name checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import pyro_gfa as gfa


def _model():
    return gfa.OIVAE(groups=gfa.data.bar_groups(4), latent_dim=3)


def _state(m):
    return {k: v.clone() for k, v in m.module.state_dict().items()}


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_ctrl_c_mid_epoch_keeps_the_last_completed_epoch(data, monkeypatch, fail_at_step):
    m, seen = _model(), {}

    def remember(epoch, record):
        seen[epoch] = _state(m)

    fail_at_step(2 * 2 + 1, KeyboardInterrupt)  # 2 steps per epoch: in epoch 2
    with pytest.warns(UserWarning, match="interrupted.*last completed epoch"):
        out = m.fit(data, epochs=10, batch_size=64, progress=False, callback=remember)
    assert out is m and m.interrupted_
    assert [r["epoch"] for r in m.history_] == [0, 1]
    _assert_same_state(_state(m), seen[1])
    monkeypatch.undo()
    m.fit(data, epochs=1, progress=False)
    assert not m.interrupted_


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError("out of memory")])
def test_a_refit_stopped_before_its_first_epoch_leaves_the_earlier_fit(data, exc, fail_at_step):
    m = _model().fit(data, epochs=2, progress=False)
    before, history, z = _state(m), list(m.history_), m.transform(data)
    fail_at_step(1, exc)
    if exc is KeyboardInterrupt:
        with pytest.warns(UserWarning, match="as it was before the call"):
            m.fit(data, epochs=5, progress=False, seed=7)
        assert m.interrupted_
    else:
        with pytest.raises(RuntimeError, match="out of memory") as info:
            m.fit(data, epochs=5, progress=False, seed=7)
        assert "OIVAE is as it was before the call" in info.value.__notes__[-1]
        assert not m.interrupted_
    assert m.history_ == history
    _assert_same_state(_state(m), before)
    np.testing.assert_array_equal(m.transform(data), z)


def test_a_first_fit_that_fails_at_once_leaves_the_model_unfitted(data, fail_at_step):
    m = _model()
    fail_at_step(1, RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom"):
        m.fit(data, epochs=3, progress=False)
    with pytest.raises(RuntimeError, match="not fitted yet"):
        m.transform(data)


@pytest.mark.parametrize("exc", [RuntimeError("boom"), FloatingPointError("nan")])
def test_a_restart_that_fails_does_not_compete_with_the_finished_ones(data, exc):
    single = _model().fit(data, epochs=3, progress=False, seed=0)
    calls = []

    def fail_in_restart_two(epoch, record):
        calls.append(epoch)
        if len(calls) == 5:  # epoch 1 of the second restart
            raise exc

    m = _model()
    with pytest.raises(type(exc)):
        m.fit(data, epochs=3, n_restarts=3, progress=False, seed=0, callback=fail_in_restart_two)
    assert len(calls) == 5 and len(m.restart_elbos_) == 1 and len(m.history_) == 3
    np.testing.assert_array_equal(m.transform(data), single.transform(data))


def test_a_first_restart_cut_before_its_first_epoch_leaves_the_earlier_fit(data, fail_at_step):
    m = _model().fit(data, epochs=2, progress=False)
    z = m.transform(data)
    fail_at_step(1, KeyboardInterrupt)
    with pytest.warns(UserWarning, match="as it was before the call"):
        m.fit(data, epochs=3, n_restarts=2, progress=False)
    assert m.interrupted_ and len(m.history_) == 2
    np.testing.assert_array_equal(m.transform(data), z)


def test_an_error_after_some_epochs_saves_the_last_good_one(data, tmp_path, fail_at_step):
    fail_at_step(2 * 3 + 1, RuntimeError("boom"))  # in epoch 3
    m = _model()
    with pytest.raises(RuntimeError, match="boom"):
        m.fit(data, epochs=10, batch_size=64, progress=False, checkpoint=tmp_path / "ck.zip")
    saved = gfa.load(tmp_path / "ck.zip")
    assert len(saved.history_) == len(m.history_) == 3
    np.testing.assert_array_equal(saved.transform(data), m.transform(data))


def test_divergence_in_the_last_step_is_caught(data):
    m = gfa.SparseVAE(n_features=data.shape[1], latent_dim=2, hidden=(8,))
    with pytest.raises(FloatingPointError, match="after epoch 0") as info:
        m.fit(data[:64], epochs=1, batch_size=64, lr=1e6, progress=False)  # one step
    assert "No epoch completed" in info.value.__notes__[0]
    with pytest.raises(RuntimeError, match="not fitted yet"):
        m.transform(data)


def test_a_new_fit_keeps_an_existing_checkpoint_until_it_has_one_of_its_own(
    data, tmp_path, fail_at_step
):
    ck = tmp_path / "ck.zip"
    _model().fit(data, epochs=3, progress=False, checkpoint=ck)
    fail_at_step(1, RuntimeError("boom"))
    with pytest.raises(RuntimeError):
        _model().fit(data, epochs=3, progress=False, checkpoint=ck)
    assert len(gfa.load(ck).history_) == 3


def test_an_unwritable_checkpoint_leaves_the_earlier_fit(data, tmp_path):
    m = _model().fit(data, epochs=2, progress=False)
    z = m.transform(data)
    (tmp_path / "file").write_text("")
    with pytest.raises((FileExistsError, NotADirectoryError)):
        m.fit(data, epochs=2, progress=False, checkpoint=tmp_path / "file" / "ck.zip")
    assert len(m.history_) == 2
    np.testing.assert_array_equal(m.transform(data), z)


def test_continued_fits_draw_afresh_and_repeat_exactly(data, monkeypatch):
    real, orders = torch.randperm, []

    def randperm(n, *args, **kwargs):
        out = real(n, *args, **kwargs)
        orders.append(out.tolist())
        return out

    monkeypatch.setattr(torch, "randperm", randperm)

    def run():
        orders.clear()
        m = _model().fit(data, epochs=1, progress=False)
        for _ in range(2):
            m.fit(data, epochs=1, progress=False, warm_start=True)
        return m, list(orders)

    a, first = run()
    b, second = run()
    assert len(first) == 3 and first[1] != first[2] and first[0] != first[1]
    assert first == second
    np.testing.assert_array_equal(a.transform(data), b.transform(data))


@pytest.mark.parametrize(
    "option, match",
    [
        ({"epochs": 1.5}, "epochs must be an integer >= 0, got 1.5"),
        ({"epochs": "2"}, "epochs must be an integer"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ({"num_particles": 0}, "num_particles must be an integer >= 1"),
        ({"seed": "a"}, "seed must be an integer >= 0"),
        ({"seed": 1.5}, "seed must be an integer"),
        ({"lr": float("nan")}, "lr must be > 0 and finite, got nan"),
        ({"sparse_lr": -1.0}, "sparse_lr must be > 0 and finite"),
        ({"std_throttle": -1}, "std_throttle must be > 0 and finite"),
        ({"eval_every": 0}, "eval_every must be an integer >= 1"),
        ({"checkpoint_every": True}, "checkpoint_every must be an integer"),
        ({"patience": 3}, "patience needs validation_data"),
        ({"sparse_momentum": 1.0}, r"sparse_momentum must be in \[0, 1\), got 1.0"),
        ({"sparse_momentum": "x"}, "sparse_momentum must be in"),
        ({"progress": "no"}, "progress must be True or False, got 'no'"),
        ({"restore_best": 1}, "restore_best must be True or False"),
        ({"callback": 5}, "callback must be callable"),
    ],
)
def test_bad_fit_options_fail_before_training(data, option, match):
    for m in (_model(), gfa.SparseVAE(data.shape[1], 2, hidden=(4,))):
        with pytest.raises(ValueError, match=match):
            m.fit(data, **{"progress": False, **option})
        assert m.module is None


def test_sample_needs_a_count(data):
    m = _model().fit(data, epochs=1, progress=False)
    assert m.sample(0).shape == (0, data.shape[1])
    for n in (-1, 2.5):
        with pytest.raises(ValueError, match="n must be an integer >= 0"):
            m.sample(n)


def test_seeds_and_sample_counts_of_the_evaluations_are_checked(data):
    m = _model().fit(data, epochs=1, progress=False)
    for call in (m.elbo, m.expected_log_lik, m.log_likelihood):
        for n in (True, 1.5, 0):
            with pytest.raises(ValueError, match="num_samples must be an integer >= 1"):
                call(data, num_samples=n)
        with pytest.raises(ValueError, match="seed must be an integer >= 0, got -1"):
            call(data, seed=-1)
    with pytest.raises(ValueError, match="seed must be an integer >= 0, got 1.5"):
        m.sample(3, seed=1.5)
    with pytest.raises(TypeError, match="validation_data: X must be a numeric"):
        _model().fit(data, epochs=1, progress=False, validation_data=np.full((2, 8), "a"))


def test_columns_other_than_those_seen_by_fit_are_refused(data):
    cols = [f"c{j}" for j in range(data.shape[1])]
    df = pd.DataFrame(data, columns=cols)
    for m in (
        gfa.VAE(n_features=df.shape[1], latent_dim=2, hidden=(8,)).fit(
            df, epochs=1, progress=False
        ),
        _model().fit(df, epochs=1, progress=False),
        gfa.SparseFA(latent_dim=2).fit(df, progress=False),
    ):
        with pytest.raises(ValueError, match="in another order.*X\\[model.feature_names_\\]"):
            m.transform(df[cols[::-1]])
        with pytest.raises(ValueError, match=r"missing \['c0'\], not seen by fit \['z'\]"):
            m.transform(df.rename(columns={"c0": "z"}))
        assert m.transform(data).shape == m.transform(df).shape == (len(data), m.latent_dim)
        m.fit(df.rename(columns={"c0": "z"}), epochs=1, progress=False)  # a refit: new names
        assert m.feature_names_[0] == "z"


@pytest.mark.parametrize("model", ["VAE", "OIVAE"])
def test_held_out_rows_and_continued_fits_need_the_fitted_columns(data, model):
    cols = [f"c{j}" for j in range(data.shape[1])]
    df = pd.DataFrame(data, columns=cols)
    if model == "VAE":
        m = gfa.VAE(n_features=df.shape[1], latent_dim=2, hidden=(8,))
    else:
        m = _model()
    with pytest.raises(ValueError, match="in another order"):
        m.fit(df, epochs=2, progress=False, validation_data=df[cols[::-1]])
    assert m.module is None
    m.fit(df, epochs=1, progress=False)
    z = m.transform(df)
    with pytest.raises(ValueError, match="in another order"):
        m.fit(df[cols[::-1]], epochs=1, progress=False, warm_start=True)
    assert len(m.history_) == 1
    np.testing.assert_array_equal(m.transform(df), z)
    # an array continues the fit and keeps the columns' names and their check
    m.fit(data, epochs=1, progress=False, warm_start=True)
    assert m.feature_names == tuple(cols)
    with pytest.raises(ValueError, match="in another order"):
        m.transform(df[cols[::-1]])


def test_pyro_svi_trains_a_module_registered_as_the_readme_says(data):
    import pyro
    from pyro.infer import SVI, TraceMeanField_ELBO

    a, b = (_model().fit(data, epochs=1, progress=False) for _ in range(2))
    b_before = _state(b)

    def pair(name, m):
        def model(x):
            pyro.module(name, m.module)
            return m.module.model(x)

        def guide(x):
            pyro.module(name, m.module)
            return m.module.guide(x)

        return model, guide

    before = _state(a)
    svi = SVI(*pair("a", a), pyro.optim.Adam({"lr": 1e-2}), TraceMeanField_ELBO())
    x = torch.as_tensor(data)
    for _ in range(3):
        svi.step(x)
    assert all(not torch.equal(before[k], v) for k, v in a.module.named_parameters())
    _assert_same_state(_state(b), b_before)  # another model is not touched


def test_complex_and_out_of_float32_range_data_are_named(data):
    with pytest.raises(TypeError, match="X is complex"):
        _model().fit(data + 1j, epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"beyond the range of float32 \(3.4e\+38\)"):
        _model().fit(data.astype(np.float64) * 1e300, epochs=1, progress=False)


def test_a_diverged_last_epoch_never_reaches_the_checkpoint(data, tmp_path):
    ck = tmp_path / "ck.zip"
    good = gfa.SparseVAE(n_features=data.shape[1], latent_dim=2, hidden=(8,))
    good.fit(data, epochs=3, progress=False, checkpoint=ck)
    m = gfa.SparseVAE(n_features=data.shape[1], latent_dim=2, hidden=(8,))
    with pytest.raises(FloatingPointError):
        m.fit(
            data[:64], epochs=1, batch_size=64, lr=1e6, progress=False, checkpoint=ck,
            checkpoint_every=1,
        )  # fmt: skip
    assert len(gfa.load(ck).history_) == 3


def test_the_checkpoint_records_the_interruption(data, tmp_path, monkeypatch, fail_at_step):
    ck = tmp_path / "ck.zip"
    fail_at_step(2 * 2 + 1, KeyboardInterrupt)
    with pytest.warns(UserWarning) as caught:
        _model().fit(data, epochs=5, batch_size=64, progress=False, checkpoint=ck)
    assert gfa.load(ck).interrupted_ and len(gfa.load(ck).history_) == 2
    assert caught[0].filename == __file__  # the warning points at the caller's line
    monkeypatch.undo()
    _model().fit(data, epochs=1, progress=False, checkpoint=ck)
    assert not gfa.load(ck).interrupted_


def test_a_continued_fit_that_fails_at_once_changes_nothing(data, monkeypatch, fail_at_step):
    m = _model().fit(data, epochs=3, progress=False, validation_data=data[:32])
    state = {k: v for k, v in vars(m).items() if k != "module"}
    before = _state(m)
    fail_at_step(1, RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom"):
        m.fit(data, epochs=2, progress=False, warm_start=True)
    monkeypatch.undo()
    if not torch.cuda.is_available():  # an error while setting up changes nothing either
        with pytest.raises(ValueError, match="this machine has 0 CUDA device"):
            m.fit(data, epochs=2, progress=False, device="cuda")
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"):
        m.fit(data, epochs=2, progress=False, device="gpu")
    assert {k: v for k, v in vars(m).items() if k != "module"} == state
    _assert_same_state(_state(m), before)


def test_a_seeded_block_draws_torchs_seeded_stream_and_leaves_cuda_alone(monkeypatch):
    """On the CPU, ``seeded`` draws what ``torch.manual_seed`` would, restores the caller's
    stream, and never reseeds a CUDA device (which it could not restore)."""
    from pyro_gfa.models.base import seeded

    def no_cuda(*args):
        raise AssertionError("a CPU block reseeded CUDA")

    torch.manual_seed(3)
    want = torch.rand(3)
    torch.manual_seed(0)
    after = torch.rand(1)
    torch.manual_seed(0)
    monkeypatch.setattr(torch.cuda, "manual_seed_all", no_cuda)
    monkeypatch.setattr(torch.cuda, "manual_seed", no_cuda)
    with seeded(3, torch.device("cpu")):
        assert torch.equal(torch.rand(3), want)
    assert torch.equal(torch.rand(1), after)
