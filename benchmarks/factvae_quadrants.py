"""factVAE on bars by quadrants (Ainsworth, Foti and Fox 2018, section 4.1, Fig. 2).

8 x 8 images; every pixel row is active (0.5) independently with probability 0.5, noise sd
0.05; the four quadrants are the groups. Each quadrant of a training image is missing with
probability ``--missing-rate`` (at least one kept). The factVAE (K = 8, p = 4, linear
generators, one 32-unit encoder per group, encoder group dropout ``--dropout``) is fitted
with lambda = 1 and lambda = 0; Adam 1e-2 on the networks, proximal SGD ``--sparse-lr`` on
the stacked Phi = [W; V]. For each fit the script reports

- which quadrant pairs share latents: on the stacked cells (exact zeros of the prox) and on
  the generator part alone (cells above 5 % of the largest generator norm);
- the right half reconstructed from the left half of held-out images: RMSE against the
  noisy images and against the noiseless truth, next to mean imputation;
- the held-out importance-sampled log-likelihood of complete images.

Writes to ``--out`` (default ``results/factvae_quadrants``): ``table.md``, ``table.csv``,
``loadings_lam{1,0}_seed{s}.png`` (Fig. 2 right) and ``reconstructions_seed{s}.png``
(truth, training view with missing quadrants, right half from the left half).

Usage: ``python benchmarks/factvae_quadrants.py [--epochs 500] [--seeds 0] [--out DIR]``
"""

from __future__ import annotations

import argparse
import csv
import itertools
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from _args import comma_list  # noqa: E402  (benchmarks/, the script's folder)

import pyro_gfa as gfa  # noqa: E402
from pyro_gfa.models.factvae import mask_groups  # noqa: E402

NAMES = ("TL", "TR", "BL", "BR")
PAIRS = list(itertools.combinations(range(4), 2))


def shared(S: np.ndarray) -> dict[str, int]:
    """Number of latents shared by every pair of quadrants under support ``S`` (4 x K)."""
    return {f"{NAMES[a]}-{NAMES[b]}": int((S[a] & S[b]).sum()) for a, b in PAIRS}


def run(lam: float, data: dict, args, seed: int) -> dict:
    prior = gfa.priors.GroupLasso(lam) if lam > 0 else gfa.priors.NoPrior()
    grp = gfa.data.quadrant_groups()
    m = gfa.FactVAE(grp, latent_dim=args.latent_dim, prior=prior, p=4, group_dropout=args.dropout)
    t0 = time.perf_counter()
    m.fit(
        data["Xm"],
        epochs=args.epochs,
        sparse_lr=args.sparse_lr,
        seed=seed,
        progress=not args.no_progress,
    )
    secs = time.perf_counter() - t0
    L, Lg = m.loadings(), m.generator_loadings()
    S_exact = L > 0
    S_gen = Lg > 0.05 * Lg.max()
    row = {"lam": lam, "seed": seed, "epochs": args.epochs, "fit_s": round(secs, 1)}
    row["active_cells"] = int(S_exact.sum())
    for k, v in shared(S_exact).items():
        row[f"exact:{k}"] = v
    for k, v in shared(S_gen).items():
        row[f"gen:{k}"] = v
    Xt, truth = data["Xt"], data["truth"]
    right = np.concatenate([grp["top_right"], grp["bottom_right"]])
    imp = m.impute(Xt, observed=["top_left", "bottom_left"])
    row["rmse_right_from_left"] = float(np.sqrt(((imp - Xt)[:, right] ** 2).mean()))
    row["rmse_vs_truth"] = float(np.sqrt(((imp - truth)[:, right] ** 2).mean()))
    mean_right = np.nanmean(data["Xm"][:, right], axis=0)
    row["rmse_mean_imputation"] = float(np.sqrt(((mean_right - Xt[:, right]) ** 2).mean()))
    row["test_loglik_is"] = float(m.log_likelihood(Xt, num_samples=100).mean())
    row["_m"], row["_L"], row["_Lg"], row["_imp"] = m, L, Lg, imp
    return row


def plot_loadings(row: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(9, 2.8))
    for ax, M, title in zip(
        axes, (row["_L"], row["_Lg"]), ("stacked ||[W;V][g,:,k]||", "generator ||W[g,:,k]||")
    ):
        im = ax.imshow(M, cmap="viridis", aspect="auto")
        ax.set_yticks(range(4), NAMES)
        ax.set_xlabel("latent")
        ax.set_title(f"{title}, lambda={row['lam']:g}", fontsize=9)
        fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_reconstructions(data: dict, row: dict, path: Path, n: int = 8) -> None:
    grp = gfa.data.quadrant_groups()
    left = np.concatenate([grp["top_left"], grp["bottom_left"]])
    Xtr = data["Xm"][:n]
    given = np.full_like(data["Xt"][:n], np.nan)
    given[:, left] = data["Xt"][:n, left]
    rows = [
        ("truth", data["Xt"][:n]),
        ("training view", Xtr),
        ("left half given", given),
        ("right from left", row["_imp"][:n]),
    ]
    fig, axes = plt.subplots(len(rows), n, figsize=(n * 0.9, len(rows) * 1.0))
    for i, (label, imgs) in enumerate(rows):
        for j in range(n):
            ax = axes[i, j]
            ax.imshow(np.ma.masked_invalid(imgs[j].reshape(8, 8)), cmap="gray", vmin=-0.1, vmax=0.6)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[i, 0].set_ylabel(label, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=500)
    ap.add_argument(
        "--seeds", type=comma_list(int, minimum=0), default="0", help="comma-separated seeds"
    )
    ap.add_argument(
        "--lams",
        type=comma_list(float, minimum=0),
        default="1,0",
        help="comma-separated group-lasso weights (0: no prior)",
    )
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--latent-dim", type=int, default=8)
    ap.add_argument("--missing-rate", type=float, default=0.25)
    ap.add_argument("--dropout", type=float, default=0.25)
    ap.add_argument("--sparse-lr", type=float, default=1e-3)
    ap.add_argument("--out", type=str, default="results/factvae_quadrants")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    grp = gfa.data.quadrant_groups()
    rows = []
    for seed in args.seeds:
        X, _, obs = gfa.data.make_quadrant_bars(args.n, missing_rate=args.missing_rate, seed=seed)
        Xt, rows_t, _ = gfa.data.make_quadrant_bars(1000, seed=1000 + seed)
        truth = np.repeat(rows_t[:, :, None] * 0.5, 8, axis=2).reshape(1000, 64)
        data = {"Xm": mask_groups(X, grp, obs), "Xt": Xt, "truth": truth}
        for lam in args.lams:
            row = run(lam, data, args, seed)
            plot_loadings(row, out / f"loadings_lam{lam:g}_seed{seed}.png")
            if lam > 0:
                plot_reconstructions(data, row, out / f"reconstructions_seed{seed}.png")
            rows.append(row)
            print(f"seed {seed} lam {lam:g}: {row['fit_s']} s", flush=True)
    keys = [k for k in rows[0] if not k.startswith("_")]
    with open(out / "table.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows([{k: r[k] for k in keys} for r in rows])
    cols = ["lam", "seed", "active_cells"]
    cols += [f"exact:{NAMES[a]}-{NAMES[b]}" for a, b in PAIRS]
    cols += [f"gen:{NAMES[a]}-{NAMES[b]}" for a, b in PAIRS]
    cols += ["rmse_right_from_left", "rmse_vs_truth", "rmse_mean_imputation", "test_loglik_is"]
    cols += ["fit_s"]

    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r[c]) for c in cols) + " |" for r in rows]
    text = "\n".join(lines)
    (out / "table.md").write_text(
        "Shared latents per quadrant pair (exact: stacked cells not zero; gen: generator"
        " part above 5% of its largest norm). RMSE of the right half from the left half on"
        " 1,000 held-out images.\n\n" + text + "\n"
    )
    np.set_printoptions(precision=2, suppress=True)
    for r in rows:
        print(f"\nlambda={r['lam']:g} seed={r['seed']} stacked loadings:\n{r['_L']}")
        print(f"generator loadings:\n{r['_Lg']}")
    print()
    print(text)
    return rows


if __name__ == "__main__":
    main()
