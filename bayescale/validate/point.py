"""The literature's point fit as a comparator: Huber loss on log loss, L-BFGS-B from a grid of starts.

Hoffmann et al. (2022, Approach 3) and Besiroglu et al. (2024) minimise
``sum huber_delta(log L_hat - log L)`` with ``delta = 1e-3`` over a grid of initialisations and
keep the best optimum; intervals come from bootstrap resamples of the runs. ``point_fit`` does
the same for any law, written once over the law's ``log_loss`` with numpy ops. Positive
parameters are optimised as their logarithm.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from threadpoolctl import threadpool_limits

from bayescale.errors import BayescaleError
from bayescale.laws.ops import NUMPY
from bayescale.modeldesign import design as make_design
from bayescale.runs import RunTable, load_runs
from bayescale.spec import ModelSpec, load_spec

#: Grid of starting values of Besiroglu et al. (2024), in *public* units (E, A, B on log scale).
LITERATURE_GRID: dict[str, tuple[float, ...]] = {
    "E": tuple(np.exp([-1.0, -0.5, 0.0, 0.5, 1.0, 1.5])),
    "A": tuple(np.exp([0.0, 5.0, 10.0, 15.0, 20.0, 25.0])),
    "B": tuple(np.exp([0.0, 5.0, 10.0, 15.0, 20.0, 25.0])),
    "alpha": (0.0, 0.5, 1.0, 1.5, 2.0),
    "beta": (0.0, 0.5, 1.0, 1.5, 2.0),
}
#: Smallest start of a positive parameter whose grid includes 0 (log space cannot start at 0).
POSITIVE_FLOOR = 1e-2
#: Number of best grid points (by objective) that are optimised to convergence.
N_REFINE = 24


def huber(r: np.ndarray, delta: float) -> np.ndarray:
    """Huber loss: r²/2 inside ``delta``, linear (delta·(|r| − delta/2)) outside."""
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def huber_grad(r: np.ndarray, delta: float) -> np.ndarray:
    return np.clip(r, -delta, delta)


@dataclass(frozen=True)
class PointFit:
    """A point estimate (and optional bootstrap draws) of a law: the literature's comparator."""

    spec: ModelSpec
    runs: RunTable
    #: The point estimate of every law parameter (public values).
    estimate: dict[str, float]
    objective: float
    delta: float
    boot: pd.DataFrame = field(default_factory=pd.DataFrame)
    residuals: np.ndarray = field(default_factory=lambda: np.zeros(0))
    info: Mapping[str, Any] = field(default_factory=dict)
    groups: tuple[str, ...] = ()

    def summary(self, ci: float = 0.9) -> pd.DataFrame:
        """Point estimate, bootstrap standard error and equal-tailed ``ci`` interval per parameter."""
        rows = []
        for name, value in self.estimate.items():
            row = {"parameter": name, "estimate": value}
            if len(self.boot):
                b = self.boot[name].to_numpy()
                row.update(se=float(np.std(b, ddof=1)), lo=float(np.quantile(b, (1 - ci) / 2)), hi=float(np.quantile(b, (1 + ci) / 2)))
            rows.append(row)
        return pd.DataFrame(rows).set_index("parameter")

    def forecast(self, targets: Any = None, *, seed: int = 0, **columns: Any) -> xr.Dataset:
        """Forecast in the shape of ``bayescale.forecast``: dims ``(chain=1, draw, target)``.

        ``draw`` runs over bootstrap refits (just the point estimate without bootstrap);
        ``loss_pred`` adds a residual of the fit resampled at random (a residual bootstrap), so
        ``forecast_table`` gives point-fit prediction intervals.
        """
        from bayescale.forecasting import target_table

        frame = target_table(self, targets, **columns)
        law = self.spec.law
        draws = self.boot if len(self.boot) else pd.DataFrame([self.estimate])
        p = {k: draws[k].to_numpy()[:, None] for k in law.parameter_names}
        x = {c: v[None, :] for c, v in law.log_inputs(frame).items()}
        mu = np.broadcast_to(law.log_loss(NUMPY, p, x), (len(draws), len(frame)))
        rng = np.random.default_rng(seed)
        res = self.residuals if self.residuals.size else np.zeros(1)
        noise = rng.choice(res, size=mu.shape)
        coords = {"chain": [0], "draw": np.arange(len(draws)), "target": np.arange(len(frame))}
        coords.update({c: ("target", frame[c].to_numpy()) for c in frame.columns})
        return xr.Dataset(
            {"loss": (("chain", "draw", "target"), np.exp(mu)[None]), "loss_pred": (("chain", "draw", "target"), np.exp(mu + noise)[None])},
            coords=coords,
            attrs={"model": self.spec.name, "method": "point", "seed": seed},
        )


class _Problem:
    """The Huber objective of one law on one data set, over a vector of optimiser coordinates."""

    def __init__(self, spec: ModelSpec, runs: RunTable, delta: float):
        self.law = spec.law
        design = make_design(spec, runs, ())
        self.x, self.y, self.delta = design.x, design.y, delta
        self.fixed = spec.fixed  # held at their constants, not optimised
        self.names = tuple(n for n in self.law.parameter_names if n not in self.fixed)
        self.positive = np.array([self.law.parameter(n).positive for n in self.names])

    def public(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        theta = np.asarray(theta, dtype=float)
        free = {n: (np.exp(theta[..., i]) if self.positive[i] else theta[..., i]) for i, n in enumerate(self.names)}
        return {n: free[n] if n in free else np.full(theta.shape[:-1], self.fixed[n]) for n in self.law.parameter_names}

    def to_theta(self, values: Mapping[str, float]) -> np.ndarray:
        return np.array([np.log(max(values[n], POSITIVE_FLOOR)) if pos else values[n] for n, pos in zip(self.names, self.positive, strict=True)])

    def residuals(self, theta: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
        p = self.public(theta)
        if np.ndim(theta) > 1:
            p = {k: v[:, None] for k, v in p.items()}
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return self.law.log_loss(NUMPY, p, self.x) - self.y

    def objective(self, theta: np.ndarray, weights: np.ndarray | None = None) -> float:
        r = self.residuals(theta)
        h = huber(r, self.delta)
        value = float(np.sum(h if weights is None else weights * h))
        return value if np.isfinite(value) else 1e30

    def batch_objective(self, thetas: np.ndarray) -> np.ndarray:
        r = self.residuals(thetas)
        out = huber(r, self.delta).sum(axis=-1)
        return np.where(np.isfinite(out), out, np.inf)

    def gradient(self, theta: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Central differences of the residuals, chained through the analytic Huber derivative."""
        r0 = self.residuals(theta)
        g = huber_grad(r0, self.delta)
        if weights is not None:
            g = g * weights
        eps = 1e-6
        steps = np.eye(theta.size) * eps
        thetas = np.concatenate([theta + steps, theta - steps])
        r = self.residuals(thetas)
        jac = (r[: theta.size] - r[theta.size :]) / (2 * eps)
        out = jac @ g
        return np.where(np.isfinite(out), out, 0.0)

    def minimise(self, start: np.ndarray, weights: np.ndarray | None = None, tight: bool = True):
        from scipy.optimize import minimize

        options = {"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-10} if tight else {"maxiter": 500, "ftol": 1e-11, "gtol": 1e-8}
        return minimize(self.objective, start, args=(weights,), jac=self.gradient, method="L-BFGS-B", options=options)


def start_grid(spec: ModelSpec, seed: int = 0, max_points: int = 20_000) -> list[dict[str, float]]:
    """Starting points: the literature's grid for the Chinchilla names, prior quantiles otherwise."""
    axes = {}
    prior_draws = None
    for p in spec.law.parameters:
        if p.name in spec.fixed:
            continue
        if p.name in LITERATURE_GRID:
            axes[p.name] = LITERATURE_GRID[p.name]
        else:
            if prior_draws is None:
                prior_draws = spec.draw_priors(512, seed)
            axes[p.name] = tuple(np.quantile(prior_draws[f"priors.{p.name}"], [0.1, 0.5, 0.9]))
    names = list(axes)
    points = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes.values())]
    if len(points) > max_points:
        rng = np.random.default_rng(seed)
        points = [points[i] for i in rng.choice(len(points), max_points, replace=False)]
    return points


def point_fit(
    runs: RunTable | pd.DataFrame | str,
    model: str | ModelSpec | Mapping[str, Any] = "chinchilla",
    delta: float = 1e-3,
    bootstrap: int = 0,
    seed: int = 0,
    n_refine: int = N_REFINE,
) -> PointFit:
    """Huber-loss point fit of ``model`` to ``runs`` (best of many L-BFGS-B runs), with optional bootstrap.

    The whole start grid is evaluated at once and the ``n_refine`` best starts are optimised to
    convergence (optimising all 5 400 Chinchilla starts gives the same optimum, slower).
    ``bootstrap=k`` refits ``k`` resamples of the runs (drawn with replacement) from the optimum.
    """
    runs = runs if isinstance(runs, RunTable) else load_runs(runs)
    spec = load_spec(model)
    if not delta > 0:
        raise BayescaleError(f"delta={delta!r} must be > 0 (the literature uses 1e-3)")
    if int(bootstrap) != bootstrap or bootstrap < 0:
        raise BayescaleError(f"bootstrap={bootstrap!r} must be a whole number >= 0")
    with threadpool_limits(limits=1, user_api="blas"):  # BLAS threads on 5-vectors: ~10x slower on busy cores
        return _point_fit(spec, runs, delta, bootstrap, seed, n_refine)


def _point_fit(spec: ModelSpec, runs: RunTable, delta: float, bootstrap: int, seed: int, n_refine: int) -> PointFit:
    problem = _Problem(spec, runs, delta)
    grid = start_grid(spec, seed)
    thetas = np.array([problem.to_theta(g) for g in grid])
    values = np.concatenate([problem.batch_objective(thetas[i : i + 2000]) for i in range(0, len(thetas), 2000)])
    order = np.argsort(values)[:n_refine]
    best = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for i in order:  # a loose optimisation from every start, then polish the best one
            res = problem.minimise(thetas[i], tight=False)
            if best is None or res.fun < best.fun:
                best = res
        if best is not None and np.isfinite(best.fun):
            polished = problem.minimise(best.x)
            best = polished if polished.fun <= best.fun else best
        if best is None or not np.isfinite(best.fun) or best.fun >= 1e30:
            raise BayescaleError(f"the {spec.name} point fit found no finite optimum on {runs.source}")
        boot_rows = []
        rng = np.random.default_rng(seed)
        n = len(runs)
        for _ in range(int(bootstrap)):
            weights = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
            res = problem.minimise(best.x, weights, tight=False)
            boot_rows.append({k: float(v) for k, v in problem.public(res.x).items()})
    estimate = {k: float(v) for k, v in problem.public(best.x).items()}
    return PointFit(
        spec=spec,
        runs=runs,
        estimate=estimate,
        objective=float(best.fun),
        delta=delta,
        boot=pd.DataFrame(boot_rows, columns=list(spec.law.parameter_names)),
        residuals=problem.residuals(best.x),
        info={"starts": len(grid), "refined": len(order), "bootstrap": int(bootstrap)},
    )
