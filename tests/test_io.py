"""Save / load round trips, corrupt and foreign files, checkpoints, early stopping, Ctrl-C."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import torch

import pyro_gfa as gfa
from pyro_gfa.io import FORMAT_VERSION, ModelFileError


@pytest.fixture(scope="module")
def data():
    X, _ = gfa.data.make_bars(256, seed=1)
    return X


@pytest.fixture(scope="module")
def fitted(data):
    groups = gfa.data.Groups.from_spec({f"row{r}": list(range(8 * r, 8 * r + 8)) for r in range(8)})
    m = gfa.OIVAE(groups=groups, latent_dim=4, prior=gfa.priors.GroupLasso(2.0))
    return m.fit(data, epochs=4, progress=False, seed=3)


@pytest.mark.parametrize("name", ["model", "model.zip"])
def test_round_trip_identical(fitted, data, tmp_path, name):
    path = fitted.save(tmp_path / name)
    m2 = gfa.load(path)
    assert type(m2) is type(fitted)
    np.testing.assert_array_equal(m2.transform(data), fitted.transform(data))
    np.testing.assert_array_equal(m2.loadings(), fitted.loadings())
    np.testing.assert_array_equal(m2.support(), fitted.support())
    np.testing.assert_array_equal(m2.reconstruct(data[:5]), fitted.reconstruct(data[:5]))
    assert m2.history_ == fitted.history_
    assert m2.group_names == fitted.group_names == tuple(f"row{r}" for r in range(8))
    assert m2.feature_names == fitted.feature_names
    assert isinstance(m2.module.prior, gfa.priors.GroupLasso) and m2.module.prior.lam == 2.0
    assert m2.get_config()["prior"].lam == 2.0
    assert m2.module.prior_weight == fitted.module.prior_weight
    np.testing.assert_allclose(
        m2.elbo(data[:20], seed=0), fitted.elbo(data[:20], seed=0), rtol=1e-6
    )


def test_a_posterior_scaled_prior_weight_survives_the_round_trip(data, tmp_path):
    # prior_scale="posterior" weights the prior by 1 / N_train, not the default 1: a loaded
    # model must keep it, or its ELBO (and a continued fit) would weigh the prior N times more
    m = gfa.OIVAE(groups=[32, 32], latent_dim=2, prior_scale="posterior")
    m.fit(data[:64], epochs=1, progress=False, seed=0)
    m2 = gfa.load(m.save(tmp_path / "m.zip"))
    assert m.module.prior_weight == pytest.approx(1 / 64)
    assert m2.module.prior_weight == m.module.prior_weight
    np.testing.assert_allclose(m2.elbo(data[:20], seed=0), m.elbo(data[:20], seed=0), rtol=1e-6)


def test_meta_is_json_and_weights_load_without_pickle(fitted, tmp_path):
    path = fitted.save(tmp_path / "m")
    meta = json.loads((path / "meta.json").read_text())
    assert meta["format"] == "pyro-gfa-model"
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["model_class"] == "OIVAE"
    assert meta["prior"] == {"class": "GroupLasso", "config": {"lam": 2.0}}
    assert meta["unit_names"][0] == "row0"
    state = torch.load(path / "weights.pt", weights_only=True)
    assert set(state) == set(fitted.module.state_dict())


def test_unfitted_round_trip(tmp_path):
    m = gfa.OIVAE(groups=[2, 3], latent_dim=3, generator_hidden=(4,))
    m2 = gfa.load(m.save(tmp_path / "u.zip"))
    assert m2.module is None
    assert m2.generator_hidden == (4,)
    assert m2.groups.n_features == 5


def test_only_public_fitted_attributes_are_saved(tmp_path):
    # sklearn's convention: public names ending in "_" are what fit learned; private ones
    # (a subclass's caches) stay out of the file
    m = gfa.OIVAE(groups=[2, 3], latent_dim=3)
    m.seen_, m._cache_ = 5, [1.0]
    meta = json.loads((m.save(tmp_path / "u") / "meta.json").read_text())
    assert meta["attributes"]["seen_"] == 5 and "_cache_" not in meta["attributes"]
    m2 = gfa.load(tmp_path / "u")
    assert m2.seen_ == 5 and not hasattr(m2, "_cache_")


def test_save_overwrites_model_but_not_other_folders(fitted, tmp_path):
    fitted.save(tmp_path / "m")
    fitted.save(tmp_path / "m")  # an earlier model file is replaced
    other = tmp_path / "notes"
    other.mkdir()
    (other / "x.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        fitted.save(other)
    assert (other / "x.txt").read_text() == "keep me"


def test_save_over_an_interrupted_save_is_allowed(tmp_path):
    # a save interrupted between its two moves leaves weights.pt without meta.json: the
    # folder is still a model folder, which the next save replaces
    path = tmp_path / "m"
    path.mkdir()
    (path / "weights.pt").write_bytes(b"half")
    gfa.OIVAE(groups=[2, 3], latent_dim=3).save(path)
    assert gfa.load(path).module is None and not (path / "weights.pt").exists()


def test_save_over_a_model_keeps_the_users_other_files(fitted, data, tmp_path):
    path = fitted.save(tmp_path / "m")
    (path / "my_notes.txt").write_text("keep me")
    (path / "plots").mkdir()
    fitted.save(path)
    assert (path / "my_notes.txt").read_text() == "keep me"
    assert (path / "plots").is_dir()
    np.testing.assert_array_equal(gfa.load(path).transform(data), fitted.transform(data))
    # an unfitted model saved over a fitted one leaves no stale weights behind
    gfa.OIVAE(groups=[2, 3], latent_dim=2).save(path)
    assert sorted(p.name for p in path.iterdir()) == ["meta.json", "my_notes.txt", "plots"]
    assert gfa.load(path).module is None


def test_missing_and_foreign_files_fail_clearly(fitted, tmp_path):
    with pytest.raises(FileNotFoundError):
        gfa.load(tmp_path / "nothing.zip")
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"this is not a zip file")
    with pytest.raises(ModelFileError, match="not a pyro-gfa model"):
        gfa.load(junk)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelFileError, match="no meta.json"):
        gfa.load(empty)
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("meta.json", json.dumps({"format": "something-else"}))
    with pytest.raises(ModelFileError, match="not a pyro-gfa model file"):
        gfa.load(foreign)


def _rewrite(src, dst, meta=None, weights=None):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name == "meta.json" and meta is not None:
                data = meta(data)
            if name == "weights.pt" and weights is not None:
                data = weights(data)
            zout.writestr(name, data)


def test_other_format_version_fails_clearly(fitted, tmp_path):
    src = fitted.save(tmp_path / "m.zip")

    def bump(raw):
        meta = json.loads(raw)
        meta["format_version"] = FORMAT_VERSION + 1
        return json.dumps(meta)

    _rewrite(src, tmp_path / "v.zip", meta=bump)
    with pytest.raises(ModelFileError, match=f"format version {FORMAT_VERSION + 1}"):
        gfa.load(tmp_path / "v.zip")


def test_corrupt_meta_and_weights_fail_clearly(fitted, tmp_path):
    src = fitted.save(tmp_path / "m.zip")
    _rewrite(src, tmp_path / "a.zip", meta=lambda raw: raw[: len(raw) // 2])
    with pytest.raises(ModelFileError, match="not valid JSON"):
        gfa.load(tmp_path / "a.zip")
    _rewrite(src, tmp_path / "b.zip", weights=lambda raw: raw[: len(raw) // 2])
    with pytest.raises(ModelFileError, match="weights.pt"):
        gfa.load(tmp_path / "b.zip")

    def wrong_shape(raw):
        state = torch.load(io.BytesIO(raw), weights_only=True)
        state["W"] = torch.zeros(3, 1, 2)
        buf = io.BytesIO()
        torch.save(state, buf)
        return buf.getvalue()

    _rewrite(src, tmp_path / "c.zip", weights=wrong_shape)
    with pytest.raises(ModelFileError, match="do not fit"):
        gfa.load(tmp_path / "c.zip")

    def unknown_argument(raw):  # as from a version with other constructor arguments
        meta = json.loads(raw)
        meta["config"]["dropout"] = 0.1
        return json.dumps(meta).encode()

    _rewrite(src, tmp_path / "d.zip", meta=unknown_argument)
    with pytest.raises(ModelFileError, match=r"d.zip: this pyro-gfa cannot build OIVAE"):
        gfa.load(tmp_path / "d.zip")


class _Evil:
    def __reduce__(self):
        return (print, ("code ran",))


def test_weights_with_code_are_refused(fitted, tmp_path, capsys):
    src = fitted.save(tmp_path / "m.zip")

    def evil(raw):
        buf = io.BytesIO()
        torch.save({"W": _Evil()}, buf)
        return buf.getvalue()

    _rewrite(src, tmp_path / "e.zip", weights=evil)
    with pytest.raises(ModelFileError):
        gfa.load(tmp_path / "e.zip")
    assert "code ran" not in capsys.readouterr().out


def test_checkpoints_during_fit(data, tmp_path):
    m = gfa.OIVAE(groups=gfa.data.bar_groups(), latent_dim=3)
    seen = []

    def watch(epoch, record):
        if (tmp_path / "ck.zip").exists():
            seen.append((epoch, len(gfa.load(tmp_path / "ck.zip").history_)))
        return False

    m.fit(
        data,
        epochs=5,
        progress=False,
        checkpoint=tmp_path / "ck.zip",
        checkpoint_every=2,
        callback=watch,
    )
    # the user's callback runs before the checkpoint of the same epoch: at epoch e it sees
    # the one written after epoch e - 1 - (e % 2), or the one written before training
    assert seen[-1] == (4, 4) and (2, 2) in seen
    assert all(h == e - e % 2 for e, h in seen)
    final = gfa.load(tmp_path / "ck.zip")
    assert len(final.history_) == 5
    np.testing.assert_array_equal(final.loadings(), m.loadings())


def test_early_stopping_stops_and_restores_best(data, monkeypatch):
    m = gfa.OIVAE(groups=gfa.data.bar_groups(), latent_dim=3)
    calls = []

    def fake_elbo(X, num_samples=10, seed=0):  # held-out ELBO that only gets worse
        calls.append(1)
        return np.full(len(X), -float(len(calls)))

    monkeypatch.setattr(m, "elbo", fake_elbo)
    states = {}

    def keep(epoch, record):
        states[epoch] = {k: v.clone() for k, v in m.module.state_dict().items()}
        return False

    m.fit(data, epochs=50, progress=False, validation_data=data[:32], patience=3, callback=keep)
    assert len(m.history_) == 4  # best at epoch 0, then 3 worse evaluations
    assert [r["val_elbo"] for r in m.history_] == [-1.0, -2.0, -3.0, -4.0]
    assert m.best_epoch_ == 0
    for k, v in m.module.state_dict().items():
        torch.testing.assert_close(v, states[0][k])


def test_a_non_finite_held_out_elbo_is_never_the_best_epoch(data, monkeypatch):
    m = gfa.OIVAE(groups=gfa.data.bar_groups(), latent_dim=3)
    values = iter([np.nan, -5.0, np.nan, -6.0, -7.0, -8.0])
    monkeypatch.setattr(m, "elbo", lambda X, num_samples=10, seed=0: np.full(len(X), next(values)))
    with pytest.warns(UserWarning, match="held-out ELBO is nan at epoch 0"):
        m.fit(data, epochs=50, progress=False, validation_data=data[:32], patience=3)
    assert len(m.history_) == 5 and m.best_epoch_ == 1


def test_validation_without_patience_only_records(data):
    m = gfa.OIVAE(groups=gfa.data.bar_groups(), latent_dim=3)
    m.fit(
        data, epochs=3, progress=False, validation_data=data[:32], eval_every=2, restore_best=False
    )
    assert len(m.history_) == 3
    assert "val_elbo" in m.history_[1] and "val_elbo" not in m.history_[0]
    assert np.isfinite(m.history_[1]["val_elbo"])


def _other_models():
    from pyro_gfa.data.synthetic_sparse import make_sparse_vae_data

    X = make_sparse_vae_data(120, seed=0).X
    makers = {
        "SparseVAE": lambda cls: cls(n_features=7, latent_dim=3, hidden=(8,), prior_cov=np.eye(3)),
        "FactVAE": lambda cls: cls(groups={"a": [0, 1, 2], "b": [3, 4], "c": [5, 6]}, latent_dim=3),
        "JMVAEPlus": lambda cls: cls(groups=[3, 2, 2], latent_dim=2),
    }
    return X, makers


@pytest.mark.parametrize("name", ["SparseVAE", "FactVAE", "JMVAEPlus"])
def test_round_trip_every_model(name, tmp_path):
    """The save format is generic: every estimator in the package round-trips."""
    cls = getattr(gfa, name, None)
    if cls is None:
        pytest.skip(f"{name} is not in this tree")
    X, makers = _other_models()
    m = makers[name](cls).fit(X, epochs=2, progress=False)
    m2 = gfa.load(m.save(tmp_path / "m.zip"))
    assert type(m2) is cls
    np.testing.assert_array_equal(m2.transform(X), m.transform(X))
    np.testing.assert_array_equal(m2.loadings(), m.loadings())
    np.testing.assert_array_equal(m2.support(), m.support())
    assert m2.unit_names == m.unit_names
    assert m2.history_ == m.history_


def test_a_loaded_sparse_vae_continues_exactly_as_the_fitted_one(tmp_path):
    """Its EM warm-up is counted in steps of the fit's batches: loading must keep it."""
    X = np.random.default_rng(0).standard_normal((200, 7)).astype(np.float32)
    m = gfa.SparseVAE(n_features=7, latent_dim=3, hidden=(8,), em_warmup=5)
    m.fit(X, epochs=2, batch_size=50, progress=False, seed=1)  # 8 of 20 warm-up steps
    m2 = gfa.load(m.save(tmp_path / "m.zip"))
    assert m2.module.prior.em_warmup_steps == m.module.prior.em_warmup_steps == 20
    for est in (m, m2):
        est.fit(X, epochs=2, batch_size=50, progress=False, seed=1, warm_start=True)
    np.testing.assert_array_equal(m2.loadings(), m.loadings())
    np.testing.assert_array_equal(m2.transform(X), m.transform(X))


def test_a_sparse_vae_checkpoint_carries_the_code_kl_of_its_epoch(tmp_path):
    """``support()`` drops factors whose codes carry no information: a checkpoint must
    hold the codes' KL of its own parameters, mid-fit and at the end."""
    X = np.random.default_rng(0).standard_normal((120, 7)).astype(np.float32)
    m = gfa.SparseVAE(n_features=7, latent_dim=3, hidden=(8,))
    mid = []
    m.fit(
        X,
        epochs=3,
        batch_size=60,
        progress=False,
        checkpoint=tmp_path / "ck.zip",
        checkpoint_every=2,
        callback=lambda e, r: e == 2 and mid.append(gfa.load(tmp_path / "ck.zip")),
    )
    assert mid[0].code_kl_ is not None and len(mid[0].history_) == 2
    np.testing.assert_allclose(mid[0].code_kl_, mid[0]._code_kl(X), rtol=1e-6)
    final = gfa.load(tmp_path / "ck.zip")
    np.testing.assert_array_equal(final.code_kl_, m.code_kl_)
    np.testing.assert_array_equal(final.support(), m.support())


@pytest.mark.skipif(not hasattr(__import__("os"), "umask"), reason="POSIX file modes")
def test_saved_models_get_the_usual_file_modes(fitted, tmp_path):
    """Readable by others as any file the user writes (temporary files are private)."""
    import os

    old = os.umask(0o022)
    gfa.io._umask.cache_clear()  # read once per process
    try:
        zipped, folder = fitted.save(tmp_path / "m.zip"), fitted.save(tmp_path / "m")
    finally:
        os.umask(old)
        gfa.io._umask.cache_clear()
    assert oct(zipped.stat().st_mode & 0o777) == "0o644"
    assert oct(folder.stat().st_mode & 0o777) == "0o755"
    assert oct((folder / "meta.json").stat().st_mode & 0o777) == "0o644"


class _ScaledPrior(gfa.priors.Prior):
    """A user's prior whose setting is a buffer."""

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.register_buffer("scale", torch.tensor(float(scale)))

    def smooth_log_prob(self, W):
        return -(W**2).sum() / self.scale

    def _config(self):
        return {"scale": float(self.scale)}


def test_a_users_prior_and_likelihood_save_and_load_or_are_refused_clearly(data, tmp_path):
    m = gfa.OIVAE(gfa.data.bar_groups(), 3, prior=_ScaledPrior(2.0))
    m.fit(data, epochs=1, progress=False, seed=0)
    assert float(gfa.load(m.save(tmp_path / "p.zip")).module.prior.scale) == 2.0

    from pyro_gfa.models.likelihoods import GaussianLikelihood

    class Tempered(GaussianLikelihood):  # inherits a _config its constructor does not take
        def __init__(self, n_features, temperature=1.0):
            super().__init__(n_features)
            self.temperature = temperature

    s = gfa.SparseVAE(64, 2, hidden=(4,), likelihood=Tempered(64))
    with pytest.raises(TypeError, match="cannot save a Tempered: its _config"):
        s.fit(data, epochs=1, progress=False, checkpoint=tmp_path / "ck.zip")
    assert s.module is None  # refused before training
