"""Sparse VAE vs VAE on the synthetic study of Moran et al. 2023 (section 2.2, Fig. 3, app. C.4).

For every factor correlation ``rho`` and seed: ``N = 1000`` training rows and ``1000``
held-out rows (``make_sparse_vae_data``, seeds ``s`` and ``10000 + s``), ``G = 7``,
``K_true = 2``, initial ``K = 5``, hidden 3 x 50, batch 100, Adam 1e-2, 100 epochs. All
models are the same :class:`pyro_gfa.SparseVAE` network with its defaults; the VAE is
``mask=False`` (``W`` frozen at ones, no prior); the ``*_identity`` variants fix the prior
covariance of ``z`` at the identity (the paper's setting) instead of learning a
correlation matrix; ``vsc`` is :class:`pyro_gfa.VSC` on the same network (spike-and-slab
codes, ``alpha = 0.01`` as in the paper's Table 6); ``sparse_vae_k10`` starts from
``K = 10`` codes instead of 5; ``sparse_vae_r3`` keeps the best of 3 fits by training ELBO
(``fit(n_restarts=3)``); ``sparse_fa`` is :class:`pyro_gfa.SparseFA`, the Sparse VAE's linear
limit (``x = mu + W z + e``, the same prior family on ``W``, exact EM; its ``nll`` is exact).
Metrics on the held-out rows:

- ``mse``: mean squared error of the reconstruction from the posterior mean of ``z``;
- ``nll``: importance-sampled ``-log p(x)`` per row (100 draws; noise scales and the prior
  on ``z`` included);
- ``dci``: DCI disentanglement (gradient-boosted trees) of the posterior means of all
  codes against the true factors, on the 1000 held-out points;
- ``f1``: F-score of the estimated support of ``W`` against the true 7 x 2 support
  (Sparse VAE only; columns matched by overlap, extra non-empty columns count as errors);
- ``recovered``: number of true factors matched to a distinct active code with
  ``|rank correlation| >= 0.7`` (2 = both recovered).

Writes to ``--out`` (default ``results/sparse_vae_synthetic``):

- ``runs.csv``: one row per (model, rho, seed). A run adds its rows to those already in the
  file; a row it refits replaces the old one, every other row is kept. So models and seeds
  can be run by separate commands and summarised together.
- ``settings.json``: ``--epochs`` and ``--n``, which the rows are not keyed by; a run with
  other values is refused (use another ``--out``, or delete ``runs.csv`` and ``settings.json``
  to start afresh).
- ``summary.md`` and ``figure.png``: every row of ``runs.csv``, rebuilt after each run.

Usage::

    python benchmarks/sparse_vae_synthetic.py                     # the full study
    python benchmarks/sparse_vae_synthetic.py --models vae_identity   # + the VAE with Sigma = I
    python benchmarks/sparse_vae_synthetic.py --summarize-only    # table + figure from CSV
    python benchmarks/sparse_vae_synthetic.py --seeds 2 --epochs 20 --rhos 0 0.8 --out /tmp/svs
"""

from __future__ import annotations

import argparse
import csv
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _args import int_at_least  # benchmarks/, the script's folder
from _settings import check_settings, write_csv  # benchmarks/, the script's folder

import pyro_gfa as gfa
from pyro_gfa.data.synthetic_sparse import make_sparse_vae_data
from pyro_gfa.metrics import dci, factors_recovered, heldout_nll, mse, support_f1

#: the compared models: class and keyword arguments (everything else is the default)
MODELS = {
    "sparse_vae": (gfa.SparseVAE, {}),
    "vae": (gfa.SparseVAE, {"mask": False}),
    "sparse_vae_identity": (gfa.SparseVAE, {"prior_cov": None}),
    "vae_identity": (gfa.SparseVAE, {"mask": False, "prior_cov": None}),
    "vsc": (gfa.VSC, {"slab_prob": 0.01}),
    "sparse_vae_k10": (gfa.SparseVAE, {"latent_dim": 10}),
    "sparse_vae_r3": (gfa.SparseVAE, {}, {"n_restarts": 3}),
    "sparse_fa": (gfa.SparseFA, {}),
}
NAMES = {
    "sparse_vae": "Sparse VAE",
    "vae": "VAE",
    "sparse_vae_identity": "Sparse VAE, Sigma = I",
    "vae_identity": "VAE, Sigma = I",
    "vsc": "VSC (alpha = 0.01)",
    "sparse_vae_k10": "Sparse VAE, initial K = 10",
    "sparse_vae_r3": "Sparse VAE, best of 3 restarts",
    "sparse_fa": "SparseFA (linear decoder, EM)",
}

FIELDS = [
    "model",
    "rho",
    "seed",
    "mse",
    "nll",
    "dci",
    "f1",
    "precision",
    "recall",
    "recovered",
    "active_columns",
    "anchors_ok",
    "fit_s",
]


def run_one(model: str, rho: float, seed: int, epochs: int, n: int) -> dict:
    train = make_sparse_vae_data(n, rho, seed=seed)
    test = make_sparse_vae_data(1000, rho, seed=10_000 + seed)
    if model not in MODELS:
        raise ValueError(f"model must be one of {list(MODELS)}, got {model!r}")
    cls, kwargs, *fit_kwargs = MODELS[model]
    shape = {} if cls is gfa.SparseFA else {"n_features": 7}
    m = cls(**shape, **{"latent_dim": 5, **kwargs})
    t0 = time.perf_counter()
    m.fit(
        train.X,
        epochs=epochs,
        batch_size=100,
        seed=seed,
        progress=False,
        device="cpu",
        **(fit_kwargs[0] if fit_kwargs else {}),
    )
    fit_s = time.perf_counter() - t0
    z = m.transform(test.X)
    support = m.support()
    sparse = cls in (gfa.SparseVAE, gfa.SparseFA) and kwargs.get("mask", True)
    active = support.any(axis=0) if sparse else m.code_kl_ > m.kl_tol
    row = {
        "model": model,
        "rho": rho,
        "seed": seed,
        "mse": mse(test.X, m.reconstruct(test.X)),
        "nll": heldout_nll(m, test.X, num_samples=100, seed=0),
        "dci": dci(z, test.Z, seed=0).disentanglement,
        "recovered": int(factors_recovered(z, test.Z, active).sum()),
        "active_columns": int(active.sum()),
        "fit_s": fit_s,
    }
    if sparse:
        s = support_f1(support, train.W_true)
        row.update(
            f1=s.f1,
            precision=s.precision,
            recall=s.recall,
            anchors_ok=int(m.identifiability().satisfied) if cls is gfa.SparseVAE else np.nan,
        )
    else:
        row.update(f1=np.nan, precision=np.nan, recall=np.nan, anchors_ok=np.nan)
    return row


def row_key(row: dict) -> tuple[str, float, int]:
    """What identifies a row of ``runs.csv``: a rerun of the same key replaces it."""
    return row["model"], float(row["rho"]), int(row["seed"])


def read_runs(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def save_run(path: Path, row: dict) -> None:
    """Add ``row`` to ``path`` in place of the row with its key, keeping every other row. The
    file is read again first (another process may have added rows since) and replaced in one
    step, so an interrupted run leaves the earlier rows whole."""
    rows = {row_key(r): r for r in read_runs(path)}
    rows[row_key(row)] = row
    write_csv(path, rows.values(), FIELDS)


def summarize(out: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = out / "runs.csv"
    if not path.exists():
        raise SystemExit(f"{path} does not exist: run the study (without --summarize-only) first")
    rows = read_runs(path)
    present = {r["model"] for r in rows}
    models = [m for m in MODELS if m in present]
    if not models:
        what = " of the models " + ", ".join(MODELS) if rows else ""
        raise SystemExit(f"{path} has no rows{what}: nothing to summarize")
    rows = [r for r in rows if r["model"] in MODELS]
    rhos = sorted({float(r["rho"]) for r in rows})

    def col(model, rho, key):
        return np.array(
            [float(r[key]) for r in rows if r["model"] == model and float(r["rho"]) == rho]
        )

    lines = [
        "| rho | model | runs | held-out MSE | held-out NLL | DCI | support F1 |"
        " both factors recovered | 2 active factors | anchor condition met |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for rho in rhos:
        for model in models:
            n = col(model, rho, "mse").size
            if n == 0:
                continue

            def ms(key, fmt=".3f", model=model, rho=rho):
                v = col(model, rho, key)
                if np.all(np.isnan(v)):
                    return "-"
                return f"{np.nanmean(v):{fmt}} ({np.nanstd(v):{fmt}})"

            rec = int((col(model, rho, "recovered") == 2).sum())
            act = col(model, rho, "active_columns")
            act_s = f"{int((act == 2).sum())}/{n} (min {int(act.min())}, max {int(act.max())})"
            anch = col(model, rho, "anchors_ok")
            anch_s = "-" if np.all(np.isnan(anch)) else f"{int(np.nansum(anch))}/{n}"
            name = NAMES[model]
            lines.append(
                f"| {rho:g} | {name} | {n} | {ms('mse')} | {ms('nll', '.2f')} | {ms('dci')} |"
                f" {ms('f1')} | {rec}/{n} | {act_s} | {anch_s} |"
            )
    table = "\n".join(lines)
    (out / "summary.md").write_text(
        "Mean (population standard deviation, ddof 0) over seeds; held-out data of 1000 rows.\n\n"
        + table
        + "\n"
    )

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    width = 0.8 / len(models)
    for ax, key, title in zip(
        axes,
        ["mse", "dci", "f1"],
        ["held-out MSE (lower is better)", "DCI disentanglement", "support F-score"],
    ):
        for i, model in enumerate(models):
            data = [col(model, rho, key) for rho in rhos]
            if all(np.all(np.isnan(d)) for d in data):
                continue
            pos = np.arange(len(rhos)) + (i - (len(models) - 1) / 2) * width
            bp = ax.boxplot(data, positions=pos, widths=0.9 * width, patch_artist=True)
            for b in bp["boxes"]:
                b.set_facecolor(f"C{i}")
        ax.set_xticks(np.arange(len(rhos)), [f"{r:g}" for r in rhos])
        ax.set_xlabel("factor correlation rho")
        ax.set_title(title)
    axes[0].set_yscale("log")
    handles = [plt.Rectangle((0, 0), 1, 1, color=f"C{i}") for i in range(len(models))]
    axes[1].legend(handles, [NAMES[m] for m in models], loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "figure.png", dpi=120)
    plt.close(fig)
    return table


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seeds", type=int_at_least(1), default=10, help="seeds per rho (default 10)")
    p.add_argument(
        "--epochs", type=int_at_least(1), default=100, help="epochs per fit (default 100)"
    )
    p.add_argument("--rhos", type=float, nargs="+", default=[0.0, 0.2, 0.4, 0.6, 0.8])
    p.add_argument("--n", type=int_at_least(2), default=1000, help="training rows (default 1000)")
    p.add_argument(
        "--models", nargs="+", default=["sparse_vae", "vae"], choices=list(MODELS), help="models"
    )
    p.add_argument("--out", type=Path, default=Path("results/sparse_vae_synthetic"))
    p.add_argument("--summarize-only", action="store_true")
    args = p.parse_args(argv)
    # all checked before runs.csv or settings.json is touched
    if bad := [r for r in args.rhos if not (math.isfinite(r) and abs(r) < 1)]:
        p.error(f"argument --rhos: every rho must satisfy |rho| < 1, got {bad[0]:g}")
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=UserWarning)
    if not args.summarize_only:
        path = args.out / "runs.csv"
        # rows are keyed by (model, rho, seed): the other settings must match the file's
        check_settings(args.out, {"epochs": args.epochs, "n": args.n})
        for seed in range(args.seeds):
            for rho in dict.fromkeys(args.rhos):  # a repeated rho is run once
                for model in dict.fromkeys(args.models):
                    row = run_one(model, rho, seed, args.epochs, args.n)
                    save_run(path, row)
                    print(
                        f"{model:10s} rho={rho:g} seed={seed} f1={row['f1']:.2f}"
                        f" dci={row['dci']:.2f} rec={row['recovered']}"
                        f" mse={row['mse']:.3f} ({row['fit_s']:.1f}s)",
                        flush=True,
                    )
    print(summarize(args.out))


if __name__ == "__main__":
    main()
