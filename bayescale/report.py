"""The self-contained HTML uncertainty report: headline plan, fit, frontier, forecasts, diagnostics.

Every number comes from the public API (``allocate``, ``decide``, ``Fit.summary``); figures are
embedded as base64 PNG, so the file opens anywhere without a network.
"""

from __future__ import annotations

import base64
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bayescale.errors import BayescaleError

if TYPE_CHECKING:
    import pandas as pd

    from bayescale.fitting import Fit

#: Report sections, in order; the test checks each is rendered.
SECTIONS = ("headline", "diagnostics", "fit", "frontier", "allocation", "forecast", "posteriors", "comparison", "data", "reproduce")


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _fmt(value: float) -> str:
    from bayescale.units import format_quantity

    return format_quantity(float(value))


def report_context(
    fit: Fit,
    flops: Sequence[float] | None = None,
    target_loss: float | None = None,
    unique_tokens: float | None = None,
    prob: float = 0.9,
    ci: float = 0.9,
    comparison: pd.DataFrame | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Everything the template shows (numbers and base64 figures), computed through the API."""
    import matplotlib

    matplotlib.use("Agg")
    from bayescale.allocate import allocate, allocation_table
    from bayescale.decide import decide
    from bayescale.fitting import package_version
    from bayescale.forecasting import extrapolation_factor
    from bayescale.plots import isoflop_profiles, observed_vs_predicted, plot_forecast_fan, plot_frontier, plot_posteriors, plot_prob_vs_compute
    from bayescale.reference import hoffmann_table3
    from bayescale.self_check import sentence

    runs = fit.runs.data
    budgets = np.asarray(flops if flops is not None and len(flops) else [float(runs["flops"].max()) * 100.0], dtype=float)
    table = allocation_table(allocate(fit, budgets, unique_tokens=unique_tokens), ci)
    decision = decide(fit, target_loss, prob, flops=budgets, unique_tokens=unique_tokens) if target_loss is not None else None
    headline = []
    for i, row in table.iterrows():
        item = {
            "flops": float(row["flops"]),
            "params": float(row["robust_params"]),
            "tokens": float(row["robust_tokens"]),
            "params_median": float(row["params_median"]),
            "params_lo": float(row["params_lo"]),
            "params_hi": float(row["params_hi"]),
            "tokens_lo": float(row["tokens_lo"]),
            "tokens_hi": float(row["tokens_hi"]),
            "loss_median": float(row["loss_median"]),
            "loss_lo": float(row["loss_lo"]),
            "loss_hi": float(row["loss_hi"]),
            "epochs": float(row["robust_tokens"] / unique_tokens) if unique_tokens else 1.0,
        }
        if decision is not None:
            item["prob"] = float(decision["plans"][i]["prob"])
        headline.append(item)
    low, high = float(runs["flops"].min()), max(float(budgets.max()), float(runs["flops"].max())) * 10
    grid = np.geomspace(low, high, 40)
    frontier = allocate(fit, grid, unique_tokens=unique_tokens)
    is_chinchilla_data = fit.spec.form in ("chinchilla", "data_constrained")
    seed_table = hoffmann_table3() if is_chinchilla_data else None
    figures = {
        "isoflops": _png(isoflop_profiles(fit, ci=ci)),
        "observed": _png(observed_vs_predicted(fit, ci=ci)),
        "frontier": _png(plot_frontier(frontier, ci, reference=seed_table)),
        "fan": _png(plot_forecast_fan(frontier, budgets, target_loss)),
        "posteriors": _png(plot_posteriors(fit, ci)),
    }
    if target_loss is not None:
        figures["prob"] = _png(plot_prob_vs_compute(fit, target_loss, grid, prob=prob, unique_tokens=unique_tokens))
    targets = table[["flops"]].assign(params=table["robust_params"], tokens=table["robust_tokens"])
    summary = fit.summary(ci)
    diag = fit.diagnostics
    groups = {g: sorted(runs[g].astype(str).unique().tolist()) for g in fit.groups}
    return {
        "title": f"bayescale report: {fit.spec.name} on {Path(fit.runs.source).name}",
        "ci": ci,
        "prob": prob,
        "target_loss": target_loss,
        "unique_tokens": unique_tokens,
        "headline": headline,
        "headline_json": json.dumps(headline),
        "allocation": table.to_dict("records"),
        "seed_table": seed_table.to_dict("records") if seed_table is not None else None,
        "summary": [{"name": k, **{c: float(v) for c, v in row.items()}} for k, row in summary.iterrows()],
        "converged": diag.converged,
        "diagnostics": diag.to_dict(),
        "diagnostics_message": diag.message(),
        "trust": sentence(fit.self_check),
        "self_check": fit.self_check_summary(),
        "discrepancy": fit.discrepancy_summary(ci),
        "comparison": comparison.reset_index().to_dict("records") if comparison is not None else None,
        "comparison_columns": list(comparison.reset_index().columns) if comparison is not None else [],
        "data": {
            "runs": len(runs),
            "source": fit.runs.source,
            "groups": groups,
            "params": (float(runs["params"].min()), float(runs["params"].max())),
            "tokens": (float(runs["tokens"].min()), float(runs["tokens"].max())),
            "flops": (float(runs["flops"].min()), float(runs["flops"].max())),
            "extrapolation": float(extrapolation_factor(fit, targets).max()),
        },
        "reproduce": {
            "command": command or "bayescale.report.render_report(...)",
            "version": package_version(),
            "seed": fit.seed,
            "sampler": fit.sampler,
            "data_hash": fit.runs.content_hash(),
            "model": fit.spec.name,
            "draws": fit.info.get("draws"),
            "chains": fit.info.get("chains"),
        },
        "figures": figures,
        "fmt": _fmt,
        "sections": SECTIONS,
    }


def render_report(fit: Fit, path: str | Path, **kwargs: Any) -> Path:
    """Write the HTML report for ``fit`` to ``path`` (atomically); see ``report_context`` for options."""
    import os

    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    if kwargs.get("target_loss") is not None and not kwargs["target_loss"] > 0:
        raise BayescaleError(f"target loss {kwargs['target_loss']!r} must be positive")
    env = Environment(loader=PackageLoader("bayescale", "templates"), autoescape=select_autoescape(["html"]), undefined=StrictUndefined)
    html = env.get_template("report.html.j2").render(**report_context(fit, **kwargs))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, path)
    return path


def command_line() -> str:
    """The command that is running, for the report's reproduction section."""
    return " ".join(["bayescale", *sys.argv[1:]])
