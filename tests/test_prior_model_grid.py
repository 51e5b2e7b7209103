"""Every sparsity prior works with every sparse model through the one prior interface."""

import numpy as np
import pytest

import pyro_gfa as gfa

PRIORS = {
    "none": lambda: gfa.priors.NoPrior(),
    "lasso": lambda: gfa.priors.Lasso(1.0),
    "group_lasso": lambda: gfa.priors.GroupLasso(1.0),
    "ssl": lambda: gfa.priors.SpikeSlabLasso(10.0, 1.0),
    "horseshoe": lambda: gfa.priors.Horseshoe(),
}


def _models():
    X, _, observed = gfa.data.make_quadrant_bars(128, seed=0)
    groups = gfa.data.quadrant_groups()
    return {
        "oivae": (lambda pr: gfa.OIVAE(groups, latent_dim=3, prior=pr, p=2), X, {}),
        "factvae": (
            lambda pr: gfa.FactVAE(groups, latent_dim=3, prior=pr, p=2),
            X,
            {"observed": observed},
        ),
        "sparse_vae": (
            lambda pr: gfa.SparseVAE(n_features=64, latent_dim=3, prior=pr, hidden=(8,)),
            X,
            {},
        ),
    }


@pytest.mark.parametrize("prior", sorted(PRIORS))
@pytest.mark.parametrize("model", ["oivae", "factvae", "sparse_vae"])
def test_fit_with_every_prior(model, prior):
    make, X, kw = _models()[model]
    m = make(PRIORS[prior]()).fit(X, epochs=2, progress=False, **kw)
    L, S = m.loadings(), m.support()
    assert L.shape == S.shape and L.shape[1] == 3
    assert S.dtype == bool
    assert np.isfinite(L).all() and np.isfinite(m.elbo(X, **kw)).all()
    assert np.isfinite([h["loss"] for h in m.history_]).all()
    assert type(m.module.prior) is type(PRIORS[prior]())
