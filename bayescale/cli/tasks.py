"""Task-accuracy commands: ``fit-tasks`` (the two-step chain, ``bayescale.taskfit``), and what
``forecast`` and ``decide`` print when the fit they are given is a task fit (``taskplan``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from bayescale.cli.core import check_output, run
from bayescale.cli.formatting import Format, emit, json_text, table_text
from bayescale.cli.options import ChainsOpt, DrawsOpt, QuietOpt, RunsArg, SeedOpt, TuneOpt


def fit_tasks_cmd(
    runs: RunsArg,
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to save the task fit (.nc or .zarr).")],
    task_column: Annotated[str, typer.Option(help="Column naming each row's task.")] = "task",
    loss_column: Annotated[str, typer.Option(help="Column of the task loss (e.g. bits per byte of the correct answers).")] = "task_bpb",
    accuracy_column: Annotated[str, typer.Option(help="Column of the task accuracy, a proportion in [0, 1].")] = "accuracy",
    chance_column: Annotated[str | None, typer.Option(help="Column of each task's chance accuracy (default: a column named chance, else 0).")] = None,
    task: Annotated[list[str] | None, typer.Option(help="Fit only these tasks (repeatable); each must have runs.")] = None,
    draws: DrawsOpt = 1000,
    tune: TuneOpt = 1000,
    chains: ChainsOpt = 4,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Fit task loss from (N, D) and accuracy from task loss jointly, every task in one model."""
    check_output(output, inputs=[runs])
    from bayescale.taskfit import fit_tasks

    result = run(
        fit_tasks, runs, task=task_column, loss=loss_column, accuracy=accuracy_column, chance=chance_column, tasks=task or None, draws=draws, tune=tune, chains=chains, seed=seed, progress=not quiet
    )
    run(result.save, output)
    text = f"saved task fit of {len(result.tasks)} task(s), {len(result.table.data)} rows to {output}"
    if not result.converged:
        text += f"\nWARNING (convergence): {'; '.join(result.diagnostics.problems)}"
    typer.echo(text + "\n" + table_text(result.summary_frame()))


def forecast_text(fit_path: Path, params: str | None, tokens: str | None, ci: float, seed: int, format: Format, output: Path | None) -> None:
    """``forecast`` on a task fit: per task, accuracy and task-loss medians and intervals."""

    def compute() -> tuple[Any, Any]:
        from bayescale.errors import BayescaleError
        from bayescale.taskfit import load_task_fit
        from bayescale.taskplan import forecast_tasks
        from bayescale.units import positive_quantity

        n, d = positive_quantity(params, "--params"), positive_quantity(tokens, "--tokens")
        if n is None or d is None:
            raise BayescaleError("a task fit forecasts a plan: give --params and --tokens")
        result = load_task_fit(fit_path)
        return result, forecast_tasks(result, n, d, ci=ci, seed=seed)

    result, table = run(compute)
    if format is Format.json:
        text = json_text({"ci": ci, "converged": result.converged, "tasks": list(result.tasks), "targets": json.loads(table.to_json(orient="records"))})
    elif format is Format.csv or (output is not None and output.suffix == ".csv"):
        text = table.to_csv(index=False)
    else:
        text = table_text(table)
        if not result.converged:
            text += f"\nWARNING (convergence): {'; '.join(result.diagnostics.problems)}"
    emit(text, output)


def decide_text(
    fit_path: Path, task: str | None, accuracy_target: float | None, prob: float, params: str | None, tokens: str | None, tokens_per_param: float, predictive: bool, format: Format, output: Path | None
) -> None:
    """``decide`` on a task fit: P(accuracy ≥ target on the task) at a plan, and the compute that reaches it with ``prob``."""

    def compute() -> dict[str, Any]:
        from bayescale.errors import BayescaleError
        from bayescale.taskfit import load_task_fit
        from bayescale.taskplan import decide_task
        from bayescale.units import positive_quantity

        if task is None or accuracy_target is None:
            raise BayescaleError("a task fit's decision needs --task and --accuracy-target, e.g. --task mmlu --accuracy-target 0.5")
        n, d = positive_quantity(params, "--params"), positive_quantity(tokens, "--tokens")
        return decide_task(load_task_fit(fit_path), task, accuracy_target, prob=prob, params=n, tokens=d, tokens_per_param=tokens_per_param, predictive=predictive)

    doc = run(compute)
    if format is Format.json:
        text = json_text(doc)
    elif format is Format.csv:
        import pandas as pd

        flat = {k: v for k, v in doc.items() if k != "compute_needed"}
        flat.update({f"compute_needed_{k}": v for k, v in (doc["compute_needed"] or {}).items()})
        text = pd.DataFrame([flat]).to_csv(index=False)
    else:
        lines = [f"task {doc['task']}: P(accuracy ≥ {doc['accuracy_target']:g}) ({'posterior predictive' if predictive else 'mean curve'}), required {doc['prob_required']:g}"]
        if "prob" in doc:
            lines.append(f"at {doc['params']:.3g} params, {doc['tokens']:.3g} tokens: P = {doc['prob']:.3g} ({'meets' if doc['meets'] else 'does not meet'} the requirement)")
        needed = doc["compute_needed"]
        if needed:
            lines.append(
                f"least compute with P ≥ {prob:g} at {doc['tokens_per_param']:g} tokens/param: {needed['flops']:.3g} FLOPs ({needed['params']:.3g} params, {needed['tokens']:.3g} tokens; P = {needed['prob']:.3g})"
            )
        else:
            lines.append(doc["compute_needed_reason"])
        if not doc["converged"]:
            lines.append("WARNING (convergence): the task fit did not converge")
        text = "\n".join(lines)
    emit(text, output)
