"""Group specifications: which observed columns belong to which group."""

from __future__ import annotations

import numbers
import reprlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .._checks import check_int

#: What ``Groups.from_spec`` accepts, for the error messages.
SPEC_FORMS = (
    "a list of group sizes (positive ints), a list of column-index lists, or a mapping"
    " name -> columns"
)


@dataclass(frozen=True, repr=False)
class Groups:
    """A partition of ``n_features`` columns into named groups.

    Build one with :meth:`Groups.from_spec`; every column belongs to exactly one group.
    """

    index: tuple[np.ndarray, ...]
    names: tuple[str, ...]
    n_features: int

    def __post_init__(self) -> None:
        # checked here, not only in from_spec, so a hand-built Groups cannot be a bad partition
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        if len(self.index) == 0:
            raise ValueError("groups must not be empty")
        if len(self.names) != len(self.index):
            raise ValueError(f"{len(self.names)} group names for {len(self.index)} groups")
        index = []
        for name, ix in zip(self.names, self.index):
            ix = np.asarray(ix)
            if ix.size == 0:
                raise ValueError(f"group {name!r} is empty")
            # a float index would be truncated by the cast below
            if ix.ndim != 1 or ix.dtype.kind not in "iu":
                raise ValueError(
                    f"group {name!r}: column indices must be a flat list of integers,"
                    f" got {ix.tolist()!r}"
                )
            index.append(ix.astype(np.int64))
        object.__setattr__(self, "index", tuple(index))
        n_features = check_int(self.n_features, "n_features")
        object.__setattr__(self, "n_features", n_features)
        allcols = np.concatenate(self.index)
        if allcols.min() < 0 or allcols.max() >= n_features:
            bad = allcols[(allcols < 0) | (allcols >= n_features)]
            raise ValueError(
                f"groups name columns {sorted(set(bad.tolist()))[:10]} outside 0..{n_features - 1}"
            )
        counts = np.bincount(allcols, minlength=n_features)
        if (counts > 1).any():
            raise ValueError(
                f"columns {np.flatnonzero(counts > 1)[:10].tolist()} belong to more than one group"
            )
        if (counts == 0).any():
            raise ValueError(
                f"groups do not cover the data: columns {np.flatnonzero(counts == 0)[:10].tolist()}"
                f" (of {n_features}) are in no group"
            )
        if len(set(self.names)) != len(self.names):
            raise ValueError("group names must be unique")

    def __repr__(self) -> str:
        # the column indices of thousands of genes would bury the structure
        sizes = [f"{n!r}: {len(ix)}" for n, ix in zip(self.names[:8], self.index[:8])]
        more = ", ..." if self.n_groups > 8 else ""
        return (
            f"Groups(n_groups={self.n_groups}, n_features={self.n_features},"
            f" sizes={{{', '.join(sizes)}{more}}})"
        )

    @property
    def n_groups(self) -> int:
        return len(self.index)

    @property
    def sizes(self) -> np.ndarray:
        return np.array([len(ix) for ix in self.index])

    @property
    def feature_group(self) -> np.ndarray:
        """``(n_features,)`` group id of every column."""
        out = np.empty(self.n_features, dtype=np.int64)
        for g, ix in enumerate(self.index):
            out[ix] = g
        return out

    def coverage(self) -> str:
        """Where a model's column count comes from, for its wrong-shape messages."""
        return (
            f" (its {self.n_groups} groups cover {self.n_features} columns; every column of"
            " the data must be in exactly one group)"
        )

    @classmethod
    def from_spec(
        cls,
        spec: Groups | Sequence[int] | Sequence[Sequence[int]] | Mapping[str, Sequence[int]],
        n_features: int | None = None,
        columns: Sequence[str] | None = None,
    ) -> Groups:
        """Parse a group specification.

        Parameters
        ----------
        spec
            One of: a list of group sizes (consecutive blocks of columns); a list of
            column-index lists; a mapping ``name -> columns`` (indices, or column names
            when ``columns`` is given); or a :class:`Groups`.
        n_features
            Number of columns the groups must cover; inferred from ``spec`` when omitted.
        columns
            Column names, so that a mapping may name columns instead of indexing them.

        Raises
        ------
        TypeError
            If ``spec`` is none of these forms (e.g. a single int or a str).
        ValueError
            If a group is empty, a size is not a positive int, a column is out of range or
            listed twice, the groups do not cover all ``n_features`` columns, or
            ``n_features`` is not a positive int.
        """
        if n_features is not None:
            n_features = check_int(n_features, "n_features")
        if isinstance(spec, Groups):
            if n_features is not None and spec.n_features != n_features:
                raise ValueError(
                    f"groups cover {spec.n_features} columns but the data has {n_features}"
                )
            return spec
        if isinstance(spec, Mapping):
            if not spec:
                raise ValueError("groups must not be empty")
            names = [str(k) for k in spec]
            lists = [_resolve(v, columns, name) for name, v in zip(names, spec.values())]
        else:
            if hasattr(spec, "columns") and hasattr(spec, "iloc"):  # iterates its names
                raise TypeError(f"groups must be {SPEC_FORMS}; got a DataFrame (data, not groups)")
            if isinstance(spec, (str, bytes)) or not isinstance(spec, Iterable):
                # short: the repr of a data object can run to pages
                hint = "; call it to get the groups" if callable(spec) else ""
                raise TypeError(
                    f"groups must be {SPEC_FORMS}; got {type(spec).__name__}"
                    f" {reprlib.repr(spec)}{hint}"
                )
            spec = list(spec)
            if not spec:
                raise ValueError("groups must not be empty")
            # numbers at the top level are sizes; booleans count as numbers so that
            # [True, True] is refused rather than read as sizes [1, 1]
            is_size = [isinstance(s, (numbers.Number, np.bool_)) for s in spec]
            if any(is_size) and not all(is_size):
                raise ValueError(
                    f"groups mixes sizes and column lists: {reprlib.repr(spec)}; use one form"
                )
            if all(is_size):
                ints = [isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in spec]
                if not all(ints) or min(spec) < 1:
                    raise ValueError(
                        f"group sizes must be positive ints, got {reprlib.repr(spec)};"
                        f" groups must be {SPEC_FORMS}"
                    )
                sizes = [int(s) for s in spec]
                if n_features is not None and sum(sizes) != n_features:
                    raise ValueError(
                        f"group sizes add up to {sum(sizes)} but the data has {n_features} columns"
                    )
                ends = np.cumsum(sizes)
                lists = [list(range(e - s, e)) for s, e in zip(sizes, ends)]
            else:
                lists = [_resolve(v, columns, str(g)) for g, v in enumerate(spec)]
            names = [f"group{g}" for g in range(len(lists))]
        index = tuple(np.asarray(ix, dtype=np.int64) for ix in lists)
        if n_features is None:
            n_features = max((int(ix.max()) + 1 for ix in index if ix.size), default=0)
        return cls(index=index, names=tuple(names), n_features=n_features)


def _resolve(cols, columns, name) -> list[int]:
    cols = np.atleast_1d(np.asarray(cols, dtype=object))
    if cols.ndim != 1:
        raise ValueError(f"group {name!r}: expected a flat list of columns, got {cols.tolist()!r}")
    out = []
    for c in cols:
        if isinstance(c, (bool, np.bool_)):
            raise ValueError(f"group {name!r}: {c!r} is not a column index or name")
        if isinstance(c, (int, np.integer)):
            out.append(int(c))
        elif columns is not None and c in list(columns):
            out.append(list(columns).index(c))
        elif columns is None and isinstance(c, str):
            raise ValueError(
                f"group {name!r}: {c!r} names a column, but no column names are known here;"
                " build the groups from the table, groups=gfa.io.groups_from(df, spec)"
            )
        else:
            raise ValueError(
                f"group {name!r}: unknown column {c!r} (a column is an int index, or a name"
                " when columns= is given)"
            )
    return out
