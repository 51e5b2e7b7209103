"""oi-VAE vs VAE on motion capture, joints as groups (Ainsworth et al. 2018, section 6.2, app. B).

Shape of the paper's Table 2 (held-out log-likelihood of the oi-VAE and a VAE as the number of
training trials grows) and Table 1 (the 3 joints each latent loads most).

Data: the 15 humanoid clips of ``pybullet_data`` (``pip install pybullet==3.2.7``) through
``pyro_gfa.data.load_mocap()``: 40 pose columns in 13 joint groups (root rotation, chest,
neck, right/left hip, knee, ankle, shoulder, elbow; the root position is left out, as the
authors drop the root translation). The held-out test clip is ``walk`` (39 frames); the
training set is the first ``n`` clips of a seeded random order of the other 14 clips (the
order changes with the seed), for ``n`` in ``--n-train`` (1 to 14). Every column is scaled
to [0, 1] with the minimum and range (range clamped at 0.1) of the 14 non-test clips, as the
authors' code scales the CMU joint angles; one fixed scaling for every fit.

Models (appendix B): K = ``--latent-dim`` (16), p = 8, lambda = 1, linear inference network
``mu(x) = W1 x + b1``, ``sigma(x) = exp(W2 x + b2)``, and per-group generators
``mu_g(z) = W3 tanh(W^(g) z) + b3`` with a global ``sigma = exp(b4)`` (initial 0.01), the
N(0, I) prior on the generator weights, the group lasso on the columns of ``W^(g)``.
``pyro_gfa.OIVAE`` has ReLU hidden layers only, so a script-local subclass swaps in the tanh
generators of the paper. The VAE baseline is the same code with one group (all 40 columns),
no group lasso and no prior on the generator weights: a standard VAE whose generator is
``W3 tanh(W z) + b3`` with 13 x 8 = 104 tanh units, i.e. the same number of generator units
and the same size of ``W`` (104 x K) as the oi-VAE, the same encoder and the same optimiser
for each parameter. Only the grouping and the priors differ.

Training: Adam ``--lr`` on the networks, proximal SGD ``--sparse-lr`` (gradient averaging
``--sparse-momentum``) on ``W``, batch 64, ``--steps`` optimiser steps per fit whatever n
(``epochs = ceil(steps / batches per epoch)``); the posterior standard deviations are
multiplied by 0.1 during the first ``--throttle-frac`` of the epochs (appendix D). The
paper's step sizes (Adam 1e-3, proximal SGD 1e-4) are the defaults. The paper trains for
1,000 epochs; with ``--long-epochs 1000`` both models are also fitted on the largest ``n``
for that many epochs (25,000 steps here; posterior sd x 0.1 for the first 25 epochs), and
the oi-VAE of that fit gives the top-3 joints (rows ``"oi-VAE long"``, ``"VAE long"``).

Scores: held-out log-likelihood of the walk clip per frame (importance sampled with
``--is-samples`` draws from q, in the [0, 1]-scaled units), the same on the training frames,
wall time of each fit. For every oi-VAE fit the loadings ``||W^(g)_{:,k}||`` are saved, and
for the largest n the top-3 joints of every latent are listed with their norms.

Resumable: rows already in ``results.csv`` (model, n, seed) are skipped; the other settings
are recorded in ``settings.json`` and a run with other values is refused. ``--tables-only``
rebuilds the tables and figures from ``results.csv``, their captions from ``settings.json``
(the settings the rows were made with, whatever the command's defaults).

Writes to ``--out`` (default ``results/oivae_mocap``): ``results.csv``, ``table.md``,
``loglik_vs_n.png``, ``top_joints.md``, ``loadings.png`` and ``loadings/*.npy``.

Usage: ``python benchmarks/oivae_mocap.py [--n-train 1,2,4,8,14] [--seeds 0,1,2]
[--steps 10000] [--long-epochs 1000]``
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from _args import comma_list, int_at_least, training_clips  # noqa: E402  (benchmarks/, the script's folder)
from _settings import check_settings  # noqa: E402

import pyro_gfa as gfa  # noqa: E402
from pyro_gfa.data.mocap import load_mocap  # noqa: E402
from pyro_gfa.models.nets import GroupGenerators  # noqa: E402
from pyro_gfa.plots import plot_loadings, top_units  # noqa: E402

TEST_CLIP = "walk"
MODELS = ("oi-VAE", "VAE")
#: ablation (``--models oi-VAE,VAE,VAE+theta``): the VAE with the oi-VAE's N(0, I) prior on
#: the generator weights, so that only the grouping and the group lasso differ
ABLATIONS = ("VAE+theta",)
#: Table 2 of Ainsworth et al. 2018 (CMU subject 7, test walk trial 11), held-out log-likelihood
PAPER_T2 = {
    "VAE (K = 16)": {1: -3518, 2: -251, 5: 18, 10: 114},
    "oi-VAE (K = 16)": {1: -3550, 2: -188, 5: 31, 10: 108},
}
#: the settings that ``results.csv`` does not key its rows by (``settings.json``)
SETTINGS = ("steps", "lr", "sparse_lr", "sparse_momentum", "throttle_frac", "latent_dim")
SETTINGS += ("p", "lam", "is_samples", "long_epochs")
FIELDS = [
    "model",
    "n_train",
    "seed",
    "clips",
    "train_frames",
    "steps",
    "epochs",
    "test_loglik",
    "train_loglik",
    "zero_cells",
    "cells",
    "unused_latents",
    "fit_s",
]


class TanhGroupGenerators(GroupGenerators):
    """The paper's mocap generators: ``W3 tanh(u) + b3`` for ``u = W^(g) z`` (appendix B)."""

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return super().forward(torch.tanh(u))


class TanhOIVAE(gfa.OIVAE):
    """``gfa.OIVAE`` with tanh-then-linear generators and a chosen initial noise scale."""

    def __init__(self, *args, sigma_init: float = 1e-2, **kwargs):
        super().__init__(*args, **kwargs)
        self.sigma_init = sigma_init

    def _build_module(self):
        module = super()._build_module()
        if self.generator_hidden:
            raise ValueError("TanhOIVAE has no hidden generator layers")
        module.generators = TanhGroupGenerators(
            torch.as_tensor(self.groups.feature_group), self.p, ()
        )
        with torch.no_grad():
            module.log_sigma.fill_(math.log(self.sigma_init))
        return module


def build(name: str, groups: dict[str, list[int]], args) -> TanhOIVAE:
    if name == "oi-VAE":
        return TanhOIVAE(
            groups,
            latent_dim=args.latent_dim,
            prior=gfa.priors.GroupLasso(args.lam),
            p=args.p,
            theta_prior=True,
            n_features=args.n_features,
        )
    if name in ("VAE", "VAE+theta"):
        cols = sorted(c for v in groups.values() for c in v)
        return TanhOIVAE(
            {"all": cols},
            latent_dim=args.latent_dim,
            prior=gfa.priors.NoPrior(),
            p=args.p * len(groups),
            theta_prior=name == "VAE+theta",
            n_features=args.n_features,
        )
    raise ValueError(f"unknown model {name!r}")


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in ("n_train", "seed", "train_frames", "steps", "epochs", "zero_cells", "cells"):
            r[k] = int(r[k])
        for k in ("test_loglik", "train_loglik", "fit_s"):
            r[k] = float(r[k])
        r["unused_latents"] = int(r["unused_latents"]) if r["unused_latents"] != "" else ""
    return rows


def append_row(path: Path, row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        if new:
            w.writeheader()
        w.writerow(row)


def mean_sd(v) -> str:
    v = np.asarray(v, dtype=float)
    if v.size == 0:
        return "-"
    if v.size == 1:
        return f"{v[0]:.1f}"
    return f"{v.mean():.1f} ± {v.std(ddof=1):.1f}"


def recorded_settings(ap: argparse.ArgumentParser, args, out: Path) -> None:
    """For ``--tables-only``: set ``args`` to the settings in ``out/settings.json``, which the
    rows were made with, so that the captions state them rather than this command's defaults;
    exit if an option given here (not at its default) says otherwise."""
    path = out / "settings.json"
    if not path.exists():
        print(f"note: no {path}; the captions state this command's settings", file=sys.stderr)
        return
    old = {k: v for k, v in json.loads(path.read_text()).items() if k in SETTINGS}
    differ = {
        k: (getattr(args, k), v)
        for k, v in old.items()
        if getattr(args, k) != v and getattr(args, k) != ap.get_default(k)
    }
    if differ:
        said = ", ".join(f"{k} = {a!r} (the folder's rows: {o!r})" for k, (a, o) in differ.items())
        raise SystemExit(
            f"{out} holds rows made with other settings: {said}. --tables-only takes them"
            " from settings.json: leave these options out."
        )
    for k, v in old.items():
        setattr(args, k, v)


def write_tables(rows, out: Path, ns, seeds, models, joint_names, args) -> None:
    def sel(model, n, key):
        return [r[key] for r in rows if r["model"] == model and r["n_train"] == n]

    head = "| model | " + " | ".join(f"n = {n}" for n in ns) + " |"
    sep = "|---|" + "---|" * len(ns)
    t_ll = [head, sep] + [
        f"| {m} (K = {args.latent_dim}) | "
        + " | ".join(mean_sd(sel(m, n, "test_loglik")) for n in ns)
        + " |"
        for m in models
    ]
    wins = []
    if set(MODELS) <= set(models):
        cells = []
        for n in ns:
            a = {
                r["seed"]: r["test_loglik"]
                for r in rows
                if r["model"] == "oi-VAE" and r["n_train"] == n
            }
            b = {
                r["seed"]: r["test_loglik"]
                for r in rows
                if r["model"] == "VAE" and r["n_train"] == n
            }
            common = sorted(set(a) & set(b))
            cells.append(f"{sum(a[s] > b[s] for s in common)} / {len(common)}")
        wins = ["| oi-VAE above VAE (seeds) | " + " | ".join(cells) + " |"]
    t_tr = [head, sep] + [
        f"| {m} | " + " | ".join(mean_sd(sel(m, n, "train_loglik")) for n in ns) + " |"
        for m in models
    ]
    t_frames = (
        "| training frames | "
        + " | ".join(
            (
                f"{min(v)}-{max(v)}"
                if (v := sel(models[0], n, "train_frames")) and min(v) != max(v)
                else (str(v[0]) if v else "-")
            )
            for n in ns
        )
        + " |"
    )
    t_time = [head, sep] + [
        f"| {m} | " + " | ".join(mean_sd(sel(m, n, "fit_s")) for n in ns) + " |" for m in models
    ]
    t_zero = [head, sep] + [
        "| oi-VAE exact-zero cells (of "
        + str(13 * args.latent_dim)
        + ") | "
        + " | ".join(mean_sd(sel("oi-VAE", n, "zero_cells")) for n in ns)
        + " |",
        "| oi-VAE unused latents (of "
        + str(args.latent_dim)
        + ") | "
        + " | ".join(mean_sd(sel("oi-VAE", n, "unused_latents")) for n in ns)
        + " |",
    ]
    paper = [
        "| model | 1 trial | 2 trials | 5 trials | 10 trials |",
        "|---|---|---|---|---|",
    ] + [
        f"| {m} | " + " | ".join(str(v[t]) for t in (1, 2, 5, 10)) + " |"
        for m, v in PAPER_T2.items()
    ]
    text = (
        f"Held-out log-likelihood of the `{TEST_CLIP}` clip per frame (nats, [0, 1]-scaled"
        f" columns, importance sampled with {args.is_samples} draws; mean ± sd over seeds"
        f" {','.join(map(str, sorted({r['seed'] for r in rows})))}; {args.steps} optimiser"
        " steps per fit):\n\n"
        + "\n".join(t_ll + wins + [t_frames])
        + "\n\nAinsworth et al. 2018, Table 2 (CMU subject 7, held-out walk trial):\n\n"
        + "\n".join(paper)
        + "\n\nTraining-frame log-likelihood per frame (200 draws):\n\n"
        + "\n".join(t_tr)
        + "\n\nWall time per fit (s, fit only):\n\n"
        + "\n".join(t_time)
        + "\n\noi-VAE sparsity:\n\n"
        + "\n".join(t_zero)
        + "\n"
    )
    long = [r for r in rows if r["model"].endswith(" long")]
    if long:
        nmax = max(ns)
        lt = [
            "| model | steps | test log-lik | train log-lik | exact-zero cells | fit (s) |",
            "|---|---|---|---|---|---|",
        ]
        for m in models:
            label = f"{m} long"
            if not sel(label, nmax, "steps"):
                continue
            lt.append(
                f"| {m} (K = {args.latent_dim}) | "
                + " | ".join(
                    mean_sd(sel(label, nmax, k)) if k != "steps" else str(sel(label, nmax, k)[0])
                    for k in ("steps", "test_loglik", "train_loglik", "zero_cells", "fit_s")
                )
                + " |"
            )
        text += (
            f"\nThe paper's training length on n = {nmax} clips: {args.long_epochs} epochs"
            " (posterior sd x 0.1 for the first 25), mean ± sd over seeds:\n\n"
            + "\n".join(lt)
            + "\n"
        )
    (out / "table.md").write_text(text)
    print(text)

    # figure: test log-lik vs n
    fig, ax = plt.subplots(figsize=(5, 3.6), layout="constrained")
    for i, m in enumerate(models):
        mu, sd, xs = [], [], []
        for n in ns:
            v = sel(m, n, "test_loglik")
            if v:
                xs.append(n)
                mu.append(np.mean(v))
                sd.append(np.std(v, ddof=1) if len(v) > 1 else 0.0)
                ax.scatter([n * (1 + 0.04 * (i - 0.5))] * len(v), v, s=10, alpha=0.5, color=f"C{i}")
        if xs:
            ax.errorbar(xs, mu, yerr=sd, marker="o", capsize=3, label=m, color=f"C{i}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.set_yscale("symlog", linthresh=100)
    ax.set_xlabel("training clips")
    ax.set_ylabel(f"test log-lik per frame ({TEST_CLIP})")
    ax.set_title(f"oi-VAE vs VAE, K = {args.latent_dim}, mocap joints")
    ax.legend()
    fig.savefig(out / "loglik_vs_n.png", dpi=120)
    plt.close(fig)

    # Table 1 shape: top-3 joints per latent, oi-VAE on the most data
    nmax = max(ns)
    lines = [
        f"Top-3 joints per latent, oi-VAE (K = {args.latent_dim}, p = {args.p}, lambda ="
        f" {args.lam}) fitted on n = {nmax} clips; loading = ||W^(g)_(:,k)||, latents in"
        " decreasing order of total loading, joints with a zero loading left out.\n"
    ]
    first = None
    for seed in seeds:
        path = out / "loadings" / f"oivae_long_n{nmax}_seed{seed}.npy"
        if not path.exists():
            path = out / "loadings" / f"oivae_n{nmax}_seed{seed}.npy"
        if not path.exists():
            continue
        fit = f"{args.long_epochs}-epoch" if "_long" in path.name else f"{args.steps}-step"
        L = np.load(path)
        first = (seed, L, fit) if first is None else first
        df = top_units(L, k=3, unit_names=joint_names)
        zeros = int((L == 0).sum())
        unused = int((L.sum(0) == 0).sum())
        lines.append(
            f"\n### seed {seed} ({fit} fit): {zeros} exact-zero cells of {L.size}, {unused} of"
            f" {L.shape[1]} latents unused\n"
        )
        lines += ["| latent | top 3 joints (loading) | total |", "|---|---|---|"]
        for lat, d in df.groupby("latent", sort=False):
            k = int(lat[1:])
            joints = ", ".join(f"{u} ({v:.2f})" for u, v in zip(d["unit"], d["loading"]))
            lines.append(f"| {lat} | {joints} | {L[:, k].sum():.2f} |")
    (out / "top_joints.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if first is not None:
        seed, L, fit = first
        fig = plot_loadings(
            L,
            order=False,
            unit_names=joint_names,
            title=f"oi-VAE loadings, n = {nmax} clips, seed {seed}, {fit} fit",
        )
        fig.axes[0].set_ylabel("joint group")
        fig.savefig(out / "loadings.png", dpi=120)
        plt.close(fig)


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--n-train",
        type=comma_list(int, minimum=1),
        default="1,2,4,8,14",
        help="training clip counts, comma-separated (each at most the 14 non-test clips)",
    )
    ap.add_argument("--seeds", type=comma_list(int, minimum=0), default="0,1,2")
    ap.add_argument("--steps", type=int_at_least(1), default=10000, help="optimiser steps per fit")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--sparse-lr", type=float, default=1e-4)
    ap.add_argument("--sparse-momentum", type=float, default=0.99)
    ap.add_argument("--throttle-frac", type=float, default=0.1)
    ap.add_argument("--latent-dim", type=int, default=16)
    ap.add_argument("--p", type=int, default=8)
    ap.add_argument("--lam", type=float, default=1.0)
    ap.add_argument("--is-samples", type=int, default=1000)
    ap.add_argument(
        "--models",
        type=comma_list(choices=MODELS + ABLATIONS),
        default=",".join(MODELS),
        help=f"comma-separated, of {', '.join(MODELS + ABLATIONS)}",
    )
    ap.add_argument("--out", type=str, default="results/oivae_mocap")
    ap.add_argument(
        "--long-epochs",
        type=int,
        default=1000,
        help="also fit both models on the largest n for this many epochs (the paper's"
        " 1000; 0: skip); the oi-VAE of these fits gives top_joints.md",
    )
    ap.add_argument(
        "--tables-only",
        action="store_true",
        help="rebuild tables from the CSV, captions from the folder's settings.json",
    )
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    data = load_mocap()
    others = training_clips(ap, "--n-train", args.n_train, data.clip_names, TEST_CLIP)
    torch.set_num_threads(1)
    out = Path(args.out)
    csv_path = out / "results.csv"

    groups = data.groups("joints")
    joint_names = list(groups)
    args.n_features = data.frames.shape[1]
    test = data.select([TEST_CLIP])
    pool = data.select(others).frames
    lo, rng = pool.min(0), np.maximum(pool.max(0) - pool.min(0), 0.1)
    Xt = ((test.frames - lo) / rng).astype(np.float32)
    ns, seeds, models = args.n_train, args.seeds, args.models

    rows = read_rows(csv_path)
    done = {(r["model"], r["n_train"], r["seed"]) for r in rows}
    if args.tables_only:
        if rows:
            recorded_settings(ap, args, out)
    else:  # rows are keyed by (model, n, seed): the rest must match
        keep = [k for k in SETTINGS if k != "long_epochs" or args.long_epochs > 0]
        check_settings(out, {k: getattr(args, k) for k in keep})
        (out / "loadings").mkdir(parents=True, exist_ok=True)

    def run_fit(name, label, n, seed, order, epochs, throttle, tag):
        train = data.select(order[:n])
        X = ((train.frames - lo) / rng).astype(np.float32)
        batches = math.ceil(X.shape[0] / 64)
        m = build(name, groups, args)
        t0 = time.perf_counter()
        m.fit(
            X,
            epochs=epochs,
            batch_size=64,
            lr=args.lr,
            sparse_lr=args.sparse_lr,
            sparse_momentum=args.sparse_momentum,
            throttle_epochs=throttle,
            seed=seed,
            device="cpu",
            progress=not args.no_progress,
        )
        secs = time.perf_counter() - t0
        L = m.loadings()
        if name == "oi-VAE":
            np.save(out / "loadings" / f"oivae{tag}_n{n}_seed{seed}.npy", L)
        row = {
            "model": label,
            "n_train": n,
            "seed": seed,
            "clips": "+".join(order[:n]),
            "train_frames": X.shape[0],
            "steps": epochs * batches,
            "epochs": epochs,
            "test_loglik": float(m.log_likelihood(Xt, num_samples=args.is_samples).mean()),
            "train_loglik": float(m.log_likelihood(X, num_samples=200).mean()),
            "zero_cells": int((L == 0).sum()),
            "cells": int(L.size),
            "unused_latents": int((L.sum(0) == 0).sum()) if name == "oi-VAE" else "",
            "fit_s": round(secs, 1),
        }
        append_row(csv_path, row)
        rows.append(row)
        print(
            f"seed {seed} n {n} {label}: test ll {row['test_loglik']:.1f},"
            f" train ll {row['train_loglik']:.1f}, zeros {row['zero_cells']}"
            f"/{row['cells']} ({row['fit_s']} s, {row['steps']} steps)",
            flush=True,
        )

    if not args.tables_only:
        orders = {s: list(np.random.default_rng(s).permutation(others)) for s in seeds}
        for seed in seeds:
            for n in ns:
                frames = sum(
                    int((data.clip == data.clip_names.index(c)).sum()) for c in orders[seed][:n]
                )
                epochs = math.ceil(args.steps / math.ceil(frames / 64))
                throttle = max(1, round(args.throttle_frac * epochs))
                for name in models:
                    if (name, n, seed) not in done:
                        run_fit(name, name, n, seed, orders[seed], epochs, throttle, "")
        # the paper's training length (1000 epochs, throttle 25 epochs) on the most data
        if args.long_epochs > 0:
            for seed in seeds:
                for name in models:
                    label = f"{name} long"
                    if (label, max(ns), seed) not in done:
                        run_fit(
                            name, label, max(ns), seed, orders[seed], args.long_epochs, 25, "_long"
                        )
    rows = [r for r in rows if r["seed"] in seeds]
    if rows:
        write_tables(rows, out, ns, seeds, models, joint_names, args)
    else:
        print(f"no rows of seeds {', '.join(map(str, seeds))} in {csv_path}", file=sys.stderr)
    return rows


if __name__ == "__main__":
    main()
