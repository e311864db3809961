"""The self-contained HTML uncertainty report: headline plan, fit, frontier, forecasts, diagnostics.

Every number comes from the public API (``allocate``, ``decide``, ``Fit.summary``); figures are
embedded as base64 PNG, so the file opens anywhere without a network.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bayescale.errors import BayescaleError

if TYPE_CHECKING:
    import pandas as pd

    from bayescale.fitting import Fit
    from bayescale.groups import GroupTarget

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


def display_path(path: str | Path) -> str:
    """A path as the user gave it; an absolute one relative to the working folder, else its name only (never the machine's layout)."""
    text = str(path)
    candidate = Path(text)
    if not candidate.is_absolute():
        return text
    try:
        return str(candidate.relative_to(Path.cwd()))
    except ValueError:
        return candidate.name


def _fit_command(fit: Fit) -> str:
    """How the fit was made: its stored command line, or the API call with what the fit recorded."""
    if fit.info.command:
        return fit.info.command
    group = f", group={list(fit.groups)!r}" if fit.groups else ""
    return (
        f"bayescale.fit(bayescale.load_runs({display_path(fit.runs.source)!r}), {fit.spec.name!r}{group}, draws={fit.info.draws}, "
        f"tune={fit.info.tune}, chains={fit.info.chains}, seed={fit.seed}, sampler={fit.sampler!r})  "
        "# made through the Python API: any columns=/where=/filters given to load_runs were not recorded"
    )


def report_context(
    fit: Fit,
    flops: Sequence[float] | None = None,
    target_loss: float | None = None,
    unique_tokens: float | str | None = None,
    prob: float = 0.9,
    ci: float = 0.9,
    comparison: pd.DataFrame | None = None,
    command: str | None = None,
    group_values: Mapping[str, Any] | None = None,
    new_group: bool = False,
) -> dict[str, Any]:
    """Everything the template shows (numbers and base64 figures), computed through the API.

    Grouped fits need ``group_values`` (seen levels) or ``new_group=True``, as ``allocate`` does;
    the report says which group its plan is for.
    """
    import matplotlib

    matplotlib.use("Agg")
    from bayescale.allocate import allocate, allocation_table
    from bayescale.decide import decide
    from bayescale.groups import GroupTarget, describe, resolve_request
    from bayescale.units import positive_quantity

    unique = positive_quantity(unique_tokens, "unique tokens")  # None: unlimited
    resolved = resolve_request(fit, group_values, new_group)
    groups = GroupTarget(group_values=group_values, new_group=new_group)
    runs = fit.runs.data
    budgets = np.asarray(flops if flops is not None and len(flops) else [float(runs["flops"].max()) * 100.0], dtype=float)
    table = allocation_table(allocate(fit, budgets, unique_tokens=unique, **groups), ci)
    decision = decide(fit, target_loss, prob, flops=budgets, unique_tokens=unique, ci=ci, **groups) if target_loss is not None else None
    headline = _headline(table, decision, unique)
    figures, seed_table, on_lines = _figures(fit, budgets, target_loss, prob, ci, unique, groups)
    targets = table[["flops"]].assign(params=table["robust_params"], tokens=table["robust_tokens"], **{g: level for g, (level, _) in resolved.items()})
    source = display_path(fit.runs.source)
    return {
        "title": f"bayescale report: {fit.spec.name} on {Path(source).name}" + (f", for {', '.join(f'{g}={lv}' for g, (lv, new) in resolved.items())}" if resolved else ""),
        "ci": ci,
        "prob": prob,
        "target_loss": target_loss,
        "unique_tokens": unique,
        "headline": headline,
        "headline_json": json.dumps(headline).replace("<", "\\u003c"),
        "group_scope": describe(fit, resolved),
        "new_group": any(new for _, new in resolved.values()),
        "allocation": table.to_dict("records"),
        "seed_table": seed_table.to_dict("records") if seed_table is not None else None,
        "on_isoflop_lines": on_lines,
        **_fit_section(fit, ci),
        "comparison": comparison.reset_index().to_dict("records") if comparison is not None else None,
        "comparison_columns": list(comparison.reset_index().columns) if comparison is not None else [],
        "data": _data_section(fit, source, targets),
        "reproduce": _reproduce_section(fit, command),
        "figures": figures,
        "fmt": _fmt,
        "sections": SECTIONS,
    }


def _headline(table: pd.DataFrame, decision: Mapping[str, Any] | None, unique_tokens: float | None) -> list[dict[str, float]]:
    """Per budget: the robust plan, the predictive loss interval of the run trained there (as
    ``forecast`` gives it), the law-only spread of the per-draw optima, epochs and (with a target) its probability."""
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
            "loss_optimum_lo": float(row["loss_optimum_lo"]),
            "loss_optimum_hi": float(row["loss_optimum_hi"]),
            "epochs": float(row["robust_tokens"] / unique_tokens) if unique_tokens else 1.0,
        }
        if decision is not None:
            item["prob"] = float(decision["plans"][i]["prob"])
        headline.append(item)
    return headline


def _figures(fit: Fit, budgets: np.ndarray, target_loss: float | None, prob: float, ci: float, unique_tokens: float | None, groups: GroupTarget) -> tuple[dict[str, str], pd.DataFrame | None, bool]:
    """The report's figures (base64 PNGs, drawn by ``figures.figure`` as ``bayescale plot`` draws them),
    the published table they compare with (or None), and whether the runs lie on isoFLOP lines
    (the isoFLOP figure is drawn only then)."""
    from bayescale.allocate import parameter_draws
    from bayescale.figures import compute_grid, figure
    from bayescale.plots import isoflop_lines, plot_prob_vs_compute
    from bayescale.reference import hoffmann_applies, hoffmann_table3

    seed_table = hoffmann_table3() if hoffmann_applies(fit, parameter_draws(fit, **groups)) else None
    on_lines = isoflop_lines(fit.runs.data) is not None
    request: dict[str, Any] = {"ci": ci, "flops": budgets, "target_loss": target_loss, "unique_tokens": unique_tokens, **groups}
    figures = {
        "observed": _png(figure(fit, "fit", ci=ci)),
        "frontier": _png(figure(fit, "allocation", **request)),
        "fan": _png(figure(fit, "forecast", **request)),
        "posteriors": _png(figure(fit, "posteriors", ci=ci)),
    }
    if on_lines:
        figures["isoflops"] = _png(figure(fit, "isoflop", **request))
    if target_loss is not None:
        figures["prob"] = _png(plot_prob_vs_compute(fit, target_loss, compute_grid(fit, budgets), prob=prob, unique_tokens=unique_tokens, **groups))
    return figures, seed_table, on_lines


def _fit_section(fit: Fit, ci: float) -> dict[str, Any]:
    """The fit itself: parameter summary, convergence, the self-check's verdict and the discrepancy."""
    from bayescale.documents import failure, sentence

    diag = fit.diagnostics
    return {
        "summary": [{"name": k, **{c: float(v) for c, v in row.items()}} for k, row in fit.summary(ci).iterrows()],
        "converged": diag.converged,
        "diagnostics": diag.to_dict(),
        "diagnostics_message": diag.message(fit.info),
        "trust": sentence(fit.self_check),
        "health": failure(fit.self_check),
        "self_check": fit.self_check_summary(),
        "discrepancy": fit.discrepancy_summary(ci),
        "model_choice": fit.model_choice_sentence(),
    }


def _data_section(fit: Fit, source: str, targets: pd.DataFrame) -> dict[str, Any]:
    """The runs behind the fit: count, source, group levels, input ranges and how far the plans extrapolate."""
    from bayescale.forecasting import extrapolation_factor

    runs = fit.runs.data
    return {
        "runs": len(runs),
        "source": source,
        "groups": {g: sorted(runs[g].astype(str).unique().tolist()) for g in fit.groups},
        "params": (float(runs["params"].min()), float(runs["params"].max())),
        "tokens": (float(runs["tokens"].min()), float(runs["tokens"].max())),
        "flops": (float(runs["flops"].min()), float(runs["flops"].max())),
        "extrapolation": float(extrapolation_factor(fit, targets).max()),
    }


def _reproduce_section(fit: Fit, command: str | None) -> dict[str, Any]:
    """What reproduces the report: the fit's command, this command, version, seed, sampler, data hash."""
    from bayescale.fitformat import package_version

    return {
        "fit_command": _fit_command(fit),
        "command": command or "bayescale.report.render_report(fit, ...)  # made through the Python API",
        "version": package_version(),
        "seed": fit.seed,
        "sampler": fit.sampler,
        "data_hash": fit.runs.content_hash(),
        "model": fit.spec.name,
        "draws": fit.info.draws,
        "chains": fit.info.chains,
    }


def render_report(fit: Fit, path: str | Path, **kwargs: Any) -> Path:
    """Write the HTML report for ``fit`` to ``path`` (atomically); see ``report_context`` for options.

    Every value is HTML-escaped (autoescaping): group levels, file names, spec names and fit-file
    attributes are user data and never run as markup in the reader's browser.
    """
    from jinja2 import Environment, PackageLoader, StrictUndefined

    from bayescale.paths import make_parents, write_atomic

    if kwargs.get("target_loss") is not None and not kwargs["target_loss"] > 0:
        raise BayescaleError(f"target loss {kwargs['target_loss']!r} must be positive")
    env = Environment(loader=PackageLoader("bayescale", "templates"), autoescape=True, undefined=StrictUndefined)
    html = env.get_template("report.html.j2").render(**report_context(fit, **kwargs))
    return write_atomic(make_parents(path), html)
