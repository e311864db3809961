"""Commands that show a saved fit: ``summary`` (parameters and diagnostics), ``report`` (the HTML report) and ``plot`` (one figure)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bayescale.cli.core import check_output, command_line, group_map, run, strict_exit
from bayescale.cli.formatting import Format, format_summary, visible
from bayescale.cli.options import CiOpt, FitArg, FormatOpt, GroupValueOpt, NewGroupOpt
from bayescale.errors import BayescaleError


def summary_cmd(
    fit_path: FitArg,
    ci: CiOpt = 0.9,
    format: FormatOpt = Format.table,
    strict: Annotated[bool, typer.Option(help="Exit with code 7 if the fit did not converge.")] = False,
) -> None:
    """Parameter medians, intervals and convergence diagnostics of a saved fit (of a task fit: per task, pooled, and its ladder)."""
    from bayescale.fitfile import load_fit

    if _is_task_fit(fit_path):
        return _task_summary(fit_path, ci, format, strict)

    result = run(load_fit, fit_path)
    typer.echo(visible(run(format_summary, result, ci, format)))
    strict_exit(strict, result)


def _task_summary(fit_path: Path, ci: float, format: Format, strict: bool) -> None:
    """``summary`` of a task fit (``tasksummary``): JSON, CSV (one row per task and parameter) or text."""
    from bayescale import tasksummary
    from bayescale.cli.formatting import json_text
    from bayescale.taskfit import load_task_fit

    result = run(load_task_fit, fit_path)
    if format is Format.json:
        text = json_text(run(tasksummary.summary_dict, result, ci))
    elif format is Format.csv:
        text = run(tasksummary.summary_frame, result, ci).to_csv(index=False)
    else:
        text = run(tasksummary.summary_text, result, ci)
    typer.echo(visible(text))
    if strict and not result.converged:
        typer.secho("error: --strict and the fit did not converge", err=True, fg=typer.colors.RED)
        raise typer.Exit(7)


def report_cmd(
    fit_path: FitArg,
    output: Annotated[Path, typer.Option("-o", "--output", help="HTML file to write.")] = Path("report.html"),
    flops: Annotated[list[str] | None, typer.Option(help="FLOP budget(s) for the headline (several values, repeated flags, or a range 1e21:1e25:5).")] = None,
    target_loss: Annotated[float | None, typer.Option(help="Target loss: report P(loss < target) per plan.")] = None,
    prob: Annotated[float, typer.Option(help="Required probability of reaching the target.")] = 0.9,
    unique_tokens: Annotated[str | None, typer.Option(help="Unique tokens available (repeat-aware plans).")] = None,
    group_value: GroupValueOpt = None,
    new_group: NewGroupOpt = False,
    ci: CiOpt = 0.9,
    compare: Annotated[
        list[Path] | None, typer.Option("--compare", metavar="FIT", help="Other saved fits of the same runs (e.g. another form): the report ranks them with this one by PSIS-LOO. Repeat the flag.")
    ] = None,
    next_runs: Annotated[bool, typer.Option("--next-runs", help="Add 'What to train next': the grid runs that firm up the headline forecast most, within a tenth of its budget.")] = False,
    tokens_per_param: Annotated[float, typer.Option(help="Task fits (fit-tasks): tokens per parameter of the plan at each budget (default 20).")] = 20.0,
) -> None:
    """Write a self-contained HTML uncertainty report for budget decisions; a grouped fit gets a section per level unless --group-value names one."""
    check_output(output, inputs=[fit_path, *(compare or [])])
    command = command_line(
        "report",
        fit_path,
        options=[
            ("-o", output), ("--flops", flops or []), ("--target-loss", target_loss), ("--prob", prob if target_loss is not None and prob != 0.9 else None),
            ("--unique-tokens", unique_tokens), ("--group-value", group_value or []), ("--new-group", new_group), ("--ci", ci if ci != 0.9 else None),
            ("--compare", compare or []), ("--next-runs", next_runs),
        ],
    )  # fmt: skip
    if _is_task_fit(fit_path):
        loss_only = {
            "--target-loss": target_loss is not None,
            "--unique-tokens": unique_tokens is not None,
            "--group-value": bool(group_value),
            "--new-group": new_group,
            "--compare": bool(compare),
            "--next-runs": next_runs,
        }
        given = [flag for flag, on in loss_only.items() if on]
        command = command_line(
            "report", fit_path, options=[("-o", output), ("--flops", flops or []), ("--ci", ci if ci != 0.9 else None), ("--tokens-per-param", tokens_per_param if tokens_per_param != 20.0 else None)]
        )
        path = run(_task_report, fit_path, output, flops, ci, tokens_per_param, command, given)
        typer.echo(f"wrote {path}")
        return
    path = run(_report, fit_path, output, flops, target_loss, prob, unique_tokens, ci, group_value, new_group, command, compare or [], next_runs)
    typer.echo(f"wrote {path}")


def _report(fit_path, output, flops, target_loss, prob, unique_tokens, ci, group_value, new_group, command, others, next_runs):
    from bayescale.allocate import parse_flops
    from bayescale.errors import check_probability
    from bayescale.fitfile import load_fit
    from bayescale.report import render_report
    from bayescale.validate.compare import compare

    check_probability(ci)
    budgets = parse_flops(flops) if flops else None
    groups = group_map(group_value)
    _check_others(fit_path, others)
    result = load_fit(fit_path)
    comparison = compare(_named_fits([(fit_path, result), *((p, load_fit(p)) for p in others)])) if others else None
    return render_report(
        result,
        output,
        flops=budgets,
        target_loss=target_loss,
        unique_tokens=unique_tokens,
        prob=prob,
        ci=ci,
        group_values=groups,
        new_group=new_group,
        command=command,
        comparison=comparison,
        next_runs=next_runs,
    )


def _is_task_fit(path: Path) -> bool:
    from bayescale.taskfit import is_task_fit

    return is_task_fit(path)


def _task_report(fit_path: Path, output: Path, flops: list[str] | None, ci: float, tokens_per_param: float, command: str, given: list[str]) -> Path:
    """``report`` on a task fit (``taskreport``): per task, accuracy against compute and the forecasts at the budgets."""
    from bayescale.allocate import parse_flops
    from bayescale.taskfit import load_task_fit
    from bayescale.taskreport import render_task_report

    if given:
        raise BayescaleError(f"{', '.join(given)}: for loss fits; a task fit's report takes --flops, --ci and --tokens-per-param")
    return render_task_report(load_task_fit(fit_path), output, flops=parse_flops(flops) if flops else None, ci=ci, tokens_per_param=tokens_per_param, command=command)


def _check_others(fit_path: Path, others: list[Path]) -> None:
    """Refuse a ``--compare`` fit that is the reported fit itself, or one given twice (the same file, also through a link)."""
    from bayescale.errors import BayescaleError
    from bayescale.paths import same_file

    for i, other in enumerate(others):
        if same_file(other, fit_path) or other == fit_path:
            raise BayescaleError(f"--compare {other}: that is the fit being reported ({fit_path}); give other fits of the same runs to compare with it")
        if any(same_file(other, earlier) or other == earlier for earlier in others[:i]):
            raise BayescaleError(f"--compare {other} is given twice; give each other fit once")


def _named_fits(fits):
    """Fits keyed by spec name, or by ``spec (file)`` where two share a spec."""
    names = [f.spec.name for _, f in fits]
    return {(f.spec.name if names.count(f.spec.name) == 1 else f"{f.spec.name} ({Path(p).name})"): f for p, f in fits}


def plot_cmd(
    fit_path: FitArg,
    kind: Annotated[str, typer.Option(help="fit (runs vs predictions), isoflop (profiles), forecast (loss fan along the compute-optimal frontier), allocation (the frontier), posteriors.")] = "fit",
    output: Annotated[Path, typer.Option("-o", "--output", help="Figure file: .png, .svg or .pdf (the suffix picks the format).")] = Path("figure.png"),
    flops: Annotated[list[str] | None, typer.Option(help="FLOP budget(s) marked on the forecast fan (default 100x the largest run).")] = None,
    target_loss: Annotated[float | None, typer.Option(help="Target loss drawn on the forecast fan.")] = None,
    unique_tokens: Annotated[str | None, typer.Option(help="Unique tokens available (repeat-aware plans).")] = None,
    group_value: GroupValueOpt = None,
    new_group: NewGroupOpt = False,
    ci: CiOpt = 0.9,
    dpi: Annotated[int, typer.Option(min=30, max=1200, help="Resolution of a PNG.")] = 150,
) -> None:
    """One figure of a saved fit for a slide or a paper, drawn as the report draws it; a grouped fit gets a panel per level unless --group-value names one."""
    check_output(output, inputs=[fit_path])
    path = run(_plot, fit_path, kind, output, flops, target_loss, unique_tokens, group_value, new_group, ci, dpi)
    typer.echo(f"wrote {path}")


def _plot(fit_path, kind, output, flops, target_loss, unique_tokens, group_value, new_group, ci, dpi):
    import matplotlib

    matplotlib.use("Agg")
    from bayescale.allocate import parse_flops
    from bayescale.figures import FORMATS, KINDS, figure, save_figure
    from bayescale.fitfile import load_fit
    from bayescale.units import positive_quantity

    if kind not in KINDS:  # before loading the fit: a typo costs nothing
        raise BayescaleError(f"--kind {kind!r}: choose one of {', '.join(KINDS)}")
    if output.suffix.lower() not in FORMATS:
        raise BayescaleError(f"-o {output}: end the file name in {', '.join(FORMATS)} (the suffix picks the format)")
    result = load_fit(fit_path)
    fig = figure(
        result,
        kind,
        ci=ci,
        flops=parse_flops(flops) if flops else None,
        target_loss=target_loss,
        unique_tokens=positive_quantity(unique_tokens, "unique tokens"),
        group_values=group_map(group_value),
        new_group=new_group,
    )
    return save_figure(fig, output, dpi=dpi)
