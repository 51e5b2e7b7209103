"""What every model shares: the module protocol and the estimator API.

Scaling of the objective
------------------------
Every model's Pyro objective, per step, is

    mean over the batch of [log p(x_i | z_i) + log p(z_i) - log q(z_i | x_i)]
      + prior_weight * [log p(W) + log p(theta)]

which is the collapsed objective of the oi-VAE paper (its eq. 8) when ``prior_weight = 1``
(``prior_scale="paper"``, the default of the oi-VAE and factVAE), and the log posterior
divided by ``N`` when ``prior_weight = 1 / N`` (``prior_scale="posterior"``). The papers'
values of ``lam`` are on the first scale. The per-row quantities (``elbo``,
``log_likelihood``) do not depend on this choice.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import os
import reprlib
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from .._checks import check_bool, check_float, check_int, check_seed
from ..data.groups import Groups
from ..inference import elbo_rows, expected_log_lik_rows, log_likelihood_rows, train
from ..priors import NoPrior, Prior, cell_norms

if TYPE_CHECKING:  # optional and slow to import: for the annotations only
    import arviz
    import xarray


class GFAModule(nn.Module):
    """Protocol of a model the training loop can fit.

    A subclass defines ``W`` (an ``nn.Parameter`` of shape ``(G, r, K)``), ``prior`` (a
    :class:`~pyro_gfa.priors.Prior`), ``model(*batch)`` and ``guide(*batch)`` (Pyro
    callables with local sites inside ``pyro.plate("data", ...)``), ``encode(x)`` returning
    the posterior mean and standard deviation of ``z`` and ``decode(z)`` returning the mean
    of ``x``. The guide multiplies its standard deviations by ``std_multiplier``.

    Attributes
    ----------
    W : torch.nn.Parameter
        ``(G, r, K)`` sparse matrix: ``G`` groups (or features), ``r`` rows per cell (``p``
        for the oi-VAE, ``p + H`` for the factVAE, 1 for the Sparse VAE), ``K`` latents.
        It takes the proximal step of :class:`~pyro_gfa.inference.ProximalSGD`; every
        other parameter takes Adam.
    prior : Prior
        The sparsity prior on ``W`` (this module's own copy).
    std_multiplier : float
        Factor on the posterior standard deviations: ``std_throttle`` (default 0.1) during
        the first ``throttle_epochs`` epochs of the fit's history, else 1.
    prior_weight : float
        Weight of the global log-prior factors in the objective: 1 with
        ``prior_scale="paper"``, ``1 / N_train`` (training rows, not the batch) with
        ``"posterior"``; see the module docstring.
    latent_dim : int
        ``K``.

    Notes
    -----
    The methods of the protocol, for a batch of ``N`` rows with ``D`` columns (the tensors
    of the estimator's ``_tensors``: ``x`` alone, or ``(x, observed)`` for the factVAE):

    ``model(*batch) -> None``
        The generative model. Global log-prior factors (``"W_prior"``, ...) are weighted by
        ``prior_weight``; the sample sites ``"z"`` (``(N, K)``) and ``"x"`` (observed,
        ``(N, D)``) lie inside ``pyro.plate("data", N)`` under ``poutine.scale(1 / N)``, so
        the ELBO is the per-row mean plus the weighted priors. (The Sparse VAE, VAE and VSC
        also scale ``"z"`` by ``kl_weight``, beta times the KL warm-up, in model and guide:
        with ``beta != 1`` or a warm-up the objective is a weighted ELBO. The evaluation
        functions of :mod:`pyro_gfa.inference` remove every scale.)
    ``guide(*batch) -> None``
        The amortised posterior ``q(z | x)``: site ``"z"`` in the same plate and scale.
    ``encode(*batch) -> (loc, scale)``
        ``(N, K)`` mean and standard deviation of ``q(z | x)``.
    ``decode(z) -> Tensor``
        ``(..., D)`` mean of ``p(x | z)`` for codes ``z`` of shape ``(..., K)``; for the
        count likelihoods, whose mean needs the row total, the composition (rows sum to 1).
    ``sample_x(z) -> Tensor``
        ``(..., D)`` draws of ``x ~ p(x | z)``.
    ``loss(*batch) -> Tensor`` (optional)
        The scalar negative objective of ``model``/``guide`` in plain torch (same value
        and gradient for the same random draws); when present the training loop uses it
        instead of Pyro's ELBO (unless ``pyro_elbo=True`` or ``num_particles > 1``).
    ``start_epoch(epoch) -> None`` (optional)
        Called by the training loop before every epoch (warm-up schedules), after
        ``std_multiplier`` is set; ``epoch`` is the 0-based index of the epoch in the fit's
        history, which goes on counting across ``warm_start`` fits.
    """

    std_multiplier: float = 1.0
    prior_weight: float = 1.0
    latent_dim: int

    def loadings(self) -> torch.Tensor:
        """Strength of every factor on every group (or feature).

        Returns
        -------
        Tensor
            ``(G, K)`` Euclidean norms ``||W[g, :, k]||`` of the cells of ``W`` (detached).
        """
        return cell_norms(self.W.detach())


def user_stacklevel() -> int:
    """The ``stacklevel`` at which ``warnings.warn``, called by the caller of this
    function, names the first line outside this package: the user's call."""
    package = str(Path(__file__).resolve().parents[1]) + os.sep
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.realpath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def resolve_device(device: str | torch.device) -> torch.device:
    """The device a fit runs on.

    Parameters
    ----------
    device
        ``"auto"`` (CUDA when available, else the CPU) or anything ``torch.device``
        accepts (``"cpu"``, ``"cuda:1"``, a ``torch.device``).

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        An unknown device, or a CUDA device this machine does not have.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from e
    if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
        have = torch.cuda.device_count()
        raise ValueError(
            f"device {str(dev)!r}: this machine has {have} CUDA device(s)"
            + ("" if have else " (or this PyTorch build has no CUDA)")
            + "; use device='auto' or 'cpu'"
        )
    return dev


@contextlib.contextmanager
def seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Run a block with torch's RNG seeded, restoring the caller's RNG state afterwards.

    Parameters
    ----------
    seed
        Seed of the block; ``None`` runs it on the global RNG, which is not reset.
    device
        The device of the block. The CPU's RNG is seeded, and a CUDA ``device``'s too;
        no other device's RNG is touched.
    """
    if check_seed(seed) is None:
        yield
        return
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        # not torch.manual_seed: it reseeds every CUDA device, which fork_rng would not restore
        torch.random.default_generator.manual_seed(seed)
        if devices:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield


def check_matrix(
    X: Any,
    n_features: int | None,
    *,
    name: str = "X",
    allow_nan: bool = False,
    dtype: type = np.float32,
    names: Sequence[str] | None = None,
    columns: str = "features",
    note: str = "",
) -> np.ndarray:
    """Validate a data matrix and return it as a ``dtype`` (default float32) ndarray.

    Accepts numpy arrays, torch tensors and pandas DataFrames. With ``allow_nan`` NaN
    marks missing values (infinite values are still rejected). With ``names`` (the columns
    seen by ``fit``) a DataFrame or AnnData must have exactly these columns in this order.
    ``columns`` names what the columns are in the messages (``"factors"`` for codes);
    ``note`` is added to the message of a wrong column count (where the count comes from).
    """
    if names is not None:
        check_names(feature_names_of(X), names, name)
    if _is_anndata(X):
        X = X.X
    if hasattr(X, "toarray") and hasattr(X, "nnz"):  # scipy.sparse
        X = X.toarray()
    if hasattr(X, "to_numpy") and hasattr(X, "columns"):

        def numeric(frame):  # pandas' NA is missing: NaN
            return frame.to_numpy(dtype=np.float64, na_value=np.nan)

        try:
            X = numeric(X)
        except (TypeError, ValueError):
            bad = []
            for j in range(X.shape[1]):
                try:
                    numeric(X.iloc[:, [j]])
                except (TypeError, ValueError):
                    bad.append(X.columns[j])
            raise TypeError(
                f"{name} has non-numeric columns {bad[:5]}; drop or encode them"
            ) from None
    elif isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    if np.iscomplexobj(X):
        raise TypeError(f"{name} is complex; pass real numbers (e.g. its abs or real part)")
    try:
        with np.errstate(over="ignore"):  # reported below, naming the problem
            out = np.asarray(X, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must be a numeric 2-d array ({e})") from e
    if out.dtype.kind == "f" and np.isinf(out).any() and np.isfinite(np.asarray(X)).all():
        raise ValueError(
            f"{name} has values beyond the range of {out.dtype} ({np.finfo(out.dtype).max:.3g})"
        )
    X = out
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-d (rows x {columns}), got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} has no rows")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(
            f"{name} has {X.shape[1]} columns but the model expects {n_features}{note}"
        )
    if allow_nan:
        if np.isinf(X).any():
            r, c = np.argwhere(np.isinf(X))[0]
            raise ValueError(f"{name} has infinite values (first at row {r}, column {c})")
        return X
    bad = ~np.isfinite(X)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(
            f"{name} has {int(bad.sum())} NaN or infinite values (first at row {r}, column {c})"
            + ("; this model needs complete data" if columns == "features" else "")
        )
    return X


def check_names(got: Sequence[str] | None, names: Sequence[str], name: str = "X") -> None:
    """Refuse column names ``got`` (``None``: an array, which has none) other than ``names``,
    the columns seen by ``fit``, or in another order."""
    if got is None or tuple(got) == tuple(names):
        return
    if sorted(got) == sorted(names):
        raise ValueError(
            f"{name} has the columns seen by fit in another order; select them in the"
            " fitted order with X[model.feature_names_]"
        )
    missing = [c for c in names if c not in set(got)]
    extra = [c for c in got if c not in set(names)]
    raise ValueError(
        f"{name}'s columns differ from those seen by fit: missing {missing[:5]},"
        f" not seen by fit {extra[:5]}"
    )


class _ShortRepr(reprlib.Repr):
    """``reprlib`` cut at whole items, with dicts in their own order (groups are ordered)."""

    def repr_dict(self, x, level):
        items = [f"{self.repr1(k, level - 1)}: {self.repr1(v, level - 1)}" for k, v in x.items()]
        more = ", ..." if len(items) > self.maxdict else ""
        return "{" + ", ".join(items[: self.maxdict]) + more + "}"


_SHORT = _ShortRepr()
_SHORT.maxlist = _SHORT.maxtuple = 8
_SHORT.maxdict, _SHORT.maxstring, _SHORT.maxother = 3, 40, 80


def check_other_fit_options(owner: str, options: dict) -> None:
    """Let a model's ``fit`` take and ignore the options of the other models' ``fit``
    (``epochs``, ``max_iter``, ...), so one call fits every model, yet refuse a misspelt
    option and ``warm_start``."""
    from .factvae import FactVAE
    from .sparse_fa import SparseFA

    fits = (Estimator.fit, SparseFA.fit, FactVAE.fit)
    known = {p for f in fits for p in inspect.signature(f).parameters}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"{owner}.fit() got unexpected keyword arguments {unknown}")
    if options.get("warm_start"):
        raise ValueError(f"{owner} refits from the start: no warm_start")

    # options whose absence a user would not notice: say they do nothing here
    def given(name: str) -> bool:  # set to something other than its "off" value
        if name not in options:
            return False
        return options[name] != 1 if name == "n_restarts" else options[name] is not None

    unused = [k for k in ("checkpoint", "validation_data", "patience", "n_restarts") if given(k)]
    if unused:
        warnings.warn(
            f"{owner}.fit ignores {', '.join(unused)} (options of the deep models' fit)",
            UserWarning,
            stacklevel=user_stacklevel(),
        )


def _is_anndata(X: Any) -> bool:
    """Duck-typed test for an ``anndata.AnnData`` (the package is optional)."""
    return all(hasattr(X, a) for a in ("obs", "var", "var_names", "layers", "X"))


def feature_names_of(X: Any) -> tuple[str, ...] | None:
    """Column names of a DataFrame (``"a/b"`` for a two-level column index) or AnnData.

    Returns ``None`` for arrays and tensors.
    """
    if _is_anndata(X):
        return tuple(str(c) for c in X.var_names)
    cols = getattr(X, "columns", None)
    if cols is None or not hasattr(X, "to_numpy"):
        return None
    return tuple("/".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in cols)


def _init_recorder(init: Callable) -> Callable:
    """Wrap a subclass ``__init__`` so the outermost call records its bound arguments."""
    sig = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        if type(self).__init__ is wrapper:
            bound = sig.bind(self, *args, **kwargs)
            bound.apply_defaults()
            cfg = dict(bound.arguments)
            cfg.pop("self", None)
            for name, param in sig.parameters.items():
                if param.kind is inspect.Parameter.VAR_KEYWORD:
                    cfg.update(cfg.pop(name, {}))
                elif param.kind is inspect.Parameter.VAR_POSITIONAL:
                    cfg.pop(name, None)
            self._init_config = cfg
        init(self, *args, **kwargs)

    wrapper._records_init = True  # type: ignore[attr-defined]
    return wrapper


def _fit_recorder(fit: Callable) -> Callable:
    """Wrap ``fit`` so that its outermost call (a subclass ``fit`` calls ``Estimator.fit``):

    - keeps the column names of the user's data, even when the subclass converts ``X`` to
      an array first;
    - puts the estimator back as it was before the call when the fit raises or is
      interrupted before completing an epoch (``Estimator.fit`` sets ``_fit_progress``);
    - warns of an interruption, pointing at the user's line.
    """

    @functools.wraps(fit)
    def wrapper(self, X, *args, **kwargs):
        if "_fit_names" in self.__dict__:  # an inner call
            return fit(self, X, *args, **kwargs)
        before = dict(vars(self))
        self.__dict__["_fit_names"] = feature_names_of(X)
        name = type(self).__name__
        try:
            fit(self, X, *args, **kwargs)
        except BaseException as err:
            if self.__dict__.get("_fit_progress") is False:
                _restore(self, before)
                err.add_note(
                    f"No epoch of this fit completed: the {name} is as it was before the call."
                )
            raise
        finally:
            self.__dict__.pop("_fit_names", None)
            progress = self.__dict__.pop("_fit_progress", True)
        if self.interrupted_:
            kept = "the parameters of its last completed epoch"
            if not progress:
                _restore(self, before)
                self.interrupted_ = True
                kept = f"the {name} as it was before the call (no epoch completed)"
            warnings.warn(f"fit interrupted; it keeps {kept} (interrupted_ is True)", stacklevel=2)
        return self

    wrapper._records_fit = True  # type: ignore[attr-defined]
    return wrapper


def _restore(est: Any, state: dict) -> None:
    vars(est).clear()
    vars(est).update(state)


class EarlyStopping:
    """A ``fit`` callback that scores held-out data and stops when it stops improving.

    Every ``every`` epochs it computes the mean held-out ELBO per row (``num_samples``
    draws, under a fixed seed and without touching the training RNG), writes it to the
    epoch's history record as ``"val_elbo"``, remembers the parameters of the best
    epoch and returns ``True`` (stop) after ``patience`` evaluations without an
    improvement larger than ``min_delta``. :meth:`restore` puts the best parameters back.

    Parameters
    ----------
    estimator
        The estimator being fitted (its ``module`` is read at every call).
    X_val
        Held-out rows (any input ``fit`` accepts).
    patience
        Evaluations without improvement before stopping; ``None`` never stops (the
        held-out ELBO is only recorded).
    every, num_samples, min_delta, seed
        Evaluation period (epochs), Monte Carlo draws per row, the smallest improvement
        that counts, and the seed of the evaluation draws.
    """

    def __init__(
        self,
        estimator: Estimator,
        X_val: Any,
        patience: int | None = 10,
        every: int = 1,
        num_samples: int = 1,
        min_delta: float = 0.0,
        seed: int = 0,
    ):
        if patience is not None and patience < 1:
            raise ValueError(f"patience must be >= 1 or None, got {patience}")
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        try:  # fail now, not at the first evaluation epochs into the fit
            estimator._check(X_val)
        except (ValueError, TypeError) as err:  # the message names X: say which data
            raise type(err)(f"validation_data: {err}") from None
        self.estimator = estimator
        self.X_val = X_val
        self.patience, self.every, self.num_samples = patience, every, num_samples
        self.min_delta, self.seed = min_delta, seed
        self.best = -math.inf
        self.best_epoch: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.bad = 0
        self.warned = False

    def __call__(self, epoch: int, record: dict) -> bool:
        if (epoch + 1) % self.every:
            return False
        est = self.estimator
        m = est._fitted()
        was_training = m.training
        multiplier = m.std_multiplier
        m.eval()
        m.std_multiplier = 1.0
        try:
            value = float(np.mean(est.elbo(self.X_val, self.num_samples, seed=self.seed)))
        finally:
            m.std_multiplier = multiplier
            m.train(was_training)
        record["val_elbo"] = value
        if not math.isfinite(value) and not self.warned:
            self.warned = True
            warnings.warn(
                f"the held-out ELBO is {value} at epoch {epoch}: some held-out rows cannot be"
                " scored (far outside the training data?); such epochs are never the best",
                UserWarning,
                stacklevel=user_stacklevel(),
            )
        if math.isfinite(value) and value > self.best + self.min_delta:
            self.best, self.best_epoch, self.bad = value, epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in m.state_dict().items()}
            return False
        self.bad += 1
        return self.patience is not None and self.bad >= self.patience

    def restore(self) -> None:
        """Load the parameters of the best epoch back into the model."""
        if self.best_state is not None:
            self.estimator._fitted().load_state_dict(self.best_state)


class Checkpoint:
    """A ``fit`` callback that saves the estimator every ``every`` epochs.

    The file is written with :meth:`Estimator.save` (to a temporary name, then moved),
    so a crash never leaves a half-written checkpoint; load it with
    :func:`pyro_gfa.load`.

    Parameters
    ----------
    estimator
        The estimator being fitted.
    path
        Directory or ``.zip`` file to (over)write.
    every
        Period in epochs.
    """

    def __init__(self, estimator: Estimator, path: str | Path, every: int = 10):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.estimator, self.path, self.every = estimator, Path(path), every

    def __call__(self, epoch: int, record: dict) -> bool:
        if (epoch + 1) % self.every == 0:
            self.estimator._refresh_fitted()  # what fit derives, of this epoch
            self.save()
        return False

    def save(self) -> None:
        """Save the estimator to :attr:`path` now (with :func:`pyro_gfa.io.save`,
        replacing an earlier checkpoint there)."""
        from ..io import save

        save(self.estimator, self.path)

    def check(self) -> None:
        """Fail now if the estimator or the path cannot be saved; an earlier checkpoint
        there is kept."""
        from ..io import check_target

        check_target(self.path, self.estimator)


class NamedUnits:
    """What every model shares, the deep ones and the linear ones: its constructor arguments
    (``get_config``, the ``repr``) and the names of the features and of the rows of
    ``loadings()`` (groups or features), for every estimator that sets ``n_features`` and,
    when grouped, ``groups``."""

    n_features: int
    #: column names of the data seen by ``fit`` (DataFrame or AnnData input), else ``None``
    feature_names_: tuple[str, ...] | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and not getattr(init, "_records_init", False):
            cls.__init__ = _init_recorder(init)

    def save(self, path: str | Path) -> Path:
        """Save the fitted model to a directory or a ``.zip`` file; see
        :func:`pyro_gfa.io.save` (load it with :func:`pyro_gfa.load`). The Pyro models
        only: the linear ones (SparseFA, NMF, LDA) are plain arrays, which pickle stores."""
        from ..io import save

        return save(self, path)

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments of this estimator, as passed (defaults filled in).

        ``type(m)(**m.get_config())`` builds an unfitted copy; :func:`pyro_gfa.io.save`
        stores this (encoded as JSON) to rebuild the estimator.
        """
        cfg = dict(self._init_config)
        # the resolved forms, which carry names and defaults (e.g. Groups, the prior)
        for name in cfg:
            value = getattr(self, name, None)
            if isinstance(value, (Groups, Prior)):
                cfg[name] = value
        return cfg

    def __repr__(self) -> str:
        # as scikit-learn does: the arguments passed that differ from their defaults
        params = inspect.signature(type(self).__init__).parameters
        shown = []
        for name, value in self._init_config.items():
            default = params[name].default if name in params else inspect.Parameter.empty
            try:
                same = value is default or bool(value == default)
            except Exception:  # e.g. arrays, whose == is elementwise
                same = False
            if not same:
                text = repr(value)
                if len(text) > 80 and isinstance(value, (list, tuple, dict)):
                    text = _SHORT.repr(value)  # cut at whole items, not mid-token
                elif isinstance(value, np.ndarray) and (len(text) > 80 or "\n" in text):
                    text = f"<array {value.shape}>"
                shown.append(f"{name}={text}")
        return f"{type(self).__name__}({', '.join(shown)})"

    def _expected_names(self) -> tuple[str, ...] | None:
        """The column names data must have: those seen by ``fit``; during a fit, those of
        its data (held-out rows must match them)."""
        return self.__dict__.get("_fit_names", self.feature_names_)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the columns: those of the fitted DataFrame, else ``x0, x1, ...``."""
        if self.feature_names_ is not None:
            return tuple(self.feature_names_)
        return tuple(f"x{j}" for j in range(self.n_features))

    @property
    def group_names(self) -> tuple[str, ...] | None:
        """Names of the groups of a grouped model (``None`` for a per-feature model)."""
        groups = getattr(self, "groups", None)
        return None if groups is None else groups.names

    @property
    def unit_names(self) -> tuple[str, ...]:
        """Names of the rows of :meth:`loadings`: group names, or feature names."""
        names = self.group_names
        if names is not None:
            return tuple(names)
        return self.feature_names

    @property
    def unit_kind(self) -> str:
        """``"group"`` when the rows of :meth:`loadings` are groups, else ``"feature"``."""
        return "group" if self.group_names is not None else "feature"

    def loadings_frame(self):
        """:meth:`loadings` as a ``pandas.DataFrame`` (rows: groups or features, columns
        ``z0, z1, ...``)."""
        import pandas as pd

        L = self.loadings()
        return pd.DataFrame(
            L, index=list(self.unit_names), columns=[f"z{k}" for k in range(L.shape[1])]
        )


class Estimator(NamedUnits):
    """Estimator-level API shared by the models (fit, transform, loadings, ...).

    Subclasses implement ``_build_module()`` and set ``n_features``, ``latent_dim`` and
    ``prior``. The fitted :class:`GFAModule` is ``self.module`` (``None`` before ``fit``).
    """

    n_features: int
    latent_dim: int
    prior: Prior
    #: default step sizes of ``fit`` (subclasses set the paper's values)
    default_lr: float = 1e-2
    default_sparse_lr: float = 1e-4
    default_sparse_momentum: float = 0.99

    #: epoch of the best held-out ELBO when ``fit`` had ``validation_data``
    best_epoch_: int | None = None
    #: whether the last ``fit`` was stopped by Ctrl-C (``KeyboardInterrupt``)
    interrupted_: bool = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        fit = cls.__dict__.get("fit")
        if fit is not None and not getattr(fit, "_records_fit", False):
            cls.fit = _fit_recorder(fit)

    def to_arviz(
        self, X, num_samples: int = 100, seed: int | None = 0, **kwargs
    ) -> arviz.InferenceData | xarray.DataTree:
        """ArviZ ``InferenceData`` (ArviZ 0.x; an ``xarray.DataTree`` with ArviZ 1.x) of the
        fit on ``X``; see :func:`pyro_gfa.export.to_arviz`."""
        from ..export import to_arviz

        return to_arviz(self, X, num_samples=num_samples, seed=seed, **kwargs)

    def __init__(self, latent_dim: int, prior: Prior | None, prior_scale: str):
        check_int(latent_dim, "latent_dim")
        if prior_scale not in ("paper", "posterior"):
            raise ValueError(f"prior_scale must be 'paper' or 'posterior', got {prior_scale!r}")
        if prior is None:
            prior = NoPrior()
        if not isinstance(prior, Prior):
            raise TypeError(f"prior must be a pyro_gfa.priors.Prior, got {type(prior).__name__}")
        self.latent_dim = int(latent_dim)
        self.prior = prior
        self.prior_scale = prior_scale
        self.module: GFAModule | None = None
        self.history_: list[dict] = []

    # -- to be provided by each model -------------------------------------------------
    def _build_module(self) -> GFAModule:
        raise NotImplementedError

    def _tensors(self, X: np.ndarray, device: torch.device) -> list[torch.Tensor]:
        """Row-aligned tensors passed to model and guide."""
        return [torch.as_tensor(X, device=device)]

    def _check(self, X) -> np.ndarray:
        return check_matrix(X, self.n_features, names=self._expected_names())

    # -- fitting ----------------------------------------------------------------------
    @_fit_recorder
    def fit(
        self,
        X,
        epochs: int = 100,
        batch_size: int = 64,
        lr: float | None = None,
        sparse_lr: float | None = None,
        sparse_momentum: float | None = None,
        seed: int | None = 0,
        device: str | torch.device = "auto",
        progress: bool = True,
        throttle_epochs: int = 25,
        std_throttle: float = 0.1,
        num_particles: int = 1,
        callback=None,
        validation_data=None,
        patience: int | None = None,
        eval_every: int = 1,
        restore_best: bool = True,
        checkpoint: str | Path | None = None,
        checkpoint_every: int = 10,
        pyro_elbo: bool = False,
        n_restarts: int = 1,
        warm_start: bool = False,
    ):
        """Fit the model to ``X`` (rows are observations), starting from a fresh initialisation
        (or, with ``warm_start``, from where the last fit or a loaded checkpoint stopped).

        Parameters
        ----------
        X
            ``(N, n_features)`` array, tensor or DataFrame.
        epochs, batch_size
            Passes over the data and rows per step.
        lr, sparse_lr
            Adam step size of the networks, and plain gradient step size of the sparse
            matrix before its proximal step (defaults: the paper's, the class attributes
            ``default_lr`` and ``default_sparse_lr``).
        sparse_momentum
            Gradient averaging in the proximal step (0: the paper's plain proximal SGD);
            see :class:`~pyro_gfa.inference.ProximalSGD`. Default ``default_sparse_momentum``:
            0.99 for the oi-VAE and factor VAE, 0.9 for the Sparse VAE family.
        seed
            Seed of initialisation, minibatches and Monte Carlo draws (``None``: the global
            torch RNG is used and not reset). The caller's RNG state is left untouched.
        device
            ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ...
        progress
            Show a progress bar.
        throttle_epochs, std_throttle
            Multiply the posterior standard deviations by ``std_throttle`` for the first
            ``throttle_epochs`` epochs (oi-VAE appendix D).
        num_particles
            Draws of ``z`` per row in each ELBO estimate.
        callback
            ``callback(epoch, record) -> bool``; returning ``True`` stops the fit.
        pyro_elbo
            Run Pyro's ``TraceMeanField_ELBO`` on model/guide at every step instead of the
            model's equivalent plain-torch loss (slower; same objective).
        validation_data
            Held-out rows: their mean ELBO per row is recorded as ``"val_elbo"`` in
            ``history_`` every ``eval_every`` epochs (see :class:`EarlyStopping`).
        patience
            With ``validation_data``: stop after this many evaluations without an
            improvement (``None``: never stop early).
        eval_every
            Epochs between held-out evaluations.
        restore_best
            With ``validation_data``: end with the parameters of the best held-out
            ELBO (its epoch is ``best_epoch_``).
        checkpoint
            Directory or ``.zip`` path: the model is saved there every
            ``checkpoint_every`` epochs and at the end (:class:`Checkpoint`).
        checkpoint_every
            Epochs between checkpoints.
        n_restarts
            Fit this many times from different initialisations (seeds ``seed``,
            ``seed + 1000``, ...) and keep the fit with the best training ELBO (mean per row,
            10 draws); the ELBOs are in ``restart_elbos_``. Local optima matter for sparse
            models (a factor merged into another); this is the ``n_init`` of scikit-learn.
            Not combinable with ``validation_data`` or ``checkpoint``.
        warm_start
            Continue from the current parameters (of an earlier ``fit`` or of a model read
            with :func:`pyro_gfa.load`) for ``epochs`` more epochs, appending to
            ``history_`` and continuing its epoch count (warm-ups and schedules go on where
            they stopped). The Adam moments start afresh; the random draws (minibatch order,
            noise) come from ``seed`` plus the number of epochs already run, so every
            continuation draws afresh and a sequence of calls repeats exactly. Not
            combinable with ``n_restarts > 1``.

        Returns
        -------
        self

        Notes
        -----
        An interrupted fit (Ctrl-C) warns, sets ``interrupted_`` and returns the model with
        the parameters of its last completed epoch (saved to ``checkpoint`` too), so that
        a notebook keeps its work; scripts that must stop check ``interrupted_``. A fit
        that raises (a non-finite objective or parameter is a ``FloatingPointError``; the
        objective after the last step is checked too) first keeps its earlier work: the
        parameters of its last completed epoch (or the best finished restart, or the best
        held-out epoch with ``restore_best``), saved to ``checkpoint`` when one is given.
        A fit that raises or is interrupted before completing an epoch leaves the estimator
        as it was before the call. ``validation_data`` (its columns too) and ``checkpoint``
        are checked before the model is touched; an existing checkpoint is replaced only
        by one of this fit.
        """
        self._fit_progress = False  # until an epoch completes: see _fit_recorder
        names = self.__dict__.get("_fit_names", feature_names_of(X))
        X = self._check(X)
        for value, name, least in [
            (epochs, "epochs", 0),
            (batch_size, "batch_size", 1),
            (num_particles, "num_particles", 1),
            (throttle_epochs, "throttle_epochs", 0),
            (eval_every, "eval_every", 1),
            (checkpoint_every, "checkpoint_every", 1),
            (n_restarts, "n_restarts", 1),
            *([(seed, "seed", 0)] if seed is not None else []),
            *([(patience, "patience", 1)] if patience is not None else []),
        ]:
            check_int(value, name, least)
        for value, name in [(lr, "lr"), (sparse_lr, "sparse_lr"), (std_throttle, "std_throttle")]:
            if value is not None:
                check_float(value, name)
        if sparse_momentum is not None:
            check_float(sparse_momentum, "sparse_momentum", 0.0, 1.0, allow_low=True)
        for value, name in [
            (progress, "progress"),
            (restore_best, "restore_best"),
            (pyro_elbo, "pyro_elbo"),
            (warm_start, "warm_start"),
        ]:
            check_bool(value, name)
        if callback is not None and not callable(callback):
            raise ValueError(f"callback must be callable(epoch, record), got {callback!r}")
        if patience is not None and validation_data is None:
            raise ValueError("patience needs validation_data (held-out rows to watch)")
        if n_restarts > 1 and (validation_data is not None or checkpoint is not None):
            raise ValueError("n_restarts > 1 cannot be combined with validation_data or checkpoint")
        if warm_start and self.module is None:
            raise ValueError("warm_start=True needs a fitted or loaded model to continue from")
        if warm_start and n_restarts > 1:
            raise ValueError("warm_start cannot be combined with n_restarts > 1")
        if warm_start and names is not None and self.feature_names_ is not None:
            check_names(names, self.feature_names_)
        if not warm_start:  # said once, at the fit that starts
            self._warn_scale(X)
        callbacks = [] if callback is None else [callback]
        stopper = None
        if validation_data is not None:
            stopper = EarlyStopping(self, validation_data, patience=patience, every=eval_every)
            callbacks.insert(0, stopper)
        saver = None if checkpoint is None else Checkpoint(self, checkpoint, checkpoint_every)
        if saver is not None:
            callbacks.append(saver)
            saver.check()  # fails now, before the model is touched
        if callbacks:

            def callback(epoch, record):
                # every callback runs, so the record and checkpoints stay complete
                stops = [bool(cb(epoch, record)) for cb in callbacks]
                return any(stops)

        ran_before = len(self.history_) if warm_start else 0
        if not (warm_start and names is None):  # an array continues a DataFrame fit
            self.feature_names_ = names
        self.best_epoch_ = None
        self.interrupted_ = False
        self.restart_elbos_ = []
        momentum = self.default_sparse_momentum if sparse_momentum is None else sparse_momentum
        best = failure = history = None  # history: this call's, once its module is built
        interrupted = False
        try:
            dev = resolve_device(device)
            tensors = self._tensors(X, dev)
            for r in range(n_restarts):
                # a continued fit draws afresh (batches, noise), yet repeats from the same seed
                offset = len(self.history_) if warm_start else 1000 * r
                with seeded(None if seed is None else seed + offset, dev):
                    if warm_start:
                        self.module = self.module.to(dev)
                        self.history_ = list(self.history_)
                    else:
                        self.module = self._build_module().to(dev)
                        self.history_ = []
                    history = self.history_
                    scale = 1.0 if self.prior_scale == "paper" else 1.0 / X.shape[0]
                    self.module.prior_weight = scale
                    train(
                        self.module,
                        tensors,
                        epochs=epochs,
                        batch_size=batch_size,
                        lr=self.default_lr if lr is None else lr,
                        sparse_lr=self.default_sparse_lr if sparse_lr is None else sparse_lr,
                        sparse_momentum=momentum,
                        std_throttle=std_throttle,
                        throttle_epochs=throttle_epochs,
                        num_particles=num_particles,
                        progress=progress,
                        callback=callback,
                        history=self.history_,
                        pyro_elbo=pyro_elbo,
                    )
                if n_restarts == 1:
                    break
                with seeded(seed, dev):
                    score = float(elbo_rows(self.module, tensors, 10).mean())
                self.restart_elbos_.append(score)
                if best is None or score > best[0]:
                    best = (score, self.module, self.history_)
                if len(self.history_) < epochs:  # stopped early: no more restarts
                    break
        # train() put back the last completed epoch; a restart that failed or was cut does
        # not compete with the finished ones. Finish as after a normal stop, then raise.
        except KeyboardInterrupt:
            interrupted = True
        except Exception as err:  # noqa: BLE001 - re-raised below
            failure = err
        self._fit_progress = best is not None or len(history or ()) > ran_before
        # with no epoch completed and a failure or Ctrl-C, _fit_recorder puts the estimator
        # back as it was: nothing of this fit is kept or saved
        keep = self._fit_progress or (failure is None and not interrupted)
        if best is not None:  # implies keep
            _, self.module, self.history_ = best
        if keep and stopper is not None:
            self.best_epoch_ = stopper.best_epoch
            if restore_best:
                stopper.restore()
        self.interrupted_ = interrupted
        if keep:
            self._refresh_fitted()
        if keep and saver is not None:
            saver.save()
        if failure is not None:
            raise failure
        return self

    #: models of ``x`` on its own scale, whose noise starts at ``sigma_init``: they warn
    #: of data far from unit scale
    unit_scale = False

    def _warn_scale(self, X: np.ndarray) -> None:
        if not self.unit_scale:
            return
        if np.isnan(X).any():  # FactVAE's missing groups
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
                sd = float(np.nanmax(np.nanstd(X, axis=0)))
        else:
            sd = float(X.std(axis=0).max())
        if sd > 10:
            warnings.warn(
                f"X has columns of sd up to {sd:.3g}: the {type(self).__name__} models x on"
                f" its own scale, its noise sd starting at sigma_init = {self.sigma_init:g},"
                " so far above unit scale its first steps overflow or train slowly;"
                " standardise the columns (pyro-gfa fit --standardize does) or divide X by"
                " one constant",
                UserWarning,
                stacklevel=user_stacklevel(),
            )

    def _refresh_fitted(self) -> None:
        """Bring what ``fit`` derives from the parameters up to date: at the end of a fit
        that keeps its work, and before each periodic checkpoint."""

    # -- results ------------------------------------------------------------------------
    def _fitted(self) -> GFAModule:
        if self.module is None:
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet: call fit(X) first")
        return self.module

    @property
    def device(self) -> torch.device:
        return self._fitted().W.device

    def loadings(self) -> np.ndarray:
        """``(G, K)`` strength of every factor on every group or feature: ``||W[g, :, k]||``."""
        return self._fitted().loadings().cpu().numpy()

    def support(self) -> np.ndarray:
        """``(G, K)`` bool: the connections the prior considers active."""
        m = self._fitted()
        return m.prior.support(m.W.detach()).cpu().numpy()

    @torch.no_grad()
    def transform(self, X) -> np.ndarray:
        """``(N, K)`` posterior means of ``z``."""
        m = self._fitted()
        x = self._tensors(self._check(X), self.device)
        return m.encode(*x)[0].cpu().numpy()

    @torch.no_grad()
    def reconstruct(self, X) -> np.ndarray:
        """``(N, n_features)`` mean of ``x`` decoded from the posterior mean of ``z``."""
        m = self._fitted()
        x = self._tensors(self._check(X), self.device)
        return m.decode(m.encode(*x)[0]).cpu().numpy()

    @torch.no_grad()
    def decode(self, Z) -> np.ndarray:
        """``(N, n_features)`` mean of ``x`` given codes ``Z`` of shape ``(N, K)`` (e.g. a
        traversal of one factor, or :meth:`transform`'s codes with one factor held fixed)."""
        return self._fitted().decode(self._codes(Z)).cpu().numpy()

    def _codes(self, Z) -> torch.Tensor:
        """``Z`` checked as ``(N, K)`` codes, on the model's device."""
        return torch.as_tensor(
            check_matrix(Z, self.latent_dim, name="Z", columns="factors"), device=self.device
        )

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        """``(n, n_features)`` draws of ``x`` from the generative model."""
        m = self._fitted()
        check_int(n, "n", 0)
        with seeded(seed, self.device):
            z = torch.randn(n, m.latent_dim, device=self.device)
            return m.sample_x(z).cpu().numpy()

    def elbo(self, X, num_samples: int = 10, seed: int | None = 0) -> np.ndarray:
        """``(N,)`` Monte Carlo ELBO of every row (nats)."""
        m = self._fitted()
        with seeded(seed, self.device):
            return elbo_rows(m, self._tensors(self._check(X), self.device), num_samples).numpy(
                force=True
            )

    def expected_log_lik(self, X, num_samples: int = 10, seed: int | None = 0) -> np.ndarray:
        """``(N,)`` Monte Carlo ``E_q[log p(x_i | z)]`` of every row (nats)."""
        m = self._fitted()
        with seeded(seed, self.device):
            x = self._tensors(self._check(X), self.device)
            return expected_log_lik_rows(m, x, num_samples).numpy(force=True)

    def log_likelihood(self, X, num_samples: int = 100, seed: int | None = 0) -> np.ndarray:
        """``(N,)`` importance-sampled ``log p(x_i)`` of every row (nats)."""
        m = self._fitted()
        with seeded(seed, self.device):
            return log_likelihood_rows(
                m, self._tensors(self._check(X), self.device), num_samples
            ).numpy(force=True)
