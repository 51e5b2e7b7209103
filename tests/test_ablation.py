import csv
from pathlib import Path

import numpy as np
import pytest

import pyro_gfa as gfa
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

    def flaky(spec, **kw):
        calls.append(spec["key"])
        if len(calls) == fail_at[0]:
            fail_at[0] = None
            raise KeyboardInterrupt  # an interruption mid-grid, not a failing run
        return real(spec, **kw)

    monkeypatch.setattr(ablation, "run_one", flaky)
    with pytest.raises(KeyboardInterrupt):
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


def test_a_grid_of_words_is_plotted_against_the_settings(tmp_path, monkeypatch):
    import matplotlib.figure

    ticks = {}
    save = matplotlib.figure.Figure.savefig

    def record(fig, path, **kw):  # the tick labels of every plot written
        ticks[Path(path).stem] = [t.get_text() for t in fig.axes[0].get_xticklabels()]
        return save(fig, path, **kw)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", record)
    run = dict(CONFIG["runs"][0], grid={"model.prior_scale": ["paper", "posterior"]})
    data = {k: v for k, v in CONFIG["data"].items() if k != "grid"}
    cfg = dict(CONFIG, seeds=[0], data=data, fit={"epochs": 1, "batch_size": 64}, runs=[run])
    ablation.run_ablation(cfg, out=tmp_path, progress=False)
    assert (tmp_path / "test_mse.png").exists()
    # each setting is named by what differs between them
    labels = {"model.prior_scale=paper", "model.prior_scale=posterior"}
    assert set(ticks["test_mse"]) == labels


def test_ctrl_c_inside_a_fit_stops_the_grid(tmp_path, fail_at_step):
    fail_at_step(2 * 4 + 2, KeyboardInterrupt)  # 4 steps per run (2 epochs of 2 batches): run 3
    with pytest.warns(UserWarning, match="interrupted"), pytest.raises(KeyboardInterrupt):
        ablation.run_ablation(CONFIG, out=tmp_path, progress=False)
    with open(tmp_path / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and not any(r["error"] for r in rows)  # the cut run is not kept


def test_names_may_be_spelt_as_the_fit_command_spells_them():
    runs = [{"model": "sparsevae", "prior": "group-lasso", "model_params": {"latent_dim": 2}}]
    (spec,) = ablation.expand(dict(CONFIG, seeds=[0], runs=runs, data={"name": "bars"}))
    assert (spec["model"], spec["prior"], spec["label"]) == (
        "sparse_vae",
        "group_lasso",
        "sparsevae/group-lasso",
    )


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
        (
            {"seed": [0, 1]},
            "unknown key 'seed' in the config; allowed: data, fit, name, runs, seeds",
        ),
        (
            {"runs": [{"model": "oivae", "modelparams": {"latent_dim": 2}}]},
            r"unknown key 'modelparams' in \[\[runs\]\] 1; allowed: fit, grid, label, model,"
            " model_params, prior, prior_params",
        ),
        ({"seeds": 0}, "seeds must be a non-empty list of integers, got 0"),
        (
            {
                "runs": [
                    {"model": "oivae", "prior": "group_lasso", "model_params": {"latent_dim": d}}
                    for d in (2, 6)
                ]
            },
            r"\[\[runs\]\] 1 and 2 share the label 'oivae/group_lasso'",
        ),
        ({"runs": [{"label": "a", "model": "oivae"}] * 2}, "share the label 'a'"),
        ({"runs": {"label": "a", "model": "oivae"}}, r"write each run as \[\[runs\]\]"),
        (
            {"runs": [{"model": "oivae", "grid": {"model.latent_dim": 4}}]},
            r"the grid of \[\[runs\]\] 1: model.latent_dim must be a non-empty list of values",
        ),
        (
            {"data": {"name": "bars", "n": 64, "noize_sd": 0.1}},
            r"unknown parameter\(s\) \['noize_sd'\] of data set 'bars'; it takes: n, n_test,",
        ),
        (
            {"data": {"name": "bars", "grid": {"nn": [64]}}},
            r"unknown parameter\(s\) \['nn'\]",
        ),
        ({"fit": {"epochs": 1, "seed": 3}}, r"seed in \[fit\]: every run's seed comes from"),
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
    bad.write_text(good.read_text().replace('"oivae"', '"ovae"'))
    with pytest.raises(SystemExit) as e:
        main(["ablate", str(bad), "-q"])
    assert e.value.code == 2
    assert "valid names: factvae, lda, nmf, oivae" in capsys.readouterr().err


def _fake_run(spec, **kw):
    if spec["label"] == "HS":
        raise FloatingPointError("the objective became nan at epoch 0, step 1")
    return {"test_mse": 1.0 + spec["seed"], "fit_s": 0.1}


def test_a_failing_run_is_recorded_and_the_others_go_on(tmp_path, monkeypatch):
    monkeypatch.setattr(ablation, "run_one", _fake_run)
    rows = ablation.run_ablation(CONFIG, out=tmp_path, progress=False)
    assert len(rows) == 8
    failed = [r for r in rows if r["error"]]
    assert {r["label"] for r in failed} == {"HS"} and len(failed) == 4
    assert failed[0]["error"] == "FloatingPointError: the objective became nan at epoch 0, step 1"
    assert all(r["test_mse"] == "" for r in failed)
    assert all(float(r["test_mse"]) >= 1 for r in rows if r["label"] == "GL")
    summary = (tmp_path / "summary.md").read_text()
    assert "| GL |" in summary and "1.5 ± 0.71 (2)" in summary
    assert summary.count("FloatingPointError: the objective became nan") == 4
    # a rerun retries only the failed runs, and replaces their rows
    calls = []
    monkeypatch.setattr(
        ablation, "run_one", lambda spec, **kw: calls.append(spec) or {"test_mse": 3.0}
    )
    rows = ablation.run_ablation(CONFIG, out=tmp_path, progress=False)
    assert sorted(s["key"] for s in calls) == sorted(r["key"] for r in failed)
    assert len(rows) == 8 and not any(r["error"] for r in rows)
    assert "FloatingPointError" not in (tmp_path / "summary.md").read_text()


def test_a_fit_whose_scoring_fails_is_saved_and_scored_by_the_next_call(tmp_path, monkeypatch):
    data = {k: v for k, v in CONFIG["data"].items() if k != "grid"}
    cfg = dict(CONFIG, seeds=[0], data=data, runs=CONFIG["runs"][:1])
    score = ablation._score

    def failing(model, data, spec):
        raise RuntimeError("metric broke")

    monkeypatch.setattr(ablation, "_score", failing)
    (row,) = ablation.run_ablation(cfg, out=tmp_path, progress=False)
    saved = tmp_path / "fits" / row["key"]
    assert row["error"] == (
        f"RuntimeError: metric broke (the fitted model is saved in {saved};"
        " the next call scores it)"
    )
    fitted = gfa.load(saved)
    assert isinstance(fitted, gfa.OIVAE) and len(fitted.history_) == 2
    fit_s = float((saved / "fit_s").read_text())

    def no_fit(self, *a, **kw):
        raise AssertionError("fitted again")

    monkeypatch.setattr(ablation, "_score", score)
    monkeypatch.setattr(gfa.OIVAE, "fit", no_fit)
    (row,) = ablation.run_ablation(cfg, out=tmp_path, progress=False)
    # the first fit, scored: its time, and its reconstruction of the held-out rows
    assert row["error"] == "" and float(row["fit_s"]) == fit_s
    X_test = ablation.DATA["bars"](**{k: v for k, v in data.items() if k != "name"}).X_test
    assert float(row["test_mse"]) == pytest.approx(
        gfa.metrics.mse(X_test, fitted.reconstruct(X_test))
    )
    assert not (tmp_path / "fits").exists()  # scored: the saved fit is gone


def test_cli_ablate_exits_non_zero_after_writing_everything(tmp_path, monkeypatch, capsys):
    from pyro_gfa.cli import main

    monkeypatch.setattr(ablation, "run_one", _fake_run)
    path = tmp_path / "c.toml"
    path.write_text(
        'name = "x"\nseeds = [0, 1]\n[data]\nname = "bars"\n'
        '[[runs]]\nlabel = "GL"\nmodel = "oivae"\n[[runs]]\nlabel = "HS"\nmodel = "oivae"\n'
    )
    assert main(["ablate", str(path), "--out", str(tmp_path / "o"), "-q"]) == 1
    assert "2 of 4 runs failed" in capsys.readouterr().err
    assert "FloatingPointError" in (tmp_path / "o" / "summary.md").read_text()
    assert (tmp_path / "o" / "test_mse.png").exists()


@pytest.mark.filterwarnings("ignore:SparseFA stopped at max_iter")  # max_iter 5: quick
def test_test_nll_is_exact_for_sparse_fa_and_left_out_for_lda(tmp_path):
    counts = np.random.default_rng(0).poisson(3.0, size=(60, 6))
    path = tmp_path / "counts.csv"
    # the table of pyro-gfa fit: a header line, here a column of row labels too
    header = "id," + ",".join(f"w{j}" for j in range(6))
    rows = np.column_stack([np.arange(60), counts])
    np.savetxt(path, rows, delimiter=",", fmt="%d", header=header, comments="")
    cfg = {
        "data": {"name": "csv", "path": str(path), "index_col": "id"},
        "fit": {"max_iter": 5},
        "runs": [
            {"model": "sparse_fa", "model_params": {"latent_dim": 2}, "prior": "none"},
            {"model": "lda", "model_params": {"latent_dim": 2}},
        ],
    }
    fa_spec, lda_spec = ablation.expand(cfg)
    data = ablation.DATA["csv"](str(path), seed=0, index_col="id")
    assert data.X.shape[1] == 6 and len(data.X) + len(data.X_test) == 60
    assert sorted(np.vstack([data.X, data.X_test]).sum(1)) == sorted(counts.sum(1))
    fa = gfa.SparseFA(2, prior=gfa.priors.NoPrior()).fit(data.X, max_iter=5, progress=False)
    row = ablation.run_one(fa_spec)
    assert row["test_nll"] == pytest.approx(-fa.log_likelihood(data.X_test).mean())
    assert "test_nll" not in ablation.run_one(lda_spec)  # a plug-in estimate, not comparable
    np.savetxt(path, counts, delimiter=",", fmt="%d")  # no header line: refused, not one row short
    with pytest.raises(ValueError, match="holds numbers, not column names"):
        ablation.DATA["csv"](str(path))
    labelled = tmp_path / "labelled.csv"
    labelled.write_text("id,a\nx,1\ny,2\n")
    with pytest.raises(ValueError, match=r"columns \['id'\] of .* are not numeric"):
        ablation.DATA["csv"](str(labelled))


def test_a_summary_of_failed_runs_only_is_valid_markdown():
    text = ablation.summarise([{"setting": "{}", "label": "a", "seed": "0", "error": "E: boom"}])
    assert text.startswith("No run has finished.\n\nFailed runs (1)")
    assert "| {} | a | 0 | E: boom |" in text


def test_summary_cells_are_mean_and_sample_sd_of_the_seeds():
    rows = [
        {"setting": '{"n": 1}', "label": "a", "seed": str(s), "test_mse": v, "error": ""}
        for s, v in enumerate(["1", "2", "6"])
    ]
    # mean 3 (the median would be 2); sd with ddof 1: sqrt((4 + 1 + 9) / 2) = sqrt(7) = 2.6
    text = ablation.summarise(rows)
    assert text.splitlines()[0] == "| setting | run | test_mse |"
    assert '| {"n": 1} | a | 3 ± 2.6 (3) |' in text


def test_failed_runs_are_listed_by_numeric_seed_in_one_cell_each():
    rows = [
        {"setting": "{}", "label": "a", "seed": "10", "error": "E: late"},
        {"setting": "{}", "label": "a", "seed": "2", "error": "E: a|b\nmore"},
    ]
    # seed 2 before seed 10 (not string order); a "|" or line break must not split the cell
    assert ablation.summarise(rows).splitlines()[-2:] == [
        "| {} | a | 2 | E: a\\|b more |",
        "| {} | a | 10 | E: late |",
    ]


def test_a_runs_own_fit_settings_and_swept_data_values_win():
    run = dict(CONFIG["runs"][0], fit={"epochs": 5})
    data = {"name": "bars", "n": 128, "grid": {"n": [64, 32]}}
    specs = ablation.expand(dict(CONFIG, seeds=[0], data=data, runs=[run]))
    assert [s["fit"] for s in specs] == [{"epochs": 5, "batch_size": 64}] * 2
    assert [s["data_params"] for s in specs] == [{"n": 64}, {"n": 32}]


def test_a_shared_output_folder_reports_only_this_configs_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(ablation, "run_one", lambda spec, **kw: {"test_mse": 1.0})
    monkeypatch.setattr(ablation, "plot", lambda rows, out: None)  # the table is the point
    one = dict(CONFIG, seeds=[0], data={"name": "bars"}, runs=[{"label": "A", "model": "oivae"}])
    ablation.run_ablation(one, out=tmp_path, progress=False)
    other = dict(one, runs=[{"label": "B", "model": "oivae"}])
    rows = ablation.run_ablation(other, out=tmp_path, progress=False)
    # runs.csv keeps both runs (either config resumes), the result and summary only B's
    assert len(ablation._read(tmp_path / "runs.csv")) == 2
    assert [r["label"] for r in rows] == ["B"]
    summary = (tmp_path / "summary.md").read_text()
    assert "| B |" in summary and "| A |" not in summary
