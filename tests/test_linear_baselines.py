import numpy as np
import pytest

from pyro_gfa.models.linear import LDA, NMF


def test_nmf_recovers_nonnegative_low_rank():
    rng = np.random.default_rng(0)
    Z = rng.gamma(1.0, size=(200, 3))
    H = np.zeros((3, 9))
    H[0, :3] = H[1, 3:6] = H[2, 6:] = 1.0  # disjoint supports
    X = Z @ H
    m = NMF(3).fit(X)
    assert m.transform(X).shape == (200, 3)
    assert np.abs(m.reconstruct(X) - X).mean() < 1e-2 * X.mean()
    # each true block is carried by one NMF component
    L = m.loadings()
    assert L.shape == (9, 3)
    owner = L.argmax(1)
    assert len(set(owner[:3])) == len(set(owner[3:6])) == len(set(owner[6:])) == 1
    assert len(set(owner)) == 3


def test_lda_topics_and_likelihood():
    rng = np.random.default_rng(0)
    beta = np.zeros((2, 10))
    beta[0, :5] = beta[1, 5:] = 0.2
    theta = rng.dirichlet([0.3, 0.3], size=300)
    X = np.stack([rng.multinomial(50, t @ beta) for t in theta]).astype(float)
    m = LDA(2).fit(X)
    tw = m.topic_word()
    np.testing.assert_allclose(tw.sum(1), 1.0, rtol=1e-5)
    assert {tuple(np.sort(np.argsort(t)[-5:])) for t in tw} == {(0, 1, 2, 3, 4), (5, 6, 7, 8, 9)}
    np.testing.assert_allclose(m.reconstruct(X).sum(1), X.sum(1), rtol=1e-4)
    assert np.all(m.log_likelihood(X) < 0)


def test_errors():
    with pytest.raises(ValueError, match="non-negative"):
        NMF(2).fit(-np.ones((5, 3)))
    with pytest.raises(ValueError, match="integer counts"):
        LDA(2).fit(np.full((5, 3), 0.5))
    big = np.full((5, 3), 3.0)
    big[2, 1] = 1e5 + 0.004  # a fraction a tolerance would pass
    with pytest.raises(ValueError, match=r"integer counts; X\[2, 1\]"):
        LDA(2).fit(big)
    big[2, 1] = 2.0**25  # scikit-learn computes in float64: no float32 limit
    LDA(2).fit(big)
    with pytest.raises(RuntimeError, match="not fitted"):
        NMF(2).transform(np.ones((2, 3)))
    with pytest.raises(ValueError, match="latent_dim"):
        NMF(0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'foo'"):
        LDA(2, foo=1)  # at construction, not at fit
    with pytest.raises(TypeError, match=r"sets n_components \(use latent_dim\)"):
        NMF(2, n_components=5)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        NMF(2).fit(np.ones((5, 3)), seed=1.5)


@pytest.mark.parametrize("cls", [NMF, LDA])
def test_refit_on_data_with_other_columns(cls):
    rng = np.random.default_rng(0)
    m = cls(2).fit(rng.poisson(2.0, (30, 6)).astype(float))
    m.fit(rng.poisson(2.0, (30, 5)).astype(float))
    assert m.n_features == 5 and m.loadings().shape[0] == 5
    with pytest.raises(ValueError, match="5 columns|expects 5"):
        m.transform(np.ones((2, 6)))


def test_warm_start_and_misspelt_options_are_refused_not_ignored():
    from pyro_gfa import SparseFA

    X = np.random.default_rng(0).poisson(2.0, (30, 6)).astype(float)
    for m in (NMF(2), LDA(2), SparseFA(2)):
        with pytest.raises(ValueError, match="warm_start"):
            m.fit(X, warm_start=True)
        with pytest.raises(TypeError, match=r"unexpected keyword arguments \['epcohs'\]"):
            m.fit(X, epcohs=3)
        m.fit(X, epochs=3, batch_size=8, observed=None, progress=False)  # other models' options
        name = type(m).__name__
        with pytest.warns(UserWarning, match=f"{name}.fit ignores checkpoint, validation_data"):
            m.fit(X, checkpoint="never.zip", validation_data=X, n_restarts=1)


def test_a_failed_refit_leaves_the_earlier_fit():
    pd = pytest.importorskip("pandas")
    X = np.random.default_rng(0).poisson(2.0, (30, 8)).astype(float)
    m = NMF(2).fit(X)
    Z = m.transform(X)
    m.kwargs["solver"] = "nonsense"  # scikit-learn refuses it when the refit starts
    with pytest.raises(ValueError, match="solver"):
        m.fit(pd.DataFrame(X[:, :5], columns=list("abcde")))
    assert m.n_features == 8 and m.feature_names_ is None
    np.testing.assert_array_equal(m.transform(X), Z)


def test_nmf_with_more_factors_than_rows_or_columns():
    X = np.random.default_rng(0).poisson(2.0, (30, 4)).astype(float)
    assert NMF(6).fit(X).transform(X).shape == (30, 6)


def test_feature_names_from_a_dataframe():
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(
        np.random.default_rng(0).poisson(2.0, (30, 4)).astype(float), columns=list("abcd")
    )
    m = NMF(2).fit(X)
    assert m.unit_names == ("a", "b", "c", "d")
    assert list(m.loadings_frame().index) == ["a", "b", "c", "d"]
    assert m.fit(X.to_numpy()).feature_names == ("x0", "x1", "x2", "x3")  # a refit forgets them


@pytest.mark.parametrize("cls", [NMF, LDA])
def test_latent_dim_is_an_integer_not_a_bool(cls):
    for bad in (True, 2.0, 0):
        with pytest.raises(ValueError, match="latent_dim"):
            cls(bad)
    assert cls(np.int64(2)).latent_dim == 2
