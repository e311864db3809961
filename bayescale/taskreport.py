"""The HTML report of a task fit: per task, accuracy against compute (the chained forecast's median
and interval along a tokens-per-parameter ratio, with the ladder's runs) and the forecasts at the
budgets asked; then the parameters, convergence, the ladder and how to reproduce it.

A task fit has no allocation, no self-check and no groups, so it gets its own small template
(``templates/task_report.html.j2``) rather than the loss report's sections.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayescale.errors import BayescaleError, check_probability
from bayescale.report import _png, display_path
from bayescale.strictjson import json_text
from bayescale.taskfit import TaskFit

#: Report sections, in order (each task's section is ``task-N`` inside ``tasks``); the test checks each is rendered.
SECTIONS = ("headline", "tasks", "parameters", "diagnostics", "data", "reproduce")
#: Points of the compute grid each task's curve is drawn on.
CURVE_POINTS = 60


def default_budgets(fit: TaskFit) -> np.ndarray:
    """100× the ladder's largest run, as the loss report's default headline budget."""
    data = fit.table.data
    return np.array([float((6.0 * data["params"] * data["tokens"]).max()) * 100.0])


def plans_at(budgets: np.ndarray, tokens_per_param: float) -> tuple[np.ndarray, np.ndarray]:
    """The (params, tokens) of each budget C = 6ND at ``tokens_per_param`` D/N."""
    params = np.sqrt(budgets / (6.0 * tokens_per_param))
    return params, params * tokens_per_param


def forecast_table(fit: TaskFit, budgets: np.ndarray, tokens_per_param: float, ci: float, seed: int = 0) -> pd.DataFrame:
    """``taskplan.forecast_tasks`` at each budget's plan, with its ``flops`` column first."""
    from bayescale.taskplan import forecast_tasks

    params, tokens = plans_at(budgets, tokens_per_param)
    table = forecast_tasks(fit, params, tokens, ci=ci, seed=seed)
    table.insert(1, "flops", 6.0 * table["params"] * table["tokens"])
    return table


def plot_task(fit: TaskFit, task: str, budgets: np.ndarray, tokens_per_param: float, ci: float, seed: int = 0) -> Any:
    """Accuracy of ``task`` against compute: the predictive median and ``ci`` band along the ratio, the mean curve, the ladder's runs, chance and the budgets."""
    import matplotlib.pyplot as plt

    from bayescale.taskplan import chained_draws

    data = fit.table.data
    rows = data[data["task"] == task]
    flops = 6.0 * data["params"] * data["tokens"]
    grid = np.logspace(np.log10(flops.min()) - 0.2, np.log10(max(flops.max(), budgets.max())) + 0.3, CURVE_POINTS)
    params, tokens = plans_at(grid, tokens_per_param)
    predictive = chained_draws(fit, params, tokens, seed=seed, tasks=[task])["accuracy"][:, :, 0]
    mean = chained_draws(fit, params, tokens, seed=seed, predictive=False, tasks=[task])["accuracy"][:, :, 0]
    lo, median, hi = np.quantile(predictive, [(1 - ci) / 2, 0.5, (1 + ci) / 2], axis=0)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.fill_between(grid, lo, hi, color="C0", alpha=0.2, label=f"{ci:.0%} predictive interval ({tokens_per_param:g} tokens/param)")
    ax.plot(grid, median, color="C0", label="predictive median")
    ax.plot(grid, np.median(mean, axis=0), color="C0", ls="--", lw=1, label="mean curve (median)")
    ax.scatter(6.0 * rows["params"] * rows["tokens"], rows["accuracy"], s=14, color="k", zorder=3, label="ladder runs")
    ax.axhline(float(rows["chance"].iloc[0]), color="grey", ls=":", lw=1, label="chance")
    for budget in budgets:
        ax.axvline(budget, color="C3", lw=0.8, alpha=0.6)
    ax.set_xscale("log")
    ax.set_xlabel("compute (FLOPs, 6ND)")
    ax.set_ylabel("accuracy")
    ax.set_title(task, fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain dicts of Python values for the template."""
    return [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()} for row in table.to_dict("records")]


def task_report_context(fit: TaskFit, flops: Sequence[float] | None = None, ci: float = 0.9, tokens_per_param: float = 20.0, command: str | None = None, seed: int = 0) -> dict[str, Any]:
    """Everything the task template shows (numbers and base64 figures), computed through ``taskplan`` and ``tasksummary``."""
    import matplotlib

    matplotlib.use("Agg")
    from bayescale.fitformat import package_version
    from bayescale.tasksummary import POOLED_LABEL, ladder, summary_frame

    check_probability(ci)
    if not (np.isfinite(tokens_per_param) and tokens_per_param > 0):
        raise BayescaleError(f"--tokens-per-param must be a positive number, got {tokens_per_param!r}")
    budgets = np.asarray(flops if flops is not None and len(flops) else default_budgets(fit), dtype=float)
    table = forecast_table(fit, budgets, tokens_per_param, ci, seed)
    params = summary_frame(fit, ci)
    info = ladder(fit)
    sections = [
        {
            "task": task,
            "chance": info["chance"][task],
            "runs": info["runs_per_task"][task],
            "figure": _png(plot_task(fit, task, budgets, tokens_per_param, ci, seed)),
            "forecasts": _records(table[table["task"] == task]),
            "parameters": _records(params[params["task"] == task]),
        }
        for task in fit.tasks
    ]
    source = display_path(fit.table.source)
    return {
        "title": f"bayescale task report: {len(fit.tasks)} task(s) on {Path(source).name}",
        "ci": ci,
        "tokens_per_param": tokens_per_param,
        "budgets": [float(b) for b in budgets],
        "headline": _records(table),
        "headline_json": json_text({"ci": ci, "tokens_per_param": tokens_per_param, "forecasts": _records(table)}, indent=None).replace("<", "\\u003c"),
        "sections": sections,
        "pooled": _records(params[params["task"] == POOLED_LABEL]),
        "converged": fit.converged,
        "diagnostics": fit.diagnostics.to_dict(),
        "discrepancy_scale": fit.discrepancy_scale,
        "ladder": {**info, "source": source},
        "reproduce": {
            "command": command or "bayescale.taskreport.render_task_report(fit, ...)  # made through the Python API",
            "version": package_version(),
            "seed": fit.seed,
            "settings": json_text(fit.settings, indent=None),
        },
    }


def render_task_report(fit: TaskFit, path: str | Path, **kwargs: Any) -> Path:
    """Write the task fit's HTML report to ``path`` (atomically, every value HTML-escaped); options as ``task_report_context``."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    from bayescale.paths import make_parents, write_atomic
    from bayescale.units import format_quantity

    env = Environment(loader=PackageLoader("bayescale", "templates"), autoescape=True, undefined=StrictUndefined)
    env.globals["fmt"] = lambda value: format_quantity(float(value))
    html = env.get_template("task_report.html.j2").render(**task_report_context(fit, **kwargs))
    return write_atomic(make_parents(path), html)
