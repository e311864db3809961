"""The tiny array namespace a law is written against.

Each law's ``log_loss`` is written once against ``ops`` and runs unchanged on numpy arrays
of posterior draws (``NUMPY``) and on pytensor tensors inside the PyMC model (``pytensor_ops()``),
so the sampled model and the forecasts cannot drift apart.
"""

from __future__ import annotations

from functools import reduce
from types import SimpleNamespace

import numpy as np


def _nested(logaddexp):
    """``logsumexp(a, b, c, ...)`` as ``logaddexp(logaddexp(a, b), c)...``: exact in any backend."""
    return lambda *terms: reduce(logaddexp, terms)


NUMPY = SimpleNamespace(
    exp=np.exp,
    log=np.log,
    log1p=np.log1p,
    expm1=np.expm1,
    logaddexp=np.logaddexp,
    logsumexp=_nested(np.logaddexp),
    maximum=np.maximum,
    minimum=np.minimum,
    where=np.where,
)


def _logaddexp_simd(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """log(exp(x) + exp(y)) as max + log(1 + exp(-|x - y|)): numpy vectorises float32 exp/log, not logaddexp."""
    top = np.maximum(x, y)
    with np.errstate(invalid="ignore"):  # inf - inf: handled below
        gap = np.asarray(np.subtract(x, y))  # a fresh array: the steps below reuse it in place
        np.abs(gap, out=gap)
        np.negative(gap, out=gap)
        np.exp(gap, out=gap)
        gap += 1
        np.log(gap, out=gap)
        out = np.add(top, gap, out=gap)
    np.copyto(out, top, where=np.isinf(top))  # equal infinities leave a NaN gap; the answer is top
    return out


def _logsumexp_direct(*terms: np.ndarray) -> np.ndarray:
    """log(Σ exp(term)) summed directly: two SIMD passes per term instead of a stable ``logaddexp``
    chain. Loss terms are far inside float32's range; if a sum does overflow (or every term
    underflows), the block is recomputed with the stable chain."""
    with np.errstate(over="ignore", divide="ignore"):
        total = np.exp(terms[0])
        for term in terms[1:]:
            total = total + np.exp(term)
        out = np.log(total, out=total) if isinstance(total, np.ndarray) else np.log(total)
    if np.all(np.isfinite(out)):
        return out
    return reduce(_logaddexp_simd, terms)


#: NUMPY for bulk float32 evaluation (forecast summaries): the same functions except a
#: ``logaddexp`` and a ``logsumexp`` that numpy can vectorise (several times faster on float32,
#: exact to float32 rounding).
NUMPY_FAST = SimpleNamespace(**{**vars(NUMPY), "logaddexp": _logaddexp_simd, "logsumexp": _logsumexp_direct})


def pytensor_ops() -> SimpleNamespace:
    """The same namespace over pytensor (imported lazily: numpy users never pay for it)."""
    import pytensor.tensor as pt

    return SimpleNamespace(
        exp=pt.exp,
        log=pt.log,
        log1p=pt.log1p,
        expm1=pt.expm1,
        logaddexp=pt.logaddexp,
        logsumexp=_nested(pt.logaddexp),
        maximum=pt.maximum,
        minimum=pt.minimum,
        where=pt.where,
    )
