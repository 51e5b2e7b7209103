"""DataFrame and AnnData inputs: names flow into loadings, tables, ArviZ and saved models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import pyro_gfa as gfa


def _frame(n=200, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 2))
    X = np.c_[z[:, :1] * [1.0, 2.0, -1.0], z[:, 1:] * [1.0, -1.0], rng.standard_normal((n, 1))]
    X = X + 0.1 * rng.standard_normal(X.shape)
    cols = ["a1", "a2", "a3", "b1", "b2", "c"]
    return pd.DataFrame(X.astype(np.float32), columns=cols)


SPEC = {"A": ["a1", "a2", "a3"], "B": ["b1", "b2"], "C": ["c"]}


def test_dataframe_keeps_names(tmp_path):
    df = _frame()
    groups = gfa.io.groups_from(df, SPEC)
    assert groups.names == ("A", "B", "C")
    m = gfa.OIVAE(groups=groups, latent_dim=2).fit(df, epochs=2, progress=False)
    assert m.feature_names_ == tuple(df.columns)
    assert m.feature_names == tuple(df.columns)
    L = m.loadings_frame()
    assert list(L.index) == ["A", "B", "C"] and list(L.columns) == ["z0", "z1"]
    np.testing.assert_array_equal(m.transform(df), m.transform(df.to_numpy()))
    m2 = gfa.load(m.save(tmp_path / "m.zip"))
    assert m2.feature_names_ == tuple(df.columns)
    assert list(m2.loadings_frame().index) == ["A", "B", "C"]


def test_group_mapping_by_position_and_mixed():
    df = _frame()
    g = gfa.io.groups_from(df, {"A": [0, 1, "a3"], "rest": ["b1", "b2", 5]})
    assert [ix.tolist() for ix in g.index] == [[0, 1, 2], [3, 4, 5]]
    g = gfa.io.groups_from(df, [3, 2, 1])
    assert g.sizes.tolist() == [3, 2, 1]
    with pytest.raises(ValueError, match="unknown column"):
        gfa.io.groups_from(df, {"A": ["nope"], "B": ["b1"]})
    with pytest.raises(ValueError, match="column True is not a column name or position"):
        gfa.io.groups_from(df, {"A": [True, "a1"], "rest": ["a3", "b1", "b2", 5]})
    with pytest.raises(ValueError, match="no group specification"):
        gfa.io.groups_from(df)
    with pytest.raises(ValueError, match=r"X must be 2-d \(rows x columns\), got shape \(6,\)"):
        gfa.io.groups_from(np.zeros(6), [3, 3])


def test_integer_column_labels_are_not_read_as_positions():
    df = pd.DataFrame(np.zeros((3, 3)), columns=[10, 11, 0])
    with pytest.raises(ValueError, match="ambiguous"):
        gfa.io.groups_from(df, {"a": [0], "b": [10, 11]})
    g = gfa.io.groups_from(df, [[2], [0, 1]])  # positions, said as such
    assert [ix.tolist() for ix in g.index] == [[2], [0, 1]]
    plain = pd.DataFrame(np.zeros((3, 3)))  # labels 0..2 are the positions
    assert gfa.io.groups_from(plain, {"a": [0], "b": [1, 2]}).sizes.tolist() == [1, 2]


def test_two_level_column_index():
    df = _frame()
    df.columns = pd.MultiIndex.from_tuples(
        [("arm", "x"), ("arm", "y"), ("arm", "z"), ("leg", "x"), ("leg", "y"), ("head", "x")]
    )
    g = gfa.io.groups_from(df)
    assert g.names == ("arm", "leg", "head")
    assert g.sizes.tolist() == [3, 2, 1]
    m = gfa.OIVAE(groups=g, latent_dim=2).fit(df, epochs=1, progress=False)
    assert m.feature_names[0] == "arm/x"
    assert m.unit_names == ("arm", "leg", "head")
    # the full names of a two-level index work in a mapping too
    g2 = gfa.io.groups_from(df, {"up": ["arm/x", ("arm", "y"), "arm/z"], "down": [3, 4, 5]})
    assert g2.sizes.tolist() == [3, 3]
    # the original labels (tuples) alone, a list of them or one of them
    spec = {"up": [("arm", "x"), ("arm", "y"), ("arm", "z")], "legs": [3, 4], "top": ("head", "x")}
    assert gfa.io.groups_from(df, spec).sizes.tolist() == [3, 2, 1]
    floats = pd.DataFrame(np.zeros((2, 3)), columns=[0.5, 1.5, 2.5])  # one label, not a list
    assert gfa.io.groups_from(floats, {"a": 0.5, "b": [1.5, 2.5]}).sizes.tolist() == [1, 2]


def test_tensor_input():
    torch = pytest.importorskip("torch")
    df = _frame()
    m = gfa.OIVAE(groups=[3, 2, 1], latent_dim=2).fit(
        torch.as_tensor(df.to_numpy()), epochs=1, progress=False
    )
    assert m.feature_names_ is None and m.feature_names[0] == "x0"


def test_get_config_rebuilds():
    m = gfa.OIVAE(groups=[3, 2, 1], latent_dim=2, p=2, generator_hidden=[5])
    cfg = m.get_config()
    assert cfg["latent_dim"] == 2 and cfg["p"] == 2 and list(cfg["generator_hidden"]) == [5]
    assert isinstance(cfg["groups"], gfa.data.Groups)
    assert isinstance(cfg["prior"], gfa.priors.GroupLasso)  # the resolved default
    m2 = type(m)(**cfg)
    assert m2.groups == m.groups or m2.groups.names == m.groups.names


@pytest.mark.parametrize(
    "model, text",
    [
        (
            gfa.SparseVAE(n_features=30, latent_dim=3, hidden=(20,)),
            "SparseVAE(n_features=30, latent_dim=3, hidden=(20,))",
        ),
        (gfa.OIVAE(groups=[3, 2, 1], latent_dim=2), "OIVAE(groups=[3, 2, 1], latent_dim=2)"),
        (gfa.SparseFA(4, min_noise=0.01), "SparseFA(latent_dim=4, min_noise=0.01)"),
        (
            gfa.NMF(5, beta_loss="kullback-leibler"),
            "NMF(latent_dim=5, beta_loss='kullback-leibler')",
        ),
    ],
)
def test_repr_shows_the_arguments_that_differ_from_the_defaults(model, text):
    assert repr(model) == text


def test_repr_shortens_long_arguments():
    text = repr(gfa.OIVAE(groups=list(range(1, 60)), latent_dim=2))
    assert text == "OIVAE(groups=[1, 2, 3, 4, 5, 6, 7, 8, ...], latent_dim=2)"
    groups = {name: list(range(16 * i, 16 * i + 16)) for i, name in enumerate("dcba")}
    text = repr(gfa.FactVAE(groups=groups, latent_dim=4))  # cut at whole items, in order
    assert text.startswith("FactVAE(groups={'d': [0, 1, 2, 3, 4, 5, 6, 7, ...], 'c': [16,")
    assert text.endswith("...], ...}, latent_dim=4)")


@pytest.mark.parametrize(
    "model", [gfa.SparseFA(3, min_noise=0.01), gfa.NMF(2, beta_loss="kullback-leibler")]
)
def test_get_config_rebuilds_the_linear_models(model):
    def shown(m):
        return {k: repr(v) for k, v in m.get_config().items()}

    assert shown(type(model)(**model.get_config())) == shown(model)


def test_anndata_input(tmp_path):
    ad = pytest.importorskip("anndata")
    df = _frame()
    adata = ad.AnnData(
        X=df.to_numpy(),
        var=pd.DataFrame({"tissue": ["A", "A", "A", "B", "B", "C"]}, index=list(df.columns)),
    )
    adata.obs_names = [f"cell{i}" for i in range(len(df))]
    adata.layers["doubled"] = 2 * df.to_numpy()
    groups = gfa.io.groups_from(adata, "tissue")
    assert groups.names == ("A", "B", "C") and groups.sizes.tolist() == [3, 2, 1]
    m = gfa.OIVAE(groups=groups, latent_dim=2).fit(adata, epochs=1, progress=False)
    assert m.feature_names_ == tuple(df.columns)
    assert m.transform(adata).shape == (len(df), 2)
    X2, g2 = gfa.io.from_anndata(adata, layer="doubled", groups="tissue")
    np.testing.assert_allclose(X2.to_numpy(), 2 * df.to_numpy(), rtol=1e-6)
    assert list(X2.columns) == list(df.columns) and X2.index[0] == "cell0"
    assert g2.names == groups.names
    with pytest.raises(ValueError, match=r"no layer 'tripled'; it has \['doubled'\]"):
        gfa.io.from_anndata(adata, layer="tripled")
    idata = m.to_arviz(adata[:5], num_samples=2)
    assert list(idata.posterior["obs"].values) == [f"cell{i}" for i in range(5)]
    with pytest.raises(ValueError, match="no column"):
        gfa.io.groups_from(adata, "organ")


@pytest.mark.parametrize("name", ["FactVAE", "SparseVAE"])
def test_names_kept_by_models_that_convert_before_fitting(name, tmp_path):
    """Models whose ``fit`` converts ``X`` first still record the DataFrame's names."""
    cls = getattr(gfa, name, None)
    if cls is None:
        pytest.skip(f"{name} is not in this tree")
    df = _frame(120)
    if name == "FactVAE":
        m = cls(groups=gfa.io.groups_from(df, SPEC), latent_dim=2)
    else:
        m = cls(n_features=6, latent_dim=2, hidden=(8,))
    m.fit(df, epochs=1, progress=False)
    assert m.feature_names_ == tuple(df.columns)
    m2 = gfa.load(m.save(tmp_path / "m.zip"))
    assert m2.feature_names == tuple(df.columns)
    for k, v in vars(m).items():  # fitted arrays (e.g. the Sparse VAE's code_kl_) come back
        if k.endswith("_") and not k.startswith("_") and isinstance(v, np.ndarray):
            np.testing.assert_array_equal(getattr(m2, k), v)


def test_pandas_missing_values_are_nan_and_text_columns_are_named():
    X = np.random.default_rng(0).normal(size=(24, 6)).round()
    df = pd.DataFrame(X, columns=list("abcdef")).astype("Int64")
    df.iloc[0, :2] = pd.NA  # the whole first group of row 0
    m = gfa.FactVAE(groups=[2, 2, 2], latent_dim=2).fit(df, epochs=1, progress=False)
    assert not m.observed_mask(df)[0, 0] and m.observed_mask(df)[1:].all()
    with pytest.raises(ValueError, match="2 NaN or infinite values"):
        gfa.OIVAE(groups=[2, 2, 2], latent_dim=2).fit(df, epochs=1, progress=False)
    with pytest.raises(TypeError, match=r"non-numeric columns \['label'\]"):
        gfa.OIVAE(groups=[2, 2, 3], latent_dim=2).fit(df.assign(label="x"), progress=False)
    numbers_as_objects = df.astype(float).fillna(0.0).astype(object)
    numbers_as_objects["b"] = numbers_as_objects["b"].astype("category")
    m = gfa.OIVAE(groups=[2, 2, 2], latent_dim=2).fit(numbers_as_objects, epochs=1, progress=False)
    assert m.transform(numbers_as_objects).shape == (24, 2)
