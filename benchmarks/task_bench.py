"""Chained task-accuracy forecasts on the OLMo ladder (issue 27): fit 190M–1.3B, forecast the 7B-4T and
13B-5T models per task, next to the paper's published chained predictions; and leave-future-out inside
the ladder (fit 190M–760M, forecast the four 1.3B runs).

    nice -n 10 uv run python benchmarks/task_bench.py [--out benchmarks/results/task_bench.md]

The 3.2B rung is not used (the paper's ladder, configs/final.json, is 190M–1.3B).
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bayescale.resources import data_path
from bayescale.taskfit import TaskFit, fit_tasks
from bayescale.taskplan import forecast_tasks

SAMPLING = {"draws": 1000, "tune": 1000, "chains": 4, "seed": 0, "target_accept": 0.95}
CI = 0.9


def fit(runs: pd.DataFrame) -> tuple[TaskFit, float]:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit_tasks(runs, **SAMPLING)
    return result, time.perf_counter() - start


def scored(result: TaskFit, actual: pd.DataFrame) -> pd.DataFrame:
    """Forecast each row of ``actual`` (params, tokens, task, accuracy) and score it."""
    rows = []
    for (n, d), group in actual.groupby(["params", "tokens"], sort=False):
        table = forecast_tasks(result, n, d, ci=CI).set_index("task")
        for _, row in group.iterrows():
            f = table.loc[row["task"]]
            rows.append(
                {
                    "target": row.get("target", row.get("run")), "task": row["task"], "actual": row["accuracy"],
                    "median": f["accuracy_median"], "lo": f["accuracy_lo"], "hi": f["accuracy_hi"],
                    "rel_error": abs(f["accuracy_median"] - row["accuracy"]) / row["accuracy"],
                    "covered": bool(f["accuracy_lo"] <= row["accuracy"] <= f["accuracy_hi"]), "width": f["accuracy_hi"] - f["accuracy_lo"],
                    "loss_actual": row["task_bpb"], "loss_median": f["loss_median"], "loss_lo": f["loss_lo"], "loss_hi": f["loss_hi"],
                }
            )  # fmt: skip
    return pd.DataFrame(rows)


def diagnostics_line(result: TaskFit, seconds: float) -> str:
    d = result.diagnostics
    return f"R-hat max {d.rhat_max:.3f}, bulk ESS min {d.ess_bulk_min:.0f}, tail ESS min {d.ess_tail_min:.0f}, divergences {d.divergences}; {seconds:.0f} s ({SAMPLING['chains']} chains × ({SAMPLING['tune']} + {SAMPLING['draws']}), target_accept {SAMPLING['target_accept']}, compile included)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    runs = pd.read_csv(data_path("olmo_ladder_runs.csv"))
    targets = pd.read_csv(data_path("olmo_ladder_targets.csv"))
    paper = pd.read_csv(data_path("olmo_ladder_paper_chained.csv"))
    ladder = runs[runs["size"] != "3.2B"]
    lines = [
        "# Chained task-accuracy forecasts on the OLMo ladder",
        "",
        f"`benchmarks/task_bench.py` on {platform.machine()}, {pd.Timestamp.now('UTC'):%Y-%m-%d}; 2 cores shared with other jobs (timings are upper bounds).",
        f"Fit: `fit_tasks` on the final checkpoints of 190M–1.3B × 1/2/5/10xC (16 runs × 8 tasks; the 3.2B rung is not used), {CI:.0%} intervals (posterior predictive: law, discrepancy, loss and accuracy noise).",
        "",
    ]
    result, seconds = fit(ladder)
    lines += [f"Ladder fit: {diagnostics_line(result, seconds)}.", ""]
    span = ladder.groupby("task").apply(lambda g: g["accuracy"].max() - g["chance"].iloc[0], include_groups=False)
    for target in ("7B-4T", "13B-5T"):
        table = scored(result, targets[targets["target"] == target])
        table = table.merge(paper[paper["target"] == target][["task", "relative_error"]].rename(columns={"relative_error": "paper_rel_error"}), on="task", how="left")
        lines += [
            f"## {target}",
            "",
            "| task | actual | median | 90% interval | covered | rel. error | paper rel. error | task bpb actual | bpb median [90%] |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for _, r in table.iterrows():
            paper_cell = f"{r['paper_rel_error']:.1%}" if np.isfinite(r["paper_rel_error"]) else "not in repo"
            lines.append(
                f"| {r['task']} | {r['actual']:.3f} | {r['median']:.3f} | [{r['lo']:.3f}, {r['hi']:.3f}] | {'yes' if r['covered'] else 'no'} | {r['rel_error']:.1%} | {paper_cell} "
                f"| {r['loss_actual']:.3f} | {r['loss_median']:.3f} [{r['loss_lo']:.3f}, {r['loss_hi']:.3f}] |"
            )
        too_wide = int(sum(table["width"].to_numpy() > span.reindex(table["task"]).to_numpy()))
        lines += [
            "",
            f"Covered {int(table['covered'].sum())}/{len(table)}; mean interval width {table['width'].mean():.3f}; intervals wider than chance→largest ladder accuracy: {too_wide}; median relative error {table['rel_error'].median():.1%}.",
        ]
        if table["paper_rel_error"].notna().any():
            both = table.dropna(subset=["paper_rel_error"])
            lines.append(
                f"Paper (chained, repo figures/chained_main.csv): median relative error {both['paper_rel_error'].median():.1%}; ours better on {int((both['rel_error'] < both['paper_rel_error']).sum())}/{len(both)} tasks."
            )
        lines.append("")
        print("\n".join(lines[-12:]), flush=True)
    small = ladder[ladder["size"] != "1.3B"]
    held = ladder[ladder["size"] == "1.3B"]
    lfo, seconds = fit(small)
    table = scored(lfo, held)
    lines += ["## Leave-future-out inside the ladder: fit 190M–760M, forecast 1.3B (4 runs × 8 tasks)", "", f"Fit: {diagnostics_line(lfo, seconds)}.", ""]
    lines += ["| task | covered (of 4) | mean rel. error | mean width |", "|---|---|---|---|"]
    for task, g in table.groupby("task", sort=False):
        lines.append(f"| {task} | {int(g['covered'].sum())} | {g['rel_error'].mean():.1%} | {g['width'].mean():.3f} |")
    lines += ["", f"All: covered {int(table['covered'].sum())}/{len(table)}, median relative error {table['rel_error'].median():.1%}, mean width {table['width'].mean():.3f}.", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
