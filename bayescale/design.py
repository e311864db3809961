"""Which runs to train next (``next_runs``): from a pool of candidate runs, the ones that most firm
up the forecast at a target, in order, up to a budget or a count, without refitting per candidate.

What a run would teach is read off the posterior draws through the one evaluation path
(``evaluate.PosteriorEvaluator``): per draw, the law's log loss at every target and candidate.
Treated as jointly Gaussian, training candidate j (its log loss observed with the likelihood's
noise, of variance s² = 1 / its Fisher information) lowers the law's variance at a target t by
Cov(t, j)² / (Var(j) + s²). Picks are greedy and each conditions the covariances on the last (a
rank-one update), so a second run next to the first teaches little; with a budget the rule is
variance removed per unit of cost.

The discrepancy τ·u·d(x) is counted as a refit will count it, not as the joint draws suggest.
``u`` is one draw shared by every point, so conditioning on a far candidate's draws would claim
to pin ``u`` down and remove most of the target's discrepancy. A refit does not carry ``u`` over:
the new run becomes training data (d = 0 there, fitted as law plus noise) and ``u`` is drawn
afresh. What shrinks is the target's distance d from the runs, measured against a range the pick
extends (the range of the target's own group, as forecasts measure it): a pick removes
Var(τ·u)·(d² − d′²). τ's posterior is taken as it is now (the refit's self-check may move it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from bayescale.design_gain import Covariances, Picks, Ranges, decisiveness, noise_variances, select
from bayescale.errors import BayescaleError, RunTableError, check_seed
from bayescale.evaluate import PosteriorEvaluator

if TYPE_CHECKING:
    from bayescale.fitted import Fitted

Objective = Literal["sd", "decision"]
OBJECTIVES = ("sd", "decision")
#: A pick must remove at least this share of the target's variance left; below it the pool has nothing left to teach.
MIN_GAIN = 1e-3
#: The ``grid`` pool: this many log-spaced sizes × tokens-per-parameter ratios.
GRID_SIZES, GRID_RATIOS = 12, 10
#: Tokens per parameter a grid run may have, whatever the data span: beyond it a run teaches about a regime no target is in.
GRID_RATIO_RANGE = (1.0, 2000.0)
#: A grid run costs at most this share of the target's compute: the runs to train next are the small ones.
GRID_TARGET_SHARE = 0.1


@dataclass(frozen=True)
class NextRuns:
    """The runs to train next, in pick order, and what each is expected to teach about the target.

    ``selected``: the pool's columns plus ``flops``, ``cost``, ``expected_sd_after`` (predictive sd
    of log loss at the target once this and every earlier pick are trained and the fit redone),
    ``gain`` (sd removed by this pick; for ``decision``, the rise in expected certainty),
    ``gain_per_flop`` and ``cumulative_cost``. ``candidates``: the whole pool with each run's
    ``gain``/``gain_per_flop`` alone (before any pick) and its ``pick`` order (0: not picked).
    """

    target: pd.DataFrame
    objective: str
    sd_now: float
    noise_sd: float
    selected: pd.DataFrame
    candidates: pd.DataFrame
    target_loss: float | None = None
    decision_now: float | None = None
    budget_flops: float | None = None
    k: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def sd_expected_after(self) -> float:
        """Predictive sd of log loss at the target expected after training every selected run."""
        return float(self.selected["expected_sd_after"].iloc[-1]) if len(self.selected) else self.sd_now

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``bayescale next`` (field names are a contract)."""
        target = self.target.to_dict("records")
        out: dict[str, Any] = {
            "target": target[0] if len(target) == 1 else target,
            "objective": self.objective,
            "sd_now": self.sd_now,
            "noise_sd": self.noise_sd,
            "selected": self.selected.to_dict("records"),
            "sd_expected_after": self.sd_expected_after,
            "cost_selected": float(self.selected["cost"].sum()) if len(self.selected) else 0.0,
            "pool_size": len(self.candidates),
            "budget_flops": self.budget_flops,
            "k": self.k,
        }
        if self.objective == "decision":
            out.update(target_loss=self.target_loss, decision_now=self.decision_now)
        out["notes"] = list(self.notes)
        return out


def next_runs(
    fit: Fitted,
    candidates: Any,
    target: Any,
    budget_flops: float | None = None,
    k: int | None = None,
    objective: Objective = "sd",
    *,
    target_loss: float | None = None,
    group_values: Mapping[str, Any] | None = None,
    new_group: bool = False,
    seed: int = 0,
) -> NextRuns:
    """The candidates to train next, in order, with the expected predictive sd at the target after each.

    ``candidates``: a pool (table, mapping or CSV path; ``"grid"`` builds one with
    ``candidate_grid``) with the law's inputs (``params``, ``tokens``; ``unique_tokens``,
    ``experts``, ``active_params`` where the law reads them), group columns (default: the target's
    level) and optionally ``cost`` (default 6·N·D FLOPs, N the active parameters where given).
    ``target``: one or more (N, D[, group]) points as a mapping or table, or a FLOP budget (a
    number) whose robust compute-optimal plan (``allocate``) is the target. Picks stop at
    ``budget_flops`` of total cost and/or ``k`` runs (one is required), or when no candidate is
    expected to remove at least ``MIN_GAIN`` of the target's variance left. ``objective="sd"``
    minimises the target's predictive sd of log loss (several targets: their mean variance);
    ``"decision"`` (needs ``target_loss``) maximises the expected certainty max(p, 1 − p) of
    p = P(loss < target_loss) after the picks. ``group_values``/``new_group`` name the target's
    group as in ``forecast``.
    """
    check_seed(seed)
    budget_flops, k = _check_request(objective, target_loss, budget_flops, k)
    targets = _targets(fit, target, group_values, new_group, seed)
    pool = candidate_grid(fit, targets, budget_flops) if isinstance(candidates, str) and candidates == "grid" else candidates
    pool = _pool(fit, pool, targets)
    t_law, t_pred, t_bounds, ev = _evaluate(fit, targets, seed)
    c_law, _, _, _ = _evaluate(fit, pool, seed)
    noise_pred, noise_obs = noise_variances(ev, seed)
    # u is drawn independently of the law's parameters, so the variance splits into the law's, the
    # discrepancy's Var(τ·u)·d² and the noise's; the split (not the draws' sample covariance of the
    # two, pure Monte Carlo noise) is what picks remove, so they never remove more than there is
    ranges = Ranges(fit, ev, targets, pool, t_bounds)
    var_now = np.var(t_law, axis=0) + ranges.var_shift * ranges.d**2 + noise_pred
    mean_now = np.mean(t_pred, axis=0)
    threshold = float(np.log(target_loss)) if target_loss is not None else 0.0
    cost = pool["cost"].to_numpy(dtype=float)

    def value(gone: np.ndarray) -> np.ndarray:  # the objective after removing ``gone`` (targets, options) of variance
        if objective == "sd":
            return -np.mean(var_now[:, None] - gone, axis=0)
        return decisiveness(mean_now, var_now[:, None] - gone, gone, threshold)

    def run(per_cost: bool) -> Picks:
        state = Covariances(t_law, c_law, noise_obs, Ranges(fit, ev, targets, pool, t_bounds))
        return select(state, value, cost, budget_flops, k, per_cost, var_now, MIN_GAIN)

    # with a budget, the better of gain per cost and gain alone (the classic guard of greedy knapsack picks)
    best = run(per_cost=budget_flops is not None)
    if budget_flops is not None:
        plain = run(per_cost=False)
        if plain.values[-1] > best.values[-1] + 1e-12 * abs(best.values[-1]):
            best = replace(plain, notes=[*plain.notes, "picked by largest gain first: on this budget it beats gain per unit of cost"])
    picks = np.zeros(len(pool), dtype=int)
    rows = []
    for i, j in enumerate(best.order):
        picks[j] = i + 1
        sd_after = float(np.sqrt(max(np.mean(var_now - best.gone[i + 1]), 0.0)))
        decision = best.values[i + 1] if objective == "decision" else None
        rows.append(_row(pool, j, sd_after, best.values[i + 1] - best.values[i], float(cost[best.order[: i + 1]].sum()), decision))
    sd_now = float(np.sqrt(np.mean(var_now)))
    selected = _selected(pool, rows, sd_now, objective)
    decision_now = float(decisiveness(mean_now, var_now[:, None], np.zeros((len(targets), 1)), threshold)[0]) if objective == "decision" else None
    return NextRuns(
        target=_shown(targets),
        objective=objective,
        sd_now=sd_now,
        noise_sd=float(np.sqrt(noise_pred)),
        selected=selected,
        candidates=_scored(pool, best.first, picks, sd_now, var_now, objective),
        target_loss=target_loss,
        decision_now=decision_now,
        budget_flops=budget_flops,
        k=k,
        notes=best.notes,
    )


def _check_request(objective: str, target_loss: float | None, budget_flops: Any, k: Any) -> tuple[float | None, int | None]:
    """The budget and count as numbers; one clear error for an unknown objective or a bad limit."""
    if objective not in OBJECTIVES:
        raise BayescaleError(f"objective {objective!r}: choose one of {', '.join(OBJECTIVES)}")
    if objective == "decision" and not (target_loss is not None and np.isfinite(target_loss) and target_loss > 0):
        raise BayescaleError("objective 'decision' needs a positive target_loss (--target-loss): the loss the decision is about")
    if budget_flops is None and k is None:
        raise BayescaleError("give a budget (budget_flops, --budget-flops) or a number of runs (k, --k) to select")
    if budget_flops is not None:
        from bayescale.units import parse_quantity

        try:
            budget_flops = float(parse_quantity(budget_flops))
        except (TypeError, ValueError):
            raise BayescaleError(f"budget_flops={budget_flops!r} is not a number of FLOPs (e.g. 1e21)") from None
        if not (np.isfinite(budget_flops) and budget_flops >= 0):
            raise BayescaleError(f"budget_flops={budget_flops!r} must be a finite number ≥ 0")
    if k is not None and (isinstance(k, bool) or not float(k).is_integer() or k < 0):
        raise BayescaleError(f"k={k!r} must be a whole number ≥ 0")
    return budget_flops, None if k is None else int(k)


def _targets(fit: Fitted, target: Any, group_values: Mapping[str, Any] | None, new_group: bool, seed: int) -> pd.DataFrame:
    """The target points as a parsed table: given (N, D[, group]) rows, or the robust compute-optimal plan of a FLOP budget."""
    from bayescale.forecasting import target_table

    if isinstance(target, (int, float, np.integer, np.floating)) and not isinstance(target, bool):
        budget = float(target)
        if fit.spec.law.inputs == ("flops",):  # a compute-only law: the budget is the point itself
            return target_table(fit, {"flops": [budget]}, group_values=group_values, new_group=new_group)
        from bayescale.allocate import allocate, allocation_table

        table = allocation_table(allocate(fit, [budget], group_values=group_values, new_group=new_group, seed=seed))
        frame = {"params": table["robust_params"].to_numpy(), "tokens": table["robust_tokens"].to_numpy()}
        return target_table(fit, frame, group_values=group_values, new_group=new_group)
    if isinstance(target, Mapping):
        target = {key: np.atleast_1d(value) for key, value in target.items()}
    return target_table(fit, target, group_values=group_values, new_group=new_group)


def _pool(fit: Fitted, candidates: Any, targets: pd.DataFrame) -> pd.DataFrame:
    """The candidate pool parsed as targets are (units, ranges, seen group levels) plus ``flops`` and ``cost``."""
    from bayescale.forecasting import target_table
    from bayescale.tables import read_table

    source = str(candidates) if isinstance(candidates, (str, Path)) else "candidate pool"
    frame = read_table(Path(candidates)) if isinstance(candidates, (str, Path)) else pd.DataFrame(dict(candidates) if isinstance(candidates, Mapping) else candidates)
    if frame.empty:
        raise RunTableError(f"{source}: the candidate pool is empty: give at least one run ({', '.join(fit.spec.law.inputs)})")
    frame = frame.drop(columns=[c for c in ("loss", "new_group") if c in frame.columns])  # a run table (or a previous pool) may be reused
    law = fit.spec.law
    derived = {"flops": {"params", "tokens"}, "unique_tokens": {"tokens"}}
    missing = [c for c in law.inputs if c not in frame.columns and not derived.get(c, {"-"}) <= set(frame.columns)]
    if missing:
        raise RunTableError(f"{source}: the {law.name} law needs column(s) {', '.join(missing)} in a candidate pool; it has {', '.join(map(str, frame.columns))}")
    shared = _target_levels(fit, targets)
    for g in fit.groups:
        if g not in frame.columns:
            if g not in shared:
                raise RunTableError(f"{source}: no {g!r} column: name the {g} each candidate would be trained in (the target is not one seen level)")
            frame[g] = shared[g]
    try:
        pool = target_table(fit, frame)
    except RunTableError as exc:
        text = str(exc)
        raise RunTableError(f"{source}{text[len('targets') :]}" if text.startswith("targets") else text) from None
    if "cost" in pool.columns:
        cost = pd.to_numeric(pool["cost"], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(cost) | (cost <= 0))
        if bad.size:
            raise RunTableError(f"{source}: row {bad[0] + 1}, column 'cost': {pool['cost'].iloc[bad[0]]!r} must be a positive, finite number (FLOPs or your own unit)")
        pool["cost"] = cost
    if "flops" not in pool.columns and "tokens" in pool.columns:
        size = pool["active_params"] if "active_params" in pool.columns else pool.get("params")
        if size is not None:
            pool["flops"] = 6.0 * size.to_numpy(dtype=float) * pool["tokens"].to_numpy(dtype=float)
    if "cost" not in pool.columns:
        if "flops" not in pool.columns:
            raise RunTableError(f"{source}: no 'cost' column and no params and tokens to count 6·N·D FLOPs from")
        pool["cost"] = pool["flops"].to_numpy(dtype=float)
    return pool.reset_index(drop=True)


def _target_levels(fit: Fitted, targets: pd.DataFrame) -> dict[str, Any]:
    """Per group column, the one seen level every target shares (what a pool without the column trains in)."""
    seen = targets[~targets["new_group"]] if "new_group" in targets.columns else targets
    if len(seen) != len(targets):
        return {}
    return {g: seen[g].iloc[0] for g in fit.groups if g in seen.columns and seen[g].nunique() == 1}


def _evaluate(fit: Fitted, frame: pd.DataFrame, seed: int) -> tuple[np.ndarray, np.ndarray, list[Any], PosteriorEvaluator]:
    """Per draw, (S, rows): law-only and with-discrepancy log loss at each row, through the evaluator of
    its own group selection; each row's run ranges (None without discrepancy); the first evaluator."""
    keys = [*fit.groups, "new_group"] if fit.groups else []
    parts = frame.groupby(keys, sort=False).indices.items() if keys else [((), np.arange(len(frame)))]
    law_only: np.ndarray | None = None
    with_shift: np.ndarray | None = None
    bounds: list[Any] = [None] * len(frame)
    first: PosteriorEvaluator | None = None
    for key, index in parts:
        combo = key if isinstance(key, tuple) else (key,)
        values = dict(zip(fit.groups, combo[: len(fit.groups)], strict=True))
        ev = PosteriorEvaluator.of(fit, values, bool(combo[-1]) if keys else False, seed)
        mu, pred = ev.at_table(frame.iloc[index])
        if law_only is None or with_shift is None:
            law_only, with_shift, first = np.empty((ev.size, len(frame))), np.empty((ev.size, len(frame))), ev
        law_only[:, index] = np.broadcast_to(mu, (ev.size, len(index)))
        with_shift[:, index] = np.broadcast_to(pred, (ev.size, len(index)))
        for i in index:
            bounds[i] = ev.bounds
    assert law_only is not None and with_shift is not None and first is not None
    return law_only, with_shift, bounds, first


def _row(pool: pd.DataFrame, j: int, sd_after: float, gain: float, spent: float, decision_after: float | None) -> dict[str, Any]:
    """One pick as a row of the ``selected`` table (``decision``: with the expected certainty after it)."""
    row = {**pool.iloc[j].to_dict(), "expected_sd_after": sd_after, "gain": gain, "cumulative_cost": spent}
    if decision_after is not None:
        row["expected_decision_after"] = decision_after
    return row


def _selected(pool: pd.DataFrame, rows: list[dict[str, Any]], sd_now: float, objective: str) -> pd.DataFrame:
    """The picks as a table: ``gain`` as sd removed (``decision``: certainty gained), per unit of cost."""
    columns = [c for c in pool.columns if c != "new_group"]
    out = pd.DataFrame(rows, columns=[*pool.columns, "expected_sd_after", "gain", "cumulative_cost", *(["expected_decision_after"] if objective == "decision" else [])])
    sds = np.concatenate([[sd_now], out["expected_sd_after"].to_numpy(dtype=float)])
    if objective == "sd":
        out["gain"] = sds[:-1] - sds[1:]
    out["gain_per_flop"] = out["gain"] / out["cost"]
    head = [c for c in ("params", "tokens", "flops", "cost", "expected_sd_after", "gain_per_flop", "gain", "cumulative_cost") if c in out.columns]
    tail = ["expected_decision_after"] if objective == "decision" else []
    return out[head + [c for c in columns if c not in head] + tail].reset_index(drop=True)


def _scored(pool: pd.DataFrame, first: np.ndarray, picks: np.ndarray, sd_now: float, var_now: np.ndarray, objective: str) -> pd.DataFrame:
    """The pool with each candidate's gain alone (sd removed, or certainty gained) per unit of cost, and its pick order."""
    out = pool.drop(columns=["new_group"], errors="ignore").copy()
    out["gain"] = sd_now - np.sqrt(np.maximum(np.mean(var_now) - first, 0.0)) if objective == "sd" else first
    out["gain_per_flop"] = out["gain"] / out["cost"]
    out["pick"] = picks
    return out


def _shown(targets: pd.DataFrame) -> pd.DataFrame:
    """The target columns a report shows: the law's inputs, compute and the group (``new_group`` where any is new)."""
    out = targets.copy()
    size = "active_params" if "active_params" in out.columns else "params"
    if "flops" not in out.columns and {size, "tokens"} <= set(out.columns):
        out["flops"] = 6.0 * out[size] * out["tokens"]
    if "new_group" in out.columns and not out["new_group"].any():
        out = out.drop(columns=["new_group"])
    return out.reset_index(drop=True)


def candidate_grid(fit: Fitted, targets: pd.DataFrame | None = None, budget_flops: float | None = None) -> pd.DataFrame:
    """A pool for users without one: ``GRID_SIZES`` log-spaced sizes from a third of the smallest run
    to twice the largest × ``GRID_RATIOS`` tokens per parameter from half the data's lowest to twice
    its highest (within ``GRID_RATIO_RANGE``, 20 always inside); runs costing more than the budget
    or ``GRID_TARGET_SHARE`` of the largest target's compute are left out (the next runs are small ones)."""
    law = fit.spec.law
    runs = fit.runs.data
    if (not {"params", "tokens"} <= set(law.inputs) and law.inputs != ("flops",)) or not {"params", "tokens"} <= set(runs.columns):
        raise BayescaleError(f"a grid pool needs a law of params and tokens; the {law.name} law reads {', '.join(law.inputs)}: give a pool table (--candidates POOL.csv)")
    n, ratio = runs["params"].to_numpy(dtype=float), runs["tokens"].to_numpy(dtype=float) / runs["params"].to_numpy(dtype=float)
    cap = float(budget_flops) if budget_flops else np.inf  # a zero budget selects nothing; its grid is still shown
    if targets is not None and len(targets):
        flops = targets["flops"] if "flops" in targets.columns else 6.0 * targets["params"] * targets["tokens"]
        cap = min(cap, GRID_TARGET_SHARE * float(np.max(flops)))
    sizes = np.geomspace(n.min() / 3.0, n.max() * 2.0, GRID_SIZES)
    low, high = np.clip(np.quantile(ratio, [0.0, 1.0]) * [0.5, 2.0], *GRID_RATIO_RANGE)
    ratios = np.geomspace(min(low, 20.0), max(high, 20.0), GRID_RATIOS)
    size, per = (a.ravel() for a in np.meshgrid(sizes, ratios, indexing="ij"))
    grid = pd.DataFrame({"params": size, "tokens": size * per})
    grid = grid[6.0 * grid["params"] * grid["tokens"] <= cap].reset_index(drop=True)
    if grid.empty:
        raise BayescaleError(f"no grid run costs at most {cap:.3g} FLOPs (the budget, or {GRID_TARGET_SHARE:g} of the target's compute): raise --budget-flops or give a pool")
    return grid


__all__ = ["NextRuns", "candidate_grid", "next_runs"]
