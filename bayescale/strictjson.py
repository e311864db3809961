"""Strict JSON for every document the package writes or prints (CLI ``--format json``, batch
``result.json``, the report's embedded data): no ``NaN``/``Infinity``, and a reason beside each null.

The convention: a number that cannot be given is ``null``, and the object holding it has a sibling
``NAME_reason`` saying why (``"loss_median": null, "loss_median_reason": "..."``). A document may
set a specific reason itself; otherwise the reason says what the value was (NaN, +inf, -inf). A
list holding such a number gets one ``NAME_reason`` for the list.
"""

from __future__ import annotations

import json
import math
import numbers
from typing import Any

#: Suffix of the key beside a null number that says why it is null.
REASON_SUFFIX = "_reason"


def null_reason(value: float) -> str:
    """Why a non-finite ``value`` is written as null."""
    if math.isnan(value):
        return "not defined (NaN): the computation has no value here, e.g. a statistic of a fixed parameter or of too few draws, or a law that overflowed at these inputs"
    return f"{'+' if value > 0 else '-'}infinite: the value overflowed the floating-point range (the inputs are far outside what the fit can answer)"


def _non_finite(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) and not math.isfinite(value)


def finite_json(value: Any) -> Any:
    """``value`` as plain JSON data: non-finite floats as ``None`` with a ``NAME_reason`` beside them
    (see the module), numpy scalars as Python numbers, tuples as lists, pandas' NA as ``None``."""
    if type(value).__name__ == "NAType":  # pandas' missing value
        value = None
    elif hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy scalars (np.bool_, np.float32, ...)
        value = value.item()
    if isinstance(value, dict):
        return _object(value)
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else None
    return value


def _object(value: dict[Any, Any]) -> dict[Any, Any]:
    """A JSON object with each null number's ``NAME_reason`` beside it (unless the document gave one)."""
    out: dict[Any, Any] = {}
    for key, item in value.items():
        out[key] = finite_json(item)
        reason = f"{key}{REASON_SUFFIX}"
        if reason in value or not isinstance(key, str):
            continue
        if _non_finite(item):
            out[reason] = null_reason(float(item))
        elif isinstance(item, (list, tuple)) and (bad := [float(v) for v in item if _non_finite(v)]):
            out[reason] = f"{len(bad)} of {len(item)} entries are null: " + null_reason(bad[0])
    return out


def json_text(doc: Any, indent: int | None = 2) -> str:
    """Strict JSON of ``doc`` (``finite_json``): parses with any strict parser."""
    return json.dumps(finite_json(doc), indent=indent, allow_nan=False)
