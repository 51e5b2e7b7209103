"""Figures of a fitted model (matplotlib).

Every function takes an optional ``ax`` (a new figure is made when it is ``None``) and
returns the ``matplotlib.figure.Figure`` it drew on. Functions that read a model accept a
fitted estimator or, where it makes sense, the plain arrays (``loadings`` matrix, history
records), so figures can be redrawn from saved results. Names of groups, features and
latents come from the estimator (DataFrame columns, group names) unless given.

- :func:`plot_loadings`: heatmap of ``||W^(g)_{:,k}||`` (groups or features x latents),
  rows and columns ordered so that the structure is visible;
- :func:`top_units` / :func:`plot_top_units`: the top-k groups or features of every factor
  (the oi-VAE paper's Table 1), as a DataFrame and as a figure;
- :func:`plot_history`: training curves (loss, held-out ELBO, active connections);
- :func:`plot_reconstructions`, :func:`plot_samples`: reconstructions and samples against
  the data (as images when ``image_shape`` is given);
- :func:`plot_factor_graph`: the bipartite graph of latents and groups;
- :func:`plot_variance_explained`: every group's ``R^2`` per factor and in all (MOFA+'s
  variance explained).

In Jupyter, a cell whose last line is a bare call such as ``plots.plot_loadings(m)`` shows
the figure twice: once drawn by pyplot's inline backend and once as the returned
``Figure``. Assign the result (``fig = plots.plot_loadings(m)``) or end the line with
``;``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ._checks import check_int

if TYPE_CHECKING:  # imported where used (slow): for the annotations only
    import matplotlib.axes
    import matplotlib.figure
    import pandas as pd

__all__ = [
    "factor_order",
    "plot_factor_graph",
    "plot_history",
    "plot_loadings",
    "plot_reconstructions",
    "plot_samples",
    "plot_top_units",
    "plot_variance_explained",
    "top_units",
]


#: rows up to which every unit gets its own labelled row; beyond it a figure keeps a fixed
#: height and drops the unit labels (hundreds of genes would make it metres tall)
MAX_LABELLED = 60


def _rows_height(n: int, per_row: float) -> float:
    return per_row * n if n <= MAX_LABELLED else 8.0


def _cols_width(n: int, per_col: float) -> float:  # a huge K must not make a huge figure
    return per_col * min(n, MAX_LABELLED)


def _row_labels(ax, names: Sequence[str]) -> None:
    if len(names) <= MAX_LABELLED:
        ax.set_yticks(range(len(names)), names)
    else:  # bare row positions of a reordered matrix would read as feature indices
        ax.set_yticks([])


def _annotate(ax, M: np.ndarray, text, white_above: float) -> None:
    """Write ``text(value)`` in every cell of the heatmap of ``M``."""
    for i in range(M.shape[0]):
        for j in range(M.shape[1]):
            colour = "white" if M[i, j] > white_above else "black"
            ax.text(j, i, text(M[i, j]), ha="center", va="center", fontsize=7, color=colour)


def _loading_label(model: Any) -> str:
    """What a loadings plot shows: a group's column norm, or a feature's ``|w_jk|``."""
    if getattr(model, "unit_kind", "group") == "feature":
        return r"$|w_{jk}|$"
    return r"$\|W^{(g)}_{:,k}\|$"


def _cell_text(v: float) -> str:
    """Four characters below 10^4, to fit a cell: an exact zero is "0", a tiny value "<.01"."""
    if v == 0:
        return "0"
    if v < 0.005:
        return "<.01"
    return f"{v:.2f}" if v < 9.995 else f"{v:.1f}" if v < 99.95 else f"{v:.0f}"


def _axes(ax, figsize=(5.0, 4.0)):
    if ax is not None:
        return ax.figure, ax
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax


def _loadings(
    obj: Any, unit_names: Sequence[str] | None, latent_names: Sequence[str] | None
) -> tuple[np.ndarray, list[str], list[str], np.ndarray]:
    """``(L, unit names, latent names, support)`` of an estimator or a loadings matrix."""
    if hasattr(obj, "loadings") and callable(obj.loadings):
        L = np.abs(np.asarray(obj.loadings(), dtype=float))
        if unit_names is None:
            # an estimator without named units (one of the user's own): one row per feature
            unit_names = getattr(obj, "unit_names", [f"x{j}" for j in range(L.shape[0])])
        names = list(unit_names)
        try:
            support = np.asarray(obj.support(), dtype=bool)
        except (AttributeError, NotImplementedError):
            support = L > 0
    else:
        L = np.abs(np.asarray(obj, dtype=float))
        if L.ndim != 2:
            raise ValueError(f"loadings must be 2-d (units x latents), got shape {L.shape}")
        names = [f"g{g}" for g in range(L.shape[0])] if unit_names is None else list(unit_names)
        support = L > 0
    if not np.isfinite(L).all():
        raise ValueError(
            f"loadings contain NaN or inf ({int((~np.isfinite(L)).sum())} of {L.size} entries):"
            " the model may have diverged (refit, e.g. with a smaller learning rate)"
        )
    if len(names) != L.shape[0]:
        raise ValueError(f"{len(names)} unit names for {L.shape[0]} rows of loadings")
    lat = [f"z{k}" for k in range(L.shape[1])] if latent_names is None else list(latent_names)
    if len(lat) != L.shape[1]:
        raise ValueError(f"{len(lat)} latent names for {L.shape[1]} latents")
    return L, names, lat, support


def factor_order(L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column order that makes a loadings matrix look block-diagonal.

    Latents are sorted by total strength (unused ones last); each unit is then placed
    under the latent that loads it most, units of one latent sorted by decreasing loading.

    Returns
    -------
    rows, cols : ndarray of int
    """
    L = np.abs(np.asarray(L, dtype=float))
    if L.ndim != 2:
        raise ValueError(f"L must be 2-d (units x latents), got shape {L.shape}")
    cols = np.argsort(-L.sum(0), kind="stable")
    Lc = L[:, cols]
    top = Lc.argmax(1)
    strength = Lc.max(1)
    rows = np.lexsort((-strength, top))
    return rows, cols


def plot_loadings(
    model: Any,
    ax: matplotlib.axes.Axes | None = None,
    *,
    order: bool = True,
    unit_names: Sequence[str] | None = None,
    latent_names: Sequence[str] | None = None,
    cmap: str = "Greys",
    annotate: bool | None = None,
    colorbar: bool = True,
    title: str | None = None,
) -> matplotlib.figure.Figure | matplotlib.figure.SubFigure:
    """Heatmap of the loadings ``||W^(g)_{:,k}||`` (rows: groups or features, cols: latents).

    Beyond :data:`MAX_LABELLED` rows the rows are not labelled (list the strongest with
    :func:`top_units`) and a new figure (``ax=None``) keeps a fixed height.

    Parameters
    ----------
    model
        A fitted estimator, or a ``(units, latents)`` loadings matrix.
    ax
        Axis to draw on (default: a new figure).
    order
        Reorder rows and columns with :func:`factor_order`; ``False`` keeps the model's
        order (e.g. to compare with a known truth).
    unit_names, latent_names
        Row and column labels (default: the estimator's group or feature names, ``z0..``).
    cmap
        Colour map; exact zeros are drawn white with the default.
    annotate
        Write the values in the cells (default: when the matrix has at most 20 x 20 cells).
    colorbar
        Draw a colour bar.
    title
        Axis title.

    Returns
    -------
    matplotlib.figure.Figure or matplotlib.figure.SubFigure
        A new figure, or the figure of ``ax`` (a subfigure when ``ax`` lies in one).
    """
    L, names, lat, _ = _loadings(model, unit_names, latent_names)
    rows, cols = factor_order(L) if order else (np.arange(L.shape[0]), np.arange(L.shape[1]))
    L = L[rows][:, cols]
    names = [names[i] for i in rows]
    lat = [lat[j] for j in cols]
    G, K = L.shape
    fig, ax = _axes(ax, figsize=(1.2 + _cols_width(K, 0.45), 1.0 + _rows_height(G, 0.3)))
    im = ax.imshow(L, cmap=cmap, aspect="auto", interpolation="nearest", vmin=0)
    ax.set_xticks(range(K), lat, rotation=90 if K > 12 else 0)
    _row_labels(ax, names)
    ax.set_xlabel("latent")
    ax.set_ylabel(getattr(model, "unit_kind", "unit"))
    if annotate is None:
        annotate = G <= 20 and K <= 20
    if annotate:
        top = L.max() if L.size else 1.0
        _annotate(ax, L, _cell_text, white_above=0.6 * top)
    if colorbar:
        fig.colorbar(im, ax=ax, label=_loading_label(model))
    if title:
        ax.set_title(title)
    return fig


def top_units(
    model: Any,
    k: int = 3,
    *,
    unit_names: Sequence[str] | None = None,
    latent_names: Sequence[str] | None = None,
    active_only: bool = True,
) -> pd.DataFrame:
    """The ``k`` groups or features each factor loads most (the oi-VAE paper's Table 1).

    Parameters
    ----------
    model
        A fitted estimator, or a ``(units, latents)`` loadings matrix.
    k
        Units listed per factor.
    unit_names, latent_names
        Labels (default: the estimator's names).
    active_only
        Leave out units with a zero loading and factors that load nothing.

    Returns
    -------
    pandas.DataFrame
        One row per (factor, rank): ``latent``, ``rank`` (1 = strongest), ``unit``,
        ``loading`` (the strength: a group's column norm, or a feature's ``|w_jk|``, the
        sign left out) and ``share`` (the loading over the factor's total); factors in
        decreasing order of total strength.
    """
    import pandas as pd

    check_int(k, "k")
    L, names, lat, support = _loadings(model, unit_names, latent_names)
    _, cols = factor_order(L)
    out = []
    for j in cols:
        col = L[:, j]
        total = col.sum()
        if active_only and (total == 0 or not support[:, j].any()):
            continue
        for r, i in enumerate(np.argsort(-col, kind="stable")[:k]):
            if active_only and (col[i] == 0 or not support[i, j]):
                break
            share = col[i] / total if total > 0 else 0.0
            out.append(
                {
                    "latent": lat[j],
                    "rank": r + 1,
                    "unit": names[i],
                    "loading": float(col[i]),
                    "share": float(share),
                }
            )
    return pd.DataFrame(out, columns=["latent", "rank", "unit", "loading", "share"])


def plot_top_units(
    model: Any,
    k: int = 3,
    ax: matplotlib.axes.Axes | None = None,
    *,
    unit_names: Sequence[str] | None = None,
    latent_names: Sequence[str] | None = None,
    max_factors: int = 12,
) -> matplotlib.figure.Figure | matplotlib.figure.SubFigure:
    """:func:`top_units` as a figure: for every factor, bars of its ``k`` strongest units.

    Parameters
    ----------
    model
        A fitted estimator, or a loadings matrix.
    k
        Units per factor.
    ax
        Axis to draw on (default: a new figure).
    unit_names, latent_names
        Labels.
    max_factors
        Show at most this many factors (the strongest).

    Returns
    -------
    matplotlib.figure.Figure or matplotlib.figure.SubFigure
        A new figure, or the figure of ``ax`` (a subfigure when ``ax`` lies in one).
    """
    check_int(max_factors, "max_factors")
    table = top_units(model, k, unit_names=unit_names, latent_names=latent_names)
    factors = list(dict.fromkeys(table["latent"]))[:max_factors]
    table = table[table["latent"].isin(factors)]
    n = max(1, len(table))
    fig, ax = _axes(ax, figsize=(5.0, 0.8 + 0.22 * n))
    y, labels, colours = [], [], []
    import matplotlib as mpl

    cycle = mpl.colormaps["tab10"]
    pos = 0.0
    for f_i, f in enumerate(factors):
        sub = table[table["latent"] == f]
        for _, row in sub.iterrows():
            y.append(pos)
            labels.append(f"{f}: {row['unit']}")
            colours.append(cycle(f_i % 10))
            pos += 1
        pos += 0.6
    values = table["loading"].to_numpy()
    ax.barh(y, values, color=colours)
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"loading {_loading_label(model)}")
    if not len(table):
        ax.text(0.5, 0.5, "no active factors", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(f"top {k} per factor")
    return fig


def plot_history(
    model_or_history: Any, ax: matplotlib.axes.Axes | None = None, *, log: bool | None = None
) -> matplotlib.figure.Figure | matplotlib.figure.SubFigure:
    """Training curves: loss per epoch, held-out ELBO when recorded, active connections.

    Parameters
    ----------
    model_or_history
        A fitted estimator (its ``history_``) or a list of history records.
    ax
        Axis to draw on (default: a new figure); the active count goes on a twin axis.
    log
        Logarithmic loss axis (default: when the loss stays positive and spans more than
        two decades).

    Returns
    -------
    matplotlib.figure.Figure or matplotlib.figure.SubFigure
        A new figure, or the figure of ``ax`` (a subfigure when ``ax`` lies in one).
    """
    history = getattr(model_or_history, "history_", model_or_history)
    if not isinstance(history, (list, tuple)):
        raise TypeError(
            "plot_history takes a model that records its training (history_) or a list of"
            f" records; {type(model_or_history).__name__} records none"
        )
    if not history:
        raise ValueError("no training history: fit the model first")
    for i, r in enumerate(history):
        if not isinstance(r, Mapping) or not {"epoch", "loss"} <= r.keys():
            raise ValueError(
                "history records must be dicts with at least 'epoch' and 'loss' keys (as in"
                f" a model's history_); record {i} is {r!r}"
            )
    from matplotlib.ticker import MaxNLocator

    fig, ax = _axes(ax, figsize=(6.0, 3.5))
    epochs = np.array([r["epoch"] for r in history]) + 1
    loss = np.array([r["loss"] for r in history], dtype=float)
    (l1,) = ax.plot(epochs, loss, color="C0", label="training loss (neg. ELBO + prior terms)")
    handles = [l1]
    shown = loss
    val = [(e, r["val_elbo"]) for e, r in zip(epochs, history) if "val_elbo" in r]
    if val:
        ve, vv = np.array(val).T
        (l2,) = ax.plot(ve, -vv, color="C1", marker=".", label="held-out neg. ELBO")
        handles.append(l2)
        shown = np.concatenate([loss, -vv])
    if log is None:  # a log axis would drop every value <= 0, of either curve
        lo, hi = np.nanmin(shown), np.nanmax(shown)
        log = bool(lo > 0 and hi / lo > 100)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("per row (nats)")
    if "n_active" in history[0]:
        ax2 = ax.twinx()
        act = [r.get("n_active", np.nan) for r in history]
        (l3,) = ax2.plot(
            epochs, act, color="C2", ls="--", drawstyle="steps-post", label="active connections"
        )
        ax2.set_ylabel("active connections")
        ax2.yaxis.set_major_locator(MaxNLocator(integer=True))  # a count: no 63.2 ticks
        handles.append(l3)
    ax.legend(handles=handles, loc="best", fontsize=8)
    return fig


def _as_matrix(model: Any, X: Any) -> np.ndarray:
    if hasattr(model, "_check"):
        return model._check(X)
    return np.asarray(X, dtype=float)


def _montage(rows: Sequence[np.ndarray], image_shape: tuple[int, int], pad: int = 1):
    """Tile rows of flattened images: one row of tiles per array in ``rows``."""
    h, w = (check_int(v, "image_shape") for v in image_shape)
    if h * w != rows[0].shape[1]:
        raise ValueError(
            f"image_shape {tuple(image_shape)} holds {h * w} values but the rows have"
            f" {rows[0].shape[1]} columns"
        )
    n = rows[0].shape[0]
    canvas = np.full((len(rows) * (h + pad) - pad, n * (w + pad) - pad), np.nan)
    for r, arr in enumerate(rows):
        for i in range(n):
            y, x = r * (h + pad), i * (w + pad)
            canvas[y : y + h, x : x + w] = arr[i].reshape(h, w)
    return canvas


def plot_reconstructions(
    model: Any,
    X: Any,
    n: int = 8,
    ax: matplotlib.axes.Axes | None = None,
    *,
    image_shape: tuple[int, int] | None = None,
    seed: int = 0,
) -> matplotlib.figure.Figure | matplotlib.figure.SubFigure:
    """Reconstructions (decoded posterior means) against the data.

    Parameters
    ----------
    model
        A fitted estimator.
    X
        Data rows.
    n
        Rows shown (drawn at random with ``seed``).
    ax
        Axis to draw on.
    image_shape
        ``(height, width)``: show data (top) and reconstructions (bottom) as images;
        otherwise a scatter of reconstructed against observed values, every feature of
        every shown row, with the ``R^2`` over all rows of ``X`` (missing entries, NaN,
        left out).
    seed
        Seed of the choice of rows.

    Returns
    -------
    matplotlib.figure.Figure or matplotlib.figure.SubFigure
        A new figure, or the figure of ``ax`` (a subfigure when ``ax`` lies in one).
    """
    check_int(n, "n")
    Xn = _as_matrix(model, X)
    R = model.reconstruct(Xn)
    rng = np.random.default_rng(seed)
    idx = rng.choice(Xn.shape[0], size=min(n, Xn.shape[0]), replace=False)
    if image_shape is not None:
        fig, ax = _axes(ax, figsize=(1.0 + 0.8 * len(idx), 2.2))
        ax.imshow(_montage([Xn[idx], R[idx]], image_shape), cmap="viridis")
        ax.set_xticks([])
        ax.set_yticks([(image_shape[0] - 1) / 2, image_shape[0] * 1.5], ["data", "recon."])
        ax.set_title("data (top) and reconstructions (bottom)")
        return fig
    fig, ax = _axes(ax, figsize=(4.0, 4.0))
    ax.scatter(Xn[idx].ravel(), R[idx].ravel(), s=6, alpha=0.6)
    # NaN marks missing entries (FactVAE's missing groups): left out of the range and R^2
    shown = np.concatenate([Xn[idx].ravel(), R[idx].ravel()])
    lo, hi = float(np.nanmin(shown)), float(np.nanmax(shown))
    ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8)
    seen = ~np.isnan(Xn)
    col_mean = np.where(seen, Xn, 0.0).sum(0) / np.maximum(seen.sum(0), 1)
    ss_res = float(((Xn - R) ** 2)[seen].sum())
    ss_tot = float(((Xn - col_mean) ** 2)[seen].sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else np.nan
    ax.set_xlabel("observed")
    ax.set_ylabel("reconstructed")
    ax.set_title(f"reconstructions ({len(idx)} rows shown), $R^2$ over all rows = {r2:.3f}")
    return fig


def plot_samples(
    model: Any,
    X: Any | None = None,
    n: int = 8,
    ax: matplotlib.axes.Axes | None = None,
    *,
    image_shape: tuple[int, int] | None = None,
    seed: int = 0,
    max_features: int = 30,
) -> matplotlib.figure.Figure | matplotlib.figure.SubFigure:
    """Draws from the generative model, against the data when given.

    Parameters
    ----------
    model
        A fitted estimator.
    X
        Data rows to compare with (optional).
    n
        Samples (and data rows) shown as images; for tabular data the comparison uses
        ``max(n, 500)`` samples.
    ax
        Axis to draw on.
    image_shape
        ``(height, width)``: show samples (and data rows) as images; otherwise each
        feature's mean and standard deviation in the samples and in the data (its
        observed entries).
    seed
        Seed of the samples and of the choice of data rows.
    max_features
        Features shown in the tabular comparison (the first ones).

    Returns
    -------
    matplotlib.figure.Figure or matplotlib.figure.SubFigure
        A new figure, or the figure of ``ax`` (a subfigure when ``ax`` lies in one).
    """
    if not hasattr(model, "sample"):
        raise TypeError(f"{type(model).__name__} has no generative model to draw samples from")
    check_int(n, "n")
    check_int(max_features, "max_features")
    Xn = None if X is None else _as_matrix(model, X)
    if image_shape is not None:
        S = model.sample(n, seed=seed)
        rows = [S]
        if Xn is not None:
            rng = np.random.default_rng(seed)
            idx = rng.choice(Xn.shape[0], size=min(n, Xn.shape[0]), replace=False)
            rows = [Xn[idx][: S.shape[0]], S[: len(idx)]]
        fig, ax = _axes(ax, figsize=(1.0 + 0.8 * n, 1.2 + 1.0 * len(rows)))
        ax.imshow(_montage(rows, image_shape), cmap="viridis")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title("data (top) and samples (bottom)" if len(rows) == 2 else "samples")
        return fig
    S = model.sample(max(n, 500), seed=seed)
    D = min(S.shape[1], max_features)
    names = list(getattr(model, "feature_names", [f"x{j}" for j in range(S.shape[1])]))[:D]
    fig, ax = _axes(ax, figsize=(1.5 + 0.25 * D, 3.5))
    j = np.arange(D)
    ax.errorbar(j - 0.15, S[:, :D].mean(0), S[:, :D].std(0), fmt="o", ms=3, label="samples")
    if Xn is not None:
        # over the observed entries (NaN: missing)
        mean, sd = np.nanmean(Xn[:, :D], 0), np.nanstd(Xn[:, :D], 0)
        ax.errorbar(j + 0.15, mean, sd, fmt="s", ms=3, label="data")
    ax.set_xticks(j, names, rotation=90, fontsize=7)
    ax.set_ylabel("mean ± sd")
    ax.set_xlabel("feature" if D == S.shape[1] else f"the first {D} of {S.shape[1]} features")
    ax.legend(fontsize=8)
    ax.set_title("samples against the data" if Xn is not None else "samples")
    return fig


def plot_factor_graph(
    model: Any,
    ax: matplotlib.axes.Axes | None = None,
    *,
    unit_names: Sequence[str] | None = None,
    latent_names: Sequence[str] | None = None,
    min_share: float = 0.0,
    show_unused: bool = False,
) -> matplotlib.figure.Figure | matplotlib.figure.SubFigure:
    """Bipartite graph of latents (left) and groups or features (right).

    An edge joins latent ``k`` and unit ``g`` when the connection is active (the prior's
    support of a fitted estimator, ``loading > 0`` for a matrix); its width is the
    loading. Beyond :data:`MAX_LABELLED` units the units are not labelled, and beyond
    :data:`MAX_LABELLED` units or latents a new figure (``ax=None``) keeps a fixed height.

    Parameters
    ----------
    model
        A fitted estimator, or a loadings matrix.
    ax
        Axis to draw on.
    unit_names, latent_names
        Labels.
    min_share
        Leave out edges weaker than this fraction of the strongest one.
    show_unused
        Also draw latents that connect to nothing.

    Returns
    -------
    matplotlib.figure.Figure or matplotlib.figure.SubFigure
        A new figure, or the figure of ``ax`` (a subfigure when ``ax`` lies in one).
    """
    if not 0.0 <= min_share <= 1.0:
        raise ValueError(f"min_share must be in [0, 1], got {min_share!r}")
    L, names, lat, support = _loadings(model, unit_names, latent_names)
    rows, cols = factor_order(L)
    top = L.max() if L.size and L.max() > 0 else 1.0
    active = support & (L >= min_share * top)
    keep_cols = [j for j in cols if show_unused or active[:, j].any()]
    G = len(rows)
    K = max(1, len(keep_cols))
    fig, ax = _axes(ax, figsize=(4.5, 0.8 + _rows_height(max(G, K), 0.28)))
    span = max(G, K) - 1 or 1
    y_unit = {g: span * (1 - i / max(G - 1, 1)) for i, g in enumerate(rows)}
    y_lat = {
        j: span * (1 - i / max(K - 1, 1)) if K > 1 else span / 2 for i, j in enumerate(keep_cols)
    }
    import matplotlib as mpl

    cycle = mpl.colormaps["tab10"]
    for c_i, j in enumerate(keep_cols):
        for g in rows:
            if active[g, j]:
                ax.plot(
                    [0, 1],
                    [y_lat[j], y_unit[g]],
                    color=cycle(c_i % 10),
                    lw=0.5 + 4.0 * L[g, j] / top,
                    alpha=0.8,
                    solid_capstyle="round",
                )
    ax.scatter([0] * len(keep_cols), [y_lat[j] for j in keep_cols], s=60, color="black", zorder=3)
    ax.scatter([1] * G, [y_unit[g] for g in rows], s=30, color="grey", zorder=3)
    for j in keep_cols:
        ax.text(-0.05, y_lat[j], lat[j], ha="right", va="center", fontsize=8)
    if G <= MAX_LABELLED:
        for g in rows:
            ax.text(1.05, y_unit[g], names[g], ha="left", va="center", fontsize=8)
    ax.set_xlim(-0.4, 1.4)
    ax.set_ylim(-1, span + 1)
    ax.axis("off")
    ax.set_title(f"factors and {getattr(model, 'unit_kind', 'unit')}s")
    return fig


def plot_variance_explained(
    result: Any,
    X: Any = None,
    ax: matplotlib.axes.Axes | None = None,
    *,
    groups: Any = None,
    order: bool | tuple[Sequence[int], Sequence[int]] = True,
    annotate: bool | None = None,
) -> matplotlib.figure.Figure | matplotlib.figure.SubFigure:
    """Heatmap of every group's ``R^2`` per factor (in %), with its total in the last column.

    Parameters
    ----------
    result
        A :class:`~pyro_gfa.metrics.VarianceExplained`, or a fitted model, whose variance
        explained on ``X`` is computed (:func:`pyro_gfa.metrics.variance_explained`).
    X
        Data, with a model.
    ax
        Axis to draw on (default: a new figure).
    groups
        With a model: the groups to score (as for :func:`~pyro_gfa.metrics.variance_explained`).
    order
        ``True``: reorder groups and factors with :func:`factor_order` so the structure
        shows, by the model's loadings when a model is given with its own groups (so the
        figure lines up with :func:`plot_loadings` of it), else by the shares; ``False``:
        the model's order; or ``(rows, cols)`` as :func:`factor_order` returns them, e.g.
        ``factor_order(model.loadings())`` beside a loadings heatmap.
    annotate
        Write the values in the cells (default: at most 20 x 20 cells).

    Returns
    -------
    matplotlib.figure.Figure or matplotlib.figure.SubFigure
        A new figure, or the figure of ``ax`` (a subfigure when ``ax`` lies in one).

    Notes
    -----
    A share can fall below 0 or rise above 100 % (a nonlinear decoder's factors interact;
    on held-out rows a fit can do worse than the column means): the colours stop at 0 and
    100, the numbers in the cells do not.
    """
    from .metrics import VarianceExplained, variance_explained

    if not isinstance(result, VarianceExplained):
        if X is None:
            raise TypeError(
                "plot_variance_explained takes a VarianceExplained, or a fitted model and X"
            )
        model = result
        result = variance_explained(model, X, groups=groups)
        if order is True and groups is None and getattr(model, "group_names", None):
            order = factor_order(model.loadings())
    elif X is not None or groups is not None:
        raise TypeError("X and groups go with a model, not with a VarianceExplained result")
    P = 100 * result.per_factor
    if order is True:
        rows, cols = factor_order(np.clip(np.nan_to_num(P), 0, None))
    elif order is False:
        rows, cols = np.arange(P.shape[0]), np.arange(P.shape[1])
    else:
        rows, cols = (np.asarray(ix) for ix in order)
        for ix, n, what in ((rows, P.shape[0], "groups"), (cols, P.shape[1], "factors")):
            if sorted(ix.tolist()) != list(range(n)):
                raise ValueError(f"order must list each of the {n} {what} once, got {ix}")
    M = np.column_stack([P[rows][:, cols], 100 * result.total[rows]])
    labels = [f"z{k}" for k in cols] + ["total"]
    G, K1 = M.shape
    fig, ax = _axes(ax, figsize=(1.6 + _cols_width(K1, 0.45), 1.0 + _rows_height(G, 0.3)))
    im = ax.imshow(M, cmap="Blues", aspect="auto", interpolation="nearest", vmin=0, vmax=100)
    ax.axvline(K1 - 1.5, color="white", lw=3)
    ax.set_xticks(range(K1), labels, rotation=90 if K1 > 12 else 0)
    _row_labels(ax, [result.group_names[i] for i in rows])
    ax.set_xlabel("factor")
    ax.set_ylabel("group")
    if annotate is None:
        annotate = G <= 20 and K1 <= 21
    if annotate:
        # no "-0" for a share a hair below zero
        _annotate(ax, M, lambda v: "" if np.isnan(v) else str(int(round(v))), white_above=60)
    fig.colorbar(im, ax=ax, label="variance explained (%)")
    return fig
