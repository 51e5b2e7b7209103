"""Every plot function renders to a PNG, on its own figure and on a given axis."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import pyro_gfa as gfa  # noqa: E402
from pyro_gfa import plots  # noqa: E402


@pytest.fixture(scope="module")
def fitted():
    X, _ = gfa.data.make_bars(256, seed=0)
    m = gfa.OIVAE(groups=gfa.data.bar_groups(), latent_dim=4)
    m.fit(X, epochs=3, progress=False, validation_data=X[:32])
    return m, X


CASES = {
    "loadings": lambda m, X, ax: plots.plot_loadings(m, ax=ax),
    "loadings_unordered": lambda m, X, ax: plots.plot_loadings(m, ax, order=False, annotate=True),
    "top_units": lambda m, X, ax: plots.plot_top_units(m, k=2, ax=ax),
    "history": lambda m, X, ax: plots.plot_history(m, ax=ax),
    "recon_images": lambda m, X, ax: plots.plot_reconstructions(m, X, ax=ax, image_shape=(8, 8)),
    "recon_scatter": lambda m, X, ax: plots.plot_reconstructions(m, X, ax=ax),
    "samples_images": lambda m, X, ax: plots.plot_samples(m, X, ax=ax, image_shape=(8, 8)),
    "samples_only": lambda m, X, ax: plots.plot_samples(m, None, n=4, ax=ax, image_shape=(8, 8)),
    "samples_table": lambda m, X, ax: plots.plot_samples(m, X, ax=ax),
    "factor_graph": lambda m, X, ax: plots.plot_factor_graph(m, ax=ax),
    "variance_explained": lambda m, X, ax: plots.plot_variance_explained(m, X, ax=ax),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("own_axis", [False, True])
def test_renders_png(fitted, tmp_path, name, own_axis):
    m, X = fitted
    ax = None
    if own_axis:
        _, ax = plt.subplots()
    fig = CASES[name](m, X, ax)
    assert isinstance(fig, matplotlib.figure.Figure)
    if own_axis:
        assert fig is ax.figure
    out = tmp_path / f"{name}.png"
    fig.savefig(out, dpi=60)
    plt.close(fig)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plots_from_plain_arrays(tmp_path):
    L = np.array([[0.0, 2.0, 0.0], [1.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.0, 0.0]])
    names = ["arm", "leg", "hip", "head"]
    for fig in (
        plots.plot_loadings(L, unit_names=names),
        plots.plot_top_units(L, unit_names=names),
        plots.plot_factor_graph(L, unit_names=names, show_unused=True),
        plots.plot_history([{"epoch": 0, "loss": 3.0}, {"epoch": 1, "loss": 2.0}]),
    ):
        fig.savefig(tmp_path / "a.png")
        plt.close(fig)


def test_loadings_cells_are_labelled_in_four_characters_at_most():
    L = np.array([[0.0, 3.8e-5, 0.066], [1.9, 12.345, 250.0]])
    fig = plots.plot_loadings(L, order=False, annotate=True)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["0", "<.01", "0.07", "1.90", "12.3", "250"]
    plt.close(fig)


def test_many_factors_do_not_make_a_huge_figure():
    L = np.abs(np.random.default_rng(0).standard_normal((5, 1500)))
    fig = plots.plot_loadings(L)
    assert fig.get_size_inches()[0] < 30
    plt.close(fig)


def test_factor_order_makes_blocks():
    L = np.array([[0.0, 2.0], [1.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    rows, cols = plots.factor_order(L)
    assert list(cols) == [0, 1]  # latent 0 has total 4, latent 1 total 3
    assert list(rows) == [3, 1, 0, 2]


def test_factor_order_places_units_under_the_reordered_latents():
    # latent 1 is the stronger (total 5): it comes first, and the units it loads most (1, 2)
    # come first, strongest first, then unit 0 of latent 0
    L = np.array([[1.0, 0.0], [0.0, 3.0], [0.0, 2.0]])
    rows, cols = plots.factor_order(L)
    assert list(cols) == [1, 0]
    assert list(rows) == [1, 2, 0]


def test_top_units_lists_k_units_per_factor_ranked_from_one():
    L = np.array([[3.0, 1.0], [2.0, 4.0], [1.0, 2.0]])  # every loading non-zero
    t = plots.top_units(L, k=2, unit_names=["a", "b", "c"])
    assert list(t["latent"]) == ["z1", "z1", "z0", "z0"]  # totals 7 and 6
    assert list(t["rank"]) == [1, 2, 1, 2]
    assert list(t["unit"]) == ["b", "c", "a", "b"]
    np.testing.assert_allclose(t["share"], [4 / 7, 2 / 7, 3 / 6, 2 / 6])


def test_top_units_of_an_estimator_follow_its_support():
    class Fit:  # an estimator whose support() is stricter than "loading > 0"
        unit_names = ["a", "b", "c"]

        def loadings(self):
            return np.array([[3.0, 1.0], [2.0, 0.5], [1.0, 0.2]])

        def support(self):
            return np.array([[True, False], [False, False], [True, False]])

    t = plots.top_units(Fit(), k=3)
    # z1 loads nothing in the support: left out; z0's list stops at b, outside the support
    # (c, weaker than b, is not listed at rank 3 after a gap)
    assert list(zip(t["latent"], t["rank"], t["unit"])) == [("z0", 1, "a")]
    assert len(plots.top_units(Fit(), k=3, active_only=False)) == 6


def test_top_units_table_names_and_order():
    L = np.array([[0.0, 2.0, 0.0], [1.0, 0.0, 0.0], [0.5, 0.1, 0.0]])
    t = plots.top_units(L, k=2, unit_names=["a", "b", "c"], latent_names=["f0", "f1", "f2"])
    assert list(t["latent"]) == ["f1", "f1", "f0", "f0"]  # strongest factor first, f2 unused
    assert list(t["unit"]) == ["a", "c", "b", "c"]
    np.testing.assert_allclose(t["share"].iloc[0], 2.0 / 2.1)


@pytest.fixture(scope="module")
def factvae_missing():
    X, _ = gfa.data.make_bars(64, seed=0)
    groups = gfa.data.bar_groups()
    X[:16, groups[0]] = np.nan  # group 0 missing in a quarter of the rows
    m = gfa.FactVAE(groups=groups, latent_dim=2).fit(X, epochs=2, progress=False)
    return m, X


def test_variance_explained_from_a_result_and_its_errors(fitted):
    m, X = fitted
    ve = gfa.metrics.variance_explained(m, X)
    fig = plots.plot_variance_explained(ve, order=False)
    (ax,) = [a for a in fig.axes if a.get_label() != "<colorbar>"]
    shown = ax.images[0].get_array()
    np.testing.assert_allclose(shown[:, :-1], 100 * ve.per_factor, rtol=1e-6)
    np.testing.assert_allclose(shown[:, -1], 100 * ve.total, rtol=1e-6)
    assert [t.get_text() for t in ax.get_xticklabels()][-1] == "total"
    assert ax.get_ylabel() == "group"
    plt.close(fig)
    # from the model: rows and factors in the order of its loadings heatmap
    fig = plots.plot_variance_explained(m, X)
    rows, cols = plots.factor_order(m.loadings())
    (ax,) = [a for a in fig.axes if a.get_label() != "<colorbar>"]
    assert [t.get_text() for t in ax.get_yticklabels()] == [m.group_names[i] for i in rows]
    assert [t.get_text() for t in ax.get_xticklabels()][:-1] == [f"z{k}" for k in cols]
    plt.close(fig)
    with pytest.raises(ValueError, match="order must list each of the"):
        plots.plot_variance_explained(ve, order=([0, 0], cols))
    with pytest.raises(TypeError, match="a fitted model and X"):
        plots.plot_variance_explained(m)
    with pytest.raises(TypeError, match="go with a model"):
        plots.plot_variance_explained(ve, X)


def test_reconstructions_with_missing_groups(factvae_missing):
    m, X = factvae_missing
    fig = plots.plot_reconstructions(m, X, n=20)
    ax = fig.axes[0]
    R = m.reconstruct(X)
    r2 = 1.0 - np.nansum((X - R) ** 2) / np.nansum((X - np.nanmean(X, 0)) ** 2)
    assert ax.get_title().endswith(f"$R^2$ over all rows = {r2:.3f}")
    (identity,) = ax.lines
    assert np.isfinite(identity.get_xdata()).all()
    plt.close(fig)


def test_samples_with_missing_groups(factvae_missing):
    m, X = factvae_missing
    fig = plots.plot_samples(m, X, max_features=10)
    data = fig.axes[0].containers[1].lines[0].get_ydata()  # the data's means
    np.testing.assert_allclose(data, np.nanmean(X[:, :10], 0), rtol=1e-6)
    assert fig.axes[0].get_xlabel() == "the first 10 of 64 features"
    plt.close(fig)


@pytest.mark.parametrize("cls", ["NMF", "LDA"])
def test_loadings_plots_of_linear_baselines(cls, tmp_path):
    X = np.random.default_rng(0).poisson(2.0, size=(40, 6)).astype(float)
    m = getattr(gfa, cls)(2).fit(X)
    table = plots.top_units(m, k=2)
    assert set(table["unit"]) <= {f"x{j}" for j in range(6)} and len(table)
    for fig in (plots.plot_loadings(m), plots.plot_factor_graph(m), plots.plot_top_units(m)):
        fig.savefig(tmp_path / "a.png")
        plt.close(fig)
    fig = plots.plot_loadings(m, order=False)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == [f"x{j}" for j in range(6)]
    plt.close(fig)


def test_bad_inputs():
    with pytest.raises(ValueError, match="unit names"):
        plots.plot_loadings(np.ones((3, 2)), unit_names=["a"])
    with pytest.raises(ValueError, match="history"):
        plots.plot_history([])


def test_models_without_a_history_or_samples_say_so():
    X = np.random.default_rng(0).uniform(size=(40, 6))
    nmf = gfa.NMF(2).fit(X)
    with pytest.raises(TypeError, match="NMF records none"):
        plots.plot_history(nmf)
    with pytest.raises(TypeError, match="NMF has no generative model"):
        plots.plot_samples(nmf, X)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m, X: plots.plot_reconstructions(m, X, n=0), r"n must be an integer >= 1, got 0"),
        (lambda m, X: plots.plot_reconstructions(m, X, n=-1), r"n must be an integer >= 1"),
        (lambda m, X: plots.plot_samples(m, X, n=0), r"n must be an integer >= 1, got 0"),
        (lambda m, X: plots.plot_top_units(m, max_factors=0), "max_factors must be an integer"),
        (lambda m, X: plots.plot_top_units(m, max_factors=-1), "max_factors must be an integer"),
        (lambda m, X: plots.top_units(m, k=2.5), r"k must be an integer >= 1, got 2.5"),
        (lambda m, X: plots.plot_factor_graph(m, min_share=-1), r"min_share must be in \[0, 1\]"),
        (
            lambda m, X: plots.plot_reconstructions(m, X, image_shape=(5, 5)),
            r"image_shape \(5, 5\) holds 25 values but the rows have 64 columns",
        ),
        (lambda m, X: plots.plot_samples(m, X, image_shape=(8, 8.0)), "image_shape must be"),
    ],
)
def test_bad_counts_are_refused(fitted, call, match):
    m, X = fitted
    with pytest.raises(ValueError, match=match):
        call(m, X)


@pytest.mark.parametrize("draw", [plots.plot_loadings, plots.plot_factor_graph, plots.top_units])
def test_nan_loadings_are_refused(draw):
    L = np.ones((3, 2))
    L[1, 0] = np.nan
    with pytest.raises(ValueError, match="loadings contain NaN or inf .* model may have diverged"):
        draw(L)


def test_bad_history_and_1d_loadings():
    with pytest.raises(ValueError, match="history records must be dicts with .*'epoch' and 'loss'"):
        plots.plot_history([{"a": 1}])
    with pytest.raises(ValueError, match=r"must be 2-d \(units x latents\), got shape \(3,\)"):
        plots.factor_order(np.ones(3))
    fig = plots.plot_history([{"epoch": 0, "loss": 2.0}, {"epoch": 1, "loss": 1.0}])
    plt.close(fig)


def test_history_axis_is_log_only_when_every_curve_can_be_drawn_on_it():
    falling = [{"epoch": e, "loss": 5e4 / 10**e} for e in range(4)]  # 5e4 down to 50
    fig = plots.plot_history(falling)
    assert fig.axes[0].get_yscale() == "log"
    plt.close(fig)
    with_val = [dict(r, val_elbo=v) for r, v in zip(falling, [-100.0, 10.0, 50.0, 80.0])]
    fig = plots.plot_history(with_val)  # the held-out curve crosses 0: a linear axis
    ax = fig.axes[0]
    assert ax.get_yscale() == "linear"
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), [100.0, -10.0, -50.0, -80.0])
    plt.close(fig)


def test_module_docstring_warns_of_the_double_figure_in_jupyter():
    assert "shows\nthe figure twice" in plots.__doc__ and "``;``" in plots.__doc__


@pytest.mark.parametrize("draw", [plots.plot_loadings, plots.plot_factor_graph])
def test_hundreds_of_features_keep_a_readable_figure(draw):
    """A few rows get one labelled row each; hundreds of genes do not make the figure
    metres tall (they lose their labels instead)."""
    rng = np.random.default_rng(0)
    small, big = draw(rng.random((8, 3))), draw(rng.random((558, 15)))
    assert small.get_figheight() < big.get_figheight() <= 10

    def unit_labels(fig):  # the default names of a matrix's rows: g0, g1, ...
        ax = fig.axes[0]
        texts = [t.get_text() for t in list(ax.get_yticklabels()) + list(ax.texts)]
        return {t for t in texts if t.startswith("g") and t[1:].isdigit()}

    assert len(unit_labels(small)) == 8
    assert not unit_labels(big)
    if draw is plots.plot_loadings:  # no row positions posing as feature indices either
        assert not big.axes[0].get_yticks().size
    plt.close("all")
