"""Bars by quadrants: the synthetic data of the factVAE paper (Ainsworth, Foti, Fox 2018, 4.1)."""

from __future__ import annotations

import math

import numpy as np

from .._checks import check_float, check_int, check_seed

QUADRANTS = ("top_left", "top_right", "bottom_left", "bottom_right")


def quadrant_groups(size: int = 8) -> dict[str, list[int]]:
    """The four quadrants of a row-major flattened ``size x size`` image, as named groups.

    Returns
    -------
    dict
        ``{"top_left": [...], "top_right": [...], "bottom_left": [...], "bottom_right": [...]}``
        column indices of each quadrant (``(size / 2)^2`` each).
    """
    if check_int(size, "size") % 2:
        raise ValueError(f"size must be a positive even number, got {size}")
    h = size // 2
    out = {}
    for name, (r0, c0) in zip(QUADRANTS, [(0, 0), (0, h), (h, 0), (h, h)]):
        out[name] = [r * size + c for r in range(r0, r0 + h) for c in range(c0, c0 + h)]
    return out


def make_quadrant_bars(
    n: int = 2048,
    size: int = 8,
    row_prob: float = 0.5,
    value: float = 0.5,
    noise_sd: float = 0.05,
    missing_rate: float = 0.0,
    seed: int | None = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images with rows of pixels active, split into four quadrant groups.

    Every row of every ``size x size`` image is active (set to ``value``) independently with
    probability ``row_prob``; white noise of standard deviation ``noise_sd`` is added to
    every pixel. Rows are independent, so the two top quadrants (and the two bottom ones)
    share all their structure while top and bottom share none.

    Parameters
    ----------
    n, size
        Number of images and their side (even).
    row_prob, value, noise_sd
        Probability that a row is active, its value, and the pixel noise.
    missing_rate
        Probability that each quadrant of an image is missing; at least one quadrant of
        each image is always kept (if all four are drawn missing, one of them at random is
        restored).
    seed
        Seed of the generator.

    Returns
    -------
    X : ndarray, shape (n, size * size), float32
        The complete images (apply the mask with
        :func:`pyro_gfa.models.factvae.mask_groups`).
    rows : ndarray, shape (n, size), bool
        Active rows.
    observed : ndarray, shape (n, 4), bool
        Observed quadrants, in the order of :func:`quadrant_groups`.
    """
    n, size, seed = check_int(n, "n"), check_int(size, "size"), check_seed(seed)
    if size % 2:
        raise ValueError(f"size must be a positive even number, got {size}")
    for p, name in ((row_prob, "row_prob"), (missing_rate, "missing_rate")):
        check_float(p, name, 0.0, 1.0, allow_low=True, allow_high=True)
    check_float(noise_sd, "noise_sd", allow_low=True)
    check_float(value, "value", -math.inf)
    rng = np.random.default_rng(seed)
    rows = rng.random((n, size)) < row_prob
    img = np.repeat(rows[:, :, None] * value, size, axis=2).astype(np.float64)
    img += noise_sd * rng.standard_normal(img.shape)
    observed = rng.random((n, 4)) >= missing_rate
    none = ~observed.any(1)
    observed[np.flatnonzero(none), rng.integers(0, 4, size=int(none.sum()))] = True
    return img.reshape(n, size * size).astype(np.float32), rows, observed
