"""Both paths of ``row_order_stats`` (numpy and the Numba selection kernel) give exactly the order
statistics of an independent reference: each row sorted by Python's ``sorted`` (NaN last)."""

from __future__ import annotations

import math

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


def _reference(values: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Row by row with Python's ``sorted`` (NaN last, as numpy orders it): no numpy sorting involved."""
    rows = [sorted(row.tolist(), key=lambda v: (math.isnan(v), v)) for row in values]
    return np.array([[row[k] for k in ranks] for row in rows], dtype=values.dtype)


@pytest.mark.parametrize("kind", ["smooth", "ties", "constant", "nan", "heavy", "outlier"])
@pytest.mark.parametrize("n_cols", [1, 2, 9, 4000])
def test_both_paths_equal_an_independent_reference(kind, n_cols):
    rng = np.random.default_rng(n_cols)
    values = _rows(kind, 6, n_cols, rng)
    noise = rng.normal(0, 0.01, n_cols).astype(np.float32)
    pos = np.array([0.05, 0.5, 0.95]) * (n_cols - 1)
    ranks = np.unique(np.concatenate([np.floor(pos), np.minimum(np.floor(pos) + 1, n_cols - 1), [0, n_cols - 1]]).astype(int))
    for shift in (None, noise):
        shifted = values if shift is None else values + shift  # the float32 sum both paths select from
        expected = _reference(shifted, ranks)
        np.testing.assert_array_equal(row_order_stats(values, ranks, shift, force_numba=True), expected)
        np.testing.assert_array_equal(row_order_stats(values, ranks, shift, force_numba=False), expected)


def test_order_statistics_are_the_quantiles_they_stand_for():
    """Rank k of n values is numpy's ``inverted_cdf`` quantile at any p in (k/n, (k+1)/n]."""
    rng = np.random.default_rng(7)
    values = rng.normal(2.0, 0.1, (5, 1001)).astype(np.float32)
    ranks = np.array([49, 500, 949])
    probs = (ranks + 0.5) / values.shape[1]
    quantiles = np.quantile(values, probs, axis=1, method="inverted_cdf").T
    np.testing.assert_array_equal(row_order_stats(values, ranks, force_numba=True), quantiles)
    np.testing.assert_array_equal(row_order_stats(values, ranks, force_numba=False), quantiles)


def test_ranks_are_checked():
    values = np.zeros((2, 5), dtype=np.float32)
    with pytest.raises(ValueError, match="ascending and within"):
        row_order_stats(values, [3, 1])
    with pytest.raises(ValueError, match=r"within \[0, 4\]"):
        row_order_stats(values, [5])
