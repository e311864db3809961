"""bayescale: Bayesian scaling-law fitting and forecasting for LLM pre-training.

Data flow: ``load_runs`` → ``load_spec`` → ``fit`` (PyMC/nutpie) → ``Fit`` → ``Fit.forecast``.
Everything heavy (pandas, xarray, PyMC) is imported on first use.
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
    OutputPathError,
    OutputWriteError,
    RunTableError,
    SamplerError,
)

if TYPE_CHECKING:
    from bayescale.design import next_runs
    from bayescale.fitting import Fit, fit, load_fit
    from bayescale.forecasting import forecast, forecast_summary, forecast_table
    from bayescale.paths import check_output_path
    from bayescale.runs import RunTable, load_runs
    from bayescale.spec import ModelSpec, load_spec
    from bayescale.taskfit import fit_tasks, load_task_fit

#: Public names and the module that defines each: imported on first use, so ``import
#: bayescale`` and ``bayescale --help`` do not pay for pandas, xarray or PyMC.
_LAZY = {
    "Fit": "bayescale.fitting",
    "fit": "bayescale.fitting",
    "load_fit": "bayescale.fitting",
    "fit_tasks": "bayescale.taskfit",
    "load_task_fit": "bayescale.taskfit",
    "forecast": "bayescale.forecasting",
    "forecast_summary": "bayescale.forecasting",
    "forecast_table": "bayescale.forecasting",
    "RunTable": "bayescale.runs",
    "load_runs": "bayescale.runs",
    "ModelSpec": "bayescale.spec",
    "load_spec": "bayescale.spec",
    "check_output_path": "bayescale.paths",
    "next_runs": "bayescale.design",
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
    "OutputPathError",
    "OutputWriteError",
    "RunTable",
    "RunTableError",
    "SamplerError",
    "check_output_path",
    "fit",
    "fit_tasks",
    "forecast",
    "forecast_summary",
    "forecast_table",
    "load_fit",
    "load_runs",
    "load_spec",
    "load_task_fit",
    "next_runs",
]
