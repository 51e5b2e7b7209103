"""Sparsity against held-out likelihood: the Sparse VAE's spike-and-slab rates on news text.

How much held-out likelihood does a sparser mask cost? The Sparse VAE of
``benchmarks/news_text.py`` (``sparse_vae_1x100``: encoder and decoder 1 x 100, KL annealing
over 20 epochs, 40 epochs, Adam 0.01, batch 128, K = 20, multinomial likelihood) is fitted
with ``SpikeSlabLasso(lambda0, lambda0 / 10)`` for each ``--lambda0`` on the same document
splits as that study (``make_split``, seeds ``--splits``), and scored by document
completion (``completion_split``: half of each held-out document's tokens in, the other half
scored; nats per word). LDA on the same split is the reference line.

Writes to ``--out`` (default ``results/news_prior_sweep``): ``split<seed>.csv`` (one
row per fit: completion NLL per word, mean and range of the words per factor in the
support, active factors, fit time), ``summary.md`` and ``sweep.png`` (completion NLL
against mean support size, one point per fit, LDA as dashed lines).

Usage::

    python benchmarks/news_prior_sweep.py                         # lambda0 50 .. 2000, splits 0 1
    python benchmarks/news_prior_sweep.py --lambda0 200 --splits 0 --resume
"""

from __future__ import annotations

import argparse
import csv
import time
import warnings
from pathlib import Path

import news_text as nt
import numpy as np
import torch
from _settings import stop_on_ctrl_c

EPOCHS = 40
FIELDS = [
    "lambda0",
    "seed",
    "nll_word_completion",
    "support_mean",
    "support_min",
    "support_max",
    "active",
    "fit_s",
]


def fit_one(lambda0: float | None, X_tr: np.ndarray, X_te: np.ndarray, seed: int) -> dict:
    """Fit the Sparse VAE (``lambda0``) or LDA (``None``) and score completion."""
    import pyro_gfa as gfa

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if lambda0 is None:
            m = gfa.LDA(nt.K).fit(X_tr, seed=seed)
        else:
            spec = nt.sparse_vae_spec("", nt.SMALL, lambda0)
            m = spec.make(X_tr.shape, argparse.Namespace(epochs=EPOCHS))
            m.fit(X_tr, epochs=EPOCHS, batch_size=nt.BATCH, lr=nt.LR, seed=seed, progress=False)
    row = {"lambda0": "lda" if lambda0 is None else f"{lambda0:g}", "seed": seed}
    row["fit_s"] = f"{time.perf_counter() - t0:.1f}"
    _, X_obs, X_sc = nt.completion_split(X_te, seed)
    P, _ = nt.plugin_probs(m, X_obs)
    row["nll_word_completion"] = f"{nt.multinomial_nll(X_sc, P)[1]:.4f}"
    if lambda0 is not None:
        size = m.support().sum(0)
        act = size[size > 0]
        row.update(
            support_mean=f"{act.mean() if act.size else 0:.1f}",
            support_min=int(act.min()) if act.size else 0,
            support_max=int(act.max()) if act.size else 0,
            active=int(act.size),
        )
    return row


def summarize(rows: list[dict]) -> str:
    lines = [
        "| lambda0 (lambda1 = lambda0 / 10) | splits | completion NLL / word | "
        "words per active factor (mean; min - max) | active factors |",
        "|---|---|---|---|---|",
    ]
    keys = sorted(
        {r["lambda0"] for r in rows}, key=lambda k: (k == "lda", float(k) if k != "lda" else 0)
    )
    for k in keys:
        rs = [r for r in rows if r["lambda0"] == k]
        nll = np.array([float(r["nll_word_completion"]) for r in rs])
        if k == "lda":
            lines.append(f"| LDA (reference) | {len(rs)} | {nll.mean():.3f} | - | - |")
            continue
        mean = np.mean([float(r["support_mean"]) for r in rs])
        lo = min(int(r["support_min"]) for r in rs)
        hi = max(int(r["support_max"]) for r in rs)
        act = "/".join(r["active"] for r in rs)
        lines.append(f"| {k} | {len(rs)} | {nll.mean():.3f} | {mean:.0f}; {lo} - {hi} | {act} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    svae = [r for r in rows if r["lambda0"] != "lda"]
    for k in sorted({r["lambda0"] for r in svae}, key=float):
        rs = [r for r in svae if r["lambda0"] == k]
        ax.plot(
            [float(r["support_mean"]) for r in rs],
            [float(r["nll_word_completion"]) for r in rs],
            "o",
            label=f"Sparse VAE, lambda0 = {k}",
        )
    for r in (r for r in rows if r["lambda0"] == "lda"):
        ax.axhline(float(r["nll_word_completion"]), color="k", ls="--", lw=0.8)
    ax.plot([], [], "k--", lw=0.8, label="LDA (one line per split)")
    ax.set_xlabel("words per active factor (mean over factors; 500 words)")
    ax.set_ylabel("held-out completion NLL per word (nats)")
    ax.set_title("News, K = 20: mask sparsity against held-out completion NLL")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lambda0", type=float, nargs="+", default=[50, 200, 500, 1000, 2000])
    p.add_argument("--splits", type=int, nargs="+", default=[0, 1])
    p.add_argument("--out", default="results/news_prior_sweep")
    p.add_argument("--resume", action="store_true", help="keep rows already in split<seed>.csv")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    stop_on_ctrl_c()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    X = nt.load_corpus().X
    for seed in args.splits:
        # one file per split: processes with disjoint --splits can share the folder
        path = out / f"split{seed}.csv"
        rows = [r for r in nt.read_rows(out) if int(r["seed"]) == seed] if args.resume else []
        tr, te = nt.make_split(X.shape[0], seed)
        for lam in [None, *args.lambda0]:
            key = "lda" if lam is None else f"{lam:g}"
            if any(r["lambda0"] == key for r in rows):
                continue
            row = fit_one(lam, X[tr], X[te], seed)
            rows.append({k: str(row.get(k, "")) for k in FIELDS})
            with open(path, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=FIELDS)
                w.writeheader()
                w.writerows(rows)
            print(
                f"split {seed} lambda0 {key}: completion {row['nll_word_completion']}"
                f"  support {row.get('support_mean', '-')}  fit {row['fit_s']} s",
                flush=True,
            )
    rows = nt.read_rows(out)
    md = summarize(rows)
    (out / "summary.md").write_text(
        "# Sparse VAE on news: spike-and-slab rate against held-out completion NLL\n\n"
        "Written by `benchmarks/news_prior_sweep.py`.\n\n" + md
    )
    plot(rows, out / "sweep.png")
    print(md)


if __name__ == "__main__":
    main()
