"""Exact order statistics of many rows at once: the inner loop of bulk forecast summaries.

``row_order_stats(values, ranks)`` returns, per row, the ``ranks``-th smallest values, exactly as
``np.sort(values, axis=1)[:, ranks]`` would. Small inputs use that one-liner; large ones a Numba
kernel (``order_stats_numba``, imported only then, cached on disk) that finds the ranks in two
linear passes instead of sorting: a histogram of the row locates the bins holding the wanted
ranks, a second pass gathers just those bins, and only they are sorted. Rows with NaN are sorted.
"""

from __future__ import annotations

from functools import cache

import numpy as np

#: Below this many values (rows × columns) numpy's sort wins: Numba would cost ~1 s to import.
NUMBA_MIN_ELEMENTS = 20_000_000


def row_order_stats(values: np.ndarray, ranks: np.ndarray, noise: np.ndarray | None = None, *, force_numba: bool | None = None) -> np.ndarray:
    """Order statistics ``ranks`` (ascending ints) of each row of ``values + noise`` (noise per column).

    ``force_numba`` picks the path (``None``: by size); both give identical results.
    """
    values = np.asarray(values)
    ranks = np.asarray(ranks, dtype=np.int64)
    if ranks.size and (np.any(np.diff(ranks) < 0) or ranks[0] < 0 or ranks[-1] >= values.shape[1]):
        raise ValueError(f"ranks must be ascending and within [0, {values.shape[1] - 1}]: {ranks.tolist()}")
    use_numba = values.size >= NUMBA_MIN_ELEMENTS if force_numba is None else force_numba
    if not use_numba:
        shifted = values if noise is None else values + noise
        return np.sort(shifted, axis=1)[:, ranks]
    out = np.empty((values.shape[0], ranks.size), dtype=values.dtype)
    noise = np.zeros(values.shape[1], dtype=values.dtype) if noise is None else np.ascontiguousarray(noise, dtype=values.dtype)
    _kernel()(np.ascontiguousarray(values), noise, ranks, out)
    return out


@cache
def _kernel():
    """The Numba kernel, imported (compiled or loaded from Numba's disk cache) on first use."""
    from bayescale.order_stats_numba import select_rows

    return select_rows
