"""The oi-VAE bars experiment (Ainsworth et al. 2018, appendix A; Fig. 2(c, d), Fig. 8 and Table 3).

2,048 training and 2,048 test images of 8 x 8 pixels, one row at 0.5, noise sd 0.05;
groups = rows, p = 1, linear generators, linear encoder, Adam 1e-2 on the networks, proximal
SGD 1e-4 on W, batch 64, 20,000 iterations (625 epochs), posterior std x0.1 for 25 epochs.
Runs lambda = 1 and lambda = 0 (no theta prior, as in Table 3) for K = 8 and K = 16, and
writes to ``--out`` (default ``results/oivae_bars``):

- ``table.md`` / ``table.csv``: per-image train and test ELBO, E_q[log p(x|z)] and the
  importance-sampled log-likelihood, exact zeros in W, and the structure checks;
- ``W_K8.png``, ``W_K16.png``: the ||W^(g)_{:,k}|| heatmaps (rows = groups, cols = latents).

Usage: ``python benchmarks/oivae_bars.py [--epochs 625] [--seed 0] [--out DIR]``
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import pyro_gfa as gfa  # noqa: E402

PAPER = {  # Table 3 of Ainsworth et al. 2018 (K = 16): train / test log-likelihood per image
    1.0: (99.9325, 100.1394),
    0.0: (95.0687, 95.4285),
}


def one_latent_per_row(L: np.ndarray) -> bool:
    """Every row-group uses exactly one latent and no latent serves two rows."""
    nz = L > 0
    return bool((nz.sum(1) == 1).all() and (nz.sum(0) <= 1).all())


def run(K: int, lam: float, X, Xt, epochs: int, seed: int, progress: bool, momentum: float) -> dict:
    prior = gfa.priors.GroupLasso(lam) if lam > 0 else gfa.priors.NoPrior()
    m = gfa.OIVAE(groups=gfa.data.bar_groups(), latent_dim=K, prior=prior, theta_prior=lam > 0)
    t0 = time.perf_counter()
    m.fit(X, epochs=epochs, batch_size=64, seed=seed, progress=progress, sparse_momentum=momentum)
    secs = time.perf_counter() - t0
    L = m.loadings()
    row = {"K": K, "lam": lam, "seed": seed, "epochs": epochs, "fit_s": round(secs, 1)}
    for name, data in (("train", X), ("test", Xt)):
        row[f"{name}_elbo"] = float(m.elbo(data, num_samples=10).mean())
        row[f"{name}_recon"] = float(m.expected_log_lik(data, num_samples=10).mean())
        row[f"{name}_loglik_is"] = float(m.log_likelihood(data, num_samples=200).mean())
    row["exact_zeros"] = int((L == 0).sum())
    row["cells"] = L.size
    row["zero_latents"] = int((L == 0).all(0).sum())
    row["one_latent_per_row"] = one_latent_per_row(L)
    row["_L"] = L
    return row


def heatmaps(rows: list[dict], K: int, path: Path) -> None:
    sel = [r for r in rows if r["K"] == K]
    fig, axes = plt.subplots(1, len(sel), figsize=(3.2 * len(sel) * K / 8, 3.4), squeeze=False)
    for ax, r in zip(axes[0], sel):
        L = r["_L"]
        im = ax.imshow(L, cmap="Blues", vmin=0)
        ax.set_title(f"lambda = {r['lam']:g}, K = {K}")
        ax.set_xlabel("latent k")
        ax.set_ylabel("row group g")
        ax.set_xticks(range(K))
        ax.set_yticks(range(L.shape[0]))
        fig.colorbar(im, ax=ax, fraction=0.046, label="||W^(g)_{:,k}||")
        zeros = np.argwhere(L == 0)
        ax.scatter(zeros[:, 1], zeros[:, 0], s=4, c="0.6", marker=".", linewidths=0)
    fig.suptitle("oi-VAE on bars: latent-to-group norms (grey dots: exact zeros)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=625, help="625 epochs = 20,000 steps of 64")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--K", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--out", default="results/oivae_bars")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument(
        "--sparse-momentum",
        type=float,
        default=0.99,
        help="gradient averaging of the proximal step on W (0: the paper's plain proximal SGD)",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # a model this small runs fastest on one thread
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    X, _ = gfa.data.make_bars(2048, seed=args.seed)
    Xt, _ = gfa.data.make_bars(2048, seed=args.seed + 1000)
    rows = []
    for K in args.K:
        for lam in (1.0, 0.0):
            rows.append(
                run(
                    K,
                    lam,
                    X,
                    Xt,
                    args.epochs,
                    args.seed,
                    not args.no_progress,
                    args.sparse_momentum,
                )
            )
            r = rows[-1]
            print(
                f"K={K:2d} lam={lam:g}: train/test ELBO {r['train_elbo']:.2f}/{r['test_elbo']:.2f}"
                f"  E_q log p(x|z) {r['train_recon']:.2f}/{r['test_recon']:.2f}"
                f"  IS log-lik {r['train_loglik_is']:.2f}/{r['test_loglik_is']:.2f}"
                f"  exact zeros {r['exact_zeros']}/{r['cells']}"
                f"  one latent per row: {r['one_latent_per_row']}  ({r['fit_s']} s)",
                flush=True,
            )
        heatmaps(rows, K, out / f"W_K{K}.png")
    keys = [k for k in rows[0] if not k.startswith("_")]
    with open(out / "table.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows({k: r[k] for k in keys} for r in rows)
    lines = [
        "| K | lambda | train ELBO | test ELBO | train E_q log p(x given z)"
        " | test E_q log p(x given z) | train IS log-lik | test IS log-lik"
        " | paper train / test (K=16) | exact zeros"
        " | all-zero latents | one latent per row |",
        "|" + "---|" * 12,
    ]
    for r in rows:
        paper = PAPER[r["lam"]] if r["K"] == 16 else None
        lines.append(
            f"| {r['K']} | {r['lam']:g} | {r['train_elbo']:.2f} | {r['test_elbo']:.2f}"
            f" | {r['train_recon']:.2f} | {r['test_recon']:.2f}"
            f" | {r['train_loglik_is']:.2f} | {r['test_loglik_is']:.2f}"
            f" | {f'{paper[0]:.2f} / {paper[1]:.2f}' if paper else '-'}"
            f" | {r['exact_zeros']}/{r['cells']} | {r['zero_latents']}"
            f" | {r['one_latent_per_row']} |"
        )
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {out}/table.md, table.csv, W_K*.png")
    return rows


if __name__ == "__main__":
    main()
