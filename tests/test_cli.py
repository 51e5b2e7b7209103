"""The pyro-gfa command line on a small CSV."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

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
            "--standardize", "--out", str(out), "--quiet",
        ]
    )  # fmt: skip
    assert rc == 0
    for name in ("model.zip", "loadings.csv", "top_factors.csv", "history.csv", "summary.json"):
        assert (out / name).exists(), name
    for fig in ("loadings", "top_factors", "factor_graph", "history", "reconstructions"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 0
    L = pd.read_csv(out / "loadings.csv", index_col=0)
    assert list(L.index) == ["first", "second", "noise"] and L.shape == (3, 3)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_rows_train"] == 90 and summary["n_rows_val"] == 30
    assert summary["epochs_run"] == 4
    m = gfa.load(out / "model.zip")
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


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--groups", "missing.json"], "no groups file"),
        (["--set", "nonsense=1"], "has no argument"),
        (["--patience", "3"], "needs held-out rows"),
    ],
)
def test_clear_errors(csv, capsys, extra, message):
    args = ["fit", "--data", str(csv / "data.csv"), "--index-col", "id", "--out", str(csv / "e")]
    with pytest.raises(SystemExit) as e:
        main(args + [x if x != "missing.json" else str(csv / x) for x in extra])
    assert e.value.code == 2
    assert message in capsys.readouterr().err


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


@pytest.mark.parametrize("model, prior", [("sparsevae", "ssl"), ("factvae", "group-lasso")])
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
    assert len(pd.read_csv(out / "loadings.csv", index_col=0)) == (6 if model == "sparsevae" else 3)
