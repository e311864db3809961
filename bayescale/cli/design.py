"""``bayescale next``: which runs to train next so that the forecast at a target firms up (``design.next_runs``)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from bayescale.cli.core import check_output, group_map, health_line, run
from bayescale.cli.formatting import Format, emit, json_text, table_text
from bayescale.cli.options import FitArg, FormatOpt, GroupValueOpt, NewGroupOpt, OutputOpt
from bayescale.documents import failure


class Objective(str, Enum):
    sd = "sd"
    decision = "decision"


def _next(fit_path, candidates, target_params, target_tokens, target_flops, group_value, new_group, budget_flops, k, objective, target_loss, seed):
    from bayescale.design import next_runs
    from bayescale.errors import BayescaleError, check_seed
    from bayescale.fitfile import load_fit
    from bayescale.units import parse_quantity, positive_quantity

    check_seed(seed)
    n, d, c = (positive_quantity(v, f"--target-{name}") for name, v in (("params", target_params), ("tokens", target_tokens), ("flops", target_flops)))
    if (n is None) != (d is None):
        raise BayescaleError("give both --target-params and --target-tokens (a target run), or --target-flops (its compute-optimal run)")
    if n is not None and c is not None:
        raise BayescaleError("give either --target-params/--target-tokens or --target-flops, not both")
    if n is None and c is None:
        raise BayescaleError("no target: give --target-params 70B --target-tokens 1.4T, or --target-flops 5.8e23")
    if budget_flops is None and k is None:
        raise BayescaleError("give --budget-flops B (total cost of the runs to pick) or --k N (how many)")
    try:
        budget = None if budget_flops is None else parse_quantity(budget_flops)
    except ValueError as exc:
        raise BayescaleError(f"--budget-flops: {exc}") from None
    if objective is Objective.decision and target_loss is None:
        raise BayescaleError("--objective decision needs --target-loss L: the loss the decision is about")
    if target_loss is not None and objective is not Objective.decision:
        raise BayescaleError("--target-loss is for --objective decision; the sd objective needs none")
    pool: Any = "grid" if candidates == "grid" else Path(candidates)
    result = load_fit(fit_path)
    target = c if n is None else {"params": n, "tokens": d}
    plan = next_runs(result, pool, target, budget_flops=budget, k=k, objective=objective.value, target_loss=target_loss, group_values=group_map(group_value), new_group=new_group, seed=seed)
    return result, plan


def next_cmd(
    fit_path: FitArg,
    candidates: Annotated[
        str,
        typer.Option(
            help="Pool of runs you could train: a CSV/Parquet table (params, tokens, group columns, optional cost), or 'grid' (log-spaced sizes and tokens per parameter around the data, capped by the budget)."
        ),
    ],
    target_params: Annotated[str | None, typer.Option(help="The run the forecast is for: model size, e.g. 70B.")] = None,
    target_tokens: Annotated[str | None, typer.Option(help="The run the forecast is for: training tokens, e.g. 1.4T.")] = None,
    target_flops: Annotated[str | None, typer.Option(help="Instead of a target run: a FLOP budget whose compute-optimal (robust) run is the target.")] = None,
    group_value: GroupValueOpt = None,
    new_group: NewGroupOpt = False,
    budget_flops: Annotated[str | None, typer.Option(help="Total cost of the runs to pick (FLOPs, or the unit of the pool's cost column).")] = None,
    k: Annotated[int | None, typer.Option("--k", help="Number of runs to pick (at most).", min=0)] = None,
    objective: Annotated[Objective, typer.Option(help="sd: shrink the predictive sd of log loss at the target; decision: make P(loss < --target-loss) decisive.")] = Objective.sd,
    target_loss: Annotated[float | None, typer.Option(help="The loss the decision is about (with --objective decision).")] = None,
    format: FormatOpt = Format.table,
    output: OutputOpt = None,
    seed: Annotated[int, typer.Option(help="Seed of new-group offsets and noise samples.")] = 0,
) -> None:
    """Which runs to train next so that the forecast at a target firms up most per FLOP."""
    check_output(output, inputs=[fit_path, None if candidates == "grid" else Path(candidates)], stdout=True)
    result, plan = run(_next, fit_path, candidates, target_params, target_tokens, target_flops, group_value, new_group, budget_flops, k, objective, target_loss, seed)
    warning = health_line(result)
    if format is Format.json:
        text = json_text({**plan.to_dict(), "converged": result.converged, "self_check_warning": failure(result.self_check), "groups": list(result.groups)})
    elif format is Format.csv or (output is not None and format is Format.table and output.suffix == ".csv"):
        text = plan.selected.to_csv(index=False)
        if warning:  # a CSV stays parseable: the warning goes to stderr
            typer.secho(warning, err=True, fg=typer.colors.YELLOW)
    else:
        text = _text(plan) + (f"\n{warning}" if warning else "")
    emit(text, output)


def _text(plan) -> str:
    """The picks as a table between a line on the target and a line on what they are expected to leave."""
    target = plan.target.to_dict("records")
    where = "; ".join(", ".join(f"{k}={_number(v)}" for k, v in row.items()) for row in target)
    what = f"P(loss < {plan.target_loss:g}) decisive (expected max(p, 1-p) now {plan.decision_now:.3f})" if plan.objective == "decision" else "the predictive sd of log loss"
    head = f"target: {where}\nobjective: {what}; sd of log loss now {plan.sd_now:.4g} (of which run-to-run noise {plan.noise_sd:.3g}, which no run removes)"
    if plan.selected.empty:
        body = "no run selected"
    else:
        shown = plan.selected.copy()
        for column in ("params", "tokens"):
            if column in shown.columns:
                shown[column] = [_number(float(v)) for v in shown[column]]
        body = table_text(shown)
        body += f"\nexpected sd after all {len(plan.selected)} run(s): {plan.sd_expected_after:.4g} (cost {plan.selected['cost'].sum():.3g} of a pool of {len(plan.candidates)})"
    notes = "".join(f"\nnote: {note}" for note in plan.notes)
    return f"{head}\n{body}{notes}"


def _number(value: Any) -> str:
    from bayescale.units import format_quantity

    return format_quantity(value) if isinstance(value, float) else str(value)
