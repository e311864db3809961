"""Rank forms and pooling structures by how well they forecast the user's own larger runs.

``compare_lfo`` fits every candidate on the runs up to a compute cutoff and scores its
forecasts of every larger run with ``backtest`` (log loss: held-out ELPD, CRPS, median
|log error|, 90% coverage). Unlike PSIS-LOO, which asks how well a model interpolates, this asks
the question scaling laws are used for: which structure extrapolates.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayescale.errors import BayescaleError, ModelSpecError
from bayescale.runs import RunTable, load_runs

#: Default cutoff: train on the runs up to this quantile of flops, forecast the rest.
LFO_QUANTILE = 0.7
COLUMNS = ("rank", "elpd", "elpd_diff", "elpd_se", "crps", "median_abs_log_error", "coverage_90", "mean_width_90", "n_train", "n_test", "max_extrapolation", "seconds", "converged")


def lfo_candidates(models: Sequence[Any], poolings: Sequence[str] = ()) -> dict[str, Any]:
    """Specs to compare, by name: each model as its spec says, or crossed with each ``--pooling`` choice.

    Names are the model (``chinchilla``) or ``model [choice]`` (``chinchilla [levels]``).
    """
    from bayescale.pooling import with_pooling
    from bayescale.spec import load_spec

    out: dict[str, Any] = {}
    for model in models:
        spec = load_spec(model)
        label = model if isinstance(model, str) else spec.name
        if not poolings:
            out[str(label)] = spec
        for choice in poolings:
            out[f"{label} [{choice}]"] = with_pooling(spec, choice)
    return out


def lfo_cutoffs(runs: RunTable, cutoff: float | Sequence[float] | None) -> list[float]:
    """The cutoffs given, or the flops at ``LFO_QUANTILE`` of the runs."""
    if cutoff is None:
        return [float(np.quantile(runs.column("flops").astype(float), LFO_QUANTILE, method="lower"))]
    values = [float(cutoff)] if np.isscalar(cutoff) else [float(c) for c in cutoff]
    if not values:
        raise BayescaleError("no leave-future-out cutoff given")
    return values


def compare_lfo(
    runs: RunTable | pd.DataFrame | str,
    candidates: Mapping[str, Any] | Sequence[Any],
    group: str | Sequence[str] | None = None,
    cutoff: float | Sequence[float] | None = None,
    seed: int = 0,
    **fit_kwargs: Any,
) -> pd.DataFrame:
    """Rank ``candidates`` (specs, names or paths; a mapping names them) by leave-future-out forecasts.

    Each candidate is fitted on the runs with flops ≤ ``cutoff`` (default: the 70% flops
    quantile; several cutoffs are summed for ELPD and averaged otherwise) and scored on every
    larger run. Ranked by held-out ELPD of log loss (higher is better); columns ``COLUMNS``.
    """
    from bayescale.validate.backtest import backtest

    runs = runs if isinstance(runs, RunTable) else load_runs(runs)
    named = dict(candidates) if isinstance(candidates, Mapping) else lfo_candidates(list(candidates))
    if len(named) < 2:
        raise BayescaleError(f"a leave-future-out comparison needs at least two candidates (forms and/or pooling structures), got {len(named)}")
    cutoffs = lfo_cutoffs(runs, cutoff)
    rows = []
    for name, spec in named.items():
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                results = [backtest(runs, spec, c, group=group, seed=seed, **fit_kwargs) for c in cutoffs]
            except ModelSpecError as exc:
                raise ModelSpecError(f"candidate {name!r}: {exc}") from None
        frame = pd.DataFrame(results)
        row = {"model": name, "elpd": float(frame["elpd"].sum()), "elpd_se": float(np.sqrt((frame["elpd_se"] ** 2).sum()))}
        row.update({k: float(frame[k].mean()) for k in ("crps", "median_abs_log_error", "coverage_90", "mean_width_90", "max_extrapolation")})
        row.update(n_train=int(frame["n_train"].sum()), n_test=int(frame["n_test"].sum()), seconds=time.perf_counter() - start, converged=bool(frame["converged"].all()))
        rows.append(row)
    table = pd.DataFrame(rows).set_index("model").sort_values("elpd", ascending=False)
    table["elpd_diff"] = table["elpd"] - table["elpd"].iloc[0]  # <= 0, as in ArviZ compare
    table["rank"] = np.arange(len(table))
    table.attrs["cutoffs"] = cutoffs
    return table[list(COLUMNS)]
