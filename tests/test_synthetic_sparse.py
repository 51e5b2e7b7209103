import numpy as np
import pytest

from pyro_gfa.data.synthetic_sparse import SparseVAEData, make_sparse_vae_data


def test_shapes_dtypes_and_support():
    data = make_sparse_vae_data(n=200, rho=0.3, seed=1)
    assert isinstance(data, SparseVAEData)
    X, Z, W = data
    assert X.shape == (200, 7) and X.dtype == np.float32
    assert Z.shape == (200, 2)
    assert W.shape == (7, 2) and W.dtype == bool
    expected = np.array(
        [[1, 0], [1, 0], [1, 0], [0, 1], [0, 1], [0, 1], [1, 1]],
        dtype=bool,
    )
    np.testing.assert_array_equal(W, expected)


def test_noiseless_data_is_f_of_z():
    X, Z, _ = make_sparse_vae_data(n=50, rho=0.5, noise_sd=0.0, seed=3)
    z = Z.astype(np.float64)
    z1, z2 = z[:, 0], z[:, 1]
    f = np.stack([z1, 2 * z1, 3 * z1**2, 4 * z2, 5 * z2, 6 * np.sin(z2), 7 * z1 * z2], axis=1)
    np.testing.assert_allclose(X, f, rtol=1e-5, atol=1e-5)


def test_noise_level_is_a_standard_deviation():
    sd = 0.5
    X, Z, _ = make_sparse_vae_data(n=20000, noise_sd=sd, seed=4)
    resid = X[:, 0].astype(np.float64) - Z[:, 0]  # feature 0 is z1 + eps
    assert abs(resid.std() - sd) < 0.02


def test_reproducible_by_seed():
    a = make_sparse_vae_data(n=100, rho=0.2, seed=7)
    b = make_sparse_vae_data(n=100, rho=0.2, seed=7)
    c = make_sparse_vae_data(n=100, rho=0.2, seed=8)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.Z, b.Z)
    assert not np.allclose(a.X, c.X)


@pytest.mark.parametrize("rho", [0.0, 0.4, -0.6, 0.8])
def test_factor_correlation_matches_rho(rho):
    _, Z, _ = make_sparse_vae_data(n=20000, rho=rho, seed=0)
    assert abs(np.corrcoef(Z.T)[0, 1] - rho) < 0.03
    np.testing.assert_allclose(Z.std(axis=0), 1.0, atol=0.03)
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=0.03)


def test_support_is_not_shared_between_draws():
    a = make_sparse_vae_data(n=10, seed=0)
    a.W_true[0, 1] = True
    b = make_sparse_vae_data(n=10, seed=0)
    assert not b.W_true[0, 1]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n": 0},
        {"n": -5},
        {"n": 10.5},
        {"rho": 1.0},
        {"rho": -1.0},
        {"rho": 1.5},
        {"rho": float("nan")},
        {"noise_sd": -0.1},
        {"noise_sd": float("inf")},
        {"rho": "x"},
        {"noise_sd": None},
        {"seed": -1},
        {"seed": 1.5},
        {"seed": "a"},
    ],
)
def test_bad_arguments_raise(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        make_sparse_vae_data(**kwargs)
