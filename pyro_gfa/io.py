"""Data in (DataFrames, AnnData, group specifications) and model files out (save / load).

Model files
-----------
:func:`save` writes a fitted estimator to a directory, or to a single ``.zip`` file when
the path ends in ``.zip``, holding two entries:

``meta.json``
    ``format`` (``"pyro-gfa-model"``), ``format_version`` (:data:`FORMAT_VERSION`), the
    library version, the estimator's class name and constructor arguments (``config``:
    groups with their column index and names, the prior's class and configuration, network
    sizes, ...), the group and feature names, the module's ``prior_weight`` and the
    estimator's fitted attributes (``history_``, ``feature_names_``, ``best_epoch_``, ...).
``weights.pt``
    The module's ``state_dict()`` (network weights, the sparse matrix ``W`` and the prior's
    buffers, e.g. EM weights) as a plain ``dict`` of tensors written by ``torch.save``.

The file is pickle-free in the sense that matters: nothing in it is code. ``meta.json`` is
JSON; ``weights.pt`` is read with ``torch.load(weights_only=True)``, whose restricted
unpickler only builds tensors and plain containers and refuses anything else, so loading
an untrusted file cannot execute code. :func:`load` rebuilds the estimator from its class
name through a registry (:func:`register_model`, :func:`register_prior`; every subclass of
:class:`~pyro_gfa.models.Estimator` and :class:`~pyro_gfa.priors.Prior` that has been
imported is found automatically), then loads the weights. A file from another format
version, a foreign file or a corrupt one raises :class:`ModelFileError` with a message
saying which.
"""

from __future__ import annotations

import functools
import inspect
import io as _io
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .data.groups import Groups
from .models.base import Estimator, _is_anndata, feature_names_of, seeded
from .models.likelihoods import Likelihood
from .priors import Prior

if TYPE_CHECKING:  # imported where used: for the annotations only
    import pandas as pd

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "ModelFileError",
    "from_anndata",
    "groups_from",
    "load",
    "register_model",
    "register_prior",
    "save",
]

FORMAT_NAME = "pyro-gfa-model"
#: Version of the model file format written by :func:`save`; :func:`load` reads only this.
FORMAT_VERSION = 1
META = "meta.json"
WEIGHTS = "weights.pt"

_MODELS: dict[str, type[Estimator]] = {}
_PRIORS: dict[str, type[Prior]] = {}


class ModelFileError(ValueError):
    """A model file is missing, corrupt, foreign or of another format version."""


# ------------------------------------------------------------------------------------------
# data in
# ------------------------------------------------------------------------------------------
def groups_from(
    X: Any,
    spec: Groups | Sequence | Mapping | str | None = None,
) -> Groups:
    """Group specification for the columns of ``X``, with names.

    Parameters
    ----------
    X
        A ``pandas.DataFrame``, an ``anndata.AnnData``, or an array (then ``spec`` must
        use column indices).
    spec
        - a mapping ``group name -> columns``, the columns given by name (DataFrame
          column names, AnnData ``var_names``) or by index;
        - a list of sizes or of index lists (as :meth:`Groups.from_spec`);
        - for AnnData, the name of a ``var`` column whose values are the groups;
        - ``None`` with a DataFrame whose columns are a two-level index: the first level
          names the groups.

    Returns
    -------
    Groups
        Pass it as ``groups=`` to a model; the names appear in every table and plot.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"a1": [0.0], "a2": [1.0], "b": [2.0]})
    >>> groups_from(df, {"arm": ["a1", "a2"], "leg": ["b"]}).names
    ('arm', 'leg')
    """
    names = feature_names_of(X)
    if names is None and np.ndim(X) != 2:
        raise ValueError(f"X must be 2-d (rows x columns), got shape {np.shape(X)}")
    n = len(names) if names is not None else np.shape(X)[1]
    if isinstance(spec, str):
        if not _is_anndata(X):
            raise TypeError("a group key (str) needs an AnnData input: it names a var column")
        if spec not in X.var.columns:
            raise ValueError(f"AnnData.var has no column {spec!r}; it has {list(X.var.columns)}")
        return _groups_by_label([str(v) for v in X.var[spec].to_numpy()], n)
    if spec is None:
        cols = getattr(X, "columns", None)
        if cols is not None and getattr(cols, "nlevels", 1) >= 2:
            return _groups_by_label([str(c[0]) for c in cols], n)
        raise ValueError(
            "no group specification: pass a mapping name -> columns, a list of sizes or"
            " index lists, or a DataFrame with a two-level column index"
        )
    if isinstance(spec, Mapping) and names is not None:
        # accept the full "a/b" names of a two-level index and the original labels alike
        raw = getattr(X, "columns", None)
        lookup = {}
        if raw is not None:
            lookup = {c: j for j, c in enumerate(raw)}
        # integer labels other than 0..n-1: an integer could be a label or a position
        int_labels = any(isinstance(c, (int, np.integer)) for c in lookup) and list(lookup) != list(
            range(n)
        )
        resolved = {}
        for g, cols in spec.items():
            out = []
            # one column (a tuple may be one label of a two-level index) or several
            one = (
                isinstance(cols, str)
                or not isinstance(cols, Iterable)
                or (isinstance(cols, tuple) and cols in lookup)
            )
            for c in [cols] if one else list(cols):
                if isinstance(c, (bool, np.bool_)):  # True == 1 would pick column 1
                    raise ValueError(f"group {g!r}: column {c!r} is not a column name or position")
                if isinstance(c, (int, np.integer)) and int_labels:
                    raise ValueError(
                        f"group {g!r}: column {c!r} is ambiguous, the DataFrame's column labels"
                        " are integers other than 0..n-1; rename the columns to strings, or"
                        " pass positions as a list of index lists"
                    )
                if isinstance(c, (int, np.integer)):
                    out.append(int(c))
                elif c in lookup:
                    out.append(lookup[c])
                elif str(c) in names:
                    out.append(names.index(str(c)))
                else:
                    raise ValueError(f"group {g!r}: unknown column {c!r}")
            resolved[str(g)] = out
        return Groups.from_spec(resolved, n)
    return Groups.from_spec(spec, n, columns=names)


def _groups_by_label(labels: Sequence[str], n: int) -> Groups:
    order: dict[str, list[int]] = {}
    for j, lab in enumerate(labels):
        order.setdefault(lab, []).append(j)
    return Groups.from_spec(order, n)


def from_anndata(
    adata: Any, layer: str | None = None, groups: str | Mapping | None = None
) -> tuple[pd.DataFrame, Groups | None]:
    """An ``AnnData`` as a DataFrame (names kept) and, optionally, its groups.

    Parameters
    ----------
    adata
        An ``anndata.AnnData`` (the ``anndata`` package is optional).
    layer
        Take the values from ``adata.layers[layer]`` instead of ``adata.X``.
    groups
        A ``var`` column naming each feature's group, or a mapping ``name -> var_names``.

    Returns
    -------
    X : pandas.DataFrame
        Rows ``obs_names``, columns ``var_names``.
    groups : Groups or None
    """
    import pandas as pd

    if not _is_anndata(adata):
        raise TypeError(f"expected an anndata.AnnData, got {type(adata).__name__}")
    if layer is not None and layer not in adata.layers:
        raise ValueError(f"AnnData has no layer {layer!r}; it has {list(adata.layers.keys())}")
    values = adata.X if layer is None else adata.layers[layer]
    if hasattr(values, "toarray"):
        values = values.toarray()
    df = pd.DataFrame(
        np.asarray(values, dtype=np.float32),
        index=[str(i) for i in adata.obs_names],
        columns=[str(v) for v in adata.var_names],
    )
    g = None if groups is None else groups_from(adata, groups)
    return df, g


# ------------------------------------------------------------------------------------------
# registry
# ------------------------------------------------------------------------------------------
def register_model(cls: type[Estimator]) -> type[Estimator]:
    """Make an estimator class loadable by name (usable as a decorator)."""
    _MODELS[cls.__name__] = cls
    return cls


def register_prior(cls: type[Prior]) -> type[Prior]:
    """Make a prior class loadable by name (usable as a decorator)."""
    _PRIORS[cls.__name__] = cls
    return cls


def _all_subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


def _lookup(kind: str, name: str, base: type, table: dict | None) -> type:
    import pyro_gfa  # noqa: F401  (imports every model and prior)

    if table and name in table:
        return table[name]
    found = {c.__name__: c for c in _all_subclasses(base)}
    if name in found:
        return found[name]
    register = f", or register it with pyro_gfa.io.register_{kind}" if table is not None else ""
    raise ModelFileError(
        f"unknown {kind} class {name!r}: import the module that defines it{register}"
    )


# ------------------------------------------------------------------------------------------
# JSON encoding of constructor arguments
# ------------------------------------------------------------------------------------------
def _encode(v: Any, where: str) -> Any:
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v)
    if isinstance(v, Prior):
        return {"__prior__": type(v).__name__, "config": _encode(_rebuildable(v), where)}
    if isinstance(v, Likelihood):
        return {"__likelihood__": type(v).__name__, "config": _encode(_rebuildable(v), where)}
    if isinstance(v, Groups):
        return {
            "__groups__": {
                "names": list(v.names),
                "index": [ix.tolist() for ix in v.index],
                "n_features": int(v.n_features),
            }
        }
    if isinstance(v, tuple):
        return {"__tuple__": [_encode(x, where) for x in v]}
    if isinstance(v, (np.ndarray, torch.Tensor)):
        arr = v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v
        return {"__array__": arr.tolist(), "dtype": str(arr.dtype)}
    if isinstance(v, list):
        return [_encode(x, where) for x in v]
    if isinstance(v, Mapping):
        if all(isinstance(k, str) and not k.startswith("__") for k in v):
            return {k: _encode(x, where) for k, x in v.items()}
        return {"__dict__": [[_encode(k, where), _encode(x, where)] for k, x in v.items()]}
    raise TypeError(
        f"cannot save {where}: a {type(v).__name__} is not one of the JSON-encodable types"
        " (numbers, strings, lists, tuples, dicts, arrays, Groups, Prior, Likelihood)"
    )


def _rebuildable(obj: Prior | Likelihood) -> dict:
    """``obj._config()``, checked to be arguments its class takes (a subclass may inherit
    a ``_config`` that its constructor does not match), so that a saved file loads."""
    config = obj._config()
    try:
        inspect.signature(type(obj)).bind(**config)
    except TypeError as e:
        raise TypeError(
            f"cannot save a {type(obj).__name__}: its _config() {config} does not fit its"
            f" constructor ({e}); define _config to return the constructor's arguments"
        ) from None
    return config


def _decode(v: Any) -> Any:
    if isinstance(v, list):
        return [_decode(x) for x in v]
    if not isinstance(v, dict):
        return v
    if "__prior__" in v:
        cls = _lookup("prior", v["__prior__"], Prior, _PRIORS)
        return cls(**_decode(v["config"]))
    if "__likelihood__" in v:
        cls = _lookup("likelihood", v["__likelihood__"], Likelihood, None)
        return cls(**_decode(v["config"]))
    if "__groups__" in v:
        g = v["__groups__"]
        return Groups(
            index=tuple(np.asarray(ix, dtype=np.int64) for ix in g["index"]),
            names=tuple(g["names"]),
            n_features=int(g["n_features"]),
        )
    if "__array__" in v:
        return np.asarray(v["__array__"], dtype=v["dtype"])
    if "__tuple__" in v:
        return tuple(_decode(x) for x in v["__tuple__"])
    if "__dict__" in v:
        return {_decode(k): _decode(x) for k, x in v["__dict__"]}
    return {k: _decode(x) for k, x in v.items()}


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v)
    except (TypeError, ValueError):
        return False
    return True


def _fitted_attributes(est: Estimator) -> dict[str, Any]:
    """The estimator's public attributes ending in ``_`` (sklearn's convention for what
    ``fit`` learned) that JSON can hold."""
    out = {}
    for k, v in vars(est).items():
        if k.endswith("_") and not k.startswith("_"):
            try:
                enc = _encode(v, k)
            except TypeError:
                continue
            if _jsonable(enc):
                out[k] = enc
    return out


# ------------------------------------------------------------------------------------------
# save / load
# ------------------------------------------------------------------------------------------
def _meta(est: Estimator) -> dict[str, Any]:
    from . import __version__

    module = est.module
    meta: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "model_class": type(est).__name__,
        "config": {k: _encode(v, f"argument {k!r}") for k, v in est.get_config().items()},
        "fitted": module is not None,
        "unit_kind": est.unit_kind,
        "unit_names": list(est.unit_names),
        "feature_names": list(est.feature_names),
        "attributes": _fitted_attributes(est),
    }
    if module is not None:
        meta["prior"] = {
            "class": type(module.prior).__name__,
            "config": _encode(module.prior._config(), "the prior's config"),
        }
        meta["module"] = {
            "class": type(module).__name__,
            "prior_weight": float(module.prior_weight),
            "weights": WEIGHTS,
        }
    return meta


def _weights_bytes(est: Estimator) -> bytes:
    state = {k: v.detach().cpu().clone() for k, v in est.module.state_dict().items()}
    buf = _io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def save(est: Estimator, path: str | Path) -> Path:
    """Save an estimator (fitted or not) to ``path``.

    Parameters
    ----------
    est
        The estimator.
    path
        A ``.zip`` file, or a directory (created; an existing one must be empty or hold
        an earlier model file, whose ``meta.json`` and ``weights.pt`` are replaced; the
        directory's other files are kept). Files are written under temporary names next
        to ``path`` and moved into place, so a crash or Ctrl-C never leaves a half-written
        model.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    if not isinstance(est, Estimator):
        raise TypeError(
            f"save writes the Pyro models (OIVAE, FactVAE, SparseVAE, VAE, VSC, ...), not a"
            f" {type(est).__name__}; its fit is plain arrays, which pickle or joblib store"
        )
    path = Path(path)
    meta = json.dumps(_meta(est), indent=1)
    weights = _weights_bytes(est) if est.module is not None else None
    _refuse_bad_target(path)
    if path.suffix == ".zip":
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
        try:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                zf.writestr(META, meta)
                if weights is not None:
                    zf.writestr(WEIGHTS, weights)
            os.chmod(tmp, _umask_mode(0o666))  # mkstemp's file is private (0600)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return path
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        (tmp / META).write_text(meta)
        if weights is not None:
            (tmp / WEIGHTS).write_bytes(weights)
        if path.exists():
            # Only the library's files are replaced: the user's other files stay. meta.json
            # goes first and comes back last, so an interrupted save leaves no model rather
            # than one that mixes old and new files.
            (path / META).unlink(missing_ok=True)
            (path / WEIGHTS).unlink(missing_ok=True)
            for name in (WEIGHTS, META):
                if (tmp / name).exists():
                    os.replace(tmp / name, path / name)
        else:
            os.chmod(tmp, _umask_mode(0o777))  # mkdtemp's folder is private (0700)
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return path


@functools.cache
def _umask() -> int:
    # read once: reading it means setting it, which other threads would see for a moment
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def _umask_mode(mode: int) -> int:
    """``mode`` under the process's umask, as ``open`` or ``mkdir`` would create it."""
    return mode & ~_umask()


def check_target(path: str | Path, est: Estimator | None = None) -> None:
    """Fail now if :func:`save` could not write ``path`` (or ``est``'s configuration),
    leaving any file there as it is: creates the parent directory and a temporary file in
    it (removed at once)."""
    if est is not None:
        json.dumps(_meta(est))
    path = Path(path)
    _refuse_bad_target(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    os.remove(tmp)


def _refuse_bad_target(path: Path) -> None:
    """Create ``path``'s parent; refuse an existing file where a directory is meant and a
    non-empty directory that holds no model."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix != ".zip" and path.exists():
        if not path.is_dir():
            raise FileExistsError(f"{path} exists and is not a directory")
        # weights.pt alone is what an interrupted save leaves: still a model folder
        if any(path.iterdir()) and not ((path / META).exists() or (path / WEIGHTS).exists()):
            raise FileExistsError(
                f"{path} is a non-empty directory that holds no pyro-gfa model; not overwriting"
            )


def _read(path: Path) -> tuple[dict, bytes | None]:
    if not path.exists():
        raise FileNotFoundError(f"no model file at {path}")
    if path.is_dir():
        if not (path / META).exists():
            raise ModelFileError(f"{path} is not a pyro-gfa model: it has no {META}")
        raw = (path / META).read_bytes()
        w = path / WEIGHTS
        weights = w.read_bytes() if w.exists() else None
    else:
        if not zipfile.is_zipfile(path):
            raise ModelFileError(
                f"{path} is not a pyro-gfa model: expected a directory or a .zip file"
                f" holding {META}"
            )
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
                if META not in names:
                    raise ModelFileError(f"{path} is not a pyro-gfa model: it has no {META}")
                raw = zf.read(META)
                weights = zf.read(WEIGHTS) if WEIGHTS in names else None
        except zipfile.BadZipFile as e:
            raise ModelFileError(f"{path} is a corrupt zip file: {e}") from e
    try:
        meta = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{path}: {META} is corrupt (not valid JSON: {e})") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise ModelFileError(
            f"{path} is not a pyro-gfa model file ({META} has format"
            f" {meta.get('format') if isinstance(meta, dict) else None!r})"
        )
    return meta, weights


def load(path: str | Path, device: str | torch.device = "cpu") -> Estimator:
    """Load an estimator saved by :func:`save` / ``Estimator.save``.

    Parameters
    ----------
    path
        The directory or ``.zip`` file.
    device
        Where to put the model's tensors (``"auto"``: CUDA when present).

    Returns
    -------
    Estimator
        The estimator, fitted when the saved one was, with its prior state, group and
        feature names and training history.

    Raises
    ------
    FileNotFoundError
        Nothing at ``path``.
    ModelFileError
        A foreign or corrupt file, or one written in another format version.
    """
    from . import __version__
    from .models.base import resolve_device

    path = Path(path)
    meta, weights = _read(path)
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(
            f"{path} was written in model file format version {version} (by pyro-gfa"
            f" {meta.get('library_version', '?')}); this pyro-gfa ({__version__}) reads"
            f" version {FORMAT_VERSION} only. Load it with the pyro-gfa version that wrote"
            " it, or refit."
        )
    try:
        cls = _lookup("model", meta["model_class"], Estimator, _MODELS)
        config = {k: _decode(v) for k, v in meta["config"].items()}
    except (KeyError, TypeError) as e:
        raise ModelFileError(f"{path}: {META} is incomplete or corrupt ({e!r})") from e
    try:
        est = cls(**config)
    except (TypeError, ValueError) as e:
        raise ModelFileError(
            f"{path}: this pyro-gfa cannot build {cls.__name__} from the saved configuration"
            f" ({e}); load it with the pyro-gfa version that wrote it"
            f" ({meta.get('library_version', '?')}), or refit"
        ) from e
    for k, v in meta.get("attributes", {}).items():
        setattr(est, k, _decode(v))
    if not meta.get("fitted"):
        return est
    if weights is None:
        raise ModelFileError(f"{path} is marked fitted but has no {WEIGHTS}")
    try:
        state = torch.load(_io.BytesIO(weights), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a bad file
        raise ModelFileError(f"{path}: {WEIGHTS} is corrupt or not a plain tensor dict: {e}") from e
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(f"{path}: {WEIGHTS} is not a dict of tensors")
    dev = resolve_device(device)
    with seeded(0, torch.device("cpu")):  # the fresh initialisation is overwritten
        module = est._build_module()
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        raise ModelFileError(
            f"{path}: the saved weights do not fit a {cls.__name__} built from the saved"
            f" configuration: {e}"
        ) from e
    # the prior's settings as fitted: a model may set some in fit (the Sparse VAE's EM
    # warm-up is counted in steps of its batches)
    for k, v in meta.get("prior", {}).get("config", {}).items():
        if k in vars(module.prior):  # plain settings only (a custom prior may differ)
            setattr(module.prior, k, _decode(v))
    module.prior_weight = float(meta.get("module", {}).get("prior_weight", 1.0))
    module.std_multiplier = 1.0
    est.module = module.to(dev).eval()
    return est
