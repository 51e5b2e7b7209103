"""factVAE on motion capture (Ainsworth, Foti and Fox 2018, section 4.2: Table 1 shape and Fig. 3).

Data: the 15 humanoid clips of ``pybullet_data`` (``pip install pybullet==3.2.7``), 40 pose
columns (root rotation and 12 joints; the root position is left out), grouped into core /
arms / legs. The held-out test clip is ``walk`` (39 frames); the training set is the first
``n`` clips of a seeded random order of the other 14 clips, for ``n`` in ``--trials`` (1 to
14). Every column is standardised with the mean and standard deviation of the 14 non-test
clips (a fixed preprocessing shared by all fits).

Models (K = 8, p = 4, one hidden layer of 32 in every generator and encoder, encoder group
dropout 0.1 as in the authors' mocap runs): factVAE with lambda = 1, factVAE with lambda = 0,
and JMVAE+ (uniform mixture of the group posteriors, no sparsity prior). Adam ``--lr`` on the
networks, proximal SGD ``--sparse-lr`` on Phi, batch 64, ``--steps`` optimiser steps per fit
(``epochs = ceil(steps / batches per epoch)``, so small training sets get as many steps as
large ones).

Reports the held-out log-likelihood of the walk clip per frame (importance sampled, 200
draws), and the limbs (arms + legs) reconstructed from the core: RMSE in standardised units
against the truth, next to predicting the training mean.

Writes to ``--out`` (default ``results/factvae_mocap``): ``table.md``, ``table.csv``,
``limbs_from_core.png`` (Fig. 3 analogue: joint angles of the walk clip, truth and the
reconstruction from the core) and ``loadings.png`` (Fig. 4 analogue).

Usage: ``python benchmarks/factvae_mocap.py [--trials 1,2,5,10] [--seeds 0,1] [--steps 1500]
[--models JMVAE+,lambda=0,lambda=1]``
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from _args import comma_list, int_at_least, training_clips  # noqa: E402  (benchmarks/, the script's folder)

import pyro_gfa as gfa  # noqa: E402
from pyro_gfa.data.mocap import load_mocap  # noqa: E402

TEST_CLIP = "walk"
MODELS = ("JMVAE+", "lambda=0", "lambda=1")
PAPER = {  # Table 1 of Ainsworth, Foti and Fox 2018 (CMU walking trials), held-out log-likelihood
    "JMVAE+": {1: -620, 2: -166, 5: -77, 10: 54},
    "lambda=0": {1: -600, 2: -117, 5: -21, 10: 89},
    "lambda=1": {1: -555, 2: 9, 5: -13, 10: 83},
}


def build(name: str, groups, args):
    kw = dict(
        latent_dim=args.latent_dim,
        p=4,
        generator_hidden=(32,),
        encoder_hidden=(32,),
        group_dropout=0.1,
        sigma_init=0.1,
    )
    if name == "JMVAE+":
        return gfa.JMVAEPlus(groups, **kw)
    if name == "lambda=1":
        return gfa.FactVAE(groups, prior=gfa.priors.GroupLasso(1.0), **kw)
    if name == "lambda=0":
        return gfa.FactVAE(groups, prior=gfa.priors.NoPrior(), **kw)
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--trials",
        type=comma_list(int, minimum=1),
        default="1,2,5,10",
        help="training clip counts, comma-separated (each at most the 14 non-test clips)",
    )
    ap.add_argument("--seeds", type=comma_list(int, minimum=0), default="0,1")
    ap.add_argument("--steps", type=int_at_least(1), default=1500)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--sparse-lr", type=float, default=1e-3)
    ap.add_argument("--latent-dim", type=int, default=8)
    ap.add_argument(
        "--models",
        type=comma_list(choices=MODELS),
        default=",".join(MODELS),
        help=f"comma-separated, of {', '.join(MODELS)}",
    )
    ap.add_argument("--out", type=str, default="results/factvae_mocap")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    data = load_mocap()
    others = training_clips(ap, "--trials", args.trials, data.clip_names, TEST_CLIP)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    groups = data.groups("coarse")
    test = data.select([TEST_CLIP])
    pool = data.select(others).frames
    mu, sd = pool.mean(0), pool.std(0) + 1e-3
    Xt = (test.frames - mu) / sd
    limbs = np.concatenate([groups["arms"], groups["legs"]])
    trials, models = args.trials, args.models
    rows, keep = [], {}
    for seed in args.seeds:
        order = list(np.random.default_rng(seed).permutation(others))
        for n in trials:
            train = data.select(order[:n])
            X = (train.frames - mu) / sd
            batches = math.ceil(X.shape[0] / 64)
            epochs = math.ceil(args.steps / batches)
            for name in models:
                m = build(name, groups, args)
                t0 = time.perf_counter()
                m.fit(
                    X,
                    epochs=epochs,
                    lr=args.lr,
                    sparse_lr=args.sparse_lr,
                    seed=seed,
                    progress=not args.no_progress,
                )
                secs = time.perf_counter() - t0
                ll = m.log_likelihood(Xt, num_samples=200)
                rec = m.reconstruct(Xt, observed=["core"])
                row = {
                    "model": name,
                    "trials": n,
                    "seed": seed,
                    "train_frames": X.shape[0],
                    "epochs": epochs,
                    "clips": "+".join(order[:n]),
                    "test_loglik": float(ll.mean()),
                    "train_loglik": float(m.log_likelihood(X, num_samples=50).mean()),
                    "rmse_limbs_from_core": float(
                        np.sqrt(((rec[:, limbs] - Xt[:, limbs]) ** 2).mean())
                    ),
                    "rmse_limbs_train_mean": float(
                        np.sqrt(((X[:, limbs].mean(0) - Xt[:, limbs]) ** 2).mean())
                    ),
                    "active_cells": int((m.loadings() > 0).sum()),
                    "fit_s": round(secs, 1),
                }
                rows.append(row)
                keep[(name, n, seed)] = (m, rec)
                print(
                    f"seed {seed} trials {n} {name}: test ll {row['test_loglik']:.1f},"
                    f" limbs-from-core rmse {row['rmse_limbs_from_core']:.3f}"
                    f" ({row['fit_s']} s)",
                    flush=True,
                )
    keys = list(rows[0])
    with open(out / "table.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)

    def cell(name, n, key):
        v = [r[key] for r in rows if r["model"] == name and r["trials"] == n]
        return f"{np.mean(v):.1f} ± {np.std(v, ddof=1):.1f}" if len(v) > 1 else f"{v[0]:.1f}"

    def cell3(name, n, key):
        v = [r[key] for r in rows if r["model"] == name and r["trials"] == n]
        return f"{np.mean(v):.3f}"

    head = "| model | " + " | ".join(f"{n} clips" for n in trials) + " |"
    sep = "|---|" + "---|" * len(trials)
    t1 = [head, sep] + [
        f"| {name} | " + " | ".join(cell(name, n, "test_loglik") for n in trials) + " |"
        for name in models
    ]
    t2 = [head, sep] + [
        f"| {name} | " + " | ".join(cell3(name, n, "rmse_limbs_from_core") for n in trials) + " |"
        for name in models
    ]
    base = " | ".join(cell3(models[0], n, "rmse_limbs_train_mean") for n in trials)
    t2.append(f"| training mean | {base} |")
    t3 = [head, sep] + [
        f"| {name} | " + " | ".join(cell(name, n, "active_cells") for n in trials) + " |"
        for name in models
    ]
    text = (
        "Held-out log-likelihood of the walk clip per frame (nats, standardised units,"
        " mean ± sd over seeds):\n\n"
        + "\n".join(t1)
        + "\n\nLimbs (arms + legs) reconstructed from the core, RMSE (standardised units):\n\n"
        + "\n".join(t2)
        + "\n\nActive cells of Phi (of 3 x K):\n\n"
        + "\n".join(t3)
        + "\n"
    )
    (out / "table.md").write_text(text)
    print()
    print(text)

    # Fig. 3 analogue: joint angles of the walk clip from the core alone
    seed0 = args.seeds[0]
    nmax = max(trials)
    show = ["right_knee", "left_knee", "right_elbow", "left_elbow"]
    cols = [data.columns.index(c) for c in show]
    fig, axes = plt.subplots(1, len(cols), figsize=(4 * len(cols), 3), sharex=True)
    for ax, c, label in zip(axes, cols, show):
        ax.plot(Xt[:, c] * sd[c] + mu[c], "k-", lw=2, label="truth")
        for name in models:
            if (name, nmax, seed0) in keep:
                rec = keep[(name, nmax, seed0)][1]
                ax.plot(rec[:, c] * sd[c] + mu[c], label=name)
        ax.set_title(f"{label} (from the core)", fontsize=9)
        ax.set_xlabel("frame")
    axes[0].set_ylabel("angle (rad)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "limbs_from_core.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(models), figsize=(4 * len(models), 2.4))
    for ax, name in zip(np.atleast_1d(axes), models):
        if (name, nmax, seed0) not in keep:
            continue
        L = keep[(name, nmax, seed0)][0].loadings()
        im = ax.imshow(L, aspect="auto", cmap="viridis")
        ax.set_yticks(range(len(groups)), list(groups))
        ax.set_xlabel("latent")
        ax.set_title(f"{name}, {nmax} clips", fontsize=9)
        fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(out / "loadings.png", dpi=120)
    plt.close(fig)
    return rows


if __name__ == "__main__":
    main()
