"""How commands show results: the ``--format`` choices, the summary table and writing to stdout or ``-o``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

import typer

from bayescale.cli.core import visible
from bayescale.strictjson import finite_json, json_text

__all__ = ["Format", "emit", "finite_json", "format_summary", "group_header", "json_text", "table_text"]


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


def emit(text: str, output: Path | None) -> None:
    """Print ``text`` (control characters escaped; also for ``-o -``), or write it to ``output`` atomically (ending in a newline) and say so on stderr."""
    if output is None or str(output) == "-":
        typer.echo(visible(text))
    else:
        from bayescale.cli.core import run
        from bayescale.paths import write_atomic

        run(write_atomic, output, text + ("" if text.endswith("\n") else "\n"))
        typer.echo(f"wrote {output}", err=True)


def format_summary(result, ci: float, fmt: Format) -> str:
    """A fit's summary as JSON, CSV, or the table with its diagnostics, self-check and discrepancy lines."""
    if fmt is Format.json:
        return json_text(result.summary_dict(ci))
    table = result.summary(ci)
    if fmt is Format.csv:
        return table.to_csv()
    lo, hi = f"lo{ci:.0%}", f"hi{ci:.0%}"
    shown = table.rename(columns={"lo": lo, "hi": hi}).astype(object)
    shown.loc[[p for p in result.spec.fixed if p in shown.index], ["rhat", "ess_bulk", "ess_tail"]] = "fixed"
    body = shown.to_string(float_format=lambda v: f"{v:.4g}")
    scope = "Convergence is judged on every sampled variable, including the internal coordinates not shown above (*_z, and *_tau_*/*_eta_* of pooled groups)."
    from bayescale.documents import sentence

    disc = result.discrepancy_summary(ci)
    trust = f"discrepancy: tau median {disc['tau_median']:.3g} log loss per decade beyond the runs (prior scale {disc['scale']:g})" if "tau_median" in disc else "discrepancy: off"
    pooling = f"\n{result.pooling_sentence()}" if result.groups else ""
    from bayescale.cli.core import health_line

    warning = health_line(result)
    health = f"\n{warning}" if warning else ""
    return f"{result.spec.name} ({result.spec.description}); {len(result.runs)} runs\n{result.selection_sentence()}\n{result.model_choice_sentence()}\n{body}\n\n{result.diagnostics.message(result.info)}\n{scope}{pooling}\nself-check: {sentence(result.self_check)}{health}\n{trust}"


def group_header(doc: dict[str, Any]) -> str:
    """A first line naming the group a plan is for ("" for fits without groups)."""
    return f"for {doc['group_description']}\n" if doc.get("group_description") else ""


def table_text(table) -> str:
    """A data frame as the aligned text table every command prints (4 significant digits)."""
    return table.to_string(index=False, float_format=lambda v: f"{v:.4g}")
