"""ArviZ export: shapes, names, and that ArviZ's own functions accept the result."""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import pyro_gfa as gfa  # noqa: E402

az = pytest.importorskip("arviz")


@pytest.fixture(scope="module")
def fitted():
    X, _ = gfa.data.make_bars(256, seed=2)
    cols = [f"r{r}c{c}" for r in range(8) for c in range(8)]
    df = pd.DataFrame(X, columns=cols, index=[f"img{i}" for i in range(len(X))])
    groups = gfa.io.groups_from(df, {f"row{r}": cols[8 * r : 8 * r + 8] for r in range(8)})
    m = gfa.OIVAE(groups=groups, latent_dim=3).fit(df, epochs=3, progress=False)
    return m, df


def test_groups_shapes_and_names(fitted):
    m, df = fitted
    idata = m.to_arviz(df.iloc[:20], num_samples=7)
    for g in ("posterior", "posterior_predictive", "observed_data", "log_likelihood"):
        assert g in idata.groups()
    post = idata.posterior
    assert post["z"].dims == ("chain", "draw", "obs", "latent")
    assert post["z"].shape == (1, 7, 20, 3)
    assert list(post["z"].coords["latent"].values) == ["z0", "z1", "z2"]  # as transform's
    assert post["W"].dims == ("chain", "draw", "group", "latent")
    assert list(post["W"].coords["group"].values) == [f"row{r}" for r in range(8)]
    assert list(post["obs"].values[:2]) == ["img0", "img1"]
    np.testing.assert_allclose(post["loadings"].values[0, 0], m.loadings())
    pp = idata.posterior_predictive["x"]
    assert pp.dims == ("chain", "draw", "obs", "feature") and pp.shape == (1, 7, 20, 64)
    assert pp.coords["feature"].values[9] == "r1c1"
    np.testing.assert_array_equal(idata.observed_data["x"].values, df.iloc[:20].to_numpy())
    ll = idata.log_likelihood["x"]
    assert ll.dims == ("chain", "draw", "obs") and np.isfinite(ll.values).all()


def test_draws_match_the_encoder(fitted):
    m, df = fitted
    idata = m.to_arviz(df.iloc[:10], num_samples=400, seed=1)
    z_mean = idata.posterior["z"].mean(("chain", "draw")).values
    np.testing.assert_allclose(z_mean, m.transform(df.iloc[:10]), atol=0.2)
    again = m.to_arviz(df.iloc[:10], num_samples=400, seed=1)
    np.testing.assert_array_equal(again.posterior["z"].values, idata.posterior["z"].values)
    # log-likelihood per draw is the model's log p(x_i | z_s): its mean is E_q[log p(x|z)]
    ell = m.expected_log_lik(df.iloc[:10], num_samples=400, seed=1)
    np.testing.assert_allclose(
        idata.log_likelihood["x"].mean(("chain", "draw")).values, ell, rtol=0.1
    )


def test_arviz_functions_accept_it(fitted, tmp_path):
    m, df = fitted
    idata = m.to_arviz(df.iloc[:30], num_samples=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = az.summary(idata, var_names=["z", "loadings"])
        assert len(summary) == 30 * 3 + 8 * 3
        axes = az.plot_posterior(idata, var_names=["z"], coords={"obs": ["img0"]})
        fig = np.ravel(axes)[0].figure
        fig.savefig(tmp_path / "posterior.png")
        plt.close(fig)
        loo = az.loo(idata)
    assert np.isfinite(loo["elpd_loo"])
    assert (tmp_path / "posterior.png").stat().st_size > 0


def test_array_input_gets_default_names():
    X, _ = gfa.data.make_bars(128, seed=0)
    m = gfa.OIVAE(groups=gfa.data.bar_groups(), latent_dim=2).fit(X, epochs=1, progress=False)
    idata = m.to_arviz(X[:5], num_samples=3)
    assert list(idata.posterior["obs"].values) == [0, 1, 2, 3, 4]
    assert idata.posterior_predictive["x"].coords["feature"].values[0] == "x0"
    assert idata.posterior["W"].coords["group"].values[0] == "group0"


def test_missing_groups_stay_missing_in_observed_data():
    X, _ = gfa.data.make_bars(64, seed=0)
    groups = gfa.data.bar_groups()
    X[:5, groups[0]] = np.nan  # FactVAE: group row0 missing in the first rows
    m = gfa.FactVAE(groups=groups, latent_dim=2).fit(X, epochs=1, progress=False)
    idata = m.to_arviz(X[:10], num_samples=2)
    obs = idata.observed_data["x"].values
    np.testing.assert_array_equal(np.isnan(obs), np.isnan(X[:10]))
    np.testing.assert_array_equal(obs, X[:10])  # NaN compare equal here
    assert np.isfinite(idata.log_likelihood["x"].values).all()
    # the missing entries are masked out of log p(x_i | z_s): the same draws (same seed and
    # number) give the model's own E_q[log p(x | z)], which leaves them out
    ell = m.expected_log_lik(X[:10], num_samples=2, seed=0)
    ll = idata.log_likelihood["x"].values[0]
    np.testing.assert_allclose(ll.mean(0), ell, rtol=1e-5)


@pytest.mark.parametrize("likelihood", ["multinomial", "negative_binomial"])
def test_count_models_draw_counts_around_each_rows_total(likelihood):
    X = np.random.default_rng(0).poisson(3.0, size=(100, 6)).astype(np.float32)
    m = gfa.SparseVAE(6, 2, hidden=(8,), likelihood=likelihood).fit(X, epochs=2, progress=False)
    pp = m.to_arviz(X[:5], num_samples=40).posterior_predictive["x"].values
    assert pp.shape == (1, 40, 5, 6) and (pp >= 0).all() and np.array_equal(pp, pp.round())
    totals = pp.sum(-1)[0]
    if likelihood == "multinomial":  # the observed total of every row
        assert (totals == X[:5].sum(-1)).all()
    else:  # around it: the library size sets the mean of the row sum
        np.testing.assert_allclose(totals.mean(0), X[:5].sum(-1), rtol=0.5)


def test_unfitted_raises():
    m = gfa.OIVAE(groups=[2, 2], latent_dim=2)
    with pytest.raises(RuntimeError, match="not fitted"):
        m.to_arviz(np.zeros((3, 4)))


def test_bad_arguments_are_refused(fitted):
    m, df = fitted
    X = df.iloc[:5]
    with pytest.raises(ValueError, match="obs_names has 2 labels but X has 5 rows"):
        m.to_arviz(X, num_samples=2, obs_names=["a", "b"])
    with pytest.raises(ValueError, match="obs_names has 6 labels but X has 5 rows"):
        m.to_arviz(X, num_samples=2, obs_names=list("abcdef"))  # too many is an error too
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="chunk_rows must be an integer >= 1"):
            m.to_arviz(X, num_samples=2, chunk_rows=bad)
    with pytest.raises(ValueError, match="num_samples must be an integer >= 1"):
        m.to_arviz(X, num_samples=2.5)
    idata = m.to_arviz(X, num_samples=2, obs_names=list("vwxyz"))
    assert list(idata.posterior["z"].coords["obs"].values) == list("vwxyz")


def test_linear_models_are_refused():
    X = np.random.default_rng(0).normal(size=(20, 4))
    sfa = gfa.SparseFA(2).fit(X, progress=False)
    with pytest.raises(TypeError, match="to_arviz covers the Pyro models .* not a SparseFA"):
        gfa.export.to_arviz(sfa, X, num_samples=2)


def test_arviz_1x_api(fitted, monkeypatch):
    """ArviZ 1.x (``arviz_base.from_dict`` returning a DataTree) gets the same groups."""
    arviz_base = pytest.importorskip("arviz_base")
    import sys

    monkeypatch.setitem(sys.modules, "arviz", arviz_base)
    m, df = fitted
    tree = m.to_arviz(df.iloc[:6], num_samples=4)
    for g in ("posterior", "posterior_predictive", "observed_data", "log_likelihood"):
        assert g in tree.children
    assert tree["posterior"]["z"].dims == ("chain", "draw", "obs", "latent")
    assert tree["log_likelihood"]["x"].dims == ("chain", "draw", "obs")
    assert list(tree["posterior"]["W"].coords["group"].values)[0] == "row0"
