"""Per-row evaluation: Monte Carlo ELBO and the importance-sampled log-likelihood.

For each row ``i`` and draws ``z_s ~ q(z | x_i)`` the log weights are
``log w_is = log p(x_i, z_s) - log q(z_s | x_i)``, summed over the sample sites inside the
``"data"`` plate with the training scale removed (global prior factors are excluded: these
are per-row quantities). Then

- ``elbo_i = mean_s log w_is`` (an unbiased estimate of the ELBO), and
- ``log p(x_i) ~= logsumexp_s log w_is - log S`` (importance sampling with the encoder as
  proposal; a lower bound in expectation that tightens as ``S`` grows).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import torch
from pyro import poutine

from .._checks import check_int

if TYPE_CHECKING:  # models.base imports this module
    from ..models.base import GFAModule


def _row_terms(trace, n_rows: int, observed_only: bool = False) -> torch.Tensor:
    total = 0.0
    for site in trace.nodes.values():
        if site["type"] != "sample" or (observed_only and not site["is_observed"]):
            continue
        if not any(f.name == "data" for f in site["cond_indep_stack"]):
            continue
        lp = site["log_prob"]
        scale = site["scale"]
        if isinstance(scale, torch.Tensor) or scale != 1.0:
            lp = lp / scale
        total = total + lp.reshape(n_rows, -1).sum(-1)
    return total


def replicated_traces(
    module: GFAModule, tensors: Sequence[torch.Tensor], num_samples: int, chunk_rows: int = 4096
) -> Iterator[tuple[int, list[torch.Tensor], poutine.Trace, poutine.Trace]]:
    """Yield ``(rows, args, guide_trace, model_trace)`` for chunks of rows, every row repeated
    ``num_samples`` times in ``args`` (sample-major: row ``i`` of draw ``s`` is at
    ``s * rows + i``).

    Parameters
    ----------
    module
        A model following the :class:`~pyro_gfa.models.base.GFAModule` protocol.
    tensors
        Row-aligned tensors passed to its model and guide (``N`` rows).
    num_samples
        Draws per row (a positive int).
    chunk_rows
        Rows x draws traced at once (at least one row per chunk).

    Yields
    ------
    rows : int
        Rows of the chunk (``m``).
    args : list of Tensor
        The chunk's tensors, each repeated ``num_samples`` times along the first axis
        (``num_samples * m`` rows).
    guide_trace, model_trace : pyro.poutine.Trace
        A trace of the guide on ``args``, and of the model replayed on it.
    """
    check_int(num_samples, "num_samples")
    n = tensors[0].shape[0]
    rows_per = max(1, chunk_rows // num_samples)
    for b in range(0, n, rows_per):
        batch = [t[b : b + rows_per] for t in tensors]
        rep = [t.repeat(num_samples, *([1] * (t.dim() - 1))) for t in batch]
        guide_tr = poutine.trace(module.guide).get_trace(*rep)
        model_tr = poutine.trace(poutine.replay(module.model, trace=guide_tr)).get_trace(*rep)
        yield batch[0].shape[0], rep, guide_tr, model_tr


@torch.no_grad()
def log_weights(
    module: GFAModule,
    tensors: Sequence[torch.Tensor],
    num_samples: int = 1,
    chunk_rows: int = 4096,
    observed_only: bool = False,
) -> torch.Tensor:
    """``(num_samples, N)`` log importance weights ``log p(x_i, z_s) - log q(z_s | x_i)``.

    With ``observed_only`` the terms are ``log p(x_i | z_s)`` alone (the reconstruction
    term of the ELBO).

    Parameters
    ----------
    module
        A model following the :class:`~pyro_gfa.models.base.GFAModule` protocol.
    tensors
        Row-aligned tensors passed to its model and guide (``N`` rows).
    num_samples
        Draws ``z_s ~ q(z | x_i)`` per row.
    chunk_rows
        Rows x draws evaluated at once (memory bound).
    observed_only
        Sum the observed sites only (``log p(x_i | z_s)``).

    Returns
    -------
    Tensor
        ``(num_samples, N)``, in nats, on the device of ``tensors``.
    """
    out = []
    for m, _, guide_tr, model_tr in replicated_traces(module, tensors, num_samples, chunk_rows):
        guide_tr.compute_log_prob()
        model_tr.compute_log_prob()
        lw = _row_terms(model_tr, num_samples * m, observed_only)
        if not observed_only:
            lw = lw - _row_terms(guide_tr, num_samples * m)
        out.append(lw.reshape(num_samples, m))
    return torch.cat(out, dim=1)


def elbo_rows(
    module: GFAModule, tensors: Sequence[torch.Tensor], num_samples: int = 10
) -> torch.Tensor:
    """``(N,)`` Monte Carlo ELBO of every row (arguments as for :func:`log_weights`)."""
    return log_weights(module, tensors, num_samples).mean(0)


def log_likelihood_rows(
    module: GFAModule, tensors: Sequence[torch.Tensor], num_samples: int = 100
) -> torch.Tensor:
    """``(N,)`` importance-sampled estimate of ``log p(x_i)`` for every row (arguments as for
    :func:`log_weights`)."""
    lw = log_weights(module, tensors, num_samples)
    return torch.logsumexp(lw, dim=0) - math.log(num_samples)


def expected_log_lik_rows(
    module: GFAModule, tensors: Sequence[torch.Tensor], num_samples: int = 10
) -> torch.Tensor:
    """``(N,)`` Monte Carlo ``E_q[log p(x_i | z)]``, the reconstruction term of the ELBO
    (arguments as for :func:`log_weights`)."""
    return log_weights(module, tensors, num_samples, observed_only=True).mean(0)
