"""Hash what the package computes from fixed seeds, so a change meant to preserve behaviour can be
checked: run it before and after, and compare the lines (``uv run python scripts/fingerprint.py``).

Covers an ungrouped fit with its self-check, forecasts (both paths), allocation, decisions and the
report's numbers, and a grouped fit's forecasts and allocations for a seen and a new level. Each
line is ``name sha256-prefix``; a line that differs names the computation that changed.
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from typing import Any

import numpy as np


def digest(value: Any) -> str:
    """A short hash of arrays, frames, datasets or JSON-able values, rounded to 12 significant digits."""
    import pandas as pd
    import xarray as xr

    if isinstance(value, xr.Dataset):
        value = {k: value[k].values for k in sorted(value.data_vars)}
    if isinstance(value, pd.DataFrame):
        value = {str(k): value[k].to_numpy() for k in value.columns}
    if isinstance(value, dict):
        return hashlib.sha256("".join(f"{k}:{digest(v)}" for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))).encode()).hexdigest()[:16]
    if isinstance(value, np.ndarray) and value.dtype.kind in "fc":
        value = np.round(value.astype(float), 12)
        return hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()[:16]
    if isinstance(value, np.ndarray):
        return hashlib.sha256(str(value.tolist()).encode()).hexdigest()[:16]
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _stable(document: Any) -> dict[str, Any]:
    """A self-check's stored document without its wall-clock time, which differs between runs of the same code."""
    return {k: v for k, v in document.to_dict().items() if k != "seconds"}


def main() -> None:
    import bayescale as bs
    from bayescale.allocate import allocate
    from bayescale.decide import compute_for_target, decide, prob_below
    from bayescale.resources import data_path

    warnings.simplefilter("ignore")
    lines: list[tuple[str, str]] = []
    runs = bs.load_runs(data_path("chinchilla_figure4_runs.csv"))
    fit = bs.fit(runs, "chinchilla", draws=300, tune=300, chains=2, seed=11, progress=False)
    lines.append(("fit.posterior", digest(fit.posterior)))
    lines.append(("fit.self_check", digest(_stable(fit.self_check))))
    lines.append(("forecast", digest(fit.forecast(params=[7e10, 1e9], tokens=[1.4e12, 2e10], seed=3))))
    lines.append(("forecast_summary", digest(bs.forecast_summary(fit, params=[7e10, 1e9, 3e8], tokens=[1.4e12, 2e10, 6e9], seed=3))))
    lines.append(("allocate", digest(allocate(fit, [1e21, 5.76e23], seed=2))))
    lines.append(("allocate.robust", digest(allocate(fit, [5.76e23], robust_quantile=0.9, seed=2))))
    lines.append(("prob_below", digest(prob_below(fit, 2.0, params=7e10, tokens=1.4e12, seed=5))))
    lines.append(("compute_for_target", digest(compute_for_target(fit, 2.1, 0.8, seed=5).to_dict())))
    lines.append(("decide.budgets", digest(decide(fit, 2.0, 0.8, flops=[1e23, 1e24], seed=5))))
    lines.append(("decide.plan", digest(decide(fit, 2.0, 0.8, params=7e10, tokens=1.4e12, seed=5))))

    grouped_runs = bs.load_runs(data_path("example_grouped_runs.csv"), columns={"params": "Model Size"})
    gfit = bs.fit(grouped_runs, "chinchilla", group="dataset", draws=300, tune=300, chains=2, seed=12, progress=False)
    lines.append(("grouped.posterior", digest(gfit.posterior)))
    lines.append(("grouped.self_check", digest(_stable(gfit.self_check))))
    seen = {"dataset": "web"}
    lines.append(("grouped.forecast_seen", digest(gfit.forecast(params=[7e9], tokens=[1.4e11], group_values=seen, seed=3))))
    lines.append(("grouped.forecast_new", digest(gfit.forecast(params=[7e9], tokens=[1.4e11], new_group=True, seed=3))))
    lines.append(("grouped.summary_seen", digest(bs.forecast_summary(gfit, params=[7e9], tokens=[1.4e11], group_values=seen, seed=3))))
    lines.append(("grouped.allocate_seen", digest(allocate(gfit, [1e22], group_values=seen, seed=2))))
    lines.append(("grouped.allocate_new", digest(allocate(gfit, [1e22], new_group=True, seed=2))))
    lines.append(("grouped.decide_seen", digest(decide(gfit, 2.5, 0.8, flops=[1e22], group_values=seen, seed=5))))
    for name, value in lines:
        print(f"{name} {value}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
