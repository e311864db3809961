"""Leave-future-out backtests: fit on the runs up to a compute cutoff, forecast every run above it.

Scaling laws are used to extrapolate, so they are judged on extrapolation: the error, interval
coverage and CRPS of forecasts of the larger runs, on log loss.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayescale.errors import BayescaleError, ExtrapolationWarning, RunTableError
from bayescale.runs import RunTable, load_runs
from bayescale.validate.metrics import coverage, crps, mean_width, median_abs_error

METHODS = ("bayes", "point")
LEVELS = (0.5, 0.8, 0.9)


def split_by_flops(runs: RunTable, train_max_flops: float) -> tuple[RunTable, RunTable]:
    """Runs with flops ≤ cutoff (train) and above it (test); a clear error if either is empty."""
    flops = runs.column("flops").astype(float)
    cutoff = float(train_max_flops)
    train, test = flops <= cutoff, flops > cutoff
    if not train.any():
        raise RunTableError(f"{runs.source}: no runs with flops <= {cutoff:.3g} to train on (smallest run: {flops.min():.3g} FLOPs)")
    if not test.any():
        raise RunTableError(f"{runs.source}: no runs with flops > {cutoff:.3g} to forecast (largest run: {flops.max():.3g} FLOPs); choose a smaller --train-max-flops")

    def part(mask, label):
        return RunTable(runs.data[mask].reset_index(drop=True), source=f"{runs.source} ({label} {cutoff:.3g} FLOPs)", extra_columns=runs.extra_columns)

    return part(train, "<="), part(test, ">")


def backtest(
    runs: RunTable | pd.DataFrame | str,
    model: Any = "chinchilla",
    train_max_flops: float = 1e20,
    method: str = "bayes",
    group: str | Sequence[str] | None = None,
    levels: Sequence[float] = LEVELS,
    seed: int = 0,
    bootstrap: int = 200,
    **fit_kwargs: Any,
) -> dict[str, Any]:
    """Fit ``model`` on runs with flops ≤ ``train_max_flops`` and score forecasts of all larger runs.

    ``method="bayes"`` uses ``bayescale.fit`` (``fit_kwargs`` go to it) and posterior predictive
    intervals; ``method="point"`` uses the Huber point fit with ``bootstrap`` resamples and
    residual noise for its intervals. Returns ``coverage_<level>``, ``mean_width_<level>``,
    ``median_abs_log_error``, ``crps`` (all on log loss), ``n_train``, ``n_test`` and
    ``max_extrapolation`` (largest test flops / largest train flops).
    """
    from bayescale.forecasting import target_table

    if method not in METHODS:
        raise BayescaleError(f"unknown backtest method {method!r}; choose one of {', '.join(METHODS)}")
    runs = runs if isinstance(runs, RunTable) else load_runs(runs)
    train, test = split_by_flops(runs, train_max_flops)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        if method == "bayes":
            from bayescale.fitting import fit

            fitted = fit(train, model, group, seed=seed, **fit_kwargs)
        else:
            from bayescale.validate.point import point_fit

            if group:
                raise BayescaleError("the point fit has no groups: drop --group or use --method bayes")
            if fit_kwargs:
                raise BayescaleError(f"option(s) {', '.join(fit_kwargs)} apply to the Bayesian fit only, not to --method point")
            fitted = point_fit(train, model, bootstrap=bootstrap, seed=seed)
        targets = test.data.drop(columns=["loss"])
        ds = fitted.forecast(targets, seed=seed)
    seconds = time.perf_counter() - start
    observed = np.log(test.column("loss").astype(float))
    samples = np.log(ds["loss_pred"].stack(sample=("chain", "draw")).transpose("sample", "target").values)
    if method == "point":
        frame = target_table(fitted, targets)
        law = fitted.spec.law
        predicted = np.log(law.loss(fitted.params, frame))
    else:
        predicted = np.median(samples, axis=0)
    out: dict[str, Any] = {"model": fitted.spec.name, "method": method, "train_max_flops": float(train_max_flops)}
    for level in sorted(levels, reverse=True):
        out[f"coverage_{round(level * 100)}"] = coverage(samples, observed, level)
    for level in sorted(levels, reverse=True):
        out[f"mean_width_{round(level * 100)}"] = mean_width(samples, level)
    out.update(
        median_abs_log_error=median_abs_error(predicted, observed),
        crps=crps(samples, observed),
        n_train=len(train),
        n_test=len(test),
        max_extrapolation=float(test.column("flops").max() / train.column("flops").max()),
        seconds=seconds,
    )
    if method == "bayes":
        out["converged"] = bool(fitted.converged)
        out["diagnostics"] = fitted.diagnostics.message()
    return out


def backtest_sweep(runs, model: Any = "chinchilla", cutoffs: Sequence[float] = (), **kwargs: Any) -> pd.DataFrame:
    """``backtest`` at several cutoffs: one row per cutoff."""
    runs = runs if isinstance(runs, RunTable) else load_runs(runs)
    if not len(cutoffs):
        raise BayescaleError("no cutoffs given for the backtest sweep")
    return pd.DataFrame([backtest(runs, model, c, **kwargs) for c in cutoffs])


def default_cutoffs(runs: RunTable, n: int = 4, min_train_fraction: float = 0.4) -> list[float]:
    """``n`` cutoffs at flops quantiles from ``min_train_fraction`` to 0.9 of the runs."""
    flops = np.sort(runs.column("flops").astype(float))
    qs = np.linspace(min_train_fraction, 0.9, n)
    return sorted({float(np.quantile(flops, q, method="lower")) for q in qs})
