"""Checks of scalar arguments shared by the whole package (it imports nothing of ours)."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np


def check_int(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` as an ``int >= minimum``, or a ``ValueError`` naming ``name``.

    Python and numpy integers pass; ``bool`` and floats (even ``2.0``) do not, so that
    ``True`` or ``1.5`` is never silently read as a count.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(
            f"{name} must be an integer >= {minimum}, got {value!r} ({type(value).__name__})"
        )
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_bool(value: Any, name: str) -> bool:
    """``value`` if it is ``True`` or ``False`` (numpy's too), or a ``ValueError`` naming
    ``name``: a string such as ``"False"`` is truthy and would silently mean ``True``."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def check_seed(seed: Any) -> int | None:
    """``seed`` as given: ``None`` or an integer ``>= 0`` (what ``default_rng`` takes)."""
    return None if seed is None else check_int(seed, "seed", minimum=0)


def check_float(
    value: Any,
    name: str,
    low: float = 0.0,
    high: float = math.inf,
    *,
    allow_low: bool = False,
    allow_high: bool = False,
) -> float:
    """``value`` as a finite ``float`` in ``(low, high)``; ``allow_low`` / ``allow_high``
    close the interval at that end.

    Any real number passes (numpy scalars included) but not ``bool``, strings or NaN;
    otherwise a ``ValueError`` naming ``name`` and the allowed range.
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        value = float(value)
        above = low <= value if allow_low else low < value
        below = value <= high if allow_high else value < high
        ok = math.isfinite(value) and above and below
    if not ok:
        if high == math.inf:
            where = f"{'>=' if allow_low else '>'} {low:g} and finite"
        else:
            where = f"in {'[' if allow_low else '('}{low:g}, {high:g}{']' if allow_high else ')'}"
        raise ValueError(f"{name} must be {where}, got {value!r}")
    return value
