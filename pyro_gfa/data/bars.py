"""The synthetic bars data of the oi-VAE paper (appendix A)."""

from __future__ import annotations

import math

import numpy as np

from .._checks import check_float, check_int, check_seed


def make_bars(
    n: int = 2048,
    size: int = 8,
    value: float = 0.5,
    noise_sd: float = 0.05,
    seed: int | None = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Images of one horizontal bar, flattened row by row.

    Each ``size x size`` image has exactly one row, chosen uniformly at random, set to
    ``value``; white noise of standard deviation ``noise_sd`` is added to every pixel.

    Returns
    -------
    X : ndarray, shape (n, size * size), float32
    rows : ndarray, shape (n,), the active row of each image

    Raises
    ------
    ValueError
        If ``n`` or ``size`` is not a positive int, ``seed`` is not ``None`` or an int
        ``>= 0``, or ``noise_sd`` or ``value`` is not finite (or ``noise_sd < 0``).
    """
    n, size = check_int(n, "n"), check_int(size, "size")
    seed = check_seed(seed)
    check_float(noise_sd, "noise_sd", allow_low=True)
    check_float(value, "value", -math.inf)
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, size, size=n)
    img = np.zeros((n, size, size))
    img[np.arange(n), rows, :] = value
    img += noise_sd * rng.standard_normal(img.shape)
    return img.reshape(n, size * size).astype(np.float32), rows


def bar_groups(size: int = 8) -> list[list[int]]:
    """One group per image row (columns of a row-major flattened image)."""
    size = check_int(size, "size")
    return [list(range(r * size, (r + 1) * size)) for r in range(size)]
