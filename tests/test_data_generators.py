"""The synthetic images of the oi-VAE (bars) and factVAE (quadrant bars) papers."""

import numpy as np
import pytest

from pyro_gfa.data import make_bars, make_quadrant_bars, quadrant_groups


def test_bars_have_one_whole_row_at_value_on_the_returned_row():
    n, size = 300, 5
    X, rows = make_bars(n, size=size, value=0.7, noise_sd=0.0, seed=1)
    img = X.reshape(n, size, size)  # flattened row by row
    on = img == np.float32(0.7)
    np.testing.assert_array_equal(on.all(2), np.eye(size, dtype=bool)[rows])
    assert (img[~on] == 0).all()
    # the row is uniform over all size rows
    counts = np.bincount(rows, minlength=size)
    assert counts.size == size and (np.abs(counts / n - 1 / size) < 0.06).all()


def test_quadrant_groups_of_a_4x4_image():
    assert quadrant_groups(4) == {
        "top_left": [0, 1, 4, 5],
        "top_right": [2, 3, 6, 7],
        "bottom_left": [8, 9, 12, 13],
        "bottom_right": [10, 11, 14, 15],
    }


def test_quadrant_bars_are_whole_rows_active_with_row_prob():
    n, size = 4000, 4
    X, rows, observed = make_quadrant_bars(n, size=size, row_prob=0.2, value=0.7, noise_sd=0.0)
    img = X.reshape(n, size, size)
    expected = np.repeat(np.where(rows, 0.7, 0.0)[:, :, None], size, axis=2)  # rows, not columns
    np.testing.assert_array_equal(img, expected.astype(np.float32))
    assert rows.mean() == pytest.approx(0.2, abs=0.01)
    assert observed.all()  # missing_rate 0


def test_every_image_keeps_at_least_one_quadrant():
    _, _, observed = make_quadrant_bars(4000, size=4, missing_rate=0.9, seed=0)
    assert observed.any(1).all()
    # drawn: 0.1; all four missing (0.9^4) restores one of them: + 0.9^4 / 4
    assert observed.mean() == pytest.approx(0.1 + 0.9**4 / 4, abs=0.01)


@pytest.mark.parametrize("make", [make_bars, make_quadrant_bars])
def test_pixel_noise_has_standard_deviation_noise_sd(make):
    kw = {"value": 0.0, "noise_sd": 0.3, "seed": 2}
    X = make(2000, **kw)[0].astype(np.float64)
    assert X.std() == pytest.approx(0.3, rel=0.01)
    assert abs(X.mean()) < 0.005
