"""Commands that plan from a saved fit: ``forecast`` (loss of untrained models), ``allocate`` (N, D per budget), ``decide``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from bayescale.cli.core import check_output, column_map, group_map, health_line, run
from bayescale.cli.formatting import Format, emit, group_header, json_text, table_text
from bayescale.cli.options import CiOpt, FitArg, FormatOpt, GroupValueOpt, NewGroupOpt, OutputOpt
from bayescale.documents import failure


def _forecast(fit_path, params, tokens, unique_tokens, flops, group_value, new_group, targets, column, ci, seed):
    from bayescale.errors import RunTableError, check_probability, check_seed
    from bayescale.fitfile import load_fit
    from bayescale.forecasting import forecast_summary

    check_probability(ci)
    check_seed(seed)
    groups = {"group_values": group_map(group_value), "new_group": new_group}
    if column and targets is None:
        raise RunTableError("--column renames headers of a --targets file; give --targets too")
    result = load_fit(fit_path)
    if targets is not None:
        if any(v is not None for v in (params, tokens, unique_tokens, flops)):
            raise RunTableError("give either --targets or --params/--tokens/--flops, not both")
        return result, forecast_summary(result, targets, ci=ci, seed=seed, rename=column_map(column), **groups)
    if unique_tokens is not None and "unique_tokens" not in result.spec.law.inputs:  # as allocate: never silently ignored
        raise RunTableError(f"--unique-tokens needs a repeat-aware law (e.g. data_constrained); this fit's law is {result.spec.law.name}")
    columns: dict[str, Any] = {k: v for k, v in (("params", params), ("tokens", tokens), ("unique_tokens", unique_tokens), ("flops", flops)) if v is not None}
    if not columns:
        raise RunTableError("nothing to forecast: give --params and --tokens (or --flops), or --targets TARGETS.csv")
    return result, forecast_summary(result, ci=ci, seed=seed, **groups, **columns)


def forecast_cmd(
    fit_path: FitArg,
    params: Annotated[str | None, typer.Option(help="Model size, e.g. 70B.")] = None,
    tokens: Annotated[str | None, typer.Option(help="Training tokens, e.g. 1.4T.")] = None,
    unique_tokens: Annotated[str | None, typer.Option(help="Unique tokens (repeat-aware forms).")] = None,
    flops: Annotated[str | None, typer.Option(help="Training compute (compute form).")] = None,
    group_value: GroupValueOpt = None,
    new_group: NewGroupOpt = False,
    targets: Annotated[Path | None, typer.Option(help="CSV of targets, one row each; all columns kept.")] = None,
    column: Annotated[list[str] | None, typer.Option(help="Rename a header of --targets: CANONICAL=HEADER, e.g. params='Model Size'.")] = None,
    ci: CiOpt = 0.9,
    format: FormatOpt = Format.table,
    output: OutputOpt = None,
    seed: Annotated[int, typer.Option(help="Seed of the observation-noise draws.")] = 0,
) -> None:
    """Posterior forecast of the loss of models never trained."""
    check_output(output, inputs=[fit_path, targets], stdout=True)
    if _is_task_fit(fit_path):
        from bayescale.cli.tasks import forecast_text

        return forecast_text(fit_path, params, tokens, ci, seed, format, output)
    result, table = run(_forecast, fit_path, params, tokens, unique_tokens, flops, group_value, new_group, targets, column, ci, seed)
    warning = health_line(result)
    if format is Format.json:
        text = json_text({"ci": ci, "converged": result.converged, "self_check_warning": failure(result.self_check), "groups": list(result.groups), "targets": table.to_dict("records")})
    elif format is Format.csv or (output is not None and format is Format.table and output.suffix == ".csv"):
        text = table.to_csv(index=False)
        if warning:  # a CSV stays parseable: the warning goes to stderr
            typer.secho(warning, err=True, fg=typer.colors.YELLOW)
    else:
        text = table_text(table)
        if "new_group" in table and table["new_group"].any():
            text += "\nnew_group=True: a group not seen at fit time, forecast from the population level (the spread between groups included)."
        if warning:
            text += f"\n{warning}"
    emit(text, output)


def _allocate(fit_path, flops, unique_tokens, ci, robust_quantile, group_value, new_group):
    from bayescale.allocate import allocation_table, parse_flops
    from bayescale.errors import check_probability
    from bayescale.fitfile import load_fit

    check_probability(ci)
    budgets = parse_flops(flops or [])
    groups = group_map(group_value)
    result = load_fit(fit_path)
    from bayescale.groups import request_doc, requests_or_every_level

    answers = []
    for _, values, new in requests_or_every_level(result, groups, new_group):
        ds = result.allocate(budgets, unique_tokens=unique_tokens, ci=ci, robust_quantile=robust_quantile, group_values=values, new_group=new)
        answers.append((request_doc(result, values, new), allocation_table(ds, ci)))
    return result, answers


def allocate_cmd(
    fit_path: FitArg,
    flops: Annotated[list[str] | None, typer.Option(help="FLOP budget(s): --flops 1e21 1e22 1e23, repeated flags, or a log-spaced range LOW:HIGH:COUNT like 1e21:1e25:9.")] = None,
    unique_tokens: Annotated[str | None, typer.Option(help="Unique tokens available (repeat-aware forms, e.g. data_constrained): adds epochs and the loss penalty.")] = None,
    ci: CiOpt = 0.9,
    robust_quantile: Annotated[float | None, typer.Option(help="Robust plan minimises this quantile of loss instead of its posterior mean.")] = None,
    group_value: GroupValueOpt = None,
    new_group: NewGroupOpt = False,
    format: FormatOpt = Format.table,
    output: OutputOpt = None,
) -> None:
    """Compute-optimal parameters and tokens per FLOP budget (C = 6ND), with posterior intervals."""
    check_output(output, inputs=[fit_path], stdout=True)
    result, answers = run(_allocate, fit_path, flops, unique_tokens, ci, robust_quantile, group_value, new_group)
    docs = [{**group, "budgets": table.to_dict("records")} for group, table in answers]
    if format is Format.json:
        body = docs[0] if len(docs) == 1 else {"levels": docs}
        text = json_text({"ci": ci, "converged": result.converged, **body})
    elif format is Format.csv:
        text = _level_frame(answers).to_csv(index=False)
    else:
        text = "\n\n".join(group_header(group) + table_text(table) for group, table in answers)
    emit(text, output)


def _level_frame(answers):
    """One CSV for every level's rows: the group columns and ``new_group`` first (nothing added for one answer)."""
    import pandas as pd

    if len(answers) == 1:
        return answers[0][1]
    frames = [table.assign(**{g: level for g, level in group["group"].items()}, new_group=group["new_group"]) for group, table in answers]
    out = pd.concat(frames, ignore_index=True)
    first = [*answers[0][0]["group"], "new_group"]
    return out[first + [c for c in out.columns if c not in first]]


def _decide(fit_path, target_loss, prob, flops, params, tokens, unique_tokens, predictive, usd_per_flop, flops_per_gpu_hour, group_value, new_group):
    from bayescale.allocate import parse_flops
    from bayescale.decide import cost, decide
    from bayescale.errors import BayescaleError, check_probability
    from bayescale.fitfile import load_fit
    from bayescale.groups import requests_or_every_level
    from bayescale.units import positive_quantity

    if target_loss is None:
        raise BayescaleError("give --target-loss, e.g. --target-loss 2.0")
    n, d, u = (positive_quantity(v, f"--{name}") for name, v in (("params", params), ("tokens", tokens), ("unique-tokens", unique_tokens)))
    if (n is None) != (d is None):
        raise BayescaleError("give both --params and --tokens (a plan), or --flops, or neither (find the compute)")
    if n is not None and flops:
        raise BayescaleError("give either --flops or --params/--tokens, not both")
    check_probability(prob, "--prob")
    cost(1.0, usd_per_flop, flops_per_gpu_hour)  # validates the rates before loading the fit
    budgets = parse_flops(flops) if flops else None
    groups = group_map(group_value)
    result = load_fit(fit_path)
    return [
        decide(
            result, target_loss, prob, flops=budgets, params=n, tokens=d, unique_tokens=u, predictive=predictive,
            usd_per_flop=usd_per_flop, flops_per_gpu_hour=flops_per_gpu_hour, group_values=values, new_group=new,
        )
        for _, values, new in requests_or_every_level(result, groups, new_group)
    ]  # fmt: skip


def decide_cmd(
    fit_path: FitArg,
    target_loss: Annotated[float | None, typer.Option(help="The loss to beat.")] = None,
    prob: Annotated[float, typer.Option(help="Required probability of beating it.")] = 0.9,
    flops: Annotated[list[str] | None, typer.Option(help="Evaluate these budgets' robust plans (several values, repeated flags, or LOW:HIGH:COUNT).")] = None,
    params: Annotated[str | None, typer.Option(help="Evaluate this plan: model size, e.g. 70B (with --tokens).")] = None,
    tokens: Annotated[str | None, typer.Option(help="Evaluate this plan: training tokens, e.g. 1.4T (with --params).")] = None,
    unique_tokens: Annotated[str | None, typer.Option(help="Unique tokens available (repeat-aware forms).")] = None,
    predictive: Annotated[bool, typer.Option("--predictive/--mean-curve", help="Include run-to-run noise (posterior predictive) or only the law's uncertainty.")] = True,
    usd_per_flop: Annotated[float | None, typer.Option(help="Cost per FLOP in USD: adds a usd field.")] = None,
    flops_per_gpu_hour: Annotated[float | None, typer.Option(help="Delivered FLOPs per GPU-hour: adds a gpu_hours field.")] = None,
    group_value: GroupValueOpt = None,
    new_group: NewGroupOpt = False,
    task: Annotated[str | None, typer.Option(help="Task fits (fit-tasks): the task to decide on.")] = None,
    accuracy_target: Annotated[float | None, typer.Option(help="Task fits: the accuracy to reach, a proportion; answers P(accuracy ≥ it).")] = None,
    tokens_per_param: Annotated[float, typer.Option(help="Task fits: tokens per parameter of the plans searched for the compute needed (default 20; a --params/--tokens plan uses its own).")] = 20.0,
    format: FormatOpt = Format.table,
    output: OutputOpt = None,
) -> None:
    """P(loss < target) for a plan or budgets, or the least compute that reaches the target with --prob; on a task fit, P(accuracy ≥ target on a task)."""
    check_output(output, inputs=[fit_path], stdout=True)
    if _is_task_fit(fit_path):
        from bayescale.cli.tasks import decide_text

        return decide_text(fit_path, task, accuracy_target, prob, params, tokens, tokens_per_param, predictive, format, output)
    if task is not None or accuracy_target is not None:
        run(_refuse_task_flags)
    docs = run(_decide, fit_path, target_loss, prob, flops, params, tokens, unique_tokens, predictive, usd_per_flop, flops_per_gpu_hour, group_value, new_group)
    if format is Format.json:
        text = json_text(docs[0] if len(docs) == 1 else {"levels": docs})
    else:
        import pandas as pd

        answers = [(doc, pd.DataFrame(doc["plans"])) for doc in docs]
        text = _level_frame(answers).to_csv(index=False) if format is Format.csv else "\n\n".join(_decision_text(doc, table) for doc, table in answers)
    emit(text, output)


def _decision_text(doc: dict[str, Any], table) -> str:
    """One level's decision as the table and its probability lines."""
    head = f"P(loss < {doc['target_loss']:g}) ({'posterior predictive' if doc['predictive'] else 'mean curve'}), required {doc['prob_required']:g}; mode: {doc['mode']}"
    text = group_header(doc) + head + "\n" + table_text(table)
    if len(doc["plans"]) == 1:
        return text + f"\nP(loss < {doc['target_loss']:g}) = {doc['plans'][0]['prob']:.3g} — {doc['trust']}"
    return text + f"\nEvery probability above: {doc['trust']}"


def _is_task_fit(path: Path) -> bool:
    """Whether ``path`` is a task fit (``fit-tasks``), which ``forecast`` and ``decide`` answer per task."""
    from bayescale.taskfit import is_task_fit

    return is_task_fit(path)


def _refuse_task_flags() -> None:
    from bayescale.errors import BayescaleError

    raise BayescaleError("--task and --accuracy-target are for task fits (bayescale fit-tasks); this is a loss fit: use --target-loss")
