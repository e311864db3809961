"""Forecast-quality benchmark: leave-future-out forecasts on real public run tables and law-true twins.

For every dataset × cutoff × group structure × candidate: fit on the runs up to the cutoff,
forecast every larger run, and score the forecasts of log loss (median |log error|, CRPS,
coverage at 50/80/90 %, mean 90 % width) next to the extrapolation factor, fit time and
convergence. Each real table has a synthetic twin: the same (N, D) design (and groups) with
losses drawn from the law fitted to the whole real table, so a candidate's coverage can be
checked where the law is true. Prints one markdown table and writes
``benchmarks/results/forecast_bench.md``, ``forecast_bench.csv`` (one row per scored split) and
``forecast_bench_predictions.csv`` (one row per forecast run).

    uv run python benchmarks/forecast_bench.py --quick                 # minutes: one cutoff, few draws
    uv run python benchmarks/forecast_bench.py --candidates default,point --jobs 2
    uv run python benchmarks/forecast_bench.py --datasets gemstones --candidates default,shared_exponents

Candidates are pluggable: add a ``Candidate`` to ``CANDIDATES`` (a spec edit, fit options or a
whole spec) and name it in ``--candidates``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
import warnings
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from bayescale import load_runs
from bayescale.resources import data_path
from bayescale.runs import RunTable
from bayescale.simulate import simulate_runs
from bayescale.spec import ModelSpec, load_spec
from bayescale.validate import backtest

RESULTS = Path(__file__).parent / "results"
#: Fit settings of the full benchmark and of --quick.
FULL = {"draws": 1000, "tune": 1000, "chains": 4}
QUICK = {"draws": 300, "tune": 300, "chains": 2}
BOOTSTRAP = {"full": 200, "quick": 50}
TRUTH_CACHE = RESULTS / "forecast_bench_truth.json"


@dataclass(frozen=True)
class Dataset:
    """A real run table, its law, its two leave-future-out cutoffs and (optionally) its group column."""

    name: str
    file: str
    model: str
    cutoffs: tuple[float, float]
    load: Mapping[str, Any] = field(default_factory=dict)
    group: str | None = None
    note: str = ""

    def runs(self) -> RunTable:
        return load_runs(data_path(self.file), **self.load)


#: Cutoffs put the largest held-out run 4–30× above the largest training run (see the table).
DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset("chinchilla", "chinchilla_figure4_runs.csv", "chinchilla", (5e20, 1.5e21), {"drop_highest_loss": 5}, note="Hoffmann et al. Figure 4, 5 highest-loss runs dropped"),
        Dataset(
            "datablations_c4", "datablations_c4_runs.csv", "data_constrained", (5e20, 1.5e21), {"where": {"published_fit": "true"}}, note="the 182 runs Muennighoff et al. fitted, data-constrained law"
        ),
        Dataset("gemstones", "gemstones_runs.csv", "chinchilla", (5e19, 2e20), group="recipe", note="3 recipes (cooldown, constant LR, half LR)"),
        Dataset("llama3_isoflop", "llama3_isoflop_runs.csv", "chinchilla", (6e20, 1e21), note="Llama 3 Figure 2 isoFLOP points"),
        Dataset("cerebras_gpt", "cerebras_gpt_runs.csv", "compute", (1e21, 6e21), note="7 compute-optimal runs (20 tokens/param: only L(C) is identified)"),
    )
}


@dataclass(frozen=True)
class Candidate:
    """A way to forecast: the Bayesian fit of a (possibly edited) spec, or the literature's point fit.

    ``model`` replaces the dataset's spec (a shipped name, a path or a spec dict); ``edit`` is
    deep-merged into the spec's dict form (e.g. ``{"pooling": {"params": ["E", "A", "B"]}}``);
    ``fit`` adds ``bayescale.fit`` options (``target_accept``, ``adaptation``, ...).
    """

    name: str
    method: str = "bayes"
    model: str | Mapping[str, Any] | None = None
    edit: Mapping[str, Any] = field(default_factory=dict)
    fit: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    #: Give ``fit`` no model: it chooses the form (and pooling) by forecasting (``bayescale.model_choice``).
    choose: bool = False

    def spec(self, dataset_model: str) -> str | ModelSpec | None:
        if self.choose:
            return None
        base = self.model if self.model is not None else dataset_model
        if not self.edit:
            return base
        raw = _deep_merge(load_spec(base).to_dict(), self.edit)
        raw["name"] = f"{raw['name']}+{self.name}"
        return ModelSpec.from_dict(raw, source=f"candidate {self.name}")


CANDIDATES: dict[str, Candidate] = {
    c.name: c
    for c in (
        Candidate("default", description="bayescale.fit, the shipped spec as it is (group= on grouped structures)"),
        Candidate("point", method="point", description="Huber (δ=1e-3) point fit + bootstrap, one fit per group"),
        Candidate("farseer", model="farseer", description="the `farseer` spec: data exponent β(N) = β·(N/1e9)^γ and size shift δ of the data term"),
        Candidate("farseer_exponent", model="farseer_exponent", description="the `farseer_exponent` spec: `farseer` with δ fixed at 0"),
        Candidate("drift", model="drift", description="the `drift` spec: α(N) = α + κ_N·log(N/1e9), β(D) = β + κ_D·log(D/2e10)"),
        Candidate("choice", choose=True, description="bayescale.fit with no model: the form (and pooling) chosen by forecasting the training part's own largest runs"),
    )
}


def _deep_merge(base: dict[str, Any], edit: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in edit.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), dict) else copy.deepcopy(value)
    return out


# --- synthetic twins -------------------------------------------------------------------------------


def truth_of(dataset: Dataset, grouped: bool, seed: int = 0) -> dict[str, Any]:
    """The law fitted to the whole real table (per group level when grouped), cached by content hash.

    The truth is the literature's point fit (Huber on log loss, the posterior mode's close cousin:
    a posterior-median fit of every table costs ~10 min on the shared machine) and ``sigma`` the
    robust scale (1.4826·MAD) of its residuals, pooled over levels.
    """
    runs = dataset.runs()
    key = f"{dataset.name}|{dataset.model}|{dataset.group if grouped else ''}|{runs.content_hash()[:16]}"
    cache = json.loads(TRUTH_CACHE.read_text()) if TRUTH_CACHE.exists() else {}
    if key in cache:
        return cache[key]
    from bayescale.validate.point import point_fit

    levels = sorted(runs.data[dataset.group].astype(str).unique()) if grouped else [""]
    truth: dict[str, Any] = {"by_group": {}}
    residuals = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for level in levels:
            rows = (runs.data[dataset.group].astype(str) == level).to_numpy() if grouped else np.ones(len(runs), bool)
            part = RunTable(runs.data[rows].reset_index(drop=True), source=f"{runs.source} [{level}]", extra_columns=runs.extra_columns)
            fitted = point_fit(part, dataset.model, seed=seed)
            residuals.append(fitted.residuals)
            if grouped:
                truth["by_group"][level] = fitted.params
            else:
                truth["population"] = fitted.params
    r = np.concatenate(residuals)
    truth["sigma"] = float(1.4826 * np.median(np.abs(r - np.median(r))))
    cache = json.loads(TRUTH_CACHE.read_text()) if TRUTH_CACHE.exists() else {}
    cache[key] = truth
    TRUTH_CACHE.parent.mkdir(parents=True, exist_ok=True)
    TRUTH_CACHE.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n")
    return truth


def synthetic_twin(dataset: Dataset, grouped: bool, seed: int = 0) -> RunTable:
    """The real table's design with losses drawn from the law fitted to it (log-normal noise)."""
    runs = dataset.runs()
    truth = truth_of(dataset, grouped, seed)
    form = load_spec(dataset.model).form
    design = runs.data.drop(columns=["loss"]).copy()
    keep = [c for c in ("params", "tokens", "unique_tokens") if c in design.columns]
    loss = np.empty(len(design))
    if grouped:
        for i, level in enumerate(sorted(truth["by_group"])):
            rows = (design[dataset.group].astype(str) == level).to_numpy()
            loss[rows] = simulate_runs(form, truth["by_group"][level], design.loc[rows, keep], sigma=truth["sigma"], seed=seed + i)["loss"].to_numpy()
    else:
        loss = simulate_runs(form, truth["population"], design[keep], sigma=truth["sigma"], seed=seed)["loss"].to_numpy()
    frame = design[[c for c in design.columns if c in (*keep, "flops", *runs.extra_columns)]].copy()
    frame["loss"] = loss
    return load_runs(frame)


# --- one scored split -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    dataset: str
    kind: str  # "real" | "synthetic"
    grouped: bool
    cutoff: float
    candidate: str
    quick: bool
    seed: int = 0

    @property
    def key(self) -> str:
        return f"{self.dataset}|{self.kind}|{int(self.grouped)}|{self.cutoff:.3g}|{self.candidate}|{'quick' if self.quick else 'full'}"


def run_task(task: Task, cores: int) -> tuple[dict[str, Any], pd.DataFrame]:
    """Fit, forecast and score one split; never raises (a failure is a row with its error)."""
    dataset, candidate = DATASETS[task.dataset], CANDIDATES[task.candidate]
    group = dataset.group if task.grouped else None
    row: dict[str, Any] = {"key": task.key, "dataset": task.dataset, "kind": task.kind, "groups": group or "none", "cutoff": task.cutoff, "candidate": task.candidate}
    row["settings"] = "quick" if task.quick else "full"
    try:
        runs = synthetic_twin(dataset, task.grouped, task.seed) if task.kind == "synthetic" else dataset.runs()
        with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):  # BLAS threads only fight over shared cores
            warnings.simplefilter("ignore")
            if candidate.method == "point":
                bootstrap = BOOTSTRAP["quick" if task.quick else "full"]
                result = backtest(runs, candidate.spec(dataset.model), task.cutoff, method="point", group=group, seed=task.seed, bootstrap=bootstrap, predictions=True)
            else:
                settings = {**(QUICK if task.quick else FULL), "cores": cores, **candidate.fit}
                result = backtest(runs, candidate.spec(dataset.model), task.cutoff, method="bayes", group=group, seed=task.seed, predictions=True, **settings)
    except Exception as exc:  # a failed split is reported, not fatal to the benchmark
        row["error"] = f"{type(exc).__name__}: {exc}"
        return row, pd.DataFrame()
    predictions = result.pop("predictions")
    row.update(result)
    for column, value in (("key", task.key), ("candidate", task.candidate), ("kind", task.kind), ("dataset", task.dataset)):
        predictions.insert(0, column, value)
    return row, predictions


# --- output -------------------------------------------------------------------------------------------

HEADER = "| dataset | kind | groups | cutoff | candidate | n train/test | extrap. | med abs log err | CRPS | cov 50/80/90 | width 90 | s | R-hat / ESS / div |"


def markdown_row(r: Mapping[str, Any]) -> str:
    label = f"{r['candidate']} → {r['model']}" if CANDIDATES.get(r["candidate"], CANDIDATES["default"]).choose and isinstance(r.get("model"), str) else r["candidate"]
    head = f"| {r['dataset']} | {r['kind']} | {r['groups']} | {r['cutoff']:.2g} | {label} |"
    if isinstance(r.get("error"), str) and r["error"]:
        return head + f" failed: {r['error'][:160]} |" + " |" * 7
    conv = "–"
    if r.get("method") == "bayes":
        conv = f"{r['rhat_max']:.3f} / {r['ess_bulk_min']:.0f} / {int(r['divergences'])}" + ("" if r.get("converged") else " ✗")
    return (
        head + f" {int(r['n_train'])}/{int(r['n_test'])} | {r['max_extrapolation']:.0f}× | {r['median_abs_log_error']:.4f} | {r['crps']:.4f} | "
        f"{r['coverage_50']:.2f} / {r['coverage_80']:.2f} / {r['coverage_90']:.2f} | {r['mean_width_90']:.4f} | {r['seconds']:.0f} | {conv} |"
    )


def render(rows: pd.DataFrame, total: float, candidates: list[str], quick: bool) -> str:
    order = {n: i for i, n in enumerate(DATASETS)}
    rows = rows.assign(_d=rows["dataset"].map(order), _c=rows["candidate"].map({c: i for i, c in enumerate(candidates)}))
    rows = rows.sort_values(["_d", "kind", "groups", "cutoff", "_c"])
    settings = QUICK if quick else FULL
    lines = [
        "# Forecast-quality benchmark (leave-future-out)",
        "",
        (
            "Fit on the runs with flops ≤ cutoff, forecast every larger run; scores on log loss (0.01 ≈ 1 % of the loss). "
            "`extrap.` = largest held-out flops / largest training flops. Coverage: share of held-out runs inside the central 50/80/90 % "
            "predictive interval (nominal 0.50/0.80/0.90). `synthetic` = the same design with losses drawn from the law fitted to the whole "
            "real table (point fit; noise = its residuals' robust scale): law-true. `s` = fit + forecast seconds on a shared 2-core machine. "
            "✗ = the fit failed bayescale's convergence checks (R-hat ≤ 1.01, bulk/tail ESS ≥ 400, no divergences): expected at --quick's draws."
        ),
        "",
        (
            f"Bayesian candidates: {settings['chains']} chains × {settings['draws']} draws ({settings['tune']} tune), nutpie. "
            f"point: {BOOTSTRAP['quick' if quick else 'full']} bootstrap refits + resampled residuals."
        ),
        "",
        "Candidates: " + "; ".join(f"`{c}`: {CANDIDATES[c].description}" for c in candidates),
        "",
        "Datasets: " + "; ".join(f"`{d.name}` ({d.model}): {d.note}" for d in DATASETS.values()),
        "",
        HEADER,
        "|" + "---|" * (HEADER.count("|") - 1),
    ]
    lines += [markdown_row(r) for r in rows.to_dict("records")]
    split_seconds = float(rows["seconds"].sum()) if "seconds" in rows else 0.0
    lines += ["", f"Splits took {split_seconds:.0f} s in all (this invocation {total:.0f} s) on {platform.machine()} (Python {platform.python_version()}), shared 2-core machine."]
    return "\n".join(lines)


def make_tasks(datasets: list[str], kinds: list[str], candidates: list[str], quick: bool, seed: int) -> list[Task]:
    """Every dataset × kind × group structure × cutoff × candidate (first cutoff only when quick)."""
    return [
        Task(d, kind, grouped, cutoff, c, quick, seed)
        for d in datasets
        for kind in kinds
        for grouped in ((False, True) if DATASETS[d].group else (False,))
        for cutoff in DATASETS[d].cutoffs[: 1 if quick else 2]
        for c in candidates
    ]


def load_others(csv_path: Path, pred_path: Path, keys: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows (and predictions) of the splits this invocation does not run: the files keep them, so a
    run of some datasets or candidates never erases the others' results."""
    rows = pd.read_csv(csv_path) if csv_path.exists() else pd.DataFrame()
    preds = pd.read_csv(pred_path) if pred_path.exists() else pd.DataFrame()
    rows = rows[~rows["key"].isin(keys)] if len(rows) else rows
    return rows, (preds[preds["key"].isin(rows["key"])] if len(preds) and len(rows) else preds.iloc[:0])


def load_done(csv_path: Path, pred_path: Path, keys: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows (and their predictions) of earlier runs of these splits that did not fail."""
    done = pd.read_csv(csv_path) if csv_path.exists() else pd.DataFrame()
    preds = pd.read_csv(pred_path) if pred_path.exists() else pd.DataFrame()
    if not len(done):
        return done, preds.iloc[:0]
    ok = done["error"].isna() if "error" in done else pd.Series(True, index=done.index)
    done = done[ok & done["key"].isin(keys)]
    return done, (preds[preds["key"].isin(done["key"])] if len(preds) else preds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", default="default,point", help=f"comma-separated, from: {', '.join(CANDIDATES)}")
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated, from: {', '.join(DATASETS)}")
    parser.add_argument("--kinds", default="real,synthetic", help="real, synthetic or both")
    parser.add_argument("--quick", action="store_true", help="fewer draws and bootstrap refits, first cutoff only")
    parser.add_argument("--jobs", type=int, default=1, help="splits run in parallel (processes)")
    parser.add_argument("--resume", action="store_true", help="keep rows already in the CSV and run only the missing splits")
    parser.add_argument("--render-only", action="store_true", help="run nothing: rewrite the markdown from the rows already in the CSV")
    parser.add_argument("--out", type=Path, default=RESULTS / "forecast_bench.md")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    candidates = [c for c in args.candidates.split(",") if c]
    datasets = [d for d in args.datasets.split(",") if d]
    unknown = [c for c in candidates if c not in CANDIDATES] + [d for d in datasets if d not in DATASETS]
    if unknown:
        parser.error(f"unknown candidate(s)/dataset(s): {', '.join(unknown)}")
    tasks = make_tasks(datasets, args.kinds.split(","), candidates, args.quick, args.seed)
    csv_path = args.out.with_suffix(".csv")
    pred_path = args.out.with_name(args.out.stem + "_predictions.csv")
    done, done_preds = load_done(csv_path, pred_path, [t.key for t in tasks]) if args.resume or args.render_only else (pd.DataFrame(), pd.DataFrame())
    todo = [] if args.render_only else [t for t in tasks if t.key not in set(done.get("key", []))]
    for d, grouped in sorted({(t.dataset, t.grouped) for t in todo if t.kind == "synthetic"}):  # truths first, once, outside the pool
        truth_of(DATASETS[d], grouped, args.seed)
    cores = max(1, (os.cpu_count() or 1) // max(1, args.jobs))
    others, others_preds = load_others(csv_path, pred_path, [t.key for t in tasks])
    rows = [r for r in (others, done) if len(r)]
    preds = [p for p in (others_preds, done_preds) if len(p)]
    start = time.perf_counter()
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def record(row: dict[str, Any], pred: pd.DataFrame) -> None:
        rows.append(pd.DataFrame([row]))
        if len(pred):
            preds.append(pred)
        print(markdown_row(row), flush=True)
        pd.concat(rows, ignore_index=True).to_csv(csv_path, index=False)  # partial results survive a kill
        if preds:
            pd.concat(preds, ignore_index=True).to_csv(pred_path, index=False)

    print(HEADER, flush=True)
    if args.jobs <= 1:
        for t in todo:
            record(*run_task(t, cores))
    else:
        with ProcessPoolExecutor(args.jobs) as pool:
            futures = [pool.submit(run_task, t, cores) for t in todo]
            for f in as_completed(futures):
                record(*f.result())
    total = time.perf_counter() - start
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    shown = candidates + [c for c in dict.fromkeys(table.get("candidate", [])) if c in CANDIDATES and c not in candidates]  # kept rows' candidates too
    text = render(table[table["candidate"].isin(shown)] if len(table) else table, total, shown, args.quick)
    print(text)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
