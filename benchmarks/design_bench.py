"""Experiment-design benchmark: which runs to train next, replayed on real pools (issue 29 item 4).

Each table is split into a pool of runs one could train and held-out large target runs (the
ScaleBench split for its tables, a compute cutoff for the others). Every method starts from the
same seed set (the cheapest 5% of the pool, grown until the law is identifiable) and buys runs from
the rest of the pool in rounds: up to 1%, 5% and 10% of the pool's total cost (the seed set's cost
counts). After each round the law is refitted (few draws, no self-check: τ stays at its prior) and
the held-out runs are forecast and scored: target-region R² as ScaleBench defines it (R² of loss at
the predictive medians, clipped to [−1, 1]; ``benchmark/metrics.py`` of ``PlanarG/active-sl``),
median |log error|, 90% coverage and the mean 90% width relative to the median.

Methods: ``bayescale`` (``bayescale.design.next_runs`` on the held-out targets, objective sd,
budget = what the round may still spend), ``random``, ``cheapest``, ``cost_random`` (probability ∝
1/cost, ScaleBench's "Cost Rand"), ``dopt`` (greedy D-optimal on the law's Jacobian at the posterior
median, Σ the posterior covariance updated rank-one per pick, gain per cost^0.4 as ScaleBench's
``baseline_dopt.py``) and ``all`` (the whole pool; one fit). Non-adaptive methods keep one order per
seed and stop a round at the first run that does not fit the budget (it opens the next round), as
ScaleBench's runner does. ``bayescale+sc`` is ``bayescale`` on fits that run their self-check (τ
learns the law's misfit). Rows are appended to ``benchmarks/results/design_bench.csv``; the
markdown summary (mean ± sd over seeds) is rewritten from it.

    nice -n 10 uv run python benchmarks/design_bench.py --datasets scalebench_moe --methods random,cheapest --seeds 0-4
    nice -n 10 uv run python benchmarks/design_bench.py --resume          # skip rows already in the CSV
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayescale import fit, load_runs
from bayescale.errors import BayescaleError
from bayescale.forecasting import forecast_table
from bayescale.laws.ops import NUMPY
from bayescale.modeldesign import design
from bayescale.resources import data_path
from bayescale.spec import load_spec

RESULTS = Path(__file__).parent / "results"
CHECKPOINTS = (0.01, 0.05, 0.10)
#: Fast fits: enough draws for medians and 90% intervals, no self-check (a round's refit must be cheap).
FAST = {"draws": 200, "tune": 300, "chains": 2, "cores": 1, "self_check": False}
COLUMNS = ("params", "tokens", "loss", "flops", "unique_tokens", "experts", "active_params", "arch")
#: ScaleBench's paper, Table 2 (their method; their all-data fit), target-region R² at 1/5/10%.
PAPER = {"scalebench_data_constrained": "ours 0.73/0.85/0.86, all data 0.79", "scalebench_moe": "ours 0.59/0.65/0.83, all data 0.81"}


@dataclass(frozen=True)
class Dataset:
    """A run table, its law, how it splits into pool and held-out targets, and its group column."""

    name: str
    file: str
    model: str
    load: dict[str, Any] = field(default_factory=dict)
    cutoff: float | None = None  # pool: flops <= cutoff; targets above. None: the table's `split` column
    group: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # overrides of FAST

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(pool, targets) with the law's columns, ``cost`` and a stable ``pool_index``."""
        runs = load_runs(data_path(self.file), **self.load)
        data = runs.data
        keep = [*COLUMNS, *([self.group] if self.group else [])]
        frame = data[keep].copy()
        frame["cost"] = data["cost"].astype(float) if "cost" in data.columns else data["flops"].astype(float)
        test = data["split"].to_numpy() == "test" if self.cutoff is None else data["flops"].to_numpy(dtype=float) > self.cutoff
        pool = frame[~test].reset_index(drop=True)
        pool["pool_index"] = np.arange(len(pool))
        return pool, frame[test].reset_index(drop=True)


DATASETS = {
    d.name: d
    for d in (
        Dataset("chinchilla", "chinchilla_figure4_runs.csv", "chinchilla", {"drop_highest_loss": 5}, cutoff=5e20),
        Dataset("gemstones", "gemstones_runs.csv", "chinchilla", cutoff=2e20, group="recipe"),
        Dataset("llama3_isoflop", "llama3_isoflop_runs.csv", "chinchilla", cutoff=6e20),
        Dataset("datablations_c4", "datablations_c4_runs.csv", "data_constrained", {"where": {"published_fit": "true"}}, cutoff=5e20),
        Dataset("scalebench_data_constrained", "scalebench_data_constrained_runs.csv", "data_constrained"),
        # routed: 300 tuning steps left chains in different modes (R-hat 2.5); 1000 mix (R-hat 1.01)
        Dataset("scalebench_moe", "scalebench_moe_runs.csv", "routed", settings={"tune": 1000}),
    )
}


# --- fitting and scoring -------------------------------------------------------------------------


def fit_fast(ds: Dataset, runs: pd.DataFrame, seed: int, self_check: bool = False) -> Any:
    """A fast fit; ``self_check`` turns the fit's own leave-future-out check on (τ learns from it)."""
    frame = runs.drop(columns=["cost", "pool_index"], errors="ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit(frame, ds.model, group=ds.group, seed=seed, **{**FAST, **ds.settings, "self_check": self_check})


def target_r2(y: np.ndarray, pred: np.ndarray) -> float:
    """ScaleBench's target-region R²: 1 − SS_res/SS_tot on loss, clipped to [−1, 1]."""
    return float(np.clip(1.0 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2), -1.0, 1.0))


def score(result: Any, targets: pd.DataFrame, seed: int) -> dict[str, float]:
    table = forecast_table(result.forecast(targets.drop(columns=["loss", "cost"]), seed=seed))
    y = targets["loss"].to_numpy(dtype=float)
    median, lo, hi = (table[f"loss_{s}"].to_numpy() for s in ("median", "lo", "hi"))
    return {
        "r2": target_r2(y, median),
        "median_abs_log_error": float(np.median(np.abs(np.log(median / y)))),
        "coverage90": float(np.mean((lo <= y) & (y <= hi))),
        "width90": float(np.mean((hi - lo) / median)),
    }


def seed_set(ds: Dataset, pool: pd.DataFrame) -> np.ndarray:
    """The cheapest 5% of the pool (at least the law's parameters + 2 runs), grown until ``design`` accepts it."""
    spec = load_spec(ds.model)
    order = np.argsort(pool["cost"].to_numpy(), kind="stable")
    k = max(math.ceil(0.05 * len(pool)), len(spec.law.parameters) + 2)
    while k <= len(pool):
        chosen = order[:k]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                design(spec, load_runs(pool.iloc[chosen].drop(columns=["cost", "pool_index"])), (ds.group,) if ds.group else ())
            return chosen
        except BayescaleError:
            k += max(1, len(pool) // 100)
    return order


# --- methods -------------------------------------------------------------------------------------


@dataclass
class State:
    """One replay: the pool, what has been bought, the current fit."""

    ds: Dataset
    pool: pd.DataFrame
    targets: pd.DataFrame
    chosen: list[int]
    rng: np.random.Generator
    result: Any = None
    order: list[int] | None = None

    @property
    def spent(self) -> float:
        return float(self.pool["cost"].to_numpy()[self.chosen].sum())

    def remaining(self) -> np.ndarray:
        return np.setdiff1d(np.arange(len(self.pool)), self.chosen)


def take_in_order(state: State, budget: float, make_order: Callable[[State], list[int]]) -> None:
    """Buy runs in a fixed per-seed order until the next one would exceed the budget."""
    if state.order is None:
        state.order = make_order(state)
    cost = state.pool["cost"].to_numpy()
    while state.order and state.spent + cost[state.order[0]] <= budget:
        state.chosen.append(state.order.pop(0))


def random_order(state: State) -> list[int]:
    return [int(i) for i in state.rng.permutation(state.remaining())]


def cheapest_order(state: State) -> list[int]:
    rest = state.remaining()
    return [int(i) for i in rest[np.lexsort((state.rng.random(rest.size), state.pool["cost"].to_numpy()[rest]))]]


def cost_random_order(state: State) -> list[int]:
    rest = state.remaining()
    weight = 1.0 / state.pool["cost"].to_numpy()[rest]
    return [int(i) for i in state.rng.choice(rest, size=rest.size, replace=False, p=weight / weight.sum())]


def dopt(state: State, budget: float) -> None:
    """Greedy D-optimal picks on the law's Jacobian at the posterior median (population parameters)."""
    law = state.result.spec.law
    post = state.result.posterior
    free = [p.name for p in law.parameters if p.name in post and float(post[p.name].std()) > 0]
    draws = {p: post[p].values.ravel() for p in law.parameter_names if p in post}
    log_scale = {p.name: p.positive for p in law.parameters}
    coord = np.column_stack([np.log(draws[p]) if log_scale[p] else draws[p] for p in free])
    sigma = np.cov(coord, rowvar=False) + 1e-12 * np.eye(len(free))
    centre = {p: float(np.median(v)) for p, v in draws.items()}
    rest = state.remaining()
    x = law.log_inputs(state.pool.iloc[rest])
    base = law.log_loss(NUMPY, centre, x)
    jac = np.empty((rest.size, len(free)))
    for j, p in enumerate(free):
        step = 1e-4
        moved = dict(centre)
        moved[p] = centre[p] * math.exp(step) if log_scale[p] else centre[p] + step
        jac[:, j] = (law.log_loss(NUMPY, moved, x) - base) / step
    noise = float(np.median(post["sigma"].values)) ** 2
    cost = state.pool["cost"].to_numpy()[rest]
    total = float(state.pool["cost"].sum())
    open_ = np.ones(rest.size, dtype=bool)
    while True:
        affordable = open_ & (state.spent + cost <= budget)
        if not affordable.any():
            return
        var = np.einsum("ij,jk,ik->i", jac, sigma, jac)
        gain = np.log1p(np.maximum(var, 0.0) / noise) / (cost / total) ** 0.4
        best = int(np.argmax(np.where(affordable, gain, -np.inf)))
        state.chosen.append(int(rest[best]))
        open_[best] = False
        sj = sigma @ jac[best]
        sigma = sigma - np.outer(sj, sj) / (noise + jac[best] @ sj)


def bayescale_picks(state: State, budget: float) -> None:
    """``bayescale.design.next_runs`` on the held-out targets, spending what the round has left."""
    from bayescale.design import next_runs

    left = budget - state.spent
    rest = state.remaining()
    if left <= 0 or rest.size == 0:
        return
    candidates = state.pool.iloc[rest].drop(columns=["loss"])
    targets = state.targets.drop(columns=["loss", "cost"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        picked = next_runs(state.result, candidates, targets, budget_flops=left, objective="sd")
    state.chosen.extend(int(i) for i in picked.selected["pool_index"])


METHODS: dict[str, Callable[[State, float], None]] = {
    "bayescale": bayescale_picks,
    # the same picks on fits that run their self-check, so τ (and next_runs' discrepancy term) learns the misfit
    "bayescale+sc": bayescale_picks,
    "random": lambda s, b: take_in_order(s, b, random_order),
    "cheapest": lambda s, b: take_in_order(s, b, cheapest_order),
    "cost_random": lambda s, b: take_in_order(s, b, cost_random_order),
    "dopt": dopt,
}
ALL = "all"


# --- the replay ----------------------------------------------------------------------------------


def replay(ds: Dataset, method: str, seed: int) -> list[dict[str, Any]]:
    """One method, one seed: buy in rounds, refit and score after each."""
    pool, targets = ds.frames()
    total = float(pool["cost"].sum())
    start = seed_set(ds, pool)
    rows = []
    if method == ALL:
        began = time.perf_counter()
        result = fit_fast(ds, pool, seed)
        scores = score(result, targets, seed)
        return [_row(ds, method, seed, cp, 1.0, len(pool), scores, time.perf_counter() - began, "") for cp in CHECKPOINTS]
    state = State(ds, pool, targets, [int(i) for i in start], np.random.default_rng(seed))
    checked = method.endswith("+sc")
    state.result = fit_fast(ds, pool.iloc[state.chosen], seed, checked)
    for cp in CHECKPOINTS:
        began, note = time.perf_counter(), ""
        try:
            METHODS[method](state, cp * total)
        except Exception as exc:  # a method that cannot pick this round keeps what it has: recorded, not fatal
            note = f"{type(exc).__name__}: {str(exc)[:160]}"
        try:
            state.result = fit_fast(ds, pool.iloc[state.chosen], seed, checked)
            scores = score(state.result, targets, seed)
        except Exception as exc:
            scores = dict.fromkeys(("r2", "median_abs_log_error", "coverage90", "width90"), float("nan"))
            note = (note + "; " if note else "") + f"fit: {type(exc).__name__}: {str(exc)[:160]}"
        rows.append(_row(ds, method, seed, cp, state.spent / total, len(state.chosen), scores, time.perf_counter() - began, note))
    return rows


def _row(ds: Dataset, method: str, seed: int, cp: float, spent: float, n: int, scores: dict[str, float], seconds: float, note: str) -> dict[str, Any]:
    return {"dataset": ds.name, "model": ds.model, "method": method, "seed": seed, "checkpoint": cp, "spent": spent, "runs": n, **scores, "seconds": seconds, "note": note}


def summarise(frame: pd.DataFrame) -> str:
    """Mean ± sd over seeds per dataset × method × checkpoint, and which rows are missing."""
    lines = [
        "# Experiment-design benchmark (`benchmarks/design_bench.py`)",
        "",
        "Replays of real pools: seed set = the cheapest 5% of the pool; rounds up to 1%, 5%, 10% of the pool's cost",
        "(seed cost included); refit after each round with fast fits (2 chains × 200 draws after 300 tuning steps, 1000",
        "for the routed law; no self-check, so the",
        "discrepancy scale τ stays at its prior); held-out targets scored by target-region R² (ScaleBench's definition),",
        "median |log error|, 90% coverage and mean 90% width / median. Mean ± sd over seeds (n = seeds run).",
        "",
    ]
    for name, block in frame.groupby("dataset", sort=False):
        lines += [f"## {name} ({block['model'].iloc[0]})", ""]
        if name in PAPER:
            lines += [f"Paper (Li et al. 2026, Table 2, R²): {PAPER[name]}.", ""]
        lines += ["| method | budget | spent | runs | R² | median abs log err | 90% coverage | 90% width | n |", "|---|---|---|---|---|---|---|---|---|"]
        for (method, cp), cell in block.groupby(["method", "checkpoint"], sort=False):

            def ms(col: str, fmt: str, cell: pd.DataFrame = cell) -> str:
                v = cell[col].astype(float)
                return f"{v.mean():{fmt}} ± {v.std(ddof=1):{fmt}}" if len(v) > 1 else f"{v.mean():{fmt}}"

            lines.append(
                f"| {method} | {cp:.0%} | {cell['spent'].mean():.3f} | {cell['runs'].mean():.0f} | {ms('r2', '.2f')} | {ms('median_abs_log_error', '.4f')} | {ms('coverage90', '.2f')} | {ms('width90', '.3f')} | {len(cell)} |"
            )
        notes = sorted({n for n in block["note"].fillna("") if n})
        lines += [""] + [f"- note: {n}" for n in notes[:5]] + [""]
    missing = [f"{d} × {m}" for d in DATASETS for m in [*METHODS, ALL] if not m.endswith("+sc") if not ((frame["dataset"] == d) & (frame["method"] == m)).any()]
    lines += ["## Not run", "", ", ".join(missing) if missing else "none", ""]
    return "\n".join(lines)


def _seeds(text: str) -> list[int]:
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--methods", default=",".join([*METHODS, ALL]))
    parser.add_argument("--seeds", default="0-4", help="e.g. 0-4 or 0,3")
    parser.add_argument("--resume", action="store_true", help="skip dataset × method × seed rows already in the CSV")
    parser.add_argument("--out", default="design_bench", help="results/NAME.csv and NAME.md (a second process needs its own)")
    args = parser.parse_args()
    csv = RESULTS / f"{args.out}.csv"
    done = pd.read_csv(csv) if csv.exists() else pd.DataFrame()
    RESULTS.mkdir(exist_ok=True)
    for name in args.datasets.split(","):
        ds = DATASETS[name]
        for method in args.methods.split(","):
            for seed in _seeds(args.seeds) if method != ALL else [0]:
                if args.resume and len(done) and ((done["dataset"] == name) & (done["method"] == method) & (done["seed"] == seed)).any():
                    continue
                rows = replay(ds, method, seed)
                frame = pd.DataFrame(rows)
                print(frame[["dataset", "method", "seed", "checkpoint", "spent", "runs", "r2", "median_abs_log_error", "coverage90", "note"]].to_string(index=False, header=False), flush=True)
                done = pd.concat([done[~((done["dataset"] == name) & (done["method"] == method) & (done["seed"] == seed))] if len(done) else done, frame], ignore_index=True)
                done.to_csv(csv, index=False)
                (RESULTS / f"{args.out}.md").write_text(summarise(done))


if __name__ == "__main__":
    main()
