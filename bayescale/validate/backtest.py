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
from bayescale.validate.metrics import (
    coverage,
    crps,
    crps_pointwise,
    interval,
    mean_width,
    median_abs_error,
)

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
    predictions: bool = False,
    **fit_kwargs: Any,
) -> dict[str, Any]:
    """Fit ``model`` on runs with flops ≤ ``train_max_flops`` and score forecasts of all larger runs.

    ``method="bayes"`` uses ``bayescale.fit`` (``fit_kwargs`` go to it, ``group`` pools over
    those columns) and posterior predictive intervals; ``method="point"`` uses the Huber point
    fit with ``bootstrap`` resamples and residual noise for its intervals, one independent fit
    per level of ``group`` (the literature's per-configuration fit). Returns
    ``coverage_<level>``, ``mean_width_<level>``, ``median_abs_log_error``, ``crps`` (all on log
    loss), ``n_train``, ``n_test``, ``max_extrapolation`` (largest test flops / largest train
    flops), ``seconds``; Bayesian fits add ``converged``, ``rhat_max``, ``ess_bulk_min``,
    ``divergences`` and ``diagnostics``. ``predictions=True`` adds ``predictions``: one row per
    held-out run (its columns, observed and predicted log loss, interval ends, extrapolation).
    """
    if method not in METHODS:
        raise BayescaleError(f"unknown backtest method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "point" and (int(bootstrap) != bootstrap or bootstrap < 2):
        raise BayescaleError(f"bootstrap={bootstrap!r}: the point backtest's intervals need at least 2 bootstrap resamples")
    runs = runs if isinstance(runs, RunTable) else load_runs(runs)
    groups = tuple([group] if isinstance(group, str) else (group or ()))
    if groups:
        runs.require_columns(groups, "the backtest's groups")
    train, test = split_by_flops(runs, train_max_flops)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        if method == "bayes":
            from bayescale.fitting import fit

            fitted = fit(train, model, groups or None, seed=seed, **fit_kwargs)
            samples, predicted = _forecast_log(fitted, test, seed, point=False)
            name = fitted.spec.name
        else:
            if fit_kwargs:
                raise BayescaleError(f"option(s) {', '.join(fit_kwargs)} apply to the Bayesian fit only, not to --method point")
            samples, predicted, name = _point_by_group(train, test, model, groups, bootstrap, seed)
    seconds = time.perf_counter() - start
    observed = np.log(test.column("loss").astype(float))
    out: dict[str, Any] = {"model": name, "method": method, "train_max_flops": float(train_max_flops)}
    out.update(_scores(samples, predicted, observed, levels))
    train_max = float(train.column("flops").max())
    out.update(n_train=len(train), n_test=len(test), max_extrapolation=float(test.column("flops").max() / train_max), seconds=seconds)
    if method == "bayes":
        out.update(_bayes_scores(fitted, test, observed, seed))
    if predictions:
        out["predictions"] = _prediction_table(test, observed, predicted, samples, levels, train_max)
    return out


def _scores(samples: np.ndarray, predicted: np.ndarray, observed: np.ndarray, levels: Sequence[float]) -> dict[str, float]:
    """Coverage and mean width per level (widest first), median absolute log error and CRPS, all on log loss."""
    out = {f"coverage_{round(level * 100)}": coverage(samples, observed, level) for level in sorted(levels, reverse=True)}
    out.update({f"mean_width_{round(level * 100)}": mean_width(samples, level) for level in sorted(levels, reverse=True)})
    out.update(median_abs_log_error=median_abs_error(predicted, observed), crps=crps(samples, observed))
    return out


def _bayes_scores(fitted: Any, test: RunTable, observed: np.ndarray, seed: int) -> dict[str, Any]:
    """What only a Bayesian fit has: held-out ELPD (and its standard error) and the fit's diagnostics."""
    pointwise = heldout_elpd(fitted, test, observed, seed)
    diag = fitted.diagnostics
    return {
        "elpd": float(pointwise.sum()),
        "elpd_se": float(np.sqrt(pointwise.size) * np.std(pointwise, ddof=1)) if pointwise.size > 1 else float("nan"),
        "converged": bool(fitted.converged),
        "rhat_max": diag.rhat_max,
        "ess_bulk_min": diag.ess_bulk_min,
        "divergences": diag.divergences,
        "diagnostics": diag.message(fitted.info),
    }


def heldout_elpd(fitted: Any, test: RunTable, observed: np.ndarray, seed: int) -> np.ndarray:
    """Log mean predictive density of each held-out run's log loss (the leave-future-out ELPD terms)."""
    from scipy.special import logsumexp

    from bayescale.validate.compare import log_density

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        ds = fitted.forecast(test.data.drop(columns=["loss"]), seed=seed)
    mu = np.log(ds["loss"].transpose("chain", "draw", "target").values)
    ll = log_density(fitted, observed, mu).reshape(-1, observed.size)
    return logsumexp(ll, axis=0) - np.log(ll.shape[0])


def _forecast_log(fitted: Any, test: RunTable, seed: int, point: bool) -> tuple[np.ndarray, np.ndarray]:
    """Predictive samples of log loss, shape (samples, runs), and the point forecast per run.

    The point forecast is the posterior predictive median for a Bayesian fit and the law at the
    point estimate for a point fit.
    """
    from bayescale.forecasting import target_table

    targets = test.data.drop(columns=["loss"])
    # a group whose runs all lie beyond the cutoff is new to the fit: forecast it from the population
    ds = fitted.forecast(targets, seed=seed, **({"new_group": True} if fitted.groups else {}))
    samples = np.log(ds["loss_pred"].stack(sample=("chain", "draw")).transpose("sample", "target").values)
    if not point:
        return samples, np.median(samples, axis=0)
    return samples, np.log(fitted.spec.law.loss(fitted.estimate, target_table(fitted, targets)))


def _point_by_group(train: RunTable, test: RunTable, model: Any, groups: tuple[str, ...], bootstrap: int, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Point fit + bootstrap forecasts of every test run; with ``groups``, one fit per group level.

    A level with test runs but no training runs cannot be forecast by a per-group fit: a clear error.
    """
    from bayescale.validate.point import point_fit

    if not groups:
        fitted = point_fit(train, model, bootstrap=bootstrap, seed=seed)
        samples, predicted = _forecast_log(fitted, test, seed, point=True)
        return samples, predicted, fitted.spec.name
    key_train = train.data[list(groups)].astype(str).agg("/".join, axis=1)
    key_test = test.data[list(groups)].astype(str).agg("/".join, axis=1)
    unseen = sorted(set(key_test) - set(key_train))
    if unseen:
        raise RunTableError(f"{test.source}: group level(s) {', '.join(map(repr, unseen))} have runs to forecast but none to train on; a per-group point fit cannot forecast them")
    n_samples = max(int(bootstrap), 1)
    samples = np.empty((n_samples, len(test)))
    predicted = np.empty(len(test))
    name = ""
    for level in sorted(set(key_test)):
        rows_train, rows_test = (key_train == level).to_numpy(), (key_test == level).to_numpy()
        part_train = RunTable(train.data[rows_train].reset_index(drop=True), source=f"{train.source} [{level}]", extra_columns=train.extra_columns)
        part_test = RunTable(test.data[rows_test].reset_index(drop=True), source=f"{test.source} [{level}]", extra_columns=test.extra_columns)
        fitted = point_fit(part_train, model, bootstrap=bootstrap, seed=seed)
        samples[:, rows_test], predicted[rows_test] = _forecast_log(fitted, part_test, seed, point=True)
        name = fitted.spec.name
    return samples, predicted, name


def _prediction_table(test: RunTable, observed: np.ndarray, predicted: np.ndarray, samples: np.ndarray, levels: Sequence[float], train_max_flops: float) -> pd.DataFrame:
    """One row per held-out run: its columns, observed/predicted log loss, interval ends and extrapolation."""
    frame = test.data.copy()
    frame["log_loss"] = observed
    frame["predicted_log_loss"] = predicted
    frame["abs_log_error"] = np.abs(predicted - observed)
    frame["extrapolation"] = test.column("flops").astype(float) / train_max_flops
    for level in sorted(levels, reverse=True):
        lo, hi = interval(samples, level)
        frame[f"lo_{round(level * 100)}"], frame[f"hi_{round(level * 100)}"] = lo, hi
        frame[f"inside_{round(level * 100)}"] = (observed >= lo) & (observed <= hi)
    frame["crps"] = crps_pointwise(samples, observed)
    return frame


def backtest_sweep(runs: RunTable | pd.DataFrame | str, model: Any = "chinchilla", cutoffs: Sequence[float] = (), **kwargs: Any) -> pd.DataFrame:
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
