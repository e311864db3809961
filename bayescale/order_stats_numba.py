"""The Numba kernel behind ``order_stats.row_order_stats`` (imported only for large inputs)."""

from __future__ import annotations

import numba
import numpy as np

#: Histogram bins per row: enough that the bins holding the ranks are small for 10³–10⁴ draws.
BINS = 1024


@numba.njit(nogil=True, cache=True)
def select_rows(values, noise, ranks, out):
    """``out[r, j]`` = the ``ranks[j]``-th smallest of ``values[r] + noise`` (ranks ascending)."""
    n = values.shape[1]
    row = np.empty(n, values.dtype)
    bins = np.empty(n, np.int64)
    counts = np.empty(BINS, np.int64)
    slot = np.empty(BINS, np.int64)
    for r in range(values.shape[0]):
        lo, hi, has_nan = np.inf, -np.inf, False
        for i in range(n):
            v = values[r, i] + noise[i]
            row[i] = v
            has_nan |= v != v  # noqa: PLR0124 - NaN test that numba compiles to one comparison
            lo = min(lo, v)
            hi = max(hi, v)
        if has_nan:
            ordered = np.sort(row)
            for j in range(ranks.size):
                out[r, j] = ordered[ranks[j]]
        elif hi == lo:
            out[r, :] = lo
        else:
            _select(row, lo, hi, ranks, bins, counts, slot, out[r])


@numba.njit(nogil=True, cache=True)
def _select(row, lo, hi, ranks, bins, counts, slot, out):
    """Histogram the row into BINS bins, gather only the bins that hold a wanted rank, sort those."""
    scale = BINS / (np.float64(hi) - np.float64(lo))
    counts[:] = 0
    for i in range(row.size):
        b = min(int((row[i] - lo) * scale), BINS - 1)
        bins[i] = b
        counts[b] += 1
    slot[:] = -1
    below_bin = np.empty(ranks.size, np.int64)  # values below each gathered bin
    offsets = np.zeros(ranks.size + 1, np.int64)  # where each gathered bin starts
    slots, below, b = 0, 0, 0
    for j in range(ranks.size):
        while below + counts[b] <= ranks[j]:
            below += counts[b]
            b += 1
        if slot[b] < 0:
            slot[b] = slots
            below_bin[slots] = below
            offsets[slots + 1] = offsets[slots] + counts[b]
            slots += 1
    gathered = np.empty(offsets[slots], row.dtype)
    fill = offsets[:slots].copy()
    for i in range(row.size):
        k = slot[bins[i]]
        if k >= 0:
            gathered[fill[k]] = row[i]
            fill[k] += 1
    for k in range(slots):
        gathered[offsets[k] : offsets[k + 1]] = np.sort(gathered[offsets[k] : offsets[k + 1]])
    k = 0
    for j in range(ranks.size):
        while below_bin[k] + (offsets[k + 1] - offsets[k]) <= ranks[j]:
            k += 1
        out[j] = gathered[offsets[k] + ranks[j] - below_bin[k]]
