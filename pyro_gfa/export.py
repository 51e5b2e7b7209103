"""Export a fitted model to ArviZ.

:func:`to_arviz` (also ``Estimator.to_arviz``) builds the ArviZ object with ``from_dict``
and draws shaped ``(chain=1, draw=S)``, which works with the ArviZ 0.x that installs on
Python 3.11 (an ``InferenceData``) and with ArviZ 1.x (an ``xarray.DataTree``).

What the draws are
------------------
The models are fitted by variational inference with point (MAP) estimates of the global
parameters, so:

- ``posterior``: every latent sample site of the guide inside the ``"data"`` plate (``z``,
  dims ``(obs, latent)``), drawn from ``q(z | x_i)``; the sparse matrix ``W`` (dims
  ``(group | feature, latent)`` when it has one row per unit, else ``(group | feature,
  W_row, latent)``) and ``loadings`` (``||W[g, :, k]||``), which are point estimates and
  therefore constant over the draws;
- ``posterior_predictive``: for each observed site (``x``, dims ``(obs, feature)``), one
  draw of ``x ~ p(x | z_s)`` per posterior draw ``z_s``;
- ``observed_data``: the data (missing entries, NaN in ``X``, stay NaN);
- ``log_likelihood``: ``log p(x_i | z_s)`` per row and draw (dims ``(obs,)``).

``az.loo`` on this object estimates the predictive accuracy of the rows *given their own
encoder posterior* (the latent of row ``i`` is drawn from ``q(z | x_i)``, which has seen
``x_i``). It is meaningful for comparing reconstructions and for finding rows the model
fits poorly (Pareto k), not as a held-out log-likelihood: for that use
``Estimator.log_likelihood`` on held-out rows.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from pyro import poutine

from ._checks import check_int
from .inference.evaluate import replicated_traces
from .models.base import Estimator, feature_names_of, seeded

if TYPE_CHECKING:  # optional and slow to import: for the annotations only
    import arviz
    import xarray

__all__ = ["to_arviz"]


def _in_data_plate(site: dict) -> bool:
    return any(f.name == "data" for f in site["cond_indep_stack"])


def _row_log_prob(site: dict, n: int) -> torch.Tensor:
    lp = site["fn"].log_prob(site["value"])
    mask = site.get("mask")
    if mask is not None and not isinstance(mask, bool):
        lp = lp * mask
    return lp.reshape(n, -1).sum(-1)


@torch.no_grad()
def _draws(est: Estimator, x_np: np.ndarray, num_samples: int, chunk_rows: int) -> dict[str, Any]:
    m = est._fitted()
    tensors = est._tensors(x_np, est.device)
    S = num_samples
    latents: dict[str, list] = {}
    observed: dict[str, list] = {}
    predictive: dict[str, list] = {}
    loglik: dict[str, list] = {}
    for r, rep, guide_tr, model_tr in replicated_traces(m, tensors, S, chunk_rows):
        pred_tr = poutine.trace(
            poutine.uncondition(poutine.replay(m.model, trace=guide_tr))
        ).get_trace(*rep)
        for name, site in guide_tr.nodes.items():
            if site["type"] == "sample" and not site["is_observed"] and _in_data_plate(site):
                v = site["value"].reshape(S, r, *site["value"].shape[1:])
                latents.setdefault(name, []).append(v.cpu().numpy())
        for name, site in model_tr.nodes.items():
            if site["type"] != "sample" or not site["is_observed"] or not _in_data_plate(site):
                continue
            val = site["value"].reshape(S, r, *site["value"].shape[1:])
            observed.setdefault(name, []).append(val[0].cpu().numpy())
            loglik.setdefault(name, []).append(
                _row_log_prob(site, S * r).reshape(S, r).cpu().numpy()
            )
            pv = pred_tr.nodes[name]["value"]
            predictive.setdefault(name, []).append(pv.reshape(S, r, *pv.shape[1:]).cpu().numpy())
    obs = {k: np.concatenate(v, axis=0) for k, v in observed.items()}
    missing = np.isnan(x_np)
    if missing.any():
        # the model observes a placeholder where the data are missing (FactVAE: 0, masked
        # out of the likelihood); the observed data are what the user gave
        obs = {
            k: np.where(missing, np.nan, v) if v.shape == x_np.shape else v for k, v in obs.items()
        }
    return {
        "latents": {k: np.concatenate(v, axis=1) for k, v in latents.items()},
        "predictive": {k: np.concatenate(v, axis=1) for k, v in predictive.items()},
        "loglik": {k: np.concatenate(v, axis=1) for k, v in loglik.items()},
        "observed": obs,
    }


def to_arviz(
    est: Estimator,
    X: Any,
    num_samples: int = 100,
    seed: int | None = 0,
    chunk_rows: int = 4096,
    obs_names: Any = None,
) -> arviz.InferenceData | xarray.DataTree:
    """ArviZ object of a fitted model on the rows ``X``.

    Parameters
    ----------
    est
        A fitted Pyro estimator (not ``SparseFA``, ``NMF`` or ``LDA``, which have no Pyro
        model to trace).
    X
        Rows to describe (any input ``fit`` accepts).
    num_samples
        Draws ``S`` of the latents per row (a positive int).
    seed
        Seed of the draws (the caller's RNG is left untouched).
    chunk_rows
        Rows x draws evaluated at once (memory bound; a positive int).
    obs_names
        Labels of the rows, one per row of ``X`` (default: the DataFrame index, else
        ``0..N-1``).

    Returns
    -------
    arviz.InferenceData or xarray.DataTree
        Groups ``posterior``, ``posterior_predictive``, ``observed_data`` and
        ``log_likelihood``, draws shaped ``(chain=1, draw=S)``; see the module docstring
        for what they mean.

    Raises
    ------
    TypeError
        If ``est`` is not one of the Pyro models.
    ValueError
        If ``num_samples`` or ``chunk_rows`` is not a positive int, or ``obs_names`` does
        not have one label per row of ``X``.
    """
    import arviz as az

    if not isinstance(est, Estimator):
        raise TypeError(
            "to_arviz covers the Pyro models (OIVAE, FactVAE, SparseVAE, VAE, VSC, ...),"
            f" not a {type(est).__name__}, which has no Pyro model to draw from"
        )
    check_int(num_samples, "num_samples")
    check_int(chunk_rows, "chunk_rows")
    m = est._fitted()
    x_np = est._check(X)
    n = x_np.shape[0]
    if obs_names is not None and len(obs_names) != n:
        raise ValueError(f"obs_names has {len(obs_names)} labels but X has {n} rows")
    with seeded(seed, est.device):
        d = _draws(est, x_np, num_samples, chunk_rows)
    if obs_names is None:
        index = getattr(X, "index", None) if feature_names_of(X) is not None else None
        if index is None and hasattr(X, "obs_names"):
            index = X.obs_names
        obs_names = list(range(n)) if index is None else [str(i) for i in index]
    unit = est.unit_kind
    K = est.latent_dim
    coords: dict[str, list] = {
        "obs": list(obs_names),
        "latent": [f"z{k}" for k in range(K)],
        "feature": list(est.feature_names),
    }
    if unit == "group":
        coords["group"] = list(est.unit_names)
    dims: dict[str, list[str]] = {}

    posterior: dict[str, np.ndarray] = {}
    for name, v in d["latents"].items():
        posterior[name] = v[None]
        if v.ndim == 3 and v.shape[-1] == K:
            dims[name] = ["obs", "latent"]
        else:
            dims[name] = ["obs"] + [f"{name}_dim_{i}" for i in range(v.ndim - 2)]
    W = m.W.detach().cpu().numpy()
    loadings = est.loadings()
    rep = (1, num_samples)
    if W.shape[1] == 1:
        posterior["W"] = np.broadcast_to(W[:, 0, :], rep + W[:, 0, :].shape).copy()
        dims["W"] = [unit, "latent"]
    else:
        posterior["W"] = np.broadcast_to(W, rep + W.shape).copy()
        dims["W"] = [unit, "W_row", "latent"]
    posterior["loadings"] = np.broadcast_to(loadings, rep + loadings.shape).copy()
    dims["loadings"] = [unit, "latent"]
    if unit == "feature":
        coords["feature"] = list(est.unit_names)

    predictive, observed, loglik = {}, {}, {}
    D = est.n_features
    for name, v in d["predictive"].items():
        predictive[name] = v[None]
        observed[name] = d["observed"][name]
        loglik[name] = d["loglik"][name][None]
        if v.ndim == 3 and v.shape[-1] == D:
            dims[name] = ["obs", "feature"]
        else:
            dims[name] = ["obs"] + [f"{name}_dim_{i}" for i in range(v.ndim - 2)]
    ll_dims = {f"{k}": ["obs"] for k in loglik}

    groups = {
        "posterior": posterior,
        "posterior_predictive": predictive,
        "observed_data": observed,
        "log_likelihood": loglik,
    }
    params = inspect.signature(az.from_dict).parameters
    if "posterior" in params:  # ArviZ 0.x
        # log-likelihood variables share names with the observed ones but not their dims
        idata = az.from_dict(
            posterior=posterior,
            posterior_predictive=predictive,
            observed_data=observed,
            coords=coords,
            dims=dims,
        )
        ll = az.from_dict(log_likelihood=loglik, coords={"obs": coords["obs"]}, dims=ll_dims)
        idata.extend(ll)
        return idata
    # ArviZ 1.x: one DataTree; dims per group where they differ
    tree = az.from_dict(
        {k: v for k, v in groups.items() if k != "log_likelihood"}, coords=coords, dims=dims
    )
    ll = az.from_dict({"log_likelihood": loglik}, coords={"obs": coords["obs"]}, dims=ll_dims)
    tree["log_likelihood"] = ll["log_likelihood"]
    return tree
