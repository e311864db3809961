"""The Numba selection kernel gives exactly numpy's sorted order statistics."""

from __future__ import annotations

import numpy as np
import pytest

from bayescale.order_stats import row_order_stats


def _rows(kind: str, n_rows: int, n_cols: int, rng: np.random.Generator) -> np.ndarray:
    values = rng.normal(0.6, 0.02, (n_rows, n_cols)).astype(np.float32)
    if kind == "ties":
        values = np.round(values * 100) / 100
    elif kind == "constant":
        values[:] = 0.5
    elif kind == "nan":
        values[1, n_cols // 2] = np.nan
    elif kind == "heavy":
        values = rng.standard_cauchy((n_rows, n_cols)).astype(np.float32)
    elif kind == "outlier":
        values[:, 0] = 1e30  # one far value squeezes the rest into a single histogram bin
    return values


@pytest.mark.parametrize("kind", ["smooth", "ties", "constant", "nan", "heavy", "outlier"])
@pytest.mark.parametrize("n_cols", [1, 2, 9, 4000])
def test_numba_kernel_equals_sorting(kind, n_cols):
    rng = np.random.default_rng(n_cols)
    values = _rows(kind, 6, n_cols, rng)
    noise = rng.normal(0, 0.01, n_cols).astype(np.float32)
    pos = np.array([0.05, 0.5, 0.95]) * (n_cols - 1)
    ranks = np.unique(np.concatenate([np.floor(pos), np.minimum(np.floor(pos) + 1, n_cols - 1), [0, n_cols - 1]]).astype(int))
    for shift in (None, noise):
        expected = np.sort(values if shift is None else values + shift, axis=1)[:, ranks]
        fast = row_order_stats(values, ranks, shift, force_numba=True)
        np.testing.assert_array_equal(fast, expected)
        np.testing.assert_array_equal(row_order_stats(values, ranks, shift, force_numba=False), expected)


def test_ranks_are_checked():
    values = np.zeros((2, 5), dtype=np.float32)
    with pytest.raises(ValueError, match="ascending and within"):
        row_order_stats(values, [3, 1])
    with pytest.raises(ValueError, match=r"within \[0, 4\]"):
        row_order_stats(values, [5])
