"""The pyro-gfa command line on a small CSV."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import pyro_gfa as gfa
from pyro_gfa.cli import main


@pytest.fixture()
def csv(tmp_path):
    rng = np.random.default_rng(0)
    z = rng.standard_normal((120, 2))
    X = np.c_[z[:, :1] * [1.0, 2.0, -1.0], z[:, 1:] * [1.0, -1.0], rng.standard_normal((120, 1))]
    df = pd.DataFrame(X + 0.1 * rng.standard_normal(X.shape), columns=list("abcdef"))
    df.insert(0, "id", [f"s{i}" for i in range(len(df))])
    df.to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "groups.json").write_text(
        json.dumps({"first": ["a", "b", "c"], "second": ["d", "e"], "noise": ["f"]})
    )
    return tmp_path


def test_fit_writes_model_tables_and_figures(csv):
    out = csv / "out"
    rc = main(
        [
            "fit", "--data", str(csv / "data.csv"), "--groups", str(csv / "groups.json"),
            "--index-col", "id", "--latent-dim", "3", "--epochs", "4", "--batch-size", "32",
            "--val-fraction", "0.25", "--patience", "10", "--checkpoint-every", "2",
            "--standardize", "--lam", "2", "--out", str(out), "--quiet",
        ]
    )  # fmt: skip
    assert rc == 0
    for name in ("model.zip", "loadings.csv", "top_factors.csv", "history.csv", "summary.json"):
        assert (out / name).exists(), name
    figures = ("loadings", "top_factors", "variance_explained", "factor_graph", "history")
    for fig in (*figures, "reconstructions"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 0
    L = pd.read_csv(out / "loadings.csv", index_col=0)
    assert list(L.index) == ["first", "second", "noise"] and L.shape == (3, 3)
    # R^2 on the held-out rows, as the saved model gives it on the standardised data
    ve = pd.read_csv(out / "variance_explained.csv", index_col=0)
    assert list(ve.index) == list(L.index) and list(ve.columns) == ["z0", "z1", "z2", "total"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_rows_train"] == 90 and summary["n_rows_val"] == 30
    assert summary["epochs_run"] == 4 and summary["interrupted"] is False
    assert summary["standardize"] is True
    assert (
        summary["config"]["latent_dim"] == 3 and summary["config"]["prior"] == "GroupLasso(lam=2.0)"
    )
    groups = summary["config"]["groups"]  # readable back: name -> column indices
    assert sum(len(ix) for ix in groups.values()) == 6 and all(
        isinstance(j, int) for ix in groups.values() for j in ix
    )
    # the column means and SDs that turn new rows into what the model was fitted on
    raw = pd.read_csv(csv / "data.csv", index_col="id")
    scale = pd.read_csv(out / "standardize.csv", index_col=0)
    assert list(scale.index) == list("abcdef") and list(scale.columns) == ["mean", "sd"]
    np.testing.assert_allclose(scale["mean"], raw.mean(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scale["sd"], raw.std(), rtol=1e-5)
    m = gfa.load(out / "model.zip")
    assert type(m.prior).__name__ == "GroupLasso" and m.prior.lam == 2.0  # --lam, default prior
    assert m.feature_names == tuple("abcdef")
    assert len(m.history_) == 4 and "val_elbo" in m.history_[0]
    np.testing.assert_allclose(m.loadings(), L.to_numpy(), rtol=1e-5)


def test_every_column_its_own_group_and_set_option(csv):
    out = csv / "o2"
    rc = main(
        [
            "fit", "--data", str(csv / "data.csv"), "--index-col", "0", "-k", "2",
            "--epochs", "1", "--set", "generator_hidden=[4]", "--prior", "none",
            "--no-plots", "--out", str(out), "-q",
        ]
    )  # fmt: skip
    assert rc == 0
    m = gfa.load(out / "model.zip")
    assert m.group_names == tuple("abcdef") and m.generator_hidden == (4,)
    assert type(m.prior).__name__ == "NoPrior"
    assert not (out / "figures").exists()
    assert json.loads((out / "summary.json").read_text())["standardize"] is False
    assert not (out / "standardize.csv").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--groups", "missing.json"], "no groups file"),
        (["--set", "nonsense=1"], "has no argument"),
        (["--set", "theta_prior=False"], "write theta_prior=false, not theta_prior=False"),
        (["--set", 'theta_prior="no"'], "theta_prior must be True or False, got 'no'"),
        (["--patience", "3"], "needs held-out rows"),
        (["--val-fraction", "0.001"], "leaves 0 held-out and 120 training rows"),
        (["--prior", "ssl", "--lam", "3"], "--lam is the rate of --prior lasso or group-lasso"),
        (["--prior", "none", "--lam", "3"], "it does not apply to the none prior"),
        (["--prior", "horseshoe", "--lam", "3"], "it does not apply to the horseshoe prior"),
        (["--model", "sparsevae", "--lam", "3"], "the ssl prior (sparsevae's default)"),
        (["--model", "jmvae", "--lam", "3"], "the none prior (jmvae's default)"),
        (["--top-k", "0"], "argument --top-k: must be a positive integer, got 0"),
        (["--batch-size", "0"], "argument --batch-size: must be a positive integer, got 0"),
        (["--patience", "0"], "argument --patience: must be a positive integer, got 0"),
        (["--epochs", "-1"], "argument --epochs: must be a positive integer, got -1"),
        (["--epochs", "2.5"], "argument --epochs: must be a positive integer, got 2.5"),
        (["--checkpoint-every", "-1"], "must be an integer >= 0, got -1"),
        (["--lr", "0"], "argument --lr: must be a positive number, got 0"),
    ],
)
def test_clear_errors(csv, capsys, extra, message):
    args = ["fit", "--data", str(csv / "data.csv"), "--index-col", "id", "--out", str(csv / "e")]
    with pytest.raises(SystemExit) as e:
        main(args + [x if x != "missing.json" else str(csv / x) for x in extra])
    assert e.value.code == 2
    assert message in capsys.readouterr().err
    assert not (csv / "e").exists()  # refused before fitting


def test_default_priors_are_the_models_own():
    from pyro_gfa import priors
    from pyro_gfa.cli import DEFAULT_PRIOR, MODELS

    classes = {
        "group-lasso": priors.GroupLasso,
        "ssl": priors.SpikeSlabLasso,
        "none": priors.NoPrior,
    }
    for name, cls_name in MODELS.items():
        cls = getattr(gfa, cls_name)
        kw = {"n_features": 4} if cls is gfa.SparseVAE else {"groups": [2, 2]}
        assert type(cls(latent_dim=2, **kw).prior) is classes[DEFAULT_PRIOR[name]], name


def test_pandas_row_numbers_are_refused(csv, capsys):
    df = pd.read_csv(csv / "data.csv").drop(columns="id")
    df.to_csv(csv / "numbered.csv")  # pandas' default: an unnamed first column of row numbers
    args = ["fit", "--data", str(csv / "numbered.csv"), "--out", str(csv / "n"), "-q"]
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "column 1 of" in err and "has no name" in err and "--index-col 0" in err
    assert main(args + ["--index-col", "0", "--epochs", "1", "--no-plots"]) == 0
    assert gfa.load(csv / "n" / "model.zip").feature_names == tuple("abcdef")


def test_an_error_in_fit_is_reported_plainly(csv, capsys, monkeypatch):
    def fit(self, X, **kw):
        raise ValueError("validation_data has 5 columns, expected 6")

    monkeypatch.setattr(gfa.OIVAE, "fit", fit)
    args = ["fit", "--data", str(csv / "data.csv"), "--index-col", "id", "--out", str(csv / "e")]
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    assert "fitting OIVAE failed: validation_data has 5 columns" in capsys.readouterr().err


def test_non_numeric_columns_are_reported(csv, capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--data", str(csv / "data.csv"), "--out", str(csv / "e")])
    assert "not numeric" in capsys.readouterr().err


def test_help_is_printed(capsys):
    with pytest.raises(SystemExit) as e:
        main(["fit", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "--groups" in text and "model.zip" in text and "examples:" in text
    assert main([]) == 1


def test_a_reused_folder_keeps_no_file_of_the_earlier_run(csv):
    out = csv / "reused"
    args = ["fit", "--data", str(csv / "data.csv"), "--index-col", "id", "-k", "2", "-q"]
    assert main(args + ["--epochs", "1", "--standardize", "--out", str(out)]) == 0
    assert (out / "standardize.csv").exists() and (out / "figures" / "loadings.png").exists()
    assert main(args + ["--epochs", "1", "--no-plots", "--out", str(out)]) == 0
    assert not (out / "standardize.csv").exists()  # this model takes rows as they are
    assert not list((out / "figures").glob("*.png"))


def test_naming_the_models_own_prior_keeps_its_settings(csv, capsys):
    args = ["fit", "--data", str(csv / "data.csv"), "--index-col", "id", "-k", "2", "-q"]
    args += ["--model", "sparsevae", "--epochs", "1", "--no-plots", "--set", "hidden=[4]"]
    for out, extra in (("a", []), ("b", ["--prior", "ssl"])):
        assert main(args + extra + ["--out", str(csv / out)]) == 0
    priors = [json.loads((csv / o / "summary.json").read_text())["config"]["prior"] for o in "ab"]
    assert priors[0] == priors[1] and "lambda0=1000.0" in priors[0]
    with pytest.raises(SystemExit):
        main(args + ["--groups", str(csv / "groups.json"), "--out", str(csv / "c")])
    assert "sparsevae has a loading per feature" in capsys.readouterr().err


@pytest.mark.parametrize("model, prior", [("sparsevae", "ssl"), ("factvae", "group_lasso")])
def test_other_models(csv, model, prior):
    if model == "sparsevae" and not hasattr(gfa, "SparseVAE"):
        pytest.skip("no SparseVAE in this tree")
    out = csv / model
    args = ["fit", "--model", model, "--prior", prior, "--data", str(csv / "data.csv")]
    args += ["--index-col", "id", "-k", "2", "--epochs", "1", "--no-plots", "-q"]
    args += ["--set", "hidden=[8]"] if model == "sparsevae" else []
    args += ["--groups", str(csv / "groups.json")] if model == "factvae" else []
    assert main(args + ["--out", str(out)]) == 0
    m = gfa.load(out / "model.zip")
    assert m.feature_names == tuple("abcdef")
    L = pd.read_csv(out / "loadings.csv", index_col=0)
    assert len(L) == (6 if model == "sparsevae" else 3)
    ve = pd.read_csv(out / "variance_explained.csv", index_col=0)
    assert list(ve.index) == list(L.index) and ve["total"].notna().all()
    summary = json.loads((out / "summary.json").read_text())  # signed loadings count too
    assert summary["active_factors"] == int(m.support().any(0).sum())
    assert summary["active_connections"] == int(m.support().sum())


def test_ctrl_c_keeps_the_results_and_exits_130(csv, capsys, fail_at_step):
    fail_at_step(2 * 4 + 1, KeyboardInterrupt)  # 4 steps per epoch: Ctrl-C in epoch 2
    out = csv / "out"
    args = ["fit", "--data", str(csv / "data.csv"), "--index-col", "id", "-k", "2"]
    args += ["--epochs", "50", "--batch-size", "32", "--no-plots", "-q", "--out", str(out)]
    with pytest.warns(UserWarning, match="interrupted"):
        assert main(args) == 130
    assert "interrupted after 2 epochs" in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["epochs_run"] == 2
    assert len(gfa.load(out / "model.zip").history_) == 2


@pytest.mark.parametrize("checkpoint", [[], ["--checkpoint-every", "1"]])
@pytest.mark.parametrize("step, saved", [(1, False), (2 * 4 + 1, True)])
def test_a_diverged_fit_saves_its_last_completed_epoch_when_there_is_one(
    csv, capsys, fail_at_step, step, saved, checkpoint
):
    fail_at_step(step, FloatingPointError("the objective is not finite"))
    out = csv / f"diverged{step}"
    args = ["fit", "--data", str(csv / "data.csv"), "--index-col", "id", "-k", "2"]
    args += ["--epochs", "5", "--batch-size", "32", "-q", *checkpoint]
    with pytest.raises(SystemExit):
        main(args + ["--no-plots", "--out", str(out)])
    err = capsys.readouterr().err
    assert "try a smaller --lr" in err
    assert ("the last completed epoch, 2, and its history are saved" in err) is saved
    assert (out / "model.zip").exists() is saved
    if saved:
        assert len(gfa.load(out / "model.zip").history_) == 2
        assert len(pd.read_csv(out / "history.csv")) == 2


def test_an_unexpected_error_late_in_a_fit_is_raised_after_saving_the_last_epoch(csv, fail_at_step):
    # e.g. the GPU runs out of memory: not the user's input, so the error itself goes on
    fail_at_step(2 * 4 + 1, torch.OutOfMemoryError("CUDA out of memory"))
    out = csv / "oom"
    args = ["fit", "--data", str(csv / "data.csv"), "--index-col", "id", "-k", "2"]
    args += ["--epochs", "5", "--batch-size", "32", "-q", "--no-plots", "--out", str(out)]
    with pytest.raises(torch.OutOfMemoryError) as info:
        main(args)
    assert info.value.__notes__ == [
        f"pyro-gfa: the model of the last completed epoch, 2, and its history are saved in {out}/"
    ]
    assert len(gfa.load(out / "model.zip").history_) == 2
    assert len(pd.read_csv(out / "history.csv")) == 2


def test_data_that_overflow_the_first_step_get_told_to_standardize(tmp_path, capsys):
    X = np.random.default_rng(0).normal(scale=1e6, size=(40, 4))
    pd.DataFrame(X, columns=list("abcd")).to_csv(tmp_path / "big.csv", index=False)
    args = ["fit", "--data", str(tmp_path / "big.csv"), "-k", "2", "--epochs", "1", "-q"]
    with pytest.warns(UserWarning, match="standardise"), pytest.raises(SystemExit):
        main(args + ["--no-plots", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert "before any update" in err and "try --standardize" in err and "--lr" not in err


def test_python_dash_m_runs_the_command():
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "pyro_gfa", "--version"], capture_output=True, text=True, check=True
    )
    assert run.stdout.startswith("pyro-gfa ")


def test_a_csv_with_a_header_and_no_rows_is_reported(tmp_path, capsys):
    (tmp_path / "h.csv").write_text("a,b,c\n")
    with pytest.raises(SystemExit):
        main(["fit", "--data", str(tmp_path / "h.csv"), "--out", str(tmp_path / "o")])
    assert "has no data rows" in capsys.readouterr().err


def test_values_beyond_float32_are_named_by_column(tmp_path, capsys):
    (tmp_path / "big.csv").write_text("a,b\n1,2\n3,1e40\n")
    for extra in ([], ["--standardize"]):  # not reported as NaN after the cast
        with pytest.raises(SystemExit):
            main(["fit", "--data", str(tmp_path / "big.csv"), "--out", str(tmp_path / "o"), *extra])
        assert "columns ['b'] of" in capsys.readouterr().err


def _capture_fit(monkeypatch, val_elbos=None):
    """Record the data and options ``pyro-gfa fit`` passes to ``OIVAE.fit`` (the fit runs);
    with ``val_elbos``, the held-out ELBOs the fit sees are these values."""
    calls = []
    real = gfa.OIVAE.fit

    def fit(self, X, **kw):
        calls.append((X.copy(), kw))
        with monkeypatch.context() as patch:
            if val_elbos is not None:
                it = iter(val_elbos)
                patch.setattr(type(self), "elbo", lambda s, X, *a, **k: np.full(len(X), next(it)))
            return real(self, X, **kw)

    monkeypatch.setattr(gfa.OIVAE, "fit", fit)
    return calls


def test_the_split_holds_out_the_nearest_row_count_and_follows_the_seed(csv, monkeypatch):
    calls = _capture_fit(monkeypatch)
    args = ["fit", "--data", str(csv / "data.csv"), "--index-col", "id", "-k", "2"]
    args += ["--epochs", "1", "--val-fraction", "0.29", "--no-plots", "-q"]
    for seed in ("0", "1"):
        assert main(args + ["--seed", seed, "--out", str(csv / f"s{seed}")]) == 0
    splits = []
    for X, kw in calls:
        train, val = list(X.index), list(kw["validation_data"].index)
        assert len(val) == 35  # round(0.29 * 120) = round(34.8)
        assert len(set(train) | set(val)) == len(train) + len(val) == 120  # disjoint, all rows
        splits.append(set(val))
    assert splits[0] != splits[1]  # the seed draws the split
    summary = json.loads((csv / "s1" / "summary.json").read_text())
    assert summary["n_rows_train"] == 85 and summary["n_rows_val"] == 35
    assert summary["seed"] == 1 and summary["n_features"] == 6


def test_standardize_fits_on_the_standardised_columns(csv, monkeypatch):
    calls = _capture_fit(monkeypatch)
    raw = pd.read_csv(csv / "data.csv", index_col="id")
    raw["const"] = 2.5  # a constant column is centred, its sd recorded as 1
    raw.to_csv(csv / "const.csv")
    out = csv / "std"
    args = ["fit", "--data", str(csv / "const.csv"), "--index-col", "id", "-k", "2"]
    assert (
        main(args + ["--epochs", "1", "--standardize", "--no-plots", "-q", "--out", str(out)]) == 0
    )
    scale = pd.read_csv(out / "standardize.csv", index_col=0)
    np.testing.assert_allclose(scale["mean"], raw.mean(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scale["sd"], [*raw.std()[:-1], 1.0], rtol=1e-5)
    ((X, _),) = calls
    want = (raw - raw.mean()) / raw.std().replace(0, 1.0)
    np.testing.assert_allclose(X.to_numpy(), want.to_numpy(), rtol=1e-4, atol=1e-5)
    assert (X["const"] == 0).all()


def test_the_summary_reports_the_fit_it_describes(csv, monkeypatch):
    calls = _capture_fit(monkeypatch, val_elbos=[1.0, 3.0, 2.0])  # the best: epoch 1
    out = csv / "sum"
    args = ["fit", "--data", str(csv / "data.csv"), "--index-col", "id", "-k", "2", "--seed", "3"]
    args += ["--epochs", "3", "--val-fraction", "0.25", "--patience", "7"]
    args += ["--checkpoint-every", "2", "--no-plots", "-q", "--out", str(out)]
    assert main(args) == 0
    ((X, kw),) = calls
    assert kw["patience"] == 7 and kw["checkpoint_every"] == 2 and kw["seed"] == 3
    summary = json.loads((out / "summary.json").read_text())
    m = gfa.load(out / "model.zip")
    val = kw["validation_data"]
    assert summary["best_epoch"] == m.best_epoch_ == 1 and summary["epochs_run"] == 3
    # the per-row ELBOs of the training and of the held-out rows (5 draws, seed 0)
    assert summary["train_elbo_per_row"] == pytest.approx(np.mean(m.elbo(X, num_samples=5)))
    assert summary["val_elbo_per_row"] == pytest.approx(np.mean(m.elbo(val, num_samples=5)))
    assert summary["train_elbo_per_row"] != summary["val_elbo_per_row"]


def test_ctrl_c_before_the_first_epoch_exits_130_and_writes_no_model(csv, capsys, fail_at_step):
    fail_at_step(1, KeyboardInterrupt)
    out = csv / "cut"
    args = ["fit", "--data", str(csv / "data.csv"), "--index-col", "id", "-k", "2"]
    with pytest.warns(UserWarning, match="interrupted"):
        assert main(args + ["--epochs", "3", "--no-plots", "-q", "--out", str(out)]) == 130
    assert "interrupted before the first epoch completed" in capsys.readouterr().err
    assert not (out / "model.zip").exists() and not (out / "summary.json").exists()
