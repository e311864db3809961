"""Forecast-quality metrics on samples, pure numpy.

``samples`` has the sample axis first: shape ``(n_samples, n_obs)`` (or ``(n_samples,)`` for one
observation); ``observed`` has shape ``(n_obs,)``. Backtests apply them to log loss.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from bayescale.errors import BayescaleError


def _prepare(samples, observed) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(samples, dtype=float)
    y = np.atleast_1d(np.asarray(observed, dtype=float))
    if s.ndim == 1:
        s = s[:, None] if y.size == 1 else s[None, :]
    s = s.reshape(s.shape[0], -1)
    if s.shape[1] != y.size:
        raise BayescaleError(f"samples of {s.shape[1]} observation(s) but {y.size} observed value(s)")
    if s.shape[0] == 0 or y.size == 0:
        raise BayescaleError("no samples or no observations to score")
    return s, y


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise BayescaleError(f"interval level {level!r} must lie strictly between 0 and 1")


def interval(samples: ArrayLike, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed ``level`` interval of each observation's samples."""
    _check_level(level)
    s = np.asarray(samples, dtype=float)
    s = s.reshape(s.shape[0], -1)
    return np.quantile(s, (1 - level) / 2, axis=0), np.quantile(s, (1 + level) / 2, axis=0)


def coverage(samples: ArrayLike, observed: ArrayLike, level: float) -> float:
    """Fraction of observations inside their equal-tailed ``level`` interval (ends included)."""
    s, y = _prepare(samples, observed)
    lo, hi = interval(s, level)
    return float(np.mean((y >= lo) & (y <= hi)))


def mean_width(samples: ArrayLike, level: float) -> float:
    """Mean width of the equal-tailed ``level`` intervals."""
    lo, hi = interval(samples, level)
    return float(np.mean(hi - lo))


def crps_pointwise(samples: ArrayLike, observed: ArrayLike) -> np.ndarray:
    """Sample CRPS per observation, energy form: E|X − y| − ½ E|X − X′| (lower is better).

    ``E|X − X′|`` over all sample pairs is computed from the sorted samples in O(S log S).
    """
    s, y = _prepare(samples, observed)
    n = s.shape[0]
    term1 = np.mean(np.abs(s - y[None, :]), axis=0)
    x = np.sort(s, axis=0)
    weights = (2 * np.arange(1, n + 1) - n - 1)[:, None]
    term2 = 2.0 * np.sum(weights * x, axis=0) / (n * n)
    return term1 - 0.5 * term2


def crps(samples: ArrayLike, observed: ArrayLike) -> float:
    """Mean sample CRPS over observations (for a point mass it is the absolute error)."""
    return float(np.mean(crps_pointwise(samples, observed)))


def median_abs_error(predicted: ArrayLike, observed: ArrayLike) -> float:
    """Median of |predicted − observed| (on log loss: a relative error of the loss)."""
    p = np.asarray(predicted, dtype=float).ravel()
    y = np.asarray(observed, dtype=float).ravel()
    if p.size != y.size or y.size == 0:
        raise BayescaleError(f"{p.size} prediction(s) for {y.size} observation(s)")
    return float(np.median(np.abs(p - y)))
