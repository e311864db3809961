"""Compute-optimal allocation with posterior uncertainty: for a FLOP budget C = 6·N·D, which N and D?

For every posterior draw and every budget the optimum along the isoFLOP line (``params``,
``tokens``, ``tokens_per_param``, ``loss``), plus one *robust* plan per budget: the single
(N, D) on the line that minimises the posterior expected loss (or a chosen quantile of it).

* ``chinchilla``: closed form N_opt = G·(C/6)^(β/(α+β)), D_opt = G⁻¹·(C/6)^(α/(α+β)),
  G = (αA/(βB))^(1/(α+β)).
* any other law (kaplan, data_constrained with ``unique_tokens``, ...): vectorised numeric
  minimisation over log N — a dense log grid of tokens-per-parameter ratios, then golden-section
  refinement, all numpy over (draw, budget) arrays; the loss is the law's own ``log_loss`` on
  ``bayescale.laws.ops.NUMPY``.

On a grouped fit, ``group_values={"dataset": "web"}`` names a level seen at fit time (its
partially pooled offsets are added in internal coordinates, as in ``forecast``) and
``new_group=True`` plans for a new, unseen group: each draw gets fresh offsets from the
population spread, so the per-draw optima carry the group-to-group uncertainty. One of the two
is required (``bayescale.groups``), so no plan is silently for a group nobody named.

The optima are chosen on the *mean curve* (no observation noise): where to put the compute is a
question about the law, not about one run's noise. The robust plan's objective also carries the
model discrepancy beyond the runs' range (``bayescale.discrepancy``), which favours plans nearer
the data. The loss reported for a plan is the predictive loss of the run one would train there,
the same numbers ``forecast`` gives at that (N, D) with the same seed; the law-only spread of each
draw's own optimum stays available as ``loss_optimum_*`` (it is not the loss of any run).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from bayescale import evaluate
from bayescale.errors import BayescaleError, check_probability
from bayescale.evaluate import PosteriorEvaluator
from bayescale.laws.base import Law
from bayescale.laws.chinchilla import optimal_log_n as chinchilla_optimal_log_n

if TYPE_CHECKING:
    from bayescale.fitted import Fitted

#: Tokens-per-parameter ratios searched by the numeric optimiser (log grid, then refinement).
RATIO_RANGE = (1e-4, 1e8)
GRID_POINTS = 13
GOLDEN_STEPS = 20
#: Step sizes (in log N) of the parabolic refinement of the robust plan.
ROBUST_STEPS = (0.05, 0.002)
#: Grid points over the range of per-draw optima for a robust quantile plan.
QUANTILE_GRID = 33
#: Most budgets one call evaluates: each keeps every posterior draw (4000 draws × 1000 budgets × the
#: 13-point search grid is ~0.4 GB); a range like 1e21:1e25:100000000 is refused up front.
MAX_BUDGETS = 1000
_INV_PHI = (np.sqrt(5.0) - 1.0) / 2.0


# --------------------------------------------------------------------------- inputs


def parse_flops(values: Any) -> np.ndarray:
    """Budgets as a 1-d float array; accepts numbers, unit strings ("5.76e23") and ranges "1e21:1e25:9" (log-spaced)."""
    from bayescale.units import parse_quantity

    items = [values] if isinstance(values, (str, int, float, np.floating)) else list(np.ravel(np.asarray(values, dtype=object)))
    out: list[float] = []
    for item in items:
        if isinstance(item, str) and ":" in item:
            parts = item.split(":")
            if len(parts) != 3:
                raise BayescaleError(f"flops range {item!r}: expected LOW:HIGH:COUNT, e.g. 1e21:1e25:9")
            try:
                lo, hi = parse_quantity(parts[0]), parse_quantity(parts[1])
                count = int(parts[2])
            except ValueError as exc:
                raise BayescaleError(f"flops range {item!r}: {exc}") from None
            if count < 1 or not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo <= hi):
                raise BayescaleError(f"flops range {item!r}: need 0 < LOW <= HIGH and COUNT >= 1")
            if count + len(out) > MAX_BUDGETS:
                raise BayescaleError(f"flops range {item!r}: {count} budgets is more than the {MAX_BUDGETS} one call evaluates (each holds every posterior draw); use a coarser grid")
            out.extend(np.geomspace(lo, hi, count).tolist())
        else:
            try:
                out.append(parse_quantity(item))
            except ValueError as exc:
                raise BayescaleError(f"flops: {exc}") from None
    flops = np.asarray(out, dtype=float)
    if flops.size > MAX_BUDGETS:
        raise BayescaleError(f"{flops.size} FLOP budgets is more than the {MAX_BUDGETS} one call evaluates (each holds every posterior draw); use fewer")
    if flops.size == 0:
        raise BayescaleError("no FLOP budgets given (e.g. --flops 5.76e23 or --flops 1e21:1e25:9)")
    bad = flops[~(np.isfinite(flops) & (flops > 0))]
    if bad.size:
        raise BayescaleError(f"FLOP budget {bad[0]:g} must be a positive, finite number")
    return flops


def parameter_draws(fit: Fitted, group_values: Mapping[str, Any] | None = None, new_group: bool = False, seed: int = 0) -> dict[str, np.ndarray]:
    """Public law parameters as (chain, draw) arrays: the fit's own (no groups), a seen level per
    group column, or a new, unseen group (``new_group=True``: fresh offsets per draw, seeded)."""
    ev = PosteriorEvaluator.of(fit, group_values, new_group, seed)
    return {k: v.reshape(ev.shape) for k, v in ev.params.items()}


# --------------------------------------------------------------------------- the loss on the isoFLOP line


def line_log_loss(law: Law, p: Mapping[str, Any], log_c6: Any, log_n: Any, log_u: Any = None) -> np.ndarray:
    """log L at N = exp(log_n), D = C/(6N), for broadcasting arrays; ``log_u`` = log unique tokens (None: unlimited).

    Unique tokens never exceed the tokens trained on: the law sees U_eff = min(U, D). The law
    alone (``evaluate.log_loss`` without discrepancy): what each draw's own optimum minimises.
    """
    x = evaluate.plan_inputs(law, log_n, log_c6 - log_n, log_u, log_c6 + np.log(6.0))
    return evaluate.log_loss(law, p, x)[0]


def _golden_plain(f, lo: np.ndarray, hi: np.ndarray, steps: int = GOLDEN_STEPS) -> np.ndarray:
    """Vectorised golden-section search: each step evaluates ``f`` once on the whole array."""
    a, b = lo, hi
    c = b - _INV_PHI * (b - a)
    d = a + _INV_PHI * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(steps):
        left = fc <= fd
        a, b = np.where(left, a, c), np.where(left, d, b)
        # left: (c, d) <- (new, c);  right: (c, d) <- (d, new)
        fresh = np.where(left, b - _INV_PHI * (b - a), a + _INV_PHI * (b - a))
        f_fresh = f(fresh)
        c, d = np.where(left, fresh, d), np.where(left, c, fresh)
        fc, fd = np.where(left, f_fresh, fd), np.where(left, fc, f_fresh)
    return np.where(fc <= fd, c, d)


# --------------------------------------------------------------------------- per-draw optima


def closed_form_chinchilla(p: Mapping[str, Any], flops: Any) -> tuple[np.ndarray, np.ndarray]:
    """Chinchilla's compute-optimal (N, D) for budgets ``flops`` (broadcasting against the parameters)."""
    log_c6 = np.log(np.asarray(flops, float) / 6.0)
    log_n = chinchilla_optimal_log_n(p, log_c6)
    return np.exp(log_n), np.exp(log_c6 - log_n)


def optimal_log_n(law: Law, p: Mapping[str, np.ndarray], log_c6: np.ndarray, log_u: np.ndarray | None = None, method: str = "auto") -> tuple[np.ndarray, str]:
    """log N_opt for every element of the broadcast of ``p`` (shape (..., 1)) and ``log_c6`` (budgets on the last axis).

    ``method="auto"`` uses Chinchilla's closed form where it is exact, else the numeric search;
    ``"numeric"`` forces the search (used to check it against the closed form).
    """
    if method not in ("auto", "numeric"):
        raise BayescaleError(f"method={method!r}: choose 'auto' or 'numeric'")
    shape = np.broadcast_shapes(*(np.shape(v) for v in p.values()), np.shape(log_c6))
    closed = law.optimal_log_params(p, log_c6, log_u) if method == "auto" else None
    if closed is not None:
        return np.broadcast_to(closed, shape), "closed_form"
    pe = {k: v[..., None] for k, v in p.items()}
    lc = np.broadcast_to(log_c6, shape)[..., None]
    lu = None if log_u is None else np.broadcast_to(log_u, shape)[..., None]

    def f(log_n_k):  # log_n_k: shape + (k,)
        v = line_log_loss(law, pe, lc, log_n_k, lu)
        return np.where(np.isfinite(v), v, np.inf)

    log_r = np.linspace(np.log(RATIO_RANGE[0]), np.log(RATIO_RANGE[1]), GRID_POINTS)
    half = 0.5 * (log_r[1] - log_r[0])  # grid spacing in log N is half the spacing in log ratio
    grid = 0.5 * (lc - log_r)  # N = sqrt((C/6) / ratio)
    k = np.argmin(f(grid), axis=-1)
    best = np.take_along_axis(grid, k[..., None], axis=-1)[..., 0]
    return _golden_plain(lambda t: f(t[..., None])[..., 0], best - half, best + half), "numeric"


def _robust_log_n(loss_of, start: np.ndarray, lo: np.ndarray, hi: np.ndarray, quantile: float | None) -> np.ndarray:
    """Per budget, the log N minimising the posterior mean (or ``quantile``) of ``loss_of(log_n)`` (draws × budgets).

    The minimiser lies within [lo, hi], the range of the per-draw optima (every draw's loss is
    unimodal in log N, so their mean and quantiles decrease below lo and increase above hi).
    The mean is smooth: a few safeguarded parabolic (Newton) steps from ``start`` (the median
    optimum) converge in ~8 evaluations. A quantile is not smooth: golden-section search.
    """
    if quantile is not None:
        # a quantile of losses is flat and kinked near its minimum and need not be unimodal:
        # a grid over [lo, hi] first, then golden-section within one grid step of the best point
        def objective(t):
            return np.quantile(loss_of(t), quantile, axis=-2)

        grid = lo + (hi - lo) * np.linspace(0.0, 1.0, QUANTILE_GRID)[:, None]  # (K, budget)
        k = np.argmin(np.stack([objective(row) for row in grid]), axis=0)  # row by row: bounded memory
        best = np.take_along_axis(grid, k[None, :], axis=0)[0]
        step = (hi - lo) / (QUANTILE_GRID - 1) + 1e-6
        return _golden_plain(objective, best - step, best + step)
    x = np.clip(start, lo, hi)
    for h in ROBUST_STEPS:
        three = loss_of(np.stack([x - h, x, x + h])).mean(axis=-2)  # (3, budget)
        fm, f0, fp = three
        curvature = fp - 2.0 * f0 + fm
        slope = fp - fm
        step = np.where(curvature > 0, -0.5 * h * slope / np.where(curvature > 0, curvature, 1.0), -np.sign(slope) * h)
        step = np.clip(step, -10 * h, 10 * h)
        candidate = np.clip(x + step, lo, hi)
        # safeguard for kinked objectives (e.g. data_constrained at a draw's optimum): keep the best point seen
        f_candidate = loss_of(candidate).mean(axis=-2)
        best_f = np.minimum(f0, np.minimum(fm, fp))
        fallback = np.where(fm < fp, x - h, x + h)
        fallback = np.where(f0 <= np.minimum(fm, fp), x, fallback)
        x = np.where(f_candidate <= best_f, candidate, np.clip(fallback, lo, hi))
    return x


# --------------------------------------------------------------------------- public API


def allocate_params(
    law: Law,
    theta: Mapping[str, Any],
    flops: Any,
    unique_tokens: float | None = None,
    robust_quantile: float | None = None,
    ci: float = 0.9,
    method: str = "auto",
    discrepancy: tuple[np.ndarray, Mapping[str, tuple[float, float]]] | None = None,
) -> xr.Dataset:
    """The allocation Dataset for parameter draws ``theta`` (arrays of equal shape (chain, draw), or scalars).

    See ``allocate``; this is the pure function on parameter values (known truths in tests).
    ``discrepancy`` = (τ·u per draw, the runs' ranges) adds the model discrepancy to the robust
    plan's objective (not to each draw's own optimum: one draw's shift is not a law to optimise).
    """
    flops = parse_flops(flops)
    if robust_quantile is not None:
        check_probability(robust_quantile, "robust_quantile")
    check_probability(ci)
    p = _draws_with_budget_axis(law, theta)
    log_c6 = np.log(flops / 6.0)  # (budget,)
    log_u = _log_unique_tokens(law, unique_tokens, log_c6)
    log_n, used = optimal_log_n(law, p, log_c6, log_u, method)
    log_d = log_c6 - log_n
    loss = np.exp(line_log_loss(law, p, log_c6, log_n, log_u))
    shape = log_n.shape
    robust_ln, robust_loss = _robust_plan(law, p, log_c6, log_n, log_u, robust_quantile, discrepancy)

    dims = ("chain", "draw", "budget")
    data = {
        "params": (dims, np.exp(log_n)),
        "tokens": (dims, np.exp(log_d)),
        "tokens_per_param": (dims, np.exp(log_d - log_n)),
        "loss": (dims, loss),
        "robust_params": (("budget",), np.exp(robust_ln)),
        "robust_tokens": (("budget",), np.exp(log_c6 - robust_ln)),
        "robust_loss_mean": (("budget",), robust_loss.mean(axis=0)),
    }
    if log_u is not None:
        unl_ln, _ = optimal_log_n(law, p, log_c6, None, method)
        unlimited = np.exp(line_log_loss(law, p, log_c6, unl_ln, None))
        data["epochs"] = (dims, np.exp(log_d - log_u))
        data["loss_unlimited"] = (dims, unlimited)
        data["penalty"] = (dims, loss - unlimited)
        data["robust_epochs"] = (("budget",), np.exp(log_c6 - robust_ln - log_u))
    coords = {"chain": np.arange(shape[0]), "draw": np.arange(shape[1]), "budget": np.arange(len(flops)), "flops": ("budget", flops)}
    attrs = {
        "law": law.name,
        "method": used,
        "ci": float(ci),
        "robust": "mean" if robust_quantile is None else f"quantile {robust_quantile:g}",
    }
    if unique_tokens is not None:
        attrs["unique_tokens"] = float(unique_tokens)
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _draws_with_budget_axis(law: Law, theta: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Every law parameter as (chain, draw, 1) float arrays (scalars and 1-d draws become one chain)."""
    missing = [p for p in law.parameter_names if p not in theta]
    if missing:
        raise BayescaleError(f"the {law.name} law needs parameter(s) {', '.join(missing)}")
    arrays = {p: np.asarray(theta[p], dtype=float) for p in law.parameter_names}
    sample_shape = np.broadcast_shapes(*(a.shape for a in arrays.values()))
    if len(sample_shape) == 0:
        sample_shape = (1, 1)
    elif len(sample_shape) == 1:
        sample_shape = (1, sample_shape[0])
    return {k: np.broadcast_to(v, sample_shape)[..., None] for k, v in arrays.items()}


def _log_unique_tokens(law: Law, unique_tokens: float | None, log_c6: np.ndarray) -> np.ndarray | None:
    """log U per budget (None: unlimited fresh data); only repeat-aware laws take it."""
    if unique_tokens is None:
        return None
    if "unique_tokens" not in law.inputs:
        raise BayescaleError(f"unique_tokens needs a repeat-aware law (e.g. data_constrained); this fit's law is {law.name}")
    u = float(unique_tokens)
    if not (np.isfinite(u) and u > 0):
        raise BayescaleError(f"unique_tokens={unique_tokens!r} must be a positive, finite number")
    return np.full_like(log_c6, np.log(u))


def _robust_plan(
    law: Law,
    p: Mapping[str, np.ndarray],
    log_c6: np.ndarray,
    log_n: np.ndarray,
    log_u: np.ndarray | None,
    robust_quantile: float | None,
    discrepancy: tuple[np.ndarray, Mapping[str, tuple[float, float]]] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """One log N per budget for all draws (mean loss, or its ``robust_quantile``), bracketed by the
    per-draw optima ``log_n`` (each loss is unimodal in log N); returns it and the loss draws there."""
    ev = PosteriorEvaluator.from_draws(law, {k: v[..., 0] for k, v in p.items()}, *(discrepancy or (None, None)))  # draws (S, 1)
    lu_b = None if log_u is None else log_u[None, :]
    log_c = log_c6 + np.log(6.0)

    def loss_of(ln: np.ndarray) -> np.ndarray:  # ln: (..., budget) -> (..., draws, budget), with the discrepancy
        return np.exp(ev.log_loss(ln[..., None, :], log_c6 - ln[..., None, :], lu_b, log_c)[1])

    ln_flat = log_n.reshape(-1, log_c6.size)
    robust_ln = _robust_log_n(loss_of, np.median(ln_flat, axis=0), ln_flat.min(axis=0), ln_flat.max(axis=0), robust_quantile)
    return robust_ln, loss_of(robust_ln)


def allocate(
    fit: Fitted,
    flops: Any,
    unique_tokens: float | str | None = None,
    ci: float = 0.9,
    robust_quantile: float | None = None,
    group_values: Mapping[str, Any] | None = None,
    new_group: bool = False,
    seed: int = 0,
) -> xr.Dataset:
    """Compute-optimal allocation for each FLOP budget (C = 6·N·D), per posterior draw.

    Returns a Dataset with dims (chain, draw, budget): ``params`` (N_opt), ``tokens`` (D_opt),
    ``tokens_per_param`` and ``loss`` (the law's mean curve at each draw's own optimum); per budget
    ``robust_params``, ``robust_tokens`` (the plan minimising the posterior expected loss, or its
    ``robust_quantile``-quantile) and ``robust_loss_mean``; ``robust_loss_pred`` (chain, draw,
    budget), the predictive loss of the run trained at the robust plan — ``forecast`` there with
    the same ``seed``, discrepancy and noise included: the answer ``allocation_table`` heads with. With ``unique_tokens`` (repeat-aware
    laws only): ``epochs`` (D/U), ``loss_unlimited`` (optimum with fresh data, same budget) and
    ``penalty`` (loss minus loss_unlimited). ``flops`` accepts numbers, unit strings and ranges
    "1e21:1e25:9". A grouped fit needs ``group_values`` naming a seen level per group column
    (matched ignoring case) or ``new_group=True`` (a new, unseen group: fresh offsets from the
    population spread, drawn with ``seed``); attrs ``group`` and ``new_group`` say which.
    """
    from bayescale.groups import describe, resolve_request
    from bayescale.units import parse_quantity

    check_probability(ci)
    if unique_tokens is not None:
        try:
            unique_tokens = parse_quantity(unique_tokens)
        except ValueError as exc:
            raise BayescaleError(f"unique_tokens: {exc}") from None
    resolved = resolve_request(fit, group_values, new_group)
    flops = parse_flops(flops)
    _check_budgets(fit, flops, {g: level for g, (level, _) in resolved.items()})
    ev = PosteriorEvaluator.of(fit, group_values, new_group, seed)
    theta = {k: v.reshape(ev.shape) for k, v in ev.params.items()}
    discrepancy = None if ev.shift is None or ev.bounds is None else (ev.shift.reshape(ev.shape), ev.bounds)
    ds = allocate_params(fit.spec.law, theta, flops, unique_tokens=unique_tokens, robust_quantile=robust_quantile, ci=ci, discrepancy=discrepancy)
    post = fit.posterior
    ds = ds.assign_coords(chain=post["chain"].values, draw=post["draw"].values)
    ds["robust_loss_pred"] = _robust_predictive(fit, ds, unique_tokens, seed, group_values, new_group)
    ds.attrs.update({"model": fit.spec.name, "converged": int(fit.converged)})
    if resolved:
        ds.attrs["group_values"] = ", ".join(f"{g}={level}" for g, (level, _) in resolved.items())
        ds.attrs["new_group"] = int(any(is_new for _, is_new in resolved.values()))
        ds.attrs["group"] = describe(fit, resolved)
    return ds


def _check_budgets(fit: Fitted, flops: np.ndarray, levels: Mapping[str, Any]) -> None:
    """Budgets inside the sensible range ``forecast`` enforces, and the same ExtrapolationWarning far beyond the runs."""
    from bayescale.forecasting import SENSIBLE_RANGE, warn_extrapolation

    low, high = SENSIBLE_RANGE["flops"]
    bad = flops[(flops < low) | (flops > high)]
    if bad.size:
        raise BayescaleError(f"FLOP budget {bad[0]:.4g} is outside any sensible range [{low:.0e}, {high:.0e}]; check the units (e.g. 5.76e23)")
    warn_extrapolation(fit, pd.DataFrame({"flops": flops, **{g: [level] * len(flops) for g, level in levels.items()}}), "FLOP budget(s)")


def _robust_predictive(fit: Fitted, ds: xr.Dataset, unique_tokens: float | None, seed: int, group_values: Mapping[str, Any] | None, new_group: bool) -> xr.DataArray:
    """The predictive loss (chain, draw, budget) of the run trained at each robust plan: ``forecast``
    there with the same seed (``forecasting.plan_forecast``), discrepancy and noise included."""
    from bayescale.forecasting import plan_forecast

    pred = plan_forecast(fit, ds["robust_params"].values, ds["robust_tokens"].values, unique_tokens, seed=seed, group_values=group_values, new_group=new_group)
    return xr.DataArray(pred["loss_pred"].transpose("chain", "draw", "target").values, dims=("chain", "draw", "budget"))


def allocation_table(ds: xr.Dataset, ci: float | None = None) -> pd.DataFrame:
    """One row per budget: ``flops``, median and equal-tailed ``ci`` interval of each draw's optimal
    params and tokens; ``loss_*``, the predictive loss of the run trained at the robust plan (what
    ``forecast`` gives there; only for ``allocate`` on a fit, which has a noise model);
    ``loss_optimum_*``, the law-only loss at each draw's own optimum (the spread of the optimum,
    narrower: no discrepancy, no noise, and each draw at its own plan); the robust plan.

    With ``unique_tokens``: also ``epochs_*`` and ``penalty_*``.
    """
    ci = float(ds.attrs.get("ci", 0.9)) if ci is None else float(ci)
    check_probability(ci)
    q = [0.5, (1 - ci) / 2, (1 + ci) / 2]
    table = pd.DataFrame({"flops": ds["flops"].values})
    sources = {"params": "params", "tokens": "tokens", "loss": "robust_loss_pred", "loss_optimum": "loss", "epochs": "epochs", "penalty": "penalty"}
    names = [name for name, var in sources.items() if var in ds]
    for name in names:
        flat = ds[sources[name]].transpose("chain", "draw", "budget").values.reshape(-1, ds.sizes["budget"])
        med, lo, hi = np.quantile(flat, q, axis=0)
        table[f"{name}_median"], table[f"{name}_lo"], table[f"{name}_hi"] = med, lo, hi
    table["robust_params"] = ds["robust_params"].values
    table["robust_tokens"] = ds["robust_tokens"].values
    head = [n for n in ("params", "tokens", "loss", "loss_optimum") if n in names]
    order = ["flops"] + [f"{n}_{s}" for n in head for s in ("median", "lo", "hi")] + ["robust_params", "robust_tokens"]
    order += [f"{n}_{s}" for n in ("epochs", "penalty") if n in names for s in ("median", "lo", "hi")]
    return table[order]


__all__: Sequence[str] = ["allocate", "allocate_params", "allocation_table", "closed_form_chinchilla", "line_log_loss", "parameter_draws", "parse_flops"]
