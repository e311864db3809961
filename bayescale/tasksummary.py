"""What ``bayescale summary`` shows of a task fit: each task's parameters and the pooled population
(median, interval, R-hat, ESS), the fit's convergence and the ladder it was fitted on, as a table,
a text block or the ``--format json`` document.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from bayescale.errors import check_probability
from bayescale.taskfit import TaskFit
from bayescale.taskmodel import POOLED, TASK_PARAMETERS

#: The label of the pooled rows of ``summary_frame`` (the population across tasks, log scale).
POOLED_LABEL = "(pooled)"
#: Statistics per parameter, in column order.
STATISTICS = ("median", "lo", "hi", "rhat", "ess_bulk", "ess_tail")


def pooled_names(fit: TaskFit) -> list[str]:
    """The population mean and spread of each pooled parameter's log value held by the posterior (``alpha_mu``, ``alpha_tau``, …)."""
    return [f"{p}_{s}" for p in POOLED for s in ("mu", "tau") if f"{p}_{s}" in fit.posterior]


def _statistics(fit: TaskFit, names: list[str]) -> dict[str, Any]:
    """R-hat (NaN with one chain) and bulk/tail ESS of ``names``, per task where a variable has one."""
    import arviz_stats as az

    posterior = fit.posterior[names]
    chains = posterior.sizes["chain"]
    return {"rhat": az.rhat(posterior) if chains > 1 else None, "ess_bulk": az.ess(posterior, method="bulk"), "ess_tail": az.ess(posterior, method="tail")}


def summary_frame(fit: TaskFit, ci: float = 0.9) -> pd.DataFrame:
    """One row per (task, parameter), then the pooled rows (task ``POOLED_LABEL``): ``STATISTICS`` of each."""
    check_probability(ci)
    names = [n for n in TASK_PARAMETERS if n in fit.posterior] + pooled_names(fit)
    stats = _statistics(fit, names)
    q = [0.5, (1 - ci) / 2, (1 + ci) / 2]
    rows = []
    for name in names:
        da = fit.posterior[name]
        per_task = "task" in da.dims
        for t, task in enumerate(fit.tasks if per_task else [POOLED_LABEL]):
            sel = {"task": t} if per_task else {}
            values = da.isel(sel).values.reshape(-1)
            median, lo, hi = np.quantile(values, q)
            row: dict[str, Any] = {"task": task, "parameter": name, "median": median, "lo": lo, "hi": hi}
            for key, ds in stats.items():
                row[key] = float(ds[name].isel(sel).values) if ds is not None else float("nan")
            rows.append(row)
    return pd.DataFrame(rows, columns=["task", "parameter", *STATISTICS])


def ladder(fit: TaskFit) -> dict[str, Any]:
    """The runs the fit saw: source, rows, runs and chance per task, and the params/tokens/FLOPs ranges."""
    data = fit.table.data
    flops = 6.0 * data["params"] * data["tokens"]
    runs = data["task"].value_counts().reindex(list(fit.tasks)).fillna(0).astype(int)
    return {
        "source": fit.table.source,
        "rows": len(data),
        "runs_per_task": {t: int(runs[t]) for t in fit.tasks},
        "chance": {t: float(c) for t, c in zip(fit.tasks, fit.table.chance(), strict=True)},
        "params": [float(data["params"].min()), float(data["params"].max())],
        "tokens": [float(data["tokens"].min()), float(data["tokens"].max())],
        "flops": [float(flops.min()), float(flops.max())],
    }


def _number(value: Any) -> float | None:
    """JSON has no NaN: an undefined statistic (R-hat of one chain) is null."""
    return float(value) if np.isfinite(value) else None


def summary_dict(fit: TaskFit, ci: float = 0.9) -> dict[str, Any]:
    """The ``bayescale summary --format json`` document of a task fit (``kind`` is ``"tasks"``)."""
    frame = summary_frame(fit, ci)

    def block(rows: pd.DataFrame) -> dict[str, Any]:
        return {str(r["parameter"]): {c: _number(r[c]) for c in STATISTICS} for _, r in rows.iterrows()}

    return {
        "kind": "tasks",
        "law": fit.settings.get("law", "chinchilla"),
        "link": fit.settings.get("link", "sigmoid"),
        "ci": ci,
        "tasks": list(fit.tasks),
        "parameters": {t: block(frame[frame["task"] == t]) for t in fit.tasks},
        "pooled": block(frame[frame["task"] == POOLED_LABEL]),
        "diagnostics": {k: _number(v) if isinstance(v, float) else v for k, v in fit.diagnostics.to_dict().items()},
        "converged": fit.converged,
        "ladder": ladder(fit),
        "discrepancy_scale": fit.discrepancy_scale,
        "seed": fit.seed,
    }


def summary_text(fit: TaskFit, ci: float = 0.9) -> str:
    """The summary as text: a header, one median/interval table per task and the pooled one, diagnostics and the ladder."""
    frame = summary_frame(fit, ci).rename(columns={"lo": f"lo{ci:.0%}", "hi": f"hi{ci:.0%}"})
    info = ladder(fit)
    header = f"task fit ({fit.settings.get('law', 'chinchilla')} task loss, {fit.settings.get('link', 'sigmoid')} accuracy link); {len(fit.tasks)} task(s), {info['rows']} rows from {info['source']}"
    blocks = []
    for task in (*fit.tasks, POOLED_LABEL):
        rows = frame[frame["task"] == task].drop(columns="task").set_index("parameter").rename_axis(None)
        if rows.empty:
            continue
        title = (
            "pooled across tasks (log scale: *_mu the population mean, *_tau the spread)" if task == POOLED_LABEL else f"{task} (chance {info['chance'][task]:.3g}, {info['runs_per_task'][task]} runs)"
        )
        blocks.append(f"{title}\n{rows.to_string(float_format=lambda v: f'{v:.4g}')}")
    d = fit.diagnostics
    verdict = "converged" if fit.converged else "did NOT converge: " + "; ".join(d.problems)
    diag = (
        f"convergence: {verdict} (R-hat max {d.rhat_max:.3g}, bulk ESS min {d.ess_bulk_min:.0f}, tail ESS min {d.ess_tail_min:.0f}, {d.divergences} divergence(s); {d.chains} chains × {d.draws} draws)"
    )
    lad = f"ladder: params {info['params'][0]:.3g}–{info['params'][1]:.3g}, tokens {info['tokens'][0]:.3g}–{info['tokens'][1]:.3g}, FLOPs {info['flops'][0]:.3g}–{info['flops'][1]:.3g}"
    trust = f"discrepancy: prior scale {fit.discrepancy_scale:g} log task loss per decade beyond the ladder (carried into every forecast)"
    return "\n\n".join([header, *blocks, "\n".join([diag, lad, trust])])
