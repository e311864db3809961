"""The self-contained HTML uncertainty report: headline plan, fit, frontier, forecasts, diagnostics.

Every number comes from the public API (``allocate``, ``decide``, ``Fit.summary``); figures are
embedded as base64 PNG, so the file opens anywhere without a network.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayescale.errors import BayescaleError
from bayescale.strictjson import json_text

if TYPE_CHECKING:
    from bayescale.fitting import Fit
    from bayescale.groups import GroupTarget

#: Report sections, in order; the test checks each is rendered.
SECTIONS = ("headline", "diagnostics", "fit", "frontier", "allocation", "forecast", "next", "posteriors", "comparison", "data", "reproduce")


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
    next_runs: bool = False,
) -> dict[str, Any]:
    """Everything the template shows (numbers and base64 figures), computed through the API.

    A grouped fit answers the level ``group_values`` names (or a new group, ``new_group=True``), as
    ``allocate`` does; asked for none, it answers every seen level and a new group (``levels``: a
    one-screen overview, then a section per level), as ``bayescale allocate``/``decide`` do.
    ``next_runs=True`` adds "What to train next" for the first of those (``_next_section``);
    otherwise that section only says how to ask for it.
    """
    import matplotlib

    matplotlib.use("Agg")
    from bayescale.groups import requests_or_every_level
    from bayescale.units import positive_quantity

    unique = positive_quantity(unique_tokens, "unique tokens")  # None: unlimited
    runs = fit.runs.data
    budgets = np.asarray(flops if flops is not None and len(flops) else [float(runs["flops"].max()) * 100.0], dtype=float)
    requests = requests_or_every_level(fit, group_values, new_group)
    levels = [{"label": label, **_level(fit, values, new, budgets, target_loss, prob, ci, unique)} for label, values, new in requests]
    every = len(levels) > 1
    figures, seed_table, on_lines = _figures(fit, budgets, target_loss, prob, ci, unique, requests)
    source = display_path(fit.runs.source)
    scope = f", every {' × '.join(fit.groups)} level" if every else "".join(f", for {', '.join(f'{g}={lv}' for g, lv in level['group'].items())}" for level in levels if level.get("group"))
    embedded: Any = {"levels": [{k: v for k, v in level.items() if k not in ("allocation", "targets")} for level in levels]} if every else levels[0]["headline"]
    return {
        "title": f"bayescale report: {fit.spec.name} on {Path(source).name}{scope}",
        "ci": ci,
        "prob": prob,
        "target_loss": target_loss,
        "unique_tokens": unique,
        "levels": levels,
        "every_level": every,
        "headline": levels[0]["headline"],
        "headline_json": json_text(embedded, indent=None).replace("<", "\\u003c"),
        "group_scope": "" if every else levels[0].get("group_description", ""),
        "new_group": not every and bool(levels[0].get("new_group")),
        "allocation": levels[0]["allocation"],
        "seed_table": seed_table.to_dict("records") if seed_table is not None else None,
        "on_isoflop_lines": on_lines,
        **_fit_section(fit, ci),
        "next_runs": _next_section(fit, float(budgets[0]), {"group_values": requests[0][1] or None, "new_group": requests[0][2]}, figures) if next_runs else None,
        "comparison": comparison.reset_index().to_dict("records") if comparison is not None else None,
        "comparison_columns": list(comparison.reset_index().columns) if comparison is not None else [],
        "data": _data_section(fit, source, pd.concat([level["targets"] for level in levels], ignore_index=True)),
        "reproduce": _reproduce_section(fit, command),
        "figures": figures,
        "fmt": _fmt,
        "sections": SECTIONS,
    }


def _level(fit: Fit, group_values: Mapping[str, Any], new_group: bool, budgets: np.ndarray, target_loss: float | None, prob: float, ci: float, unique: float | None) -> dict[str, Any]:
    """One group request's answer (the whole fit's, ungrouped): which group (``groups.request_doc``),
    the headline plans with the predictive loss interval ``allocate``/``decide`` give, the
    allocation table, and the plans as targets (for the extrapolation factor)."""
    from bayescale.allocate import allocate, allocation_table
    from bayescale.decide import decide
    from bayescale.groups import GroupTarget, request_doc

    groups = GroupTarget(group_values=dict(group_values) or None, new_group=new_group)
    doc = request_doc(fit, groups["group_values"], new_group)
    table = allocation_table(allocate(fit, budgets, unique_tokens=unique, **groups), ci)
    decision = decide(fit, target_loss, prob, flops=budgets, unique_tokens=unique, ci=ci, **groups) if target_loss is not None else None
    targets = table[["flops"]].assign(params=table["robust_params"], tokens=table["robust_tokens"], **doc.get("group", {}))
    return {**doc, "headline": _headline(table, decision, unique), "allocation": table.to_dict("records"), "targets": targets}


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


def _figures(
    fit: Fit, budgets: np.ndarray, target_loss: float | None, prob: float, ci: float, unique_tokens: float | None, requests: Sequence[tuple[str, dict[str, Any], bool]]
) -> tuple[dict[str, str], pd.DataFrame | None, bool]:
    """The report's figures (base64 PNGs, drawn by ``figures.figure`` as ``bayescale plot`` draws them;
    a panel per level when ``requests`` holds several), the published table they compare with (or
    None), and whether the runs lie on isoFLOP lines (the isoFLOP figure is drawn only then)."""
    import matplotlib.pyplot as plt

    from bayescale.allocate import parameter_draws
    from bayescale.figures import compute_grid, figure
    from bayescale.plots import isoflop_lines, plot_prob_vs_compute
    from bayescale.reference import hoffmann_applies, hoffmann_table3

    every = len(requests) > 1
    applies = any(hoffmann_applies(fit, parameter_draws(fit, values or None, new)) for _, values, new in requests)
    seed_table = hoffmann_table3() if applies else None
    on_lines = isoflop_lines(fit.runs.data) is not None
    _, values, new = requests[0]
    request: dict[str, Any] = {
        "ci": ci,
        "flops": budgets,
        "target_loss": target_loss,
        "unique_tokens": unique_tokens,
        "group_values": None if every else values or None,
        "new_group": not every and new,
    }
    figures = {
        "observed": _png(figure(fit, "fit", ci=ci)),
        "frontier": _png(figure(fit, "allocation", **request)),
        "fan": _png(figure(fit, "forecast", **request)),
        "posteriors": _png(figure(fit, "posteriors", ci=ci)),
    }
    if on_lines:
        figures["isoflops"] = _png(figure(fit, "isoflop", **request))
    if target_loss is not None:
        cols = min(len(requests), 2)
        fig, axes = plt.subplots(-(-len(requests) // cols), cols, figsize=(6.5 * cols, 4 * -(-len(requests) // cols)), squeeze=False)
        for ax, (label, values, new) in zip(axes.ravel(), requests, strict=False):
            plot_prob_vs_compute(fit, target_loss, compute_grid(fit, budgets), prob=prob, unique_tokens=unique_tokens, ax=ax, group_values=values or None, new_group=new)
            if label:
                ax.set_title(f"{label}: {ax.get_title()}", fontsize=9)
        for ax in axes.ravel()[len(requests) :]:
            ax.set_visible(False)
        fig.tight_layout()
        figures["prob"] = _png(fig)
    return figures, seed_table, on_lines


def _next_section(fit: Fit, budget: float, groups: GroupTarget, figures: dict[str, str]) -> dict[str, Any]:
    """Which runs to train next for the first budget's recommended run: ``design.next_runs`` on the
    ``grid`` pool with a tenth of that budget to spend; adds its figure to ``figures``."""
    import warnings

    from bayescale.design import GRID_TARGET_SHARE, next_runs
    from bayescale.errors import ExtrapolationWarning
    from bayescale.plots import plot_next_runs

    with warnings.catch_warnings():  # the headline's allocation already warned about this budget
        warnings.simplefilter("ignore", ExtrapolationWarning)
        plan = next_runs(fit, "grid", budget, budget_flops=GRID_TARGET_SHARE * budget, **groups)
    figures["next"] = _png(plot_next_runs(fit, plan))
    return {**plan.to_dict(), "share": GRID_TARGET_SHARE, "target_flops": budget}


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
