"""Evaluation metrics for sparse factor models.

All functions accept numpy arrays or torch tensors (moved to the CPU and detached) and return
plain Python floats, numpy arrays or small frozen dataclasses.

- :func:`mse`: mean squared error.
- :func:`match_columns`: one-to-one matching of estimated columns to true factors (Hungarian
  algorithm on absolute correlation or on support overlap).
- :func:`support_f1`: precision, recall and F1 of an estimated support against the true support,
  after matching columns.
- :func:`dci` and :func:`dci_from_importance`: DCI disentanglement, completeness and
  informativeness of Eastwood & Williams (2018).
- :func:`anchor_report` and :func:`factors_recovered`: the Sparse VAE's identifiability
  condition (two anchor features per factor) and which true factors a fit recovers.
- :func:`heldout_nll`: mean held-out negative log-likelihood per row.
- :func:`variance_explained`: ``R^2`` of every feature group from a fitted model, and each
  factor's share of it (MOFA+'s variance explained, for nonlinear decoders too).
- :func:`recall_at_k` and :func:`ndcg_at_k`: per-user ranking metrics of held-out items
  (Liang et al. 2018, "Variational autoencoders for collaborative filtering").
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ._checks import check_float, check_seed

__all__ = [
    "AnchorReport",
    "ColumnMatching",
    "DCIResult",
    "SupportScore",
    "VarianceExplained",
    "anchor_report",
    "dci",
    "dci_from_importance",
    "factors_recovered",
    "heldout_nll",
    "match_columns",
    "mse",
    "ndcg_at_k",
    "recall_at_k",
    "support_f1",
    "variance_explained",
]

#: Below this many points :func:`dci` warns that the score is noisy.
DCI_RECOMMENDED_MIN_POINTS = 500


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _to_numpy(x: Any) -> np.ndarray:
    """Convert a numpy array, torch tensor or array-like to a numpy array (no copy if possible)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _as_numeric(x: Any, name: str) -> np.ndarray:
    """``x`` as a numeric numpy array (dtype kept); NaN, inf or a non-numeric dtype raise,
    naming ``name``: a diverged model's NaN codes would otherwise score silently."""
    arr = _to_numpy(x)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise ValueError(f"{name} contains NaN or inf ({bad} of {arr.size} entries)")
    return arr


def _as_2d(x: Any, name: str) -> np.ndarray:
    arr = _as_numeric(x, name)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 1-D or 2-D, got shape {arr.shape}")
    return arr


def _as_support(x: Any, name: str) -> np.ndarray:
    arr = _as_2d(x, name)
    if arr.dtype == bool:
        return arr
    if arr.size and not np.all((arr == 0) | (arr == 1)):
        raise ValueError(
            f"{name} must be a boolean support (or 0/1) matrix; threshold a weight matrix "
            "explicitly first, e.g. np.abs(W) > 1e-3"
        )
    return arr.astype(bool)


def _normalized_entropy(p: np.ndarray, base: int, axis: int) -> np.ndarray:
    """Entropy of the distributions ``p`` along ``axis`` with logarithm base ``base``.

    ``0 log 0`` is taken as 0. With ``base == 1`` (a single outcome) the entropy is 0.
    """
    if base <= 1:
        return np.zeros(np.delete(p.shape, axis))
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -terms.sum(axis=axis) / math.log(base)


# ---------------------------------------------------------------------------------------------
# reconstruction error
# ---------------------------------------------------------------------------------------------
def mse(x_true: Any, x_pred: Any) -> float:
    """Mean squared error over all entries.

    Parameters
    ----------
    x_true, x_pred : array_like or torch.Tensor
        Arrays of the same shape.

    Returns
    -------
    float
        ``mean((x_true - x_pred) ** 2)``.

    Raises
    ------
    ValueError
        If the shapes differ, the arrays are empty or contain NaN or inf.
    """
    a = _as_numeric(x_true, "x_true").astype(np.float64)
    b = _as_numeric(x_pred, "x_pred").astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: x_true {a.shape} vs x_pred {b.shape}")
    if a.size == 0:
        raise ValueError("mse of empty arrays is undefined")
    return float(np.mean((a - b) ** 2))


# ---------------------------------------------------------------------------------------------
# column matching and support recovery
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ColumnMatching:
    """One-to-one matching of estimated columns to true factors.

    Attributes
    ----------
    est_index : numpy.ndarray
        Shape ``(K_true,)``, int: the estimated column matched to each true factor, ``-1`` when
        there are fewer estimated columns than true factors and the factor is left unmatched.
    sign : numpy.ndarray
        Shape ``(K_true,)``: sign of the correlation of each matched pair (``method="corr"``),
        so ``est[:, est_index[k]] * sign[k]`` is aligned with true factor ``k``; all ones for
        ``method="overlap"`` and 0 for unmatched factors.
    unmatched : numpy.ndarray
        Estimated columns that were not matched to any true factor (sorted).
    similarity : numpy.ndarray
        Shape ``(K_est, K_true)``: the similarity that was maximised.
    method : str
        ``"corr"`` or ``"overlap"``.
    """

    est_index: np.ndarray
    sign: np.ndarray
    unmatched: np.ndarray
    similarity: np.ndarray
    method: str

    def align(self, est: Any) -> np.ndarray:
        """Reorder (and sign-flip) the columns of ``est`` to the true factors' order.

        Parameters
        ----------
        est : array_like or torch.Tensor
            Shape ``(N, K_est)``.

        Returns
        -------
        numpy.ndarray
            Shape ``(N, K_true)`` float array; columns of unmatched true factors are NaN.
        """
        arr = _as_2d(est, "est").astype(np.float64)
        out = np.full((arr.shape[0], self.est_index.size), np.nan)
        for k, j in enumerate(self.est_index):
            if j >= 0:
                out[:, k] = arr[:, j] * self.sign[k]
        return out


def _abs_corr(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Absolute Pearson correlation and its sign between columns; constant columns give 0."""
    a = a.astype(np.float64) - a.mean(axis=0)
    b = b.astype(np.float64) - b.mean(axis=0)
    na = np.sqrt((a**2).sum(axis=0))
    nb = np.sqrt((b**2).sum(axis=0))
    cov = a.T @ b
    denom = np.outer(na, nb)
    corr = np.divide(cov, denom, out=np.zeros_like(cov), where=denom > 0)
    return np.abs(corr), np.where(corr < 0, -1.0, 1.0)


def match_columns(
    est: Any,
    truth: Any,
    method: Literal["auto", "corr", "overlap"] = "auto",
) -> ColumnMatching:
    """Match estimated columns one-to-one to true factors (Hungarian algorithm).

    Parameters
    ----------
    est : array_like or torch.Tensor
        Shape ``(R, K_est)``: estimated latent codes (``R = N`` points) for ``"corr"``, or an
        estimated boolean support (``R = G`` features) for ``"overlap"``.
    truth : array_like or torch.Tensor
        Shape ``(R, K_true)``: true factors or true support.
    method : {"auto", "corr", "overlap"}, default "auto"
        ``"corr"`` maximises the summed absolute Pearson correlation of matched pairs;
        ``"overlap"`` maximises the summed number of shared active entries (which is the
        matching that maximises the F1 of :func:`support_f1`). ``"auto"`` picks ``"overlap"``
        when both inputs are boolean and ``"corr"`` otherwise.

    Returns
    -------
    ColumnMatching
        With ``K_est >= K_true`` every true factor is matched and the remaining estimated
        columns are listed in ``unmatched``; with ``K_est < K_true`` some true factors get
        ``est_index == -1``.
    """
    a = _as_2d(est, "est")
    b = _as_2d(truth, "truth")
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"est and truth need the same number of rows, got {a.shape[0]} and {b.shape[0]}"
        )
    if method == "auto":
        method = "overlap" if (a.dtype == bool and b.dtype == bool) else "corr"
    if method == "corr":
        sim, sgn = _abs_corr(a, b)
    elif method == "overlap":
        sa = _as_support(a, "est")
        sb = _as_support(b, "truth")
        sim = sa.astype(np.float64).T @ sb.astype(np.float64)
        sgn = np.ones_like(sim)
    else:
        raise ValueError(f"method must be 'auto', 'corr' or 'overlap', got {method!r}")

    k_est, k_true = sim.shape
    est_index = np.full(k_true, -1, dtype=int)
    sign = np.zeros(k_true)
    if k_est and k_true:
        from scipy.optimize import linear_sum_assignment  # here: a slow import

        rows, cols = linear_sum_assignment(sim, maximize=True)
        est_index[cols] = rows
        sign[cols] = sgn[rows, cols]
    unmatched = np.setdiff1d(np.arange(k_est), est_index[est_index >= 0])
    return ColumnMatching(
        est_index=est_index, sign=sign, unmatched=unmatched, similarity=sim, method=method
    )


@dataclass(frozen=True)
class SupportScore:
    """Support recovery scores of :func:`support_f1`.

    Attributes
    ----------
    precision, recall, f1 : float
        ``tp / (tp + fp)``, ``tp / (tp + fn)`` and their harmonic mean (0 when undefined).
    tp, fp, fn : int
        True positives, false positives (including every active entry of an unmatched
        estimated column) and false negatives.
    matching : ColumnMatching
        The column matching used.
    """

    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int
    matching: ColumnMatching


def support_f1(
    est_support: Any,
    true_support: Any,
    matching: ColumnMatching | None = None,
) -> SupportScore:
    """Precision, recall and F1 of an estimated support after matching columns.

    Every entry ``(j, k)`` of the true support is one positive. The estimated columns are first
    matched one-to-one to the true factors (by default with :func:`match_columns` on support
    overlap, the matching that maximises F1); then an active estimated entry is a true positive
    when its matched true entry is active and a false positive otherwise. Active entries of
    estimated columns that are not matched to any true factor are all false positives: an extra
    non-empty column is an error, while extra empty columns cost nothing.

    Parameters
    ----------
    est_support : array_like or torch.Tensor
        Boolean (or 0/1) matrix of shape ``(G, K_est)``. Threshold weight matrices explicitly
        before calling (for instance ``np.abs(W) > 1e-3`` or ``p_star > 0.5``).
    true_support : array_like or torch.Tensor
        Boolean (or 0/1) matrix of shape ``(G, K_true)``.
    matching : ColumnMatching, optional
        A matching to use instead, e.g. one computed from latent correlations with
        :func:`match_columns` (its ``est_index`` must have length ``K_true``).

    Returns
    -------
    SupportScore
        precision, recall, f1, counts and the matching.
    """
    est = _as_support(est_support, "est_support")
    true = _as_support(true_support, "true_support")
    if est.shape[0] != true.shape[0]:
        raise ValueError(
            "supports need the same number of rows (features), "
            f"got {est.shape[0]} and {true.shape[0]}"
        )
    if matching is None:
        matching = match_columns(est, true, method="overlap")
    if matching.est_index.shape != (true.shape[1],):
        raise ValueError("matching.est_index must have one entry per true factor")
    if np.any(matching.est_index >= est.shape[1]):
        raise ValueError("matching refers to an estimated column that does not exist")
    used = matching.est_index[matching.est_index >= 0]
    if np.unique(used).size != used.size:
        raise ValueError("matching uses an estimated column for two true factors")

    tp = 0
    for k, j in enumerate(matching.est_index):
        if j >= 0:
            tp += int(np.sum(est[:, j] & true[:, k]))
    n_pred = int(est.sum())
    n_true = int(true.sum())
    fp = n_pred - tp
    fn = n_true - tp
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if (precision + recall) > 0 else 0.0
    return SupportScore(
        precision=float(precision),
        recall=float(recall),
        f1=float(f1),
        tp=tp,
        fp=fp,
        fn=fn,
        matching=matching,
    )


# ---------------------------------------------------------------------------------------------
# DCI
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DCIResult:
    """DCI scores of Eastwood & Williams (2018).

    Attributes
    ----------
    disentanglement : float
        ``sum_i rho_i (1 - H_{K_factor}(P_i.))`` in [0, 1], higher is better.
    completeness : float
        ``mean_j (1 - H_{K_code}(P~_.j))`` in [0, 1], higher is better.
    informativeness : float
        Mean over factors of the held-out normalised MSE (test MSE of the standardised factor,
        i.e. MSE divided by the factor's training variance): 0 is perfect, about 1 is no
        information. Lower is better. NaN from :func:`dci_from_importance`.
    importance : numpy.ndarray
        ``R``, shape ``(K_code, K_factor)``, non-negative.
    disentanglement_per_code : numpy.ndarray
        ``1 - H_{K_factor}(P_i.)`` per code, shape ``(K_code,)`` (0 for codes with no importance).
    code_weights : numpy.ndarray
        ``rho_i``, the share of total importance of each code, shape ``(K_code,)``.
    completeness_per_factor : numpy.ndarray
        ``1 - H_{K_code}(P~_.j)`` per factor, shape ``(K_factor,)`` (0 for a factor that no code
        explains).
    nmse_per_factor : numpy.ndarray
        Held-out normalised MSE per factor, shape ``(K_factor,)`` (NaN when not computed).
    """

    disentanglement: float
    completeness: float
    informativeness: float
    importance: np.ndarray
    disentanglement_per_code: np.ndarray
    code_weights: np.ndarray
    completeness_per_factor: np.ndarray
    nmse_per_factor: np.ndarray


def dci_from_importance(importance: Any) -> DCIResult:
    """Disentanglement and completeness from an importance matrix.

    With ``P_ij = R_ij / sum_k R_ik`` (code ``i``'s importance spread over factors) and
    ``P~_ij = R_ij / sum_l R_lj`` (factor ``j``'s importance spread over codes):

    - disentanglement ``D = sum_i rho_i (1 - H_{K_factor}(P_i.))`` with
      ``rho_i = sum_j R_ij / sum_ij R_ij``: codes with zero total importance get zero weight;
    - completeness ``C = (1 / K_factor) sum_j (1 - H_{K_code}(P~_.j))``; a factor with zero total
      importance contributes 0.

    Entropies use logarithms of base ``K_factor`` (for ``D``) and ``K_code`` (for ``C``), so both
    scores lie in [0, 1]; with a single factor (or code) the entropy is 0 and the score 1.

    Parameters
    ----------
    importance : array_like or torch.Tensor
        Non-negative matrix ``R`` of shape ``(K_code, K_factor)``.

    Returns
    -------
    DCIResult
        With ``informativeness`` and ``nmse_per_factor`` set to NaN.
    """
    r = _as_2d(importance, "importance").astype(np.float64)
    if r.size == 0:
        raise ValueError("importance matrix is empty")
    if np.any(r < 0):
        raise ValueError("importance must be non-negative")
    k_code, k_factor = r.shape

    code_tot = r.sum(axis=1)
    p_code = np.divide(r, code_tot[:, None], out=np.zeros_like(r), where=code_tot[:, None] > 0)
    d_code = np.where(code_tot > 0, 1.0 - _normalized_entropy(p_code, k_factor, axis=1), 0.0)
    total = code_tot.sum()
    weights = code_tot / total if total > 0 else np.zeros(k_code)
    disent = float(np.sum(weights * d_code))

    fac_tot = r.sum(axis=0)
    p_fac = np.divide(r, fac_tot[None, :], out=np.zeros_like(r), where=fac_tot[None, :] > 0)
    c_fac = np.where(fac_tot > 0, 1.0 - _normalized_entropy(p_fac, k_code, axis=0), 0.0)
    complete = float(np.mean(c_fac))

    return DCIResult(
        disentanglement=disent,
        completeness=complete,
        informativeness=float("nan"),
        importance=r,
        disentanglement_per_code=d_code,
        code_weights=weights,
        completeness_per_factor=c_fac,
        nmse_per_factor=np.full(k_factor, np.nan),
    )


def dci(
    z: Any,
    factors: Any,
    *,
    regressor: Literal["gbt", "lasso"] = "gbt",
    test_size: float = 0.25,
    seed: int = 0,
    alpha: float = 0.01,
    regressor_kwargs: dict[str, Any] | None = None,
) -> DCIResult:
    """DCI disentanglement, completeness and informativeness (Eastwood & Williams, 2018).

    The points are split at random (``seed``) into a training and a test part. Codes and
    factors are standardised with the training mean and standard deviation (constant codes
    become zero). For every true factor a regressor is fitted on the training codes; its
    importances form one column of ``R`` (``K_code x K_factor``):

    - ``"gbt"`` (default): ``sklearn.ensemble.GradientBoostingRegressor(random_state=seed)``,
      importances ``feature_importances_`` (each column sums to 1 unless the fit made no
      split);
    - ``"lasso"``: ``sklearn.linear_model.Lasso(alpha=alpha)``, importances ``|coef_|``.

    Disentanglement and completeness are then computed by :func:`dci_from_importance`.
    Informativeness is the mean over factors of the normalised MSE on the held-out test part
    (MSE of the standardised factor, i.e. MSE / training variance; 0 is perfect, about 1
    means the codes carry no information on the factor; lower is better).

    Parameters
    ----------
    z : array_like or torch.Tensor
        Learned codes, shape ``(N, K_code)`` (e.g. posterior means).
    factors : array_like or torch.Tensor
        True factors, shape ``(N, K_factor)`` (or ``(N,)``); none may be constant.
    regressor : {"gbt", "lasso"}, default "gbt"
        Regressor that defines the importances.
    test_size : float, default 0.25
        Fraction of the points held out for informativeness, in (0, 1).
    seed : int, default 0
        Seed of the train/test split and of the gradient-boosting regressor.
    alpha : float, default 0.01
        Lasso penalty (on standardised codes and factors); used only with ``"lasso"``.
    regressor_kwargs : dict, optional
        Extra keyword arguments for the regressor's constructor (e.g. ``n_estimators``).

    Returns
    -------
    DCIResult

    Notes
    -----
    The score is an estimate and is noisy on few points: the authors' code computed it on 16
    points. Use at least ``DCI_RECOMMENDED_MIN_POINTS = 500`` points (a warning is issued below
    that) and report the seed.

    References
    ----------
    C. Eastwood and C. K. I. Williams, "A framework for the quantitative evaluation of
    disentangled representations", ICLR 2018.
    """
    c = _as_2d(z, "z").astype(np.float64)
    f = _as_2d(factors, "factors").astype(np.float64)
    n = c.shape[0]
    if f.shape[0] != n:
        raise ValueError(f"z and factors need the same number of rows, got {n} and {f.shape[0]}")
    if c.shape[1] == 0 or f.shape[1] == 0:
        raise ValueError("z and factors need at least one column each")
    check_float(test_size, "test_size", 0.0, 1.0)
    check_seed(seed)
    n_test = int(round(test_size * n))
    n_train = n - n_test
    if n_test < 2 or n_train < 2:
        raise ValueError(f"too few points ({n}) for a train/test split with test_size={test_size}")
    if n < DCI_RECOMMENDED_MIN_POINTS:
        warnings.warn(
            f"DCI on {n} points is noisy; use at least {DCI_RECOMMENDED_MIN_POINTS} points",
            UserWarning,
            stacklevel=2,
        )

    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    tr, te = perm[:n_train], perm[n_train:]

    c_mu, c_sd = c[tr].mean(axis=0), c[tr].std(axis=0)
    c_sd = np.where(c_sd > 0, c_sd, 1.0)
    f_mu, f_sd = f[tr].mean(axis=0), f[tr].std(axis=0)
    if np.any(f_sd == 0):
        raise ValueError("every true factor must vary on the training split (a factor is constant)")
    cs = (c - c_mu) / c_sd
    fs = (f - f_mu) / f_sd

    kwargs = dict(regressor_kwargs or {})
    k_code, k_factor = c.shape[1], f.shape[1]
    r = np.zeros((k_code, k_factor))
    nmse = np.zeros(k_factor)
    for j in range(k_factor):
        if regressor == "gbt":
            from sklearn.ensemble import GradientBoostingRegressor

            model = GradientBoostingRegressor(**{"random_state": seed, **kwargs})
            model.fit(cs[tr], fs[tr, j])
            r[:, j] = np.abs(model.feature_importances_)
        elif regressor == "lasso":
            from sklearn.linear_model import Lasso

            model = Lasso(**{"alpha": alpha, **kwargs})
            model.fit(cs[tr], fs[tr, j])
            r[:, j] = np.abs(model.coef_)
        else:
            raise ValueError(f"regressor must be 'gbt' or 'lasso', got {regressor!r}")
        pred = model.predict(cs[te])
        nmse[j] = float(np.mean((fs[te, j] - pred) ** 2))

    base = dci_from_importance(r)
    return DCIResult(
        disentanglement=base.disentanglement,
        completeness=base.completeness,
        informativeness=float(np.mean(nmse)),
        importance=r,
        disentanglement_per_code=base.disentanglement_per_code,
        code_weights=base.code_weights,
        completeness_per_factor=base.completeness_per_factor,
        nmse_per_factor=nmse,
    )


# ---------------------------------------------------------------------------------------------
# identifiability (anchor features) and factor recovery -- Sparse VAE, Moran et al. 2023
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AnchorReport:
    """Anchor features of an estimated support (Sparse VAE, Theorems 1 and 2).

    A feature is an *anchor* of factor ``k`` when it depends on factor ``k`` only (its row of
    the support has exactly one active entry, in column ``k``). The factors are identifiable
    up to coordinate-wise transforms when every active factor has at least two anchors
    (assumption A1 of the paper).

    Attributes
    ----------
    active_factors : numpy.ndarray
        Columns with at least one active entry (sorted).
    anchors : dict
        ``factor -> array of its anchor features`` for every active factor.
    satisfied : bool
        Every active factor has at least two anchors (and at least one factor is active).
    """

    active_factors: np.ndarray
    anchors: dict
    satisfied: bool

    def __str__(self) -> str:
        lines = [f"active factors: {self.active_factors.tolist()}"]
        for k, a in self.anchors.items():
            ok = "ok" if len(a) >= 2 else "fewer than 2 anchors"
            lines.append(f"  factor {k}: anchors {a.tolist()} ({ok})")
        lines.append(f"anchor condition (>= 2 anchors per active factor): {self.satisfied}")
        return "\n".join(lines)


def anchor_report(support: Any) -> AnchorReport:
    """Which features are anchors of which factor, and whether each active factor has two.

    Parameters
    ----------
    support : array_like or torch.Tensor
        Boolean (or 0/1) ``(G, K)`` support of the factor-to-feature mask.

    Returns
    -------
    AnchorReport
    """
    s = _as_support(support, "support")
    active = np.flatnonzero(s.any(axis=0))
    single = s.sum(axis=1) == 1
    anchors = {int(k): np.flatnonzero(single & s[:, k]) for k in active}
    satisfied = bool(active.size > 0 and all(len(a) >= 2 for a in anchors.values()))
    return AnchorReport(active_factors=active, anchors=anchors, satisfied=satisfied)


def factors_recovered(
    z: Any, factors: Any, active: Any | None = None, threshold: float = 0.7
) -> np.ndarray:
    """Which true factors are recovered by a distinct estimated code.

    The active codes are matched one-to-one to the true factors (:func:`match_columns`,
    absolute Spearman rank correlation, so a monotone coordinate-wise transform of a factor
    counts as recovering it); true factor ``k`` is recovered when its matched code has
    ``|rank correlation| >= threshold``. A single code that mixes two factors recovers at
    most one of them.

    Parameters
    ----------
    z : array_like or torch.Tensor
        ``(N, K_code)`` estimated codes (e.g. posterior means on held-out data).
    factors : array_like or torch.Tensor
        ``(N, K_true)`` true factors.
    active : array_like of bool or int, optional
        Which codes the model uses (e.g. columns of the support with an active entry): a
        ``(K_code,)`` boolean mask or the codes' column indices; all codes by default.
    threshold : float, default 0.7
        Minimum absolute rank correlation, in [0, 1].

    Returns
    -------
    numpy.ndarray
        ``(K_true,)`` bool.

    Raises
    ------
    ValueError
        If ``z`` or ``factors`` contain NaN or inf or differ in rows, ``active`` is neither
        a mask of length ``K_code`` nor distinct indices in ``0..K_code-1``, or
        ``threshold`` is not in [0, 1].
    """
    c = _as_2d(z, "z").astype(np.float64)
    f = _as_2d(factors, "factors").astype(np.float64)
    if c.shape[0] != f.shape[0]:
        raise ValueError(
            f"z and factors need the same number of rows, got {c.shape[0]} and {f.shape[0]}"
        )
    check_float(threshold, "threshold", 0.0, 1.0, allow_low=True, allow_high=True)
    if active is not None:
        c = c[:, _code_columns(active, c.shape[1])]
    out = np.zeros(f.shape[1], dtype=bool)
    if c.shape[1] == 0:
        return out
    from scipy.stats import rankdata

    rc = np.apply_along_axis(rankdata, 0, c)
    rf = np.apply_along_axis(rankdata, 0, f)
    m = match_columns(rc, rf, method="corr")
    for k, j in enumerate(m.est_index):
        if j >= 0:
            out[k] = m.similarity[j, k] >= threshold
    return out


def _code_columns(active: Any, k: int) -> np.ndarray:
    """``active`` as a boolean mask or column indices of ``k`` codes, checked."""
    a = _to_numpy(active)
    if a.ndim != 1:
        raise ValueError(f"active must be 1-d (a mask or column indices), got shape {a.shape}")
    if a.dtype == bool:
        if a.size != k:
            raise ValueError(f"active is a boolean mask of length {a.size}, but z has {k} codes")
        return a
    if a.size == 0:
        return a.astype(np.int64)
    if a.dtype.kind not in "iu":
        raise ValueError(
            f"active must be a boolean mask of length {k} or integer code indices,"
            f" got dtype {a.dtype}"
        )
    if a.min() < 0 or a.max() >= k or np.unique(a).size != a.size:
        # 0/1 integers meant as a mask land here too (repeated indices)
        raise ValueError(
            f"active must hold distinct code indices in 0..{k - 1} (or be a boolean mask),"
            f" got {a.tolist()}"
        )
    return a


def heldout_nll(model: Any, X: Any, num_samples: int = 100, seed: int = 0) -> float:
    """Mean held-out negative log-likelihood per row, ``-(1/N) sum_i log p(x_i)`` (nats).

    ``log p(x_i)`` is the importance-sampled estimate of the fitted model (``num_samples``
    draws from the encoder as proposal): a real log-likelihood, with the noise scales and
    the prior on ``z`` included (``model.log_likelihood``). In expectation it is an upper
    bound on the true NLL that tightens as ``num_samples`` grows.
    """
    return float(-np.mean(model.log_likelihood(X, num_samples=num_samples, seed=seed)))


@dataclass(frozen=True)
class VarianceExplained:
    """Share of every group's variance a fitted model explains (``R^2``), in all and per factor.

    Attributes
    ----------
    per_factor : numpy.ndarray
        ``(n_groups, K)``: the ``R^2`` every group loses when one factor is held at its mean.
    total : numpy.ndarray
        ``(n_groups,)``: ``R^2`` of every group from all factors.
    group_names : tuple of str
        Names of the rows.
    """

    per_factor: np.ndarray
    total: np.ndarray
    group_names: tuple[str, ...]

    def frame(self):
        """``per_factor`` as a ``pandas.DataFrame`` (columns ``z0, z1, ...``) with ``total``
        as its last column."""
        import pandas as pd

        K = self.per_factor.shape[1]
        df = pd.DataFrame(
            self.per_factor, index=list(self.group_names), columns=[f"z{k}" for k in range(K)]
        )
        df["total"] = self.total
        return df


def variance_explained(model: Any, X: Any, groups: Any = None) -> VarianceExplained:
    """``R^2`` of every feature group from all factors, and the share each factor carries.

    The rows' codes are the posterior means ``Z = model.transform(X)``, decoded to the
    model's mean of ``x``. Over the entries of group ``g``,

    ``R^2_g = 1 - SSE_g(Z) / sum_{i, j in g} (x_ij - xbar_j)^2``

    (``xbar_j`` the column means of ``X``), and factor ``k``'s share is what ``R^2_g`` loses
    when ``z_k`` is held at its mean over the rows: ``R^2_g(Z) - R^2_g(Z with column k at
    its mean)``. A factor the decoder of group ``g`` does not read (an exact zero of the
    oi-VAE's or factor VAE's ``W^(g)``, of the Sparse VAE's mask) has share exactly 0,
    except under the multinomial and negative binomial likelihoods: their expected counts
    are shares of the row's total, so every factor moves every feature through the
    normalisation. For a linear model ``mu + W z`` with uncorrelated factor scores and
    ``mu = xbar`` the shares are MOFA+'s variance explained per factor,
    ``1 - sum_{i, j in g} (x_ij - xbar_j - w_jk (z_ik - zbar_k))^2 / SS_g``, and add up to
    ``R^2_g``; for a nonlinear decoder they need not (factors interact). Missing groups
    (NaN, factor VAE) are left out of every sum; a group whose columns are constant gets
    NaN. Count likelihoods predict counts with each row's own total. On held-out rows a
    total can be negative (worse than the column means), and a nonlinear decoder's share
    can be negative or exceed the total.

    Parameters
    ----------
    model
        A fitted model with a decoder of its codes (every model but NMF and LDA).
    X : array_like
        ``(N, n_features)`` data, as for ``model.transform``.
    groups
        ``None``: the model's groups, or one group of all features for a per-feature model;
        ``"features"``: every feature on its own; else any group specification
        (:meth:`pyro_gfa.data.Groups.from_spec`; a mapping may name columns).

    Returns
    -------
    VarianceExplained
    """
    from .data.groups import Groups
    from .models.base import check_matrix

    if not callable(getattr(model, "decode", None)):
        raise TypeError(
            "variance_explained needs a model that decodes codes to data (a decode method);"
            f" {type(model).__name__} has none"
        )
    Z = np.asarray(model.transform(X), dtype=np.float64)
    Xn = check_matrix(X, model.n_features, allow_nan=True, dtype=np.float64)
    names = list(model.feature_names)
    if groups is None:
        groups = getattr(model, "groups", None)
        if groups is None:
            groups = {"all features": list(range(Xn.shape[1]))}
    elif isinstance(groups, str):
        if groups != "features":
            raise ValueError(
                f"groups must be None, 'features' or a group specification, got {groups!r}"
            )
        if len(set(names)) < len(names):  # repeated column names: say which column
            names = [f"{n} (column {j})" for j, n in enumerate(names)]
        groups = Groups(tuple(np.arange(len(names))[:, None]), tuple(names), len(names))
    groups = Groups.from_spec(groups, Xn.shape[1], columns=names)
    likelihood = getattr(model, "likelihood", None)
    totals = {"total_count": np.nansum(Xn, 1)} if getattr(likelihood, "counts", False) else {}

    observed = ~np.isnan(Xn)

    def sse(pred: np.ndarray) -> np.ndarray:  # per group, missing entries left out
        if not np.isfinite(pred[observed]).all():
            raise ValueError(
                f"{type(model).__name__} predicts non-finite values for observed entries of"
                " X: are its parameters finite (a diverged fit)?"
            )
        r = np.where(observed, Xn - pred, 0.0) ** 2
        return np.array([r[:, ix].sum() for ix in groups.index])

    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: missing groups
        lo, hi = np.nanmin(Xn, 0), np.nanmax(Xn, 0)
        # a constant column's mean must be its value exactly, else rounding makes SS tiny
        xbar = np.where(lo == hi, lo, np.nanmean(Xn, 0))
        ss = sse(np.broadcast_to(xbar, Xn.shape))
        full = sse(model.decode(Z, **totals))
        per = np.empty((len(groups.index), Z.shape[1]))
        for k in range(Z.shape[1]):
            Zk = Z.copy()
            Zk[:, k] = Z[:, k].mean()
            per[:, k] = (sse(model.decode(Zk, **totals)) - full) / ss
        total = 1 - full / ss
    bad = ss == 0
    total[bad], per[bad] = np.nan, np.nan
    return VarianceExplained(per_factor=per, total=total, group_names=groups.names)


# ---------------------------------------------------------------------------------------------
# ranking metrics (Liang et al. 2018)
# ---------------------------------------------------------------------------------------------
def _ranking_inputs(
    scores: Any, heldout: Any, k: int, exclude: Any | None
) -> tuple[np.ndarray, np.ndarray]:
    """Validate ranking inputs; return the expected held-out indicator at ranks ``1..k`` per
    user (``(n_users, k)``, ties averaged) and the number of held-out items per user.

    Tied scores are ranked in every order with equal probability: a run of ``m`` tied items
    holding ``h`` held-out items puts ``h / m`` of a hit at each of its ranks, so a model
    gains nothing from the order of the item columns (a constant score is scored as a random
    ranking, not as the catalogue's order). Excluded items are ranked after every other item,
    whatever their score (``-inf`` included)."""
    s = _to_numpy(scores)
    h = _to_numpy(heldout)
    if s.ndim != 2:
        raise ValueError(f"scores must be 2-D (users x items), got shape {s.shape}")
    if h.shape != s.shape:
        raise ValueError(f"heldout must have the shape of scores {s.shape}, got {h.shape}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if k > s.shape[1]:
        raise ValueError(f"k = {k} is larger than the number of items {s.shape[1]}")
    s = s.astype(np.float64)
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    if not np.isin(h, (0, 1)).all():
        raise ValueError("heldout must be binary (0/1 or bool)")
    h = h.astype(bool)
    e = np.zeros_like(h)
    if exclude is not None:
        e = _to_numpy(exclude)
        if e.shape != s.shape:
            raise ValueError(f"exclude must have the shape of scores {s.shape}, got {e.shape}")
        if not np.isin(e, (0, 1)).all():
            raise ValueError("exclude must be binary (0/1 or bool)")
        e = e.astype(bool)
        if (e & h).any():
            u, j = np.argwhere(e & h)[0]
            raise ValueError(
                f"item {j} of user {u} is both held out and excluded: the fold-in items and "
                "the held-out items must be disjoint"
            )
    order = np.lexsort((-s, e))  # excluded last, then by decreasing score
    ss, se = np.take_along_axis(s, order, 1), np.take_along_axis(e, order, 1)
    sh = np.take_along_axis(h, order, 1).astype(np.float64)
    # runs of equal (excluded, score) along each sorted row, numbered globally
    new_run = np.ones_like(se)
    new_run[:, 1:] = (ss[:, 1:] != ss[:, :-1]) | (se[:, 1:] != se[:, :-1])
    run = np.cumsum(new_run.ravel()) - 1
    size = np.bincount(run)
    hits = np.bincount(run, weights=sh.ravel())
    expected = (hits / size)[run].reshape(s.shape)[:, :k]
    return expected, h.sum(axis=1)


def recall_at_k(scores: Any, heldout: Any, k: int, exclude: Any | None = None) -> np.ndarray:
    """Per-user Recall@k of held-out items (Liang et al. 2018).

    ``Recall@k(u) = sum_{r=1}^{k} 1[item ranked r is held out for u] / min(k, |I_u|)``, where
    ``I_u`` is the set of ``u``'s held-out items. The denominator ``min(k, |I_u|)`` (not
    ``|I_u|``) makes 1 reachable for every user: Recall@k is 1 when the top ``k`` are all
    held-out items or contain all of them.

    Parameters
    ----------
    scores : array_like or torch.Tensor
        ``(n_users, n_items)`` predicted scores (higher ranks first; any monotone transform,
        e.g. logits or probabilities, gives the same value). Tied items are ranked in every
        order with equal probability: the value is the expectation over those orders.
    heldout : array_like or torch.Tensor
        ``(n_users, n_items)`` binary: the held-out items of each user.
    k : int
        Cut-off of the ranking, ``1 <= k <= n_items``.
    exclude : array_like or torch.Tensor, optional
        ``(n_users, n_items)`` binary: items removed from the ranking (the fold-in items that
        the model saw), disjoint from ``heldout``.

    Returns
    -------
    numpy.ndarray
        ``(n_users,)`` float64 Recall@k per user; ``NaN`` for a user with no held-out item
        (average with :func:`numpy.nanmean`).

    Raises
    ------
    ValueError
        On shapes that differ or are not 2-D, ``k`` outside ``1..n_items``, NaN scores,
        non-binary ``heldout`` or ``exclude``, or an item both held out and excluded.

    Examples
    --------
    >>> recall_at_k([[0.9, 0.1, 0.5, 0.3]], [[0, 1, 1, 0]], k=2)
    array([0.5])
    """
    hit, n = _ranking_inputs(scores, heldout, k, exclude)
    hits = hit.sum(axis=1)
    denom = np.minimum(k, n).astype(np.float64)
    out = np.full(n.shape[0], np.nan)
    ok = n > 0
    out[ok] = hits[ok] / denom[ok]
    return out


def ndcg_at_k(scores: Any, heldout: Any, k: int, exclude: Any | None = None) -> np.ndarray:
    """Per-user normalised discounted cumulative gain NDCG@k (Liang et al. 2018).

    ``DCG@k(u) = sum_{r=1}^{k} 1[item ranked r is held out for u] / log2(r + 1)`` and
    ``NDCG@k(u) = DCG@k(u) / IDCG@k(u)`` with the ideal
    ``IDCG@k(u) = sum_{r=1}^{min(k, |I_u|)} 1 / log2(r + 1)`` (all held-out items ranked
    first).

    Parameters
    ----------
    scores, heldout, k, exclude
        As for :func:`recall_at_k`.

    Returns
    -------
    numpy.ndarray
        ``(n_users,)`` float64 NDCG@k per user in ``[0, 1]``; ``NaN`` for a user with no
        held-out item.

    Raises
    ------
    ValueError
        As for :func:`recall_at_k`.

    Examples
    --------
    >>> float(ndcg_at_k([[0.9, 0.1, 0.5, 0.3]], [[0, 1, 1, 0]], k=2)[0])  # doctest: +ELLIPSIS
    0.386...
    """
    hit, n = _ranking_inputs(scores, heldout, k, exclude)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hit * discount).sum(axis=1)
    ideal = np.concatenate([[0.0], np.cumsum(discount)])[np.minimum(k, n)]
    out = np.full(n.shape[0], np.nan)
    ok = n > 0
    out[ok] = dcg[ok] / ideal[ok]
    return out
