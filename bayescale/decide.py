"""Budget decisions from a posterior: P(loss < target), the compute a target needs, plan comparisons.

Two notions of "the loss of a run", chosen with ``predictive``:

* ``predictive=True`` (default for ``prob_below`` and ``compute_for_target``): the posterior
  *predictive* — the law's mean curve times the fitted observation noise (log-normal or
  Student-t on log loss, the likelihood's parameters from the posterior). This answers "will the run I
  train come in under the target?"
* ``predictive=False``: the posterior of the *mean curve* only (uncertainty about the law,
  no run-to-run noise). On constant draws this is 0 or 1.

Noise draws use one fixed seed and are shared across budgets (common random numbers), so the
probability is a smooth, monotone function of compute and the search for a budget is stable.
On a grouped fit, ``group_values`` names seen levels or ``new_group=True`` asks for a new, unseen
group, exactly as in ``allocate`` (``bayescale.groups``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from bayescale.allocate import allocate, allocate_params
from bayescale.discrepancy import group_bounds
from bayescale.documents import failure, sentence
from bayescale.errors import BayescaleError, check_probability
from bayescale.evaluate import PosteriorEvaluator, plan_distance

if TYPE_CHECKING:
    from bayescale.fitted import Fitted
    from bayescale.groups import SeededGroupTarget

#: Default compute range searched by ``compute_for_target`` (FLOPs).
FLOPS_RANGE = (1e15, 1e32)
GRID_PER_DECADE = 4
BISECTION_STEPS = 30


@dataclass(frozen=True)
class Decision:
    """The smallest compute whose robust compute-optimal plan meets the target with the required probability."""

    target_loss: float
    prob_required: float
    flops: float
    params: float
    tokens: float
    prob: float
    predictive: bool
    unique_tokens: float | None = None
    usd: float | None = None
    gpu_hours: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None or k == "unique_tokens"}


def cost(flops: Any, usd_per_flop: float | None = None, flops_per_gpu_hour: float | None = None) -> dict[str, Any]:
    """Optional cost conversions of ``flops``: ``usd`` (flops × usd_per_flop) and ``gpu_hours`` (flops / flops_per_gpu_hour)."""
    out: dict[str, Any] = {}
    for name, value in (("usd_per_flop", usd_per_flop), ("flops_per_gpu_hour", flops_per_gpu_hour)):
        if value is not None and not (np.isfinite(value) and value > 0):
            raise BayescaleError(f"{name}={value!r} must be a positive, finite number")
    with np.errstate(over="ignore"):
        if usd_per_flop is not None:
            out["usd"] = np.asarray(flops, float) * usd_per_flop
        if flops_per_gpu_hour is not None:
            out["gpu_hours"] = np.asarray(flops, float) / flops_per_gpu_hour
    for name, value in out.items():  # a rate off by many orders overflows: refused, never printed as inf
        if not np.all(np.isfinite(value)):
            rate = f"usd_per_flop={usd_per_flop!r} (a price per FLOP is about 1e-18)" if name == "usd" else f"flops_per_gpu_hour={flops_per_gpu_hour!r} (an H100 delivers about 1e18)"
            raise BayescaleError(f"{name} overflows at {float(np.max(flops)):.3g} FLOPs with {rate}: check the rate's unit")
    return {k: (float(v) if np.ndim(v) == 0 else v) for k, v in out.items()}


def _positive(name: str, value: Any) -> np.ndarray:
    from bayescale.units import parse_quantity

    try:
        arr = np.asarray([parse_quantity(v) for v in np.ravel(np.asarray(value, dtype=object))], dtype=float).reshape(np.shape(value))
    except ValueError as exc:
        raise BayescaleError(f"{name}: {exc}") from None
    if not np.all(np.isfinite(arr) & (arr > 0)):
        raise BayescaleError(f"{name} must be positive and finite (got {value!r})")
    return arr


def _noises(ev: PosteriorEvaluator, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two independent unit-noise draws per posterior draw (plan A, plan B), seeded: common random
    numbers across budgets, so probabilities are smooth in compute."""
    rng = np.random.default_rng(seed)
    return ev.unit_noise(rng), ev.unit_noise(rng)


def _loss(ev: PosteriorEvaluator, noise: np.ndarray, params: Any, tokens: Any, unique_tokens: Any = None, predictive: bool = False) -> np.ndarray:
    """Loss draws (S, T) at targets (T,): the mean curve with the discrepancy, or with observation noise ``noise``."""
    mu = ev.at(params, tokens, unique_tokens)[1]
    if predictive:
        mu = mu + ev.sigma * noise
    return np.exp(mu)


def prob_below(
    fit: Fitted,
    target_loss: float,
    params: Any,
    tokens: Any,
    unique_tokens: Any = None,
    *,
    predictive: bool = True,
    group_values: Mapping[str, Any] | None = None,
    new_group: bool = False,
    seed: int = 0,
) -> float | np.ndarray:
    """P(loss < ``target_loss``) for a run of ``params`` on ``tokens`` (arrays broadcast; a float for scalars).

    ``predictive=True`` (default): the posterior predictive loss of one run (mean curve ×
    observation noise). ``predictive=False``: the posterior of the mean curve only.
    """
    target = float(target_loss)
    if not (np.isfinite(target) and target > 0):
        raise BayescaleError(f"target_loss={target_loss!r} must be a positive, finite loss")
    n, d = np.broadcast_arrays(_positive("params", params), _positive("tokens", tokens))
    u = None if unique_tokens is None else np.broadcast_to(_positive("unique_tokens", unique_tokens), n.shape)
    ev = PosteriorEvaluator.of(fit, group_values, new_group, seed)
    loss = _loss(ev, _noises(ev, seed)[0], n.ravel(), d.ravel(), None if u is None else u.ravel(), predictive)
    prob = (loss < target).mean(axis=0).reshape(n.shape)
    return float(prob) if prob.ndim == 0 else prob


def _robust_plans(ev: PosteriorEvaluator, flops: np.ndarray, unique_tokens: float | None) -> tuple[np.ndarray, np.ndarray]:
    discrepancy = None if ev.shift is None or ev.bounds is None else (ev.shift.reshape(ev.shape), ev.bounds)
    ds = allocate_params(ev.law, {k: v.reshape(ev.shape) for k, v in ev.params.items()}, flops, unique_tokens=unique_tokens, discrepancy=discrepancy)
    return ds["robust_params"].values, ds["robust_tokens"].values


def compute_for_target(
    fit: Fitted,
    target_loss: float,
    prob: float = 0.9,
    *,
    unique_tokens: float | None = None,
    predictive: bool = True,
    flops_range: tuple[float, float] = FLOPS_RANGE,
    usd_per_flop: float | None = None,
    flops_per_gpu_hour: float | None = None,
    group_values: Mapping[str, Any] | None = None,
    new_group: bool = False,
    seed: int = 0,
) -> Decision:
    """The smallest compute C with P(loss < target) ≥ ``prob`` at C's robust compute-optimal plan.

    A log grid over ``flops_range`` (``GRID_PER_DECADE`` points a decade, all budgets at once),
    then bisection in log C between the last failing and first passing grid point. Raises a
    ``BayescaleError`` if the target is unreachable: below the irreducible loss ``E`` for most
    draws, or not met with probability ``prob`` even at the top of ``flops_range``.
    """
    target = float(target_loss)
    if not (np.isfinite(target) and target > 0):
        raise BayescaleError(f"target_loss={target_loss!r} must be a positive, finite loss")
    check_probability(prob, "prob")
    lo_c, hi_c = (float(v) for v in flops_range)
    if not 0 < lo_c < hi_c:
        raise BayescaleError(f"flops_range={flops_range!r} must be two increasing positive numbers")
    u = None if unique_tokens is None else float(_positive("unique_tokens", unique_tokens))
    ev = PosteriorEvaluator.of(fit, group_values, new_group, seed)
    noise = _noises(ev, seed)[0]
    _check_above_floor(ev, target)

    def probability(flops: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, d = _robust_plans(ev, flops, u)
        loss = _loss(ev, noise, n, d, None if u is None else np.full_like(n, u), predictive)
        return (loss < target).mean(axis=0), n, d

    best = _least_compute(probability, lo_c, hi_c, float(prob), target)
    flops, n, d, p = (float(v) for v in best)
    extra = cost(flops, usd_per_flop, flops_per_gpu_hour)
    return Decision(target, float(prob), flops, n, d, p, bool(predictive), u, extra.get("usd"), extra.get("gpu_hours"))


def _check_above_floor(ev: PosteriorEvaluator, target: float) -> None:
    """Refuse a target below the irreducible loss for most draws: no compute reaches it."""
    floor = ev.law.irreducible
    if floor is None:
        return
    share = float((ev.params[floor] >= target).mean())
    if share > 0.5:
        raise BayescaleError(
            f"target loss {target:g} is below the irreducible loss {floor} for {share:.0%} of posterior draws (median {floor} = {np.median(ev.params[floor]):.4g}): unreachable at any compute"
        )


def _least_compute(probability: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]], lo_c: float, hi_c: float, prob: float, target: float) -> tuple[float, float, float, float]:
    """(C, N, D, P) at the least compute whose plan meets ``prob``: a log grid over [lo_c, hi_c], then
    bisection in log C between the last failing and the first passing grid point."""
    decades = np.log10(hi_c) - np.log10(lo_c)
    grid = np.geomspace(lo_c, hi_c, max(3, int(np.ceil(decades * GRID_PER_DECADE)) + 1))
    p_grid, n_grid, d_grid = probability(grid)
    ok = np.flatnonzero(p_grid >= prob)
    if ok.size == 0:
        raise BayescaleError(
            f"P(loss < {target:g}) reaches only {p_grid.max():.3f} < {prob:g} for compute up to {hi_c:.3g} FLOPs: "
            "the target is unreachable in that range (lower the target or the probability, or widen flops_range)"
        )
    first = int(ok[0])
    if first == 0:
        return grid[0], n_grid[0], d_grid[0], p_grid[0]
    a, b = np.log(grid[first - 1]), np.log(grid[first])
    best = (grid[first], n_grid[first], d_grid[first], p_grid[first])
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (a + b)
        pm, nm, dm = probability(np.array([np.exp(mid)]))
        if pm[0] >= prob:
            b, best = mid, (np.exp(mid), nm[0], dm[0], pm[0])
        else:
            a = mid
    return best


def _plan(name: str, plan: Any) -> tuple[float, float, float | None]:
    if isinstance(plan, Mapping):
        if "params" not in plan or "tokens" not in plan:
            raise BayescaleError(f"{name}: a plan needs 'params' and 'tokens' (and optionally 'unique_tokens')")
        values = (plan["params"], plan["tokens"], plan.get("unique_tokens"))
    elif isinstance(plan, Sequence) and not isinstance(plan, str) and len(plan) in (2, 3):
        values = (plan[0], plan[1], plan[2] if len(plan) == 3 else None)
    else:
        raise BayescaleError(f"{name}: give a plan as {{'params': N, 'tokens': D}} or (N, D)")
    n, d = float(_positive(f"{name} params", values[0])), float(_positive(f"{name} tokens", values[1]))
    u = None if values[2] is None else float(_positive(f"{name} unique_tokens", values[2]))
    return n, d, u


def compare_plans(
    fit: Fitted,
    plan_a: Any,
    plan_b: Any,
    *,
    ci: float = 0.9,
    predictive: bool = False,
    group_values: Mapping[str, Any] | None = None,
    new_group: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Posterior of loss(A) − loss(B) and P(A better than B), i.e. P(loss(A) < loss(B)).

    Plans are ``{"params": N, "tokens": D[, "unique_tokens": U]}`` or ``(N, D[, U])``.
    ``predictive=False`` (default) compares mean curves, draw by draw (the law's uncertainty
    is shared by both plans); ``predictive=True`` adds independent run noise to each.
    """
    check_probability(ci)
    (na, da, ua), (nb, db, ub) = _plan("plan_a", plan_a), _plan("plan_b", plan_b)
    ev = PosteriorEvaluator.of(fit, group_values, new_group, seed)
    noise_a, noise_b = _noises(ev, seed)
    loss_a = _loss(ev, noise_a, na, da, ua, predictive)[:, 0]
    loss_b = _loss(ev, noise_b, nb, db, ub, predictive)[:, 0]
    diff = loss_a - loss_b
    fpost = fit.posterior
    da_ = xr.DataArray(diff.reshape(ev.shape), dims=("chain", "draw"), coords={"chain": fpost["chain"].values, "draw": fpost["draw"].values}, name="loss_diff")
    lo, med, hi = np.quantile(diff, [(1 - ci) / 2, 0.5, (1 + ci) / 2])
    return {
        "diff": da_,
        "diff_median": float(med),
        "diff_lo": float(lo),
        "diff_hi": float(hi),
        "prob_a_better": float((diff < 0).mean()),
        "loss_a_median": float(np.median(loss_a)),
        "loss_b_median": float(np.median(loss_b)),
        "ci": float(ci),
        "predictive": bool(predictive),
    }


__all__ = ["Decision", "compare_plans", "compute_for_target", "cost", "decide", "prob_below"]


def decide(
    fit: Fitted,
    target_loss: float,
    prob: float = 0.9,
    *,
    flops: Any = None,
    params: float | None = None,
    tokens: float | None = None,
    unique_tokens: float | None = None,
    predictive: bool = True,
    usd_per_flop: float | None = None,
    flops_per_gpu_hour: float | None = None,
    group_values: Mapping[str, Any] | None = None,
    new_group: bool = False,
    seed: int = 0,
    ci: float = 0.9,
) -> dict[str, Any]:
    """The ``bayescale decide`` document: one plan's P(loss < target), each budget's robust plan
    and its probability, or (neither given) the least compute reaching the target with ``prob``.
    Grouped fits: ``group_values``/``new_group`` as in ``allocate``; the document says which group.
    Each plan carries ``loss_median``/``loss_lo``/``loss_hi``, the ``ci`` predictive interval of the
    run trained there (what ``forecast`` and ``allocate`` give at that plan with the same seed),
    and how far it lies beyond the runs (``beyond_data_decades``); ``self_check`` and ``trust``
    say how far the fit's own forecasts held beyond its data.
    """
    from bayescale.groups import SeededGroupTarget, describe, resolve_request

    check_probability(prob, "prob")
    check_probability(ci)
    resolved = resolve_request(fit, group_values, new_group)
    groups = SeededGroupTarget(group_values=dict(group_values or {}), new_group=bool(new_group), seed=seed)
    doc: dict[str, Any] = {"target_loss": float(target_loss), "prob_required": prob, "predictive": predictive, "ci": float(ci), "converged": fit.converged}
    if resolved:
        doc["group"] = {g: level for g, (level, _) in resolved.items()}
        doc["new_group"] = any(is_new for _, is_new in resolved.values())
        doc["group_description"] = describe(fit, resolved)
    if params is not None:
        if tokens is None:
            raise BayescaleError("a plan needs both params and tokens")
        doc.update(mode="plan", plans=[_plan_document(fit, target_loss, prob, params, tokens, unique_tokens, predictive, groups, usd_per_flop, flops_per_gpu_hour)])
    elif flops is not None:
        doc.update(mode="budgets", plans=_budget_documents(fit, target_loss, prob, flops, unique_tokens, predictive, groups, usd_per_flop, flops_per_gpu_hour))
    else:
        decision = compute_for_target(fit, target_loss, prob, unique_tokens=unique_tokens, predictive=predictive, usd_per_flop=usd_per_flop, flops_per_gpu_hour=flops_per_gpu_hour, **groups)
        plan = {k: v for k, v in decision.to_dict().items() if k in ("flops", "params", "tokens", "prob", "usd", "gpu_hours")}
        doc.update(mode="compute_for_target", plans=[dict(plan, meets_target=True)])
    if unique_tokens is not None:
        doc["unique_tokens"] = unique_tokens
    bounds = group_bounds(fit)
    intervals = _loss_intervals(fit, doc["plans"], unique_tokens, ci, groups)
    for plan, interval in zip(doc["plans"], intervals, strict=True):  # how far each plan lies beyond the runs (0 inside their range)
        plan.update(interval)
        plan["beyond_data_decades"] = float(plan_distance(fit.spec.law.inputs, bounds, np.log(plan["params"]), np.log(plan["tokens"]))[()])
    doc["self_check"] = fit.self_check_summary()
    doc["trust"] = sentence(fit.self_check)
    doc["self_check_warning"] = failure(fit.self_check)
    return doc


def _loss_intervals(fit: Fitted, plans: Sequence[Mapping[str, Any]], unique_tokens: float | None, ci: float, groups: SeededGroupTarget) -> list[dict[str, float]]:
    """Per plan, the predictive loss interval of the run trained there: ``plan_forecast`` of all the
    plans together with the decision's seed (for budgets, exactly what ``allocate`` reports)."""
    from bayescale.forecasting import forecast_table, plan_forecast

    ds = plan_forecast(fit, [p["params"] for p in plans], [p["tokens"] for p in plans], unique_tokens, **groups)
    table = forecast_table(ds, ci)
    return [{k: float(row[k]) for k in ("loss_median", "loss_lo", "loss_hi")} for _, row in table.iterrows()]


def _plan_document(
    fit: Fitted,
    target_loss: float,
    prob: float,
    params: float,
    tokens: float,
    unique_tokens: float | None,
    predictive: bool,
    groups: SeededGroupTarget,
    usd_per_flop: float | None,
    flops_per_gpu_hour: float | None,
) -> dict[str, Any]:
    """One given plan: its compute, P(loss < target), whether it meets ``prob``, and its cost."""
    c = 6.0 * params * tokens
    p = float(prob_below(fit, target_loss, params, tokens, unique_tokens, predictive=predictive, **groups))
    return {"flops": c, "params": params, "tokens": tokens, "prob": p, "meets_target": p >= prob, **cost(c, usd_per_flop, flops_per_gpu_hour)}


def _budget_documents(
    fit: Fitted,
    target_loss: float,
    prob: float,
    flops: Any,
    unique_tokens: float | None,
    predictive: bool,
    groups: SeededGroupTarget,
    usd_per_flop: float | None,
    flops_per_gpu_hour: float | None,
) -> list[dict[str, Any]]:
    """Each budget's robust plan (``allocate``), its P(loss < target) and cost."""
    budgets = np.atleast_1d(np.asarray(flops, dtype=float))
    ds = allocate(fit, budgets, unique_tokens=unique_tokens, **groups)
    rn, rd = ds["robust_params"].values, ds["robust_tokens"].values
    probs = np.atleast_1d(prob_below(fit, target_loss, rn, rd, unique_tokens, predictive=predictive, **groups))
    return [
        {"flops": float(c), "params": float(a), "tokens": float(b), "prob": float(q), "meets_target": bool(q >= prob), **cost(float(c), usd_per_flop, flops_per_gpu_hour)}
        for c, a, b, q in zip(budgets, rn, rd, probs, strict=True)
    ]
