"""The ``pyro-gfa`` command line.

``pyro-gfa fit`` fits a model to a CSV file and writes the fitted model, its loadings
table, the top groups per factor, the training history and the figures to an output
folder. Run ``pyro-gfa fit --help`` for the options.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

MODELS = {"oivae": "OIVAE", "factvae": "FactVAE", "jmvae": "JMVAEPlus", "sparsevae": "SparseVAE"}
PRIORS = ("group-lasso", "lasso", "none", "ssl", "horseshoe")
# the prior each model uses when none is given (a test checks these against the models)
DEFAULT_PRIOR = {
    "oivae": "group-lasso",
    "factvae": "group-lasso",
    "jmvae": "none",
    "sparsevae": "ssl",
}

DESCRIPTION = """\
Fit an interpretable deep generative factor model to a table of numbers.

The data file is a CSV with one row per observation and one column per feature; the first
line holds the column names. The groups file (JSON) says which columns belong together,
e.g. {"arm": ["shoulder", "elbow"], "leg": ["hip", "knee"]}, or a list of group sizes for
consecutive columns, e.g. [3, 3, 2]. Without a groups file every column is its own group.

The output folder receives:
  model.zip          the fitted model (load it with pyro_gfa.load("model.zip"))
  loadings.csv       strength of every factor on every group (rows) and latent (columns);
                     for sparsevae, the signed mask entry of every feature
  top_factors.csv    the strongest groups of every factor
  variance_explained.csv
                     R^2 of every group (rows) per latent and in all ("total"), on the
                     held-out rows when there are any, else on the training rows
  history.csv        training loss (and held-out ELBO) per epoch
  summary.json       settings (--standardize included), timings and per-row ELBO on the
                     training/held-out rows
  standardize.csv    with --standardize: the mean and sd of every column; new rows x go
                     into the model as (x - mean) / sd
  figures/*.png      loadings heatmap, top groups per factor, variance explained,
                     factor-group graph, training curves, reconstructions
"""

EXAMPLES = """\
examples:
  pyro-gfa fit --data joints.csv --groups groups.json --latent-dim 4 --out results/
  pyro-gfa fit --data joints.csv --groups groups.json --lam 2 --epochs 500 --val-fraction 0.2 \\
      --patience 20 --out results/
  pyro-gfa fit --model sparsevae --data genes.csv --prior ssl --latent-dim 5 --out results/
  pyro-gfa fit --data x.csv --set generator_hidden=[16] --set encoder_hidden=[32] --out out/
"""


def _number(cast, ok, what: str):
    """An argparse type: ``cast`` the text and refuse a value that is not ``what``."""

    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    return parse


_positive_int = _number(int, lambda v: v > 0, "a positive integer")
_count = _number(int, lambda v: v >= 0, "an integer >= 0")
_positive = _number(float, lambda v: math.isfinite(v) and v > 0, "a positive number")
_non_negative = _number(float, lambda v: math.isfinite(v) and v >= 0, "a number >= 0")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyro-gfa",
        description="pyro-gfa: interpretable deep generative factor models (oi-VAE, factVAE,"
        " Sparse VAE) in Pyro.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    fit = sub.add_parser(
        "fit",
        help="fit a model to a CSV file and write the results to a folder",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d = fit.add_argument_group("data")
    d.add_argument("--data", required=True, type=Path, help="CSV file, one row per observation")
    d.add_argument("--groups", type=Path, help="JSON file: {name: [columns]} or [sizes]")
    d.add_argument(
        "--index-col",
        default=None,
        help="name or number of a CSV column holding row labels (not a feature)",
    )
    d.add_argument(
        "--standardize",
        action="store_true",
        help="centre every column and scale it to unit variance before fitting; the means and"
        " sds are written to standardize.csv",
    )
    d.add_argument(
        "--val-fraction",
        type=float,
        default=0.0,
        help="fraction of rows held out to score the fit (and for --patience); default 0",
    )
    m = fit.add_argument_group("model")
    # the ablation config's spellings (sparse_vae, group_lasso) are accepted too
    m.add_argument(
        "--model",
        type=lambda s: s.replace("_", ""),
        choices=sorted(MODELS),
        default="oivae",
        help="default: oivae",
    )
    m.add_argument(
        "--latent-dim", "-k", type=_positive_int, default=4, help="number of factors K (default 4)"
    )
    m.add_argument(
        "--prior",
        type=lambda s: s.replace("_", "-"),
        choices=PRIORS,
        default=None,
        help="sparsity prior (default: the model's own, group-lasso for oivae)",
    )
    m.add_argument(
        "--lam",
        type=_non_negative,
        default=None,
        help="rate of --prior lasso or group-lasso (default 1); without --prior, only for"
        " models whose default prior is group-lasso (oivae, factvae)",
    )
    m.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other model argument, the value in JSON, e.g. --set generator_hidden=[16]",
    )
    t = fit.add_argument_group("training")
    t.add_argument(
        "--epochs", type=_positive_int, default=100, help="passes over the data (default 100)"
    )
    t.add_argument(
        "--batch-size", type=_positive_int, default=64, help="rows per step (default 64)"
    )
    t.add_argument("--lr", type=_positive, default=None, help="Adam step size of the networks")
    t.add_argument(
        "--sparse-lr", type=_positive, default=None, help="step size on the sparse matrix"
    )
    t.add_argument(
        "--patience",
        type=_positive_int,
        default=None,
        help="with --val-fraction: stop after this many epochs without a better held-out ELBO",
    )
    t.add_argument(
        "--checkpoint-every",
        type=_count,
        default=0,
        help="save the model to the output folder every N epochs (0: only at the end)",
    )
    t.add_argument("--seed", type=_count, default=0, help="random seed (default 0)")
    t.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    t.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads")
    o = fit.add_argument_group("output")
    o.add_argument("--out", required=True, type=Path, help="output folder (created)")
    o.add_argument(
        "--top-k", type=_positive_int, default=3, help="groups listed per factor (default 3)"
    )
    o.add_argument("--no-plots", action="store_true", help="do not draw figures")
    o.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    ab = sub.add_parser(
        "ablate",
        help="run an ablation grid from a TOML config (resumes an interrupted grid)",
        description="Run every (data setting, model, prior, hyperparameter, seed) of a TOML"
        " config; write runs.csv (one row per run), summary.md (mean and sd) and one PNG per"
        " metric. Runs already in runs.csv are skipped, so rerunning resumes. A run that"
        " fails is recorded (error column) and the others go on; the exit status is then 1 and"
        " a rerun tries the failed runs again (a Pyro model whose fit ended but whose scoring"
        " failed is kept in fits/ and scored without a new fit). See benchmarks/ablations/ for"
        " examples and pyro_gfa/ablation.py for the format.",
    )
    ab.add_argument("config", type=Path, help="TOML file")
    ab.add_argument("--out", type=Path, default=None, help="default: results/ablation/<name>")
    ab.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads")
    ab.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    return parser


def cmd_ablate(args) -> int:
    import tomllib

    import torch

    from .ablation import run_ablation

    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.config.exists():
        _fail(f"no such config file: {args.config}")
    try:
        rows = run_ablation(args.config, out=args.out, progress=not args.quiet)
    except (ValueError, tomllib.TOMLDecodeError) as e:
        _fail(f"{args.config}: {e}")
    failed = sum(bool(r["error"]) for r in rows)
    if failed:
        print(
            f"pyro-gfa: error: {failed} of {len(rows)} runs failed; their errors are in the"
            " error column of runs.csv and in summary.md (a rerun tries them again)",
            file=sys.stderr,
        )
        return 1
    return 0


def _fail(msg: str) -> None:
    print(f"pyro-gfa: error: {msg}", file=sys.stderr)
    raise SystemExit(2)


def _read_data(args):
    import pandas as pd

    if not args.data.exists():
        _fail(f"no data file {args.data}")
    index_col: Any = args.index_col
    if index_col is not None and str(index_col).isdigit():
        index_col = int(index_col)
    try:
        df = pd.read_csv(args.data, index_col=index_col)
    except Exception as e:  # noqa: BLE001 - report any parse error plainly
        _fail(f"cannot read {args.data} as CSV: {e}")
    for c in df.columns:
        unnamed = re.fullmatch(r"Unnamed: (\d+)", str(c))  # pandas' name for an empty header
        if unnamed:
            n = int(unnamed.group(1))
            msg = f"column {n + 1} of {args.data} has no name in the header line"
            if n == 0:
                msg += "; if it holds row labels (pandas' to_csv writes them), pass --index-col 0"
            _fail(msg)
    if df.shape[0] == 0:
        _fail(f"{args.data} has no data rows")
    bad = [c for c in df.columns if not np.issubdtype(df[c].dtype, np.number)]
    if bad:
        _fail(
            f"columns {bad[:5]} of {args.data} are not numeric; drop them or pass the row"
            " label column with --index-col"
        )
    df.columns = [str(c) for c in df.columns]
    limit = np.finfo(np.float32).max  # the cast below would make them infinite
    big = list(df.columns[(df.abs() > limit).any()])
    if big:
        _fail(
            f"columns {big[:5]} of {args.data} have values beyond the float32 range ({limit:.3g})"
        )
    return df.astype(np.float32)


def _read_groups(args, df):
    from .io import groups_from

    if args.groups is not None and args.model == "sparsevae":
        _fail("sparsevae has a loading per feature, not per group: --groups does not apply")
    if args.groups is None:
        return groups_from(df, {c: [c] for c in df.columns})
    try:
        spec = json.loads(args.groups.read_text())
    except FileNotFoundError:
        _fail(f"no groups file {args.groups}")
    except json.JSONDecodeError as e:
        _fail(f"{args.groups} is not valid JSON: {e}")
    try:
        return groups_from(df, spec)
    except (ValueError, TypeError) as e:
        _fail(f"groups in {args.groups} do not fit the data: {e}")


def _prior(args):
    from . import priors

    name = args.prior or DEFAULT_PRIOR[args.model]
    if args.lam is not None and name not in ("lasso", "group-lasso"):
        whose = f" ({args.model}'s default)" if args.prior is None else ""
        _fail(
            "--lam is the rate of --prior lasso or group-lasso; it does not apply to the"
            f" {name} prior{whose}"
        )
    if name == DEFAULT_PRIOR[args.model] and args.lam is None:
        return None  # the model's own default, with its own settings (named or not)
    lam = 1.0 if args.lam is None else args.lam
    if name == "group-lasso":
        return priors.GroupLasso(lam)
    if name == "lasso":
        return priors.Lasso(lam)
    if name == "none":
        return priors.NoPrior()
    cls_name = {"ssl": "SpikeSlabLasso", "horseshoe": "Horseshoe"}[name]
    cls = getattr(priors, cls_name, None)
    if cls is None:
        _fail(f"the {name} prior is not available in this version of pyro-gfa")
    return cls()


def _extra(args) -> dict:
    out = {}
    for item in args.set:
        if "=" not in item:
            _fail(f"--set needs NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        python = {"True": "true", "False": "false", "None": "null"}
        if v.strip() in python:  # else the string "False", which is truthy
            _fail(f"--set values are JSON: write {k}={python[v.strip()]}, not {item}")
        try:
            out[k.strip().replace("-", "_")] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip().replace("-", "_")] = v
    return out


def _build(args, df, groups):
    import pyro_gfa

    cls = getattr(pyro_gfa, MODELS[args.model], None)
    if cls is None:
        _fail(f"model {args.model} is not available in this version of pyro-gfa")
    params = inspect.signature(cls.__init__).parameters
    kw: dict[str, Any] = {"latent_dim": args.latent_dim}
    if "groups" in params:
        kw["groups"] = groups
    elif "n_features" in params:
        kw["n_features"] = df.shape[1]
    prior = _prior(args)
    if prior is not None:
        kw["prior"] = prior
    extra = _extra(args)
    unknown = [k for k in extra if k not in params]
    if unknown:
        _fail(
            f"{cls.__name__} has no argument(s) {unknown}; it takes"
            f" {[p for p in params if p != 'self']}"
        )
    kw.update(extra)
    try:
        return cls(**kw)
    except (ValueError, TypeError) as e:
        _fail(f"cannot build {cls.__name__}: {e}")


def _json_value(v: Any) -> Any:
    """``v`` as JSON holds it (tuples as lists; groups as name -> column indices), else its
    ``repr`` (priors)."""
    from .data.groups import Groups

    if isinstance(v, Groups):
        return {name: ix.tolist() for name, ix in zip(v.names, v.index)}
    try:
        return json.loads(json.dumps(v))
    except (TypeError, ValueError):
        return repr(v)


def _write_outputs(model, df_train, df_val, out: Path, args, fit_s: float) -> None:
    import pandas as pd

    from . import metrics, plots

    model.save(out / "model.zip")
    model.loadings_frame().to_csv(out / "loadings.csv")
    plots.top_units(model, k=args.top_k).to_csv(out / "top_factors.csv", index=False)
    pd.DataFrame(model.history_).to_csv(out / "history.csv", index=False)
    # rows as in loadings.csv: the model's groups, or every feature
    ve = metrics.variance_explained(
        model,
        df_train if df_val is None else df_val,
        groups=None if model.group_names else "features",
    )
    ve.frame().to_csv(out / "variance_explained.csv")
    support = model.support()
    summary: dict[str, Any] = {
        "model": type(model).__name__,
        "config": {k: _json_value(v) for k, v in model.get_config().items()},
        "n_rows_train": int(df_train.shape[0]),
        "n_rows_val": 0 if df_val is None else int(df_val.shape[0]),
        "n_features": int(df_train.shape[1]),
        "epochs_run": len(model.history_),
        "interrupted": model.interrupted_,
        "best_epoch": model.best_epoch_,
        "fit_seconds": round(fit_s, 2),
        "active_connections": int(support.sum()),
        "active_factors": int(support.any(0).sum()),
        "train_elbo_per_row": float(np.mean(model.elbo(df_train, num_samples=5))),
        "seed": args.seed,
        "standardize": args.standardize,
    }
    if df_val is not None:
        summary["val_elbo_per_row"] = float(np.mean(model.elbo(df_val, num_samples=5)))
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    fig_dir = out / "figures"
    figures = {
        "loadings": lambda: plots.plot_loadings(model),
        "top_factors": lambda: plots.plot_top_units(model, k=args.top_k),
        # rows and factors as in the loadings figure
        "variance_explained": lambda: plots.plot_variance_explained(
            ve, order=plots.factor_order(model.loadings())
        ),
        "factor_graph": lambda: plots.plot_factor_graph(model),
        "history": lambda: plots.plot_history(model),
        "reconstructions": lambda: plots.plot_reconstructions(model, df_train),
    }
    if args.no_plots:  # an earlier run's figures in this folder would not show this fit
        for name in figures:
            (fig_dir / f"{name}.png").unlink(missing_ok=True)
        return
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig_dir.mkdir(exist_ok=True)
    for name, draw in figures.items():
        fig = draw()
        fig.savefig(fig_dir / f"{name}.png", dpi=110)
        plt.close(fig)


def cmd_fit(args) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if not 0.0 <= args.val_fraction < 1.0:
        _fail(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    if args.patience is not None and args.val_fraction == 0:
        _fail("--patience needs held-out rows: pass --val-fraction too")
    df = _read_data(args)
    scale = None
    if args.standardize:
        import pandas as pd

        # a constant column is centred, not scaled: its sd is recorded as 1
        scale = pd.DataFrame({"mean": df.mean(0), "sd": df.std(0).replace(0, 1.0)})
        df = ((df - scale["mean"]) / scale["sd"]).astype(np.float32)
    groups = _read_groups(args, df)
    model = _build(args, df, groups)
    rng = np.random.default_rng(args.seed)
    n_val = int(round(args.val_fraction * len(df)))
    if args.val_fraction > 0 and not 0 < n_val < len(df):
        _fail(
            f"--val-fraction {args.val_fraction} of {len(df)} rows leaves {n_val} held-out and"
            f" {len(df) - n_val} training rows; both need at least one"
        )
    perm = rng.permutation(len(df))
    df_val = df.iloc[np.sort(perm[:n_val])] if n_val else None
    df_train = df.iloc[np.sort(perm[n_val:])]
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    if scale is not None:  # before the fit: a checkpoint of a failed fit needs it too
        scale.to_csv(out / "standardize.csv", index_label="column")
    else:  # an earlier run's, which would tell users to standardise rows for this model
        (out / "standardize.csv").unlink(missing_ok=True)
    fit_kw: dict[str, Any] = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "sparse_lr": args.sparse_lr,
        "seed": args.seed,
        "device": args.device,
        "progress": not args.quiet,
    }
    if df_val is not None:
        fit_kw.update(validation_data=df_val, patience=args.patience)
    if args.checkpoint_every:
        fit_kw.update(checkpoint=out / "model.zip", checkpoint_every=args.checkpoint_every)
    params = inspect.signature(model.fit).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    dropped = [k for k in fit_kw if not takes_all and k not in params]
    if [k for k in dropped if k not in ("lr", "sparse_lr")]:
        print(
            f"pyro-gfa: warning: {type(model).__name__}.fit does not take {dropped}; ignoring them",
            file=sys.stderr,
        )
    t0 = time.perf_counter()
    try:
        model.fit(df_train, **{k: v for k, v in fit_kw.items() if k not in dropped})
    except Exception as e:
        kept = ""
        if model.history_:  # the model kept its last completed epoch: keep it for the user
            import pandas as pd

            if not args.checkpoint_every:  # else fit has saved it there already
                model.save(out / "model.zip")
            pd.DataFrame(model.history_).to_csv(out / "history.csv", index=False)
            kept = (
                f"the model of the last completed epoch, {len(model.history_)}, and its"
                f" history are saved in {out}/"
            )
        if not isinstance(e, (ValueError, FloatingPointError)):  # not the user's to fix
            if kept:
                e.add_note(f"pyro-gfa: {kept}")
            raise
        msg = f"fitting {type(model).__name__} failed: {e}"
        if isinstance(e, FloatingPointError) and "before any update" in str(e):
            msg += "; try --standardize"  # no step size matters before the first step
        elif isinstance(e, FloatingPointError):
            msg += "; try a smaller --lr or --sparse-lr"
        _fail(msg + (f" ({kept})" if kept else ""))
    fit_s = time.perf_counter() - t0
    if model.interrupted_ and not model.history_:
        print("pyro-gfa: interrupted before the first epoch completed", file=sys.stderr)
        return 130  # the shell's code for Ctrl-C, so that scripts stop
    _write_outputs(model, df_train, df_val, out, args, fit_s)
    if model.interrupted_:
        print(
            f"pyro-gfa: interrupted after {len(model.history_)} epochs; the model of the last"
            f" completed epoch and its results are in {out}/",
            file=sys.stderr,
        )
        return 130
    if not args.quiet:
        print(f"fitted {type(model).__name__} in {fit_s:.1f} s; results in {out}/")
        print(model.loadings_frame().round(3).to_string())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pyro-gfa`` command."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        print(f"pyro-gfa {__version__}")
        return 0
    if args.command is None:
        parser.print_help()
        return 1
    if args.command == "fit":
        return cmd_fit(args)
    if args.command == "ablate":
        return cmd_ablate(args)
    parser.error(f"unknown command {args.command}")  # pragma: no cover
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
