"""Model comparison by PSIS-LOO (ArviZ) on a log-likelihood computed in numpy from the posterior.

The pointwise log-likelihood is the density of each run's observed log loss under the spec's
likelihood (Student-t or normal) at every posterior draw, with the law evaluated by its own
``log_loss`` on numpy draws: every model is scored on the same scale (log loss).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from bayescale.errors import BayescaleError
from bayescale.laws.ops import NUMPY
from bayescale.posterior import PosteriorView
from bayescale.runs import RunTable, load_runs

if TYPE_CHECKING:
    from bayescale.fitting import Fit

#: Pareto k above which PSIS-LOO estimates are unreliable.
PARETO_K_WARN = 0.7


def _loglik(fit: Fit, frame: pd.DataFrame, y: np.ndarray, in_sample: bool) -> np.ndarray:
    """(chain, draw, run) log density of ``y`` (log loss) at ``frame``'s inputs."""
    view = PosteriorView.of(fit)
    if in_sample:
        z, x = view.z_per_run(), fit.design.x
    else:
        if fit.design.groups:
            raise BayescaleError("held-out log-likelihood is only defined for fits without groups")
        z, x = view.z_at([], []), view.log_inputs(frame)
    return log_density(fit, y, view.law.log_loss(NUMPY, view.public(z), x))


def log_density(fit: Fit, y: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """(chain, draw, run) density of observed log loss ``y`` under the fit's likelihood around ``mu``."""
    view = PosteriorView.of(fit)
    values = {k: np.asarray(v)[..., None] for k, v in view.likelihood_values().items()}  # (chain, draw, 1) against runs
    return fit.spec.likelihood.logpdf(y, mu, view.sigma()[..., None], values)


def log_likelihood(fit: Fit) -> xr.DataArray:
    """Pointwise log-likelihood of the fitted runs, dims ``(chain, draw, run)``, named ``log_loss``."""
    values = _loglik(fit, fit.runs.data, fit.design.y, in_sample=True)
    post = fit.posterior
    return xr.DataArray(values, dims=("chain", "draw", "run"), coords={"chain": post["chain"].values, "draw": post["draw"].values, "run": np.arange(values.shape[-1])}, name="log_loss")


def loo_tree(fit: Fit) -> xr.DataTree:
    """A DataTree with ``posterior``, ``log_likelihood`` and ``observed_data`` for ArviZ."""
    ll = log_likelihood(fit)
    post = fit.posterior[[v for v in fit.parameter_names if v in fit.posterior]]
    obs = xr.Dataset({"log_loss": ("run", fit.design.y)}, coords={"run": ll["run"].values})
    return xr.DataTree.from_dict({"posterior": post, "log_likelihood": ll.to_dataset(), "observed_data": obs})


def loo(fit: Fit) -> Any:
    """ArviZ PSIS-LOO (``ELPDDataLOO``) of one fit."""
    import arviz_stats as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return az.loo(loo_tree(fit), pointwise=True, var_name="log_loss")


def compare(fits: Mapping[str, Fit]) -> pd.DataFrame:
    """Rank fits of the same runs by PSIS-LOO elpd (ArviZ ``compare``, stacking weights).

    Columns: ``rank, elpd, p, elpd_diff, weight, se, dse, pareto_k_max, n_bad_k, warning``
    (``n_bad_k``: runs with Pareto k > 0.7, where the LOO estimate is unreliable).
    """
    import arviz_stats as az

    if len(fits) < 2:
        raise BayescaleError(f"compare needs at least two fits, got {len(fits)}")
    names = list(fits)
    y0 = fits[names[0]].design.y
    for name in names[1:]:
        y = fits[name].design.y
        if y.shape != y0.shape or not np.allclose(y, y0):
            raise BayescaleError(f"fit {name!r} was not fitted to the same runs as {names[0]!r}: LOO compares models on the same data only")
    loos = {name: loo(f) for name, f in fits.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = az.compare(loos, method="stacking", round_to="none")
    table = pd.DataFrame(table)
    k_max, bad = {}, {}
    for name, result in loos.items():
        k = np.asarray(result.pareto_k)
        k_max[name], bad[name] = float(np.nanmax(k)), int(np.sum(k > PARETO_K_WARN))
    table["pareto_k_max"] = pd.Series(k_max)
    table["n_bad_k"] = pd.Series(bad)
    keep = [c for c in ("rank", "elpd", "p", "elpd_diff", "weight", "se", "dse", "pareto_k_max", "n_bad_k", "warning") if c in table.columns]
    table = table[keep]
    table.index.name = "model"
    return table


def kfold_by_group(runs: RunTable | pd.DataFrame | str, models: Sequence[str], column: str, **fit_kwargs: Any) -> pd.DataFrame:
    """Leave-one-group-out elpd: for each level of ``column`` refit every model without it (no pooling)
    and score the held-out runs by log mean predictive density. Slow: one fit per model and level.
    """
    from scipy.special import logsumexp

    from bayescale.fitting import fit as run_fit

    runs = runs if isinstance(runs, RunTable) else load_runs(runs)
    runs.require_columns([column], "grouped K-fold")
    levels = sorted(set(runs.data[column].astype(str)))
    if len(levels) < 2:
        raise BayescaleError(f"column {column!r} has {len(levels)} level(s); grouped K-fold needs at least 2")
    rows = []
    for model in models:
        total = np.zeros(len(runs))
        for level in levels:
            held = runs.data[column].astype(str).to_numpy() == level
            train = RunTable(runs.data[~held].reset_index(drop=True), source=f"{runs.source} without {column}={level}", extra_columns=runs.extra_columns)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                f = run_fit(train, model, [], **fit_kwargs)
            test = runs.data[held].reset_index(drop=True)
            ll = _loglik(f, test, np.log(test["loss"].to_numpy(float)), in_sample=False).reshape(-1, int(held.sum()))
            total[held] = logsumexp(ll, axis=0) - np.log(ll.shape[0])
        rows.append({"model": str(model), "elpd_kfold": float(total.sum()), "se": float(np.sqrt(len(total)) * np.std(total, ddof=1)), "folds": len(levels)})
    out = pd.DataFrame(rows).set_index("model").sort_values("elpd_kfold", ascending=False)
    out["elpd_diff"] = out["elpd_kfold"] - out["elpd_kfold"].iloc[0]  # <= 0, as in ArviZ compare
    return out
