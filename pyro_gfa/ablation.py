"""The ablation runner: one config file, a grid of data x models x priors x seeds.

A config (TOML) names the data, the runs (model + prior + parameters, each with an
optional hyperparameter grid), the seeds and the fit settings::

    name = "ssl_vs_horseshoe"
    seeds = [0, 1, 2]

    [data]
    name = "sparse_synthetic"        # see DATA: bars, sparse_synthetic, csv (path = a table
                                     # with a header line, as pyro-gfa fit reads)
    n = 1000
    grid = { rho = [0.0, 0.4, 0.8] } # data parameters to sweep

    [fit]
    epochs = 200

    [[runs]]
    label = "SSL"
    model = "sparse_vae"             # see MODELS
    model_params = { latent_dim = 5 }
    prior = "ssl"                    # see PRIORS
    prior_params = { lambda0 = 10.0, lambda1 = 1.0 }
    grid = { "prior.lambda0" = [5.0, 10.0] }   # optional: "model.*", "prior.*", "fit.*"

:func:`run_ablation` writes ``runs.csv`` (one row per run, appended as each run ends),
``summary.md`` (mean and standard deviation per setting) and one PNG per metric to the
output folder. A run whose key is already in ``runs.csv`` is not run again, so an
interrupted grid resumes where it stopped. A run that raises an error does not stop the
grid: its row holds the error (``error`` column, also listed in ``summary.md``) and the next
call runs it again. A Pyro model whose fit ended but whose scoring raised is saved under
``fits/<key>`` in the output folder (``pyro_gfa.load`` reads it), and the next call scores
that fit instead of fitting again.

Every run needs its own label (the default is ``"<model>/<prior>"``): runs sharing one would
be pooled as seeds of one setting. Unknown keys (top level or in a run) are errors.
"""

from __future__ import annotations

import csv
import hashlib
import inspect
import itertools
import json
import math
import shutil
import time
import tomllib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from . import metrics, priors
from .data.bars import bar_groups, make_bars
from .data.synthetic_sparse import make_sparse_vae_data


@dataclass
class Dataset:
    X: np.ndarray
    X_test: np.ndarray
    groups: Any = None
    Z_test: np.ndarray | None = None
    W_true: np.ndarray | None = None


def _bars(n: int = 2048, n_test: int = 2048, size: int = 8, seed: int = 0, **kw) -> Dataset:
    X, _ = make_bars(n, size=size, seed=seed, **kw)
    Xt, _ = make_bars(n_test, size=size, seed=seed + 10_000, **kw)
    return Dataset(X, Xt, groups=bar_groups(size), W_true=np.eye(size, dtype=bool))


def _sparse_synthetic(n: int = 1000, n_test: int = 1000, rho: float = 0.0, seed: int = 0, **kw):
    tr = make_sparse_vae_data(n=n, rho=rho, seed=seed, **kw)
    te = make_sparse_vae_data(n=n_test, rho=rho, seed=seed + 10_000, **kw)
    return Dataset(tr.X, te.X, Z_test=te.Z, W_true=tr.W_true)


def _csv(
    path: str, test_fraction: float = 0.2, seed: int = 0, groups=None, index_col=None
) -> Dataset:
    """A table as ``pyro-gfa fit`` reads it: a header line of column names, numeric columns
    (``index_col``: a column of row labels to leave out)."""
    import pandas as pd

    df = pd.read_csv(path, index_col=index_col)

    def number(label) -> bool:
        try:
            float(label)
        except ValueError:
            return False
        return True

    if all(number(c) for c in df.columns):  # a first row of data read as the header
        raise ValueError(
            f"the first line of {path} holds numbers, not column names: the csv data set"
            " reads a header line first (as pyro-gfa fit does)"
        )
    bad = [c for c in df.columns if not np.issubdtype(df[c].dtype, np.number)]
    if bad:
        raise ValueError(f"columns {bad[:5]} of {path} are not numeric (row labels? index_col)")
    X = df.to_numpy(dtype=np.float32)
    idx = np.random.default_rng(seed).permutation(len(X))
    n_test = int(round(test_fraction * len(X)))
    return Dataset(X[idx[n_test:]], X[idx[:n_test]], groups=groups)


DATA: dict[str, Callable[..., Dataset]] = {
    "bars": _bars,
    "sparse_synthetic": _sparse_synthetic,
    "csv": _csv,
}
#: the generators whose further keyword arguments a data set passes on
_DATA_PASSES_ON = {"bars": make_bars, "sparse_synthetic": make_sparse_vae_data}


def _data_parameters(name: str) -> list[str]:
    """The parameters ``[data]`` may set for data set ``name`` (its seed comes from ``seeds``)."""
    names = []
    for fn in (DATA[name], _DATA_PASSES_ON.get(name)):
        if fn is not None:
            names += [
                p.name
                for p in inspect.signature(fn).parameters.values()
                if p.kind is p.POSITIONAL_OR_KEYWORD or p.kind is p.KEYWORD_ONLY
            ]
    return sorted(set(names) - {"seed"})


def _model_classes() -> dict[str, Callable]:
    from . import models

    def grouped(cls):
        return lambda data, **p: cls(groups=p.pop("groups", data.groups), **p)

    def without_prior(name, make):
        def build(data, prior=None, **p):
            if prior is not None and not isinstance(prior, priors.NoPrior):
                raise ValueError(f'model {name!r} takes no prior on W; use prior = "none"')
            return make(data, **p)

        return build

    return {
        "nmf": without_prior("nmf", lambda data, **p: models.NMF(**p)),
        "lda": without_prior("lda", lambda data, **p: models.LDA(**p)),
        "oivae": grouped(models.OIVAE),
        "factvae": grouped(models.FactVAE),
        "sparse_vae": lambda data, **p: models.SparseVAE(n_features=data.X.shape[1], **p),
        "sparse_fa": lambda data, **p: models.SparseFA(**p),
        "vae": without_prior("vae", lambda data, **p: models.VAE(n_features=data.X.shape[1], **p)),
        "vsc": without_prior("vsc", lambda data, **p: models.VSC(n_features=data.X.shape[1], **p)),
    }


PRIORS: dict[str, Callable[..., priors.Prior]] = {
    "none": priors.NoPrior,
    "lasso": priors.Lasso,
    "group_lasso": priors.GroupLasso,
    "ssl": priors.SpikeSlabLasso,
    "horseshoe": priors.Horseshoe,
}

METRICS = (
    "test_mse",
    "test_nll",
    "dci_disentanglement",
    "support_f1",
    "nonzero_f1",
    "n_active",
    "n_exact_zero",
    "fit_s",
)


def _pick(registry: dict, name: str, kind: str) -> str:
    """The registry's name for ``name``, which may also be spelt as ``pyro-gfa fit`` spells
    it (``group-lasso``, ``sparsevae``)."""
    if name in registry:
        return name
    plain = {k.replace("_", ""): k for k in registry}
    key = str(name).replace("-", "").replace("_", "")
    if key in plain:
        return plain[key]
    raise ValueError(f"unknown {kind} {name!r}; valid names: {', '.join(sorted(registry))}")


CONFIG_KEYS = ("data", "fit", "name", "runs", "seeds")
RUN_KEYS = ("fit", "grid", "label", "model", "model_params", "prior", "prior_params")


def _check_keys(table: dict, allowed: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise ValueError(f"unknown key {key!r} in {where}; allowed: {', '.join(allowed)}")


def _label(run: dict) -> str:
    return run.get("label", f"{run.get('model')}/{run.get('prior', 'none')}")


def expand(config: dict) -> list[dict]:
    """All runs of a config: one dict per (data setting, run, grid point, seed).

    Parameters
    ----------
    config
        The config as a dict (see the module docstring).

    Returns
    -------
    list of dict
        One spec per run, each with a ``key`` that identifies it in ``runs.csv``.

    Raises
    ------
    ValueError
        On an unknown key or name, a missing section, bad seeds, or two runs sharing a label.
    """
    _check_keys(config, CONFIG_KEYS, "the config")
    for key in ("data", "runs"):
        if key not in config:
            raise ValueError(f"the config has no [{key}] section")
    seeds = config.get("seeds", [0])
    if not (isinstance(seeds, list) and seeds and all(type(s) is int for s in seeds)):
        raise ValueError(f"seeds must be a non-empty list of integers, got {seeds!r}")
    runs = config["runs"]
    if not (isinstance(runs, list) and runs and all(isinstance(r, dict) for r in runs)):
        raise ValueError("runs must be a list of tables: write each run as [[runs]], not [runs]")
    for section in ("data", "fit"):
        if not isinstance(config.get(section, {}), dict):
            raise ValueError(f"[{section}] must be a table, got {config[section]!r}")
        if "seed" in config.get(section, {}):
            raise ValueError(
                f"seed in [{section}]: every run's seed comes from seeds = [...] at the top"
            )
    labels: dict[str, int] = {}
    for i, run in enumerate(runs, 1):
        _check_keys(run, RUN_KEYS, f"[[runs]] {i}")
        label = _label(run)
        if label in labels:
            raise ValueError(
                f"[[runs]] {labels[label]} and {i} share the label {label!r}, so their results"
                " would be pooled as seeds of one setting; give each run its own label"
            )
        labels[label] = i
    data = dict(config["data"])
    data_name = data.pop("name", None)
    if data_name is None:
        raise ValueError("[data] needs a name")
    data_name = _pick(DATA, data_name, "data set")
    models = _model_classes()
    data_grid = data.pop("grid", {})
    data_points = _grid(data_grid, "[data] grid")
    allowed = _data_parameters(data_name)
    unknown = sorted((set(data) | set(data_grid)) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {unknown} of data set {data_name!r}; it takes:"
            f" {', '.join(allowed)}"
        )
    fit = dict(config.get("fit", {}))
    out = []
    for data_point in data_points:
        for i, run in enumerate(runs, 1):
            model = _pick(models, run.get("model", ""), "model")
            prior = _pick(PRIORS, run.get("prior", "none"), "prior")
            for point in _grid(run.get("grid", {}), f"the grid of [[runs]] {i}"):
                spec = {
                    "label": _label(run),
                    "data": data_name,
                    "data_params": {**data, **data_point},
                    "model": model,
                    "model_params": dict(run.get("model_params", {})),
                    "prior": prior,
                    "prior_params": dict(run.get("prior_params", {})),
                    "fit": {**fit, **run.get("fit", {})},
                }
                for dotted, value in point.items():
                    section, _, key = dotted.partition(".")
                    target = {"model": "model_params", "prior": "prior_params", "fit": "fit"}
                    if section not in target or not key:
                        raise ValueError(
                            f"grid key {dotted!r} must start with 'model.', 'prior.' or 'fit.'"
                        )
                    spec[target[section]][key] = value
                spec["grid"] = point
                for seed in seeds:
                    s = dict(spec, seed=seed)
                    s["key"] = hashlib.sha1(
                        json.dumps(s, sort_keys=True, default=str).encode()
                    ).hexdigest()[:16]
                    out.append(s)
    return out


def _grid(grid: dict, where: str) -> list[dict]:
    if not isinstance(grid, dict):
        raise ValueError(f"{where} must be a table of name = [values], got {grid!r}")
    for k, v in grid.items():
        if not (isinstance(v, list) and v):
            raise ValueError(f"{where}: {k} must be a non-empty list of values, got {v!r}")
    keys = list(grid)
    return [dict(zip(keys, vals)) for vals in itertools.product(*(grid[k] for k in keys))]


def run_one(spec: dict, progress: bool = False, fits: Path | None = None) -> dict:
    """Fit one model and compute its metrics.

    With ``fits``, a Pyro model whose metrics raise after its fit is saved to
    ``fits/<key>`` with its fit time before the error goes on, and a later call takes the fit
    from there instead of fitting again (the folder goes once the run is scored).
    """
    from .io import load
    from .models.base import Estimator

    data = DATA[spec["data"]](**spec["data_params"], seed=spec["seed"])
    saved = None if fits is None else fits / spec["key"]
    reused = saved is not None and (saved / "fit_s").exists()
    if reused:
        model, fit_s = load(saved), float((saved / "fit_s").read_text())
    else:
        prior = PRIORS[spec["prior"]](**spec["prior_params"])
        model = _model_classes()[spec["model"]](data, prior=prior, **spec["model_params"])
        t0 = time.perf_counter()
        model.fit(data.X, seed=spec["seed"], progress=progress, **spec["fit"])
        if getattr(model, "interrupted_", False):  # Ctrl-C stops the grid; the run is not kept
            raise KeyboardInterrupt
        fit_s = time.perf_counter() - t0
    try:
        row = {"fit_s": fit_s, **_score(model, data, spec)}
    except Exception as e:
        if saved is not None and isinstance(model, Estimator):
            if not reused:
                if saved.exists():  # what an interrupted earlier save left
                    shutil.rmtree(saved)
                saved.parent.mkdir(parents=True, exist_ok=True)
                model.save(saved)
                (saved / "fit_s").write_text(repr(fit_s))  # last: marks a complete save
            e.add_note(f"(the fitted model is saved in {saved}; the next call scores it)")
        raise
    if saved is not None and saved.exists():
        shutil.rmtree(saved)
        if not any(fits.iterdir()):
            fits.rmdir()
    return row


def _score(model, data: Dataset, spec: dict) -> dict:
    row = {"test_mse": metrics.mse(data.X_test, model.reconstruct(data.X_test))}
    # log p(x): importance-sampled for the deep models, exact for SparseFA (which ignores
    # num_samples); LDA's is a plug-in estimate, not comparable, so it is left out
    if hasattr(model, "log_likelihood") and spec["model"] != "lda":
        row["test_nll"] = float(-model.log_likelihood(data.X_test, num_samples=50).mean())
    support = model.support()
    row["n_active"] = int(support.sum())
    row["n_exact_zero"] = int((model.loadings() == 0).sum())
    if data.Z_test is not None:
        z = model.transform(data.X_test)
        row["dci_disentanglement"] = metrics.dci(z, data.Z_test, seed=spec["seed"]).disentanglement
    if data.W_true is not None and support.shape[0] == data.W_true.shape[0]:
        row["support_f1"] = metrics.support_f1(support, data.W_true).f1
        # the pattern of exact non-zeros, whatever the prior's own support rule says
        row["nonzero_f1"] = metrics.support_f1(model.loadings() != 0, data.W_true).f1
    return row


def run_ablation(
    config: dict | str | Path, out: str | Path | None = None, progress: bool = True
) -> list[dict]:
    """Run every run of ``config`` not yet done in ``out/runs.csv``; write the summary and plots.

    Parameters
    ----------
    config
        A config dict or the path of a TOML file (see the module docstring).
    out
        Output folder (default ``results/ablation/<name>``).
    progress
        Show a progress bar over the runs.

    Returns
    -------
    list of dict
        Every row of ``runs.csv`` for this config (earlier runs included). A run that raised
        has its ``"ExceptionType: message"`` in ``"error"`` and no metrics; the others have
        ``""`` there.

    Notes
    -----
    An exception in one run is recorded and the grid goes on; rows that hold an error are
    run again by the next call, which takes the fit of a Pyro model whose scoring failed from
    ``out/fits/<key>`` instead of fitting again. ``KeyboardInterrupt`` stops the grid
    (finished runs are kept).
    """
    if not isinstance(config, dict):
        with open(config, "rb") as f:
            config = tomllib.load(f)
    specs = expand(config)
    out = Path(out or Path("results/ablation") / config.get("name", "ablation"))
    out.mkdir(parents=True, exist_ok=True)
    path = out / "runs.csv"
    earlier = _read(path)
    kept = [r for r in earlier if not r.get("error")]  # failed runs are tried again
    done = {r["key"] for r in kept}
    todo = [s for s in specs if s["key"] not in done]
    fields = ["key", "label", "seed", "data", "model", "prior", "setting", *METRICS, "error"]
    if earlier and (list(earlier[0]) != fields or len(kept) < len(earlier)):
        _write(path, fields, kept)  # same columns as now (another version), old errors out
    for spec in tqdm(todo, disable=not progress, desc="ablation"):
        try:
            with warnings.catch_warnings():
                # the same warning of every run of a grid (e.g. a small test set) says it once
                warnings.simplefilter("once")
                row = run_one(spec, fits=out / "fits")
        except Exception as e:  # noqa: BLE001 - one bad run must not stop the grid
            row = {"error": " ".join([f"{type(e).__name__}: {e}", *getattr(e, "__notes__", [])])}
        setting = {**spec["data_params"], **spec["grid"]}
        row.update(
            key=spec["key"],
            label=spec["label"],
            seed=spec["seed"],
            data=spec["data"],
            model=spec["model"],
            prior=spec["prior"],
            setting=json.dumps(setting, sort_keys=True),
        )
        new = not path.exists()
        with open(path, "a", newline="") as f:  # one row as each run ends: resumable
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)
    rows = _read(path)
    keys = {s["key"] for s in specs}
    rows = [r for r in rows if r["key"] in keys]
    (out / "summary.md").write_text(summarise(rows))
    plot(rows, out)
    return rows


def _write(path: Path, fields: list[str], rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def _read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _stats(rows: list[dict]) -> dict[tuple[str, str], dict[str, tuple[float, float, int]]]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["setting"], r["label"]), []).append(r)
    out = {}
    for key, rs in groups.items():
        out[key] = {}
        for m in METRICS:
            vals = [float(r[m]) for r in rs if r.get(m) not in (None, "")]
            if vals:
                sd = float(np.std(vals, ddof=1)) if len(vals) > 1 else math.nan
                out[key][m] = (float(np.mean(vals)), sd, len(vals))
    return out


def summarise(rows: list[dict]) -> str:
    """Markdown table: mean +- sd (n) of every metric per setting and label.

    Parameters
    ----------
    rows
        Rows of ``runs.csv``; those with an ``error`` are listed in a second table.

    Returns
    -------
    str
        The markdown text.
    """
    stats = {k: v for k, v in _stats(rows).items() if v}  # failed runs have no metrics
    present = [m for m in METRICS if any(m in v for v in stats.values())]
    lines = [
        "| " + " | ".join(["setting", "run", *present]) + " |",
        "|" + "---|" * (2 + len(present)),
    ]
    if not stats:
        lines = ["No run has finished."]
    for (setting, label), st in sorted(stats.items()):
        cells = [
            f"{st[m][0]:.4g} ± {st[m][1]:.2g} ({st[m][2]})" if m in st else "-" for m in present
        ]
        lines.append("| " + " | ".join([setting, label, *cells]) + " |")
    failed = [r for r in rows if r.get("error")]
    if failed:
        lines += ["", f"Failed runs ({len(failed)}), without metrics:", ""]
        lines += ["| setting | run | seed | error |", "|---|---|---|---|"]
        for r in sorted(failed, key=lambda r: (r["setting"], r["label"], int(r["seed"]))):
            error = " ".join(r["error"].split()).replace("|", "\\|")  # one table cell
            lines.append(f"| {r['setting']} | {r['label']} | {r['seed']} | {error} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], out: Path) -> None:
    """One PNG per metric: mean +- sd against the swept setting, one line per run label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = _stats(rows)
    settings = sorted({s for s, _ in stats})
    labels = sorted({lab for _, lab in stats})
    parsed = [json.loads(s) for s in settings]
    keys = {k for p in parsed for k in p}
    varying = [k for k in sorted(keys) if len({json.dumps(p.get(k)) for p in parsed}) > 1]
    # a numeric x axis when one parameter is swept, every setting has it and it is a number
    xkey = varying[0] if len(varying) == 1 else None
    if xkey and not all(
        isinstance(p.get(xkey), (int, float)) and not isinstance(p.get(xkey), bool) for p in parsed
    ):
        xkey = None
    for m in METRICS:
        if not any(m in v for v in stats.values()):
            continue
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for j, lab in enumerate(labels):
            pts = [(i, s) for i, s in enumerate(settings) if m in stats.get((s, lab), {})]
            if not pts:
                continue
            xs = [parsed[i][xkey] if xkey else i for i, _ in pts]
            mean = np.array([stats[(s, lab)][m][0] for _, s in pts])
            sd = np.nan_to_num(np.array([stats[(s, lab)][m][1] for _, s in pts]))
            offset = 0 if xkey else (j - (len(labels) - 1) / 2) * 0.8 / len(labels)
            ax.errorbar(
                np.asarray(xs, float) + offset,
                mean,
                yerr=sd,
                marker="o",
                capsize=3,
                ls="-" if xkey else "none",  # no line between unordered settings
                label=lab,
            )
        ax.set_xlabel(xkey or "setting")
        if not xkey:  # what differs between the settings, not their common prefix
            names = [", ".join(f"{k}={p.get(k)}" for k in varying) or "all" for p in parsed]
            ax.set_xticks(range(len(settings)), names, rotation=30, ha="right", fontsize=6)
        ax.set_ylabel(m)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / f"{m}.png", dpi=110)
        plt.close(fig)
