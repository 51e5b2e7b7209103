"""Group specifications: which observed columns belong to which group."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


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
        index = tuple(np.asarray(ix, dtype=np.int64) for ix in self.index)
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        n_features = int(self.n_features)
        if len(self.index) == 0:
            raise ValueError("groups must not be empty")
        if len(self.names) != len(self.index):
            raise ValueError(f"{len(self.names)} group names for {len(self.index)} groups")
        for name, ix in zip(self.names, self.index):
            if ix.size == 0:
                raise ValueError(f"group {name!r} is empty")
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
        ValueError
            If a group is empty, a column is out of range or listed twice, or the groups
            do not cover all ``n_features`` columns.
        """
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
            spec = list(spec)
            if not spec:
                raise ValueError("groups must not be empty")
            if all(isinstance(s, (int, np.integer)) for s in spec):
                sizes = [int(s) for s in spec]
                if any(s <= 0 for s in sizes):
                    raise ValueError(f"group sizes must be positive, got {sizes}")
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
    cols = list(np.atleast_1d(np.asarray(cols, dtype=object)))
    out = []
    for c in cols:
        if isinstance(c, (bool, np.bool_)):
            raise ValueError(f"group {name!r}: {c!r} is not a column index or name")
        if isinstance(c, (int, np.integer)):
            out.append(int(c))
        elif columns is not None and c in list(columns):
            out.append(list(columns).index(c))
        else:
            raise ValueError(f"group {name!r}: unknown column {c!r}")
    return out
