"""The benchmark scripts refuse bad arguments before they fit or write anything, and keep
their output folders consistent (rows merged, not wiped; side files match the rows).

Each test runs a script's ``main`` (or ``run``) in a temporary folder on tiny stand-in data,
or with the fit replaced, so that the whole file takes seconds.
"""

from __future__ import annotations

import argparse
import csv
import json
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from _benchmarks import BENCHMARKS, load


@pytest.fixture(autouse=True)
def _in_tmp_path(monkeypatch, tmp_path):
    """Run in a temporary folder (nothing lands in ``results/``) and give back the Ctrl-C
    handler that a resuming script installs (``_settings.stop_on_ctrl_c``)."""
    monkeypatch.chdir(tmp_path)
    handler = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, handler)


def usage_error(main, argv, capsys) -> str:
    """The message of the argparse error that ``main(argv)`` stops with."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    return capsys.readouterr().err


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------------------
# argument checks
@pytest.mark.parametrize(
    "script, argv, said",
    [
        ("factvae_mocap", ["--models", "lambda=0,lambda=5,lmbda=1"], "unknown 'lambda=5'"),
        ("factvae_mocap", ["--trials", "0"], "argument --trials: every value must be >= 1"),
        ("factvae_mocap", ["--seeds", "a"], "argument --seeds: expected comma-separated"),
        ("factvae_mocap", ["--models", "JMVAE+,JMVAE+"], "a value is repeated"),
        ("factvae_quadrants", ["--lams", ""], "argument --lams: expected comma-separated"),
        ("factvae_quadrants", ["--seeds", "0,,1"], "without empty items"),
        ("oivae_mocap", ["--models", "oi-VAE,foo"], "unknown 'foo'; choose from oi-VAE"),
        ("oivae_mocap", ["--steps", "0"], "argument --steps: must be >= 1"),
        ("speed_oivae_bars", ["--steps", "0"], "argument --steps: must be >= 1"),
        ("speed_sparse_decoder", ["--variants", "foo"], "invalid choice: 'foo'"),
        ("sparse_vae_synthetic", ["--rhos", "0", "1"], "every rho must satisfy |rho| < 1"),
        ("sparse_vae_synthetic", ["--n", "1"], "argument --n: must be >= 2"),
        ("sparse_vae_synthetic", ["--seeds", "0"], "argument --seeds: must be >= 1"),
    ],
)
def test_a_bad_argument_is_a_usage_error_before_any_file(
    script, argv, said, monkeypatch, tmp_path, capsys
):
    module = load(script, monkeypatch)
    err = usage_error(module.main, [*argv, "--out", str(tmp_path / "out")], capsys)
    assert said in err
    if "unknown" in said:
        assert "choose from" in err  # the valid names are listed
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def mocap():
    pytest.importorskip("pybullet_data")
    from pyro_gfa.data.mocap import load_mocap

    return load_mocap()


@pytest.mark.parametrize(
    "script, option", [("factvae_mocap", "--trials"), ("oivae_mocap", "--n-train")]
)
def test_more_clips_than_the_data_has_are_refused(
    script, option, mocap, monkeypatch, tmp_path, capsys
):
    module = load(script, monkeypatch)
    monkeypatch.setattr(module, "load_mocap", lambda: mocap)
    n = len(mocap.clip_names) - 1  # all but the test clip
    err = usage_error(module.main, [option, f"1,{n + 1}", "--out", str(tmp_path / "o")], capsys)
    assert f"argument {option}: at most {n}" in err
    assert not (tmp_path / "o").exists()


def test_zeisel_refuses_a_run_with_nothing_to_fit(monkeypatch, tmp_path, capsys):
    module = load("zeisel_classification", monkeypatch)
    err = usage_error(
        module.main, ["--models", "vae_nb", "--inputs", "raw", "--out", str(tmp_path)], capsys
    )
    assert "nothing to run" in err and "vae_nb, lda on counts only" in err


def test_a_failing_speed_worker_shows_its_stderr(monkeypatch, tmp_path):
    module = load("speed_sparse_decoder", monkeypatch)

    def fail(cmd, **kw):
        return subprocess.CompletedProcess(cmd, 1, "", "Traceback ...\nRuntimeError: boom\n")

    monkeypatch.setattr(module.subprocess, "run", fail)
    with pytest.raises(SystemExit, match="(?s)vectorised worker failed.*RuntimeError: boom"):
        module.main(["--variants", "vectorised", "--out", str(tmp_path)])


# ---------------------------------------------------------------------------------------
# oivae_mocap --tables-only: captions from the folder's settings
def test_oivae_mocap_tables_only_states_the_folders_settings(mocap, monkeypatch, tmp_path):
    module = load("oivae_mocap", monkeypatch)
    monkeypatch.setattr(module, "load_mocap", lambda: mocap)
    out = tmp_path / "om"
    (out / "loadings").mkdir(parents=True)
    settings = {"is_samples": 5, "steps": 7, "long_epochs": 3, "latent_dim": 4, "p": 2}
    (out / "settings.json").write_text(json.dumps(settings))
    for model in ("oi-VAE", "oi-VAE long"):
        row = dict.fromkeys(module.FIELDS, 1)
        row.update(model=model, seed=0, clips="run", unused_latents=0, test_loglik=-1.5)
        module.append_row(out / "results.csv", row)
    L = np.abs(np.random.default_rng(0).standard_normal((13, 4)))
    np.save(out / "loadings" / "oivae_long_n1_seed0.npy", L)
    argv = ["--tables-only", "--n-train", "1", "--seeds", "0", "--models", "oi-VAE"]

    module.main([*argv, "--out", str(out)])
    table = (out / "table.md").read_text()
    assert "5 draws" in table and "7 optimiser steps" in table and "3 epochs" in table
    assert "1000 draws" not in table and "10000" not in table
    joints = (out / "top_joints.md").read_text()
    assert "(K = 4, p = 2" in joints and "3-epoch fit" in joints
    with pytest.raises(SystemExit, match="steps = 50 .the folder's rows: 7"):
        module.main([*argv, "--steps", "50", "--out", str(out)])


# ---------------------------------------------------------------------------------------
# news_text --overwrite: only the selected rows are refitted
def test_news_text_overwrite_keeps_other_rows_and_top_words_follow_the_rows(monkeypatch, tmp_path):
    module = load("news_text", monkeypatch)
    X = np.random.default_rng(0).poisson(2.0, (40, 25)).astype(np.float32)
    corpus = SimpleNamespace(X=X, feature_names=tuple(f"w{j}" for j in range(25)))
    monkeypatch.setattr(module, "load_corpus", lambda: corpus)
    out = tmp_path / "news"
    common = ["--is-samples", "2", "--out", str(out)]
    module.main(["--splits", "0", "1", "--models", "unigram", "lda", *common])
    before = {p.name: read_csv(p) for p in out.glob("split*.csv")}
    assert sorted(before) == ["split0.csv", "split1.csv"]
    assert all(len(rows) == 2 for rows in before.values())

    fitted = []
    fit_and_score = module.fit_and_score
    monkeypatch.setattr(
        module, "fit_and_score", lambda name, *a: fitted.append(name) or fit_and_score(name, *a)
    )
    module.main(["--splits", "0", "--models", "unigram", "--overwrite", *common])
    assert fitted == ["unigram"]  # the selected row is fitted again, though it was there
    after = {p.name: read_csv(p) for p in out.glob("split*.csv")}
    assert after["split1.csv"] == before["split1.csv"]
    assert sorted(r["model"] for r in after["split0.csv"]) == ["lda", "unigram"]
    lda0 = [r for r in after["split0.csv"] if r["model"] == "lda"]
    assert lda0 == [r for r in before["split0.csv"] if r["model"] == "lda"]
    assert "## LDA, split 0" in (out / "top_words.md").read_text()

    # a row removed by hand: its top words go with it at the next summary
    module.write_rows(out / "split0.csv", [r for r in after["split0.csv"] if r["model"] != "lda"])
    module.main(["--summarize-only", *common])
    words = (out / "top_words.md").read_text()
    assert "## LDA, split 1" in words and "## LDA, split 0" not in words


# ---------------------------------------------------------------------------------------
# sparse_vae_synthetic: runs.csv is merged
def test_sparse_vae_synthetic_merges_rows(monkeypatch, tmp_path):
    module = load("sparse_vae_synthetic", monkeypatch)
    out = tmp_path / "svs"
    with pytest.raises(SystemExit, match="runs.csv does not exist"):
        module.main(["--summarize-only", "--out", str(out)])
    out.mkdir()
    (out / "runs.csv").write_text(",".join(module.FIELDS) + "\n")
    with pytest.raises(SystemExit, match="has no rows: nothing to summarize"):
        module.main(["--summarize-only", "--out", str(out)])
    (out / "runs.csv").unlink()

    fits = []

    def run_one(model, rho, seed, epochs, n):
        fits.append((model, rho, seed))
        row = dict.fromkeys(module.FIELDS, 1.0)
        return {**row, "model": model, "rho": rho, "seed": seed, "mse": float(len(fits))}

    monkeypatch.setattr(module, "run_one", run_one)
    common = ["--epochs", "3", "--n", "10", "--out", str(out)]
    module.main(["--seeds", "2", "--rhos", "0", "0.5", "--models", "sparse_vae", "vae", *common])
    module.main(["--seeds", "1", "--rhos", "0.5", "--models", "vae", "vsc", *common])
    rows = read_csv(out / "runs.csv")
    keys = [(r["model"], float(r["rho"]), int(r["seed"])) for r in rows]
    assert len(keys) == len(set(keys)) == 9  # 8 of the first run, 1 new, 1 replaced
    mse = {k: float(r["mse"]) for k, r in zip(keys, rows)}
    assert mse[("vae", 0.5, 0)] == 9.0  # the rerun's fit replaced the first one's
    assert mse[("vae", 0.5, 1)] == 8.0  # kept
    assert "VSC" in (out / "summary.md").read_text()
    with pytest.raises(SystemExit, match="epochs = 4"):
        module.main(["--seeds", "1", "--epochs", "4", "--n", "10", "--out", str(out)])
    assert len(read_csv(out / "runs.csv")) == 9


# ---------------------------------------------------------------------------------------
# zeisel_classification: the top-genes file lists the rows present
class FakeSparse:
    def __init__(self, G):
        self.W = np.random.default_rng(G).standard_normal((G, 3))

    def loadings(self):
        return self.W

    def support(self):
        return np.abs(self.W) > 0.5


def test_zeisel_top_genes_follow_the_rows(monkeypatch, tmp_path):
    import pyro_gfa.data

    module = load("zeisel_classification", monkeypatch)
    rng = np.random.default_rng(0)
    data = SimpleNamespace(
        X=rng.poisson(3.0, (70, 600)).astype(np.float32),
        labels=np.repeat(np.arange(7), 10),
        label_names=[f"class{c}" for c in range(7)],
    )
    monkeypatch.setattr(pyro_gfa.data, "load_zeisel", lambda: data)

    def fit_model(model, X_tr, X_te, seed, epochs, em_warmup=None):
        extra = {"active_factors": 3}
        if model == "sparse_fa":
            extra["estimator"] = FakeSparse(X_tr.shape[1])
        return X_tr[:, :3], X_te[:, :3], extra

    monkeypatch.setattr(module, "fit_model", fit_model)
    out = tmp_path / "z"

    def run(split, *models, resume=False):
        args = argparse.Namespace(
            splits=[split], models=list(models), inputs=["z"], epochs=1, em_warmup=None
        )
        args.out, args.resume = str(out), resume
        module.run(args, log=lambda line: None)

    run(0, "pca", "sparse_fa")
    run(1, "sparse_fa")
    genes = (out / "sparse_vae_top_genes.md").read_text()
    assert "split 0, input z" in genes and "split 1, input z" in genes
    # without --resume split 0 is remade with PCA only: its SparseFA section goes
    run(0, "pca")
    assert [r["model"] for r in read_csv(out / "split0.csv")] == ["pca"]
    genes = (out / "sparse_vae_top_genes.md").read_text()
    assert "split 0, input z" not in genes and "split 1, input z" in genes
    run(1, "pca")
    assert not (out / "sparse_vae_top_genes.md").exists()
    # --resume keeps the rows, and the section of a row added back
    run(1, "sparse_fa", resume=True)
    assert sorted(r["model"] for r in read_csv(out / "split1.csv")) == ["pca", "sparse_fa"]
    assert "split 1, input z" in (out / "sparse_vae_top_genes.md").read_text()


def test_zeisel_keeps_the_top_genes_of_a_folder_from_before_the_per_fit_files(
    monkeypatch, tmp_path
):
    module = load("zeisel_classification", monkeypatch)
    old = "# Zeisel ...\n\n### SparseFA: split 0, input raw\n| z0 | 10 | astrocytes | 1: +0.5 |\n"
    (tmp_path / "sparse_vae_top_genes.md").write_text(old)
    module.keep_earlier_top_genes(tmp_path)
    module.write_top_genes(tmp_path, rows=[])  # a resumed run that fitted nothing new
    text = (tmp_path / "sparse_vae_top_genes.md").read_text()
    assert text.startswith("# Zeisel, Sparse VAE and SparseFA")
    assert "### SparseFA: split 0, input raw\n| z0 | 10 | astrocytes | 1: +0.5 |" in text


# ---------------------------------------------------------------------------------------
def test_movielens_summary_names_the_networks_of_its_rows(monkeypatch):
    module = load("movielens", monkeypatch)
    assert "N_USERS" not in module.__doc__
    rows = [{"model": m} for m in ("vae", "vae_1x100", "nmf", "vae")]
    assert module.networks(rows) == "networks 3 x 300 (vae), 1 x 100 (vae_1x100)"
    assert module.networks(rows[:1]) == "networks 3 x 300"
    assert module.networks([{"model": "popularity"}]) == ""


# ---------------------------------------------------------------------------------------
# settings.json, shared by processes run side by side on one folder
def test_settings_refuse_other_values_and_a_fresh_run_drops_them(monkeypatch, tmp_path):
    check = load("_settings", monkeypatch).check_settings
    check(tmp_path, {"epochs": 100})
    check(tmp_path, {"epochs": 100, "n": 5})  # a new key joins the old ones
    assert json.loads((tmp_path / "settings.json").read_text()) == {"epochs": 100, "n": 5}
    with pytest.raises(SystemExit, match=r"epochs = 40 \(the folder's rows: 100\)"):
        check(tmp_path, {"epochs": 40})
    check(tmp_path, {"epochs": 40}, fresh=True)
    assert json.loads((tmp_path / "settings.json").read_text()) == {"epochs": 40}
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]  # no temporary left


def test_settings_are_never_read_half_written(monkeypatch, tmp_path):
    """Two splits' processes start side by side on one folder: one writes settings.json while
    the other reads it (a file written in place is empty for a moment, and the reader
    crashed on it)."""
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); from _settings import check_settings\n"
        "for _ in range(300): check_settings(sys.argv[2], {'epochs': 100, 'pad': 'x' * 5000})\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(BENCHMARKS), str(tmp_path)])
        for _ in range(2)
    ]
    assert all(p.wait(timeout=120) == 0 for p in procs)
