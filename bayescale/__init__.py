"""bayescale: Bayesian scaling-law fitting and forecasting for LLM pre-training.

Data flow: ``load_runs`` → ``load_spec`` → ``fit`` (PyMC/nutpie) → ``Fit`` → ``Fit.forecast``.
Heavy modules (PyMC, xarray) are imported on first use so ``import bayescale`` stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from bayescale.errors import (
    BayescaleError,
    ConvergenceWarning,
    DataWarning,
    ExtrapolationWarning,
    FitFileError,
    ModelSpecError,
    RunTableError,
    SamplerError,
)

if TYPE_CHECKING:
    from bayescale.fit import Fit, fit, load_fit
    from bayescale.forecast import forecast, forecast_table
    from bayescale.runs import RunTable, load_runs
    from bayescale.spec import ModelSpec, load_spec

_LAZY = {
    "Fit": "bayescale.fit",
    "fit": "bayescale.fit",
    "load_fit": "bayescale.fit",
    "forecast": "bayescale.forecast",
    "forecast_table": "bayescale.forecast",
    "RunTable": "bayescale.runs",
    "load_runs": "bayescale.runs",
    "ModelSpec": "bayescale.spec",
    "load_spec": "bayescale.spec",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bayescale' has no attribute {name!r}")


__all__ = [
    "BayescaleError",
    "ConvergenceWarning",
    "DataWarning",
    "ExtrapolationWarning",
    "Fit",
    "FitFileError",
    "ModelSpec",
    "ModelSpecError",
    "RunTable",
    "RunTableError",
    "SamplerError",
    "fit",
    "forecast",
    "forecast_table",
    "load_fit",
    "load_runs",
    "load_spec",
]
