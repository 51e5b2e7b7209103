import csv

import pytest

from pyro_gfa import ablation

CONFIG = {
    "name": "t",
    "seeds": [0, 1],
    "data": {"name": "bars", "n": 128, "n_test": 64, "size": 4, "grid": {"noise_sd": [0.05, 0.1]}},
    "fit": {"epochs": 2, "batch_size": 64},
    "runs": [
        {
            "label": "GL",
            "model": "oivae",
            "model_params": {"latent_dim": 4},
            "prior": "group_lasso",
            "prior_params": {"lam": 1.0},
        },
        {"label": "HS", "model": "oivae", "model_params": {"latent_dim": 4}, "prior": "horseshoe"},
    ],
}


def test_expand_grid_and_keys():
    cfg = dict(CONFIG, runs=[dict(CONFIG["runs"][0], grid={"prior.lam": [0.5, 1.0, 2.0]})])
    specs = ablation.expand(cfg)
    assert len(specs) == 2 * 3 * 2  # data grid x hyperparameter grid x seeds
    assert len({s["key"] for s in specs}) == len(specs)
    assert sorted({s["prior_params"]["lam"] for s in specs}) == [0.5, 1.0, 2.0]


def test_runs_writes_table_and_resumes_after_interruption(tmp_path, monkeypatch):
    real = ablation.run_one
    calls = []
    fail_at = [3]

    def flaky(spec, progress=False):
        calls.append(spec["key"])
        if len(calls) == fail_at[0]:
            fail_at[0] = None
            raise RuntimeError("machine went down")  # an interruption mid-grid
        return real(spec)

    monkeypatch.setattr(ablation, "run_one", flaky)
    with pytest.raises(RuntimeError, match="went down"):
        ablation.run_ablation(CONFIG, out=tmp_path, progress=False)
    with open(tmp_path / "runs.csv") as f:
        assert len(list(csv.DictReader(f))) == 2  # the finished runs were kept
    calls.clear()
    rows = ablation.run_ablation(CONFIG, out=tmp_path, progress=False)
    assert len(calls) == 6  # only the 6 of 8 runs not finished before
    assert len(rows) == 8 and len({r["key"] for r in rows}) == 8
    summary = (tmp_path / "summary.md").read_text()
    assert "| GL |" in summary and "| HS |" in summary and "test_mse" in summary
    assert (tmp_path / "test_mse.png").exists()
    calls.clear()
    ablation.run_ablation(CONFIG, out=tmp_path, progress=False)
    assert calls == []  # nothing left to run


@pytest.mark.parametrize(
    "change, match",
    [
        (
            {"runs": [{"model": "ovae"}]},
            "unknown model .ovae.; valid names: factvae, lda, nmf, oivae, sparse_fa, sparse_vae,"
            " vae, vsc",
        ),
        (
            {"runs": [{"model": "oivae", "prior": "laplace"}]},
            "unknown prior 'laplace'; valid names: group_lasso, horseshoe, lasso, none, ssl",
        ),
        (
            {"data": {"name": "mnist"}},
            "unknown data set 'mnist'; valid names: bars, csv, sparse_synthetic",
        ),
        ({"runs": [{"model": "oivae", "grid": {"lam": [1]}}]}, "must start with"),
    ],
)
def test_bad_config_names(change, match):
    with pytest.raises(ValueError, match=match):
        ablation.expand({**CONFIG, **change})


def test_toml_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        'name = "x"\nseeds = [0]\n[data]\nname = "bars"\nn = 64\nn_test = 64\nsize = 4\n'
        '[fit]\nepochs = 1\n[[runs]]\nmodel = "oivae"\nmodel_params = { latent_dim = 2 }\n'
    )
    rows = ablation.run_ablation(path, out=tmp_path / "o", progress=False)
    assert len(rows) == 1 and float(rows[0]["test_mse"]) > 0


def test_cli_ablate_and_bad_name(tmp_path, capsys):
    from pyro_gfa.cli import main

    good = tmp_path / "c.toml"
    good.write_text(
        'name = "x"\nseeds = [0]\n[data]\nname = "bars"\nn = 64\nn_test = 64\nsize = 4\n'
        '[fit]\nepochs = 1\n[[runs]]\nmodel = "oivae"\nmodel_params = { latent_dim = 2 }\n'
    )
    assert main(["ablate", str(good), "--out", str(tmp_path / "o"), "-q"]) == 0
    assert (tmp_path / "o" / "summary.md").exists()
    bad = tmp_path / "b.toml"
    bad.write_text(good.read_text().replace('"oivae"', '"oi-vae"'))
    with pytest.raises(SystemExit) as e:
        main(["ablate", str(bad), "-q"])
    assert e.value.code == 2
    assert "valid names: factvae, lda, nmf, oivae" in capsys.readouterr().err
