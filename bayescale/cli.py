"""The ``bayescale`` command line: thin typer commands over the public API.

Every ``BayescaleError`` is printed as its one-line message and exits with the error's
code (see ``errors.EXIT_CODES``); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import json
import sys
import warnings
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    help="Bayesian scaling-law fitting and forecasting for LLM pre-training.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
STATE = {"debug": False}


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


def _run(fn, *args, **kwargs):
    """Call the API, turning bayescale errors into one message and an exit code."""
    from bayescale.errors import BayescaleError, ConvergenceWarning, ExtrapolationWarning

    def show(message, category, filename, lineno, file=None, line=None):
        label = {ConvergenceWarning: "WARNING (convergence)", ExtrapolationWarning: "WARNING (extrapolation)"}.get(category, "warning")
        typer.secho(f"{label}: {message}", err=True, fg=typer.colors.YELLOW)

    warnings.showwarning = show
    try:
        return fn(*args, **kwargs)
    except BayescaleError as exc:
        if STATE["debug"]:
            raise
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(exc.exit_code) from None


def _columns(pairs: list[str] | None) -> dict[str, str]:
    from bayescale.errors import RunTableError

    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise RunTableError(f"--column {pair!r}: expected CANONICAL=HEADER, e.g. --column params='Model Size'")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip().strip("'\"")
    return out


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        typer.echo(text)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text + ("" if text.endswith("\n") else "\n"))
        typer.echo(f"wrote {output}", err=True)


@app.callback()
def main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")] = False) -> None:
    STATE["debug"] = debug


def _fit(runs, model, group, column, drop_highest_loss, max_epochs, draws, tune, chains, seed, sampler, quiet):
    import bayescale

    table = bayescale.load_runs(runs, columns=_columns(column), drop_highest_loss=drop_highest_loss, max_epochs=max_epochs)
    return bayescale.fit(table, model, group or None, draws=draws, tune=tune, chains=chains, seed=seed, sampler=sampler, progress=not quiet)


@app.command("fit")
def fit_cmd(
    runs: Annotated[Path, typer.Argument(help="Run table: CSV, TSV or Parquet.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to save the fit (.nc or .zarr).")] = Path("fit.nc"),
    model: Annotated[str, typer.Option(help="Shipped spec name or path to a TOML spec.")] = "chinchilla",
    group: Annotated[list[str] | None, typer.Option(help="Grouping column (repeatable): partially pooled parameters per group.")] = None,
    column: Annotated[list[str] | None, typer.Option(help="Rename a header: CANONICAL=HEADER, e.g. params='Model Size'.")] = None,
    drop_highest_loss: Annotated[int, typer.Option(help="Drop the k highest-loss runs (Epoch AI dropped 5 Chinchilla points).")] = 0,
    max_epochs: Annotated[float | None, typer.Option(help="Keep only runs with at most this many epochs (tokens / unique_tokens).")] = None,
    draws: Annotated[int, typer.Option(help="Posterior draws per chain.")] = 1000,
    tune: Annotated[int, typer.Option(help="Tuning steps per chain.")] = 1000,
    chains: Annotated[int, typer.Option(help="Number of chains.")] = 4,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same posterior.")] = 0,
    sampler: Annotated[str, typer.Option(help="nutpie (default), pymc or numpyro.")] = "nutpie",
    strict: Annotated[bool, typer.Option(help="Exit with code 7 if the fit did not converge.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Fit a scaling law to a run table and save the posterior."""
    result = _run(_fit, runs, model, group, column, drop_highest_loss, max_epochs, draws, tune, chains, seed, sampler, quiet)
    path = _run(result.save, output)
    typer.echo(f"{result.spec.name} fit of {len(result.runs)} runs: {result.diagnostics.message()}")
    typer.echo(f"saved {path}")
    _strict_exit(strict, result)


def _strict_exit(strict: bool, result) -> None:
    if strict and not result.converged:
        typer.secho("error: --strict and the fit did not converge", err=True, fg=typer.colors.RED)
        raise typer.Exit(7)


def _format_summary(result, ci: float, fmt: Format) -> str:
    if fmt is Format.json:
        return json.dumps(result.summary_dict(ci), indent=2)
    table = result.summary(ci)
    if fmt is Format.csv:
        return table.to_csv()
    lo, hi = f"lo{ci:.0%}", f"hi{ci:.0%}"
    shown = table.rename(columns={"lo": lo, "hi": hi})
    body = shown.to_string(float_format=lambda v: f"{v:.4g}")
    return f"{result.spec.name} ({result.spec.description}); {len(result.runs)} runs\n{body}\n\n{result.diagnostics.message()}"


@app.command("summary")
def summary_cmd(
    fit_path: Annotated[Path, typer.Argument(metavar="FIT", help="A saved fit (.nc or .zarr).")],
    ci: Annotated[float, typer.Option(help="Interval probability.")] = 0.9,
    format: Annotated[Format, typer.Option("--format", help="table, json or csv.")] = Format.table,
    strict: Annotated[bool, typer.Option(help="Exit with code 7 if the fit did not converge.")] = False,
) -> None:
    """Parameter medians, intervals and convergence diagnostics of a saved fit."""
    from bayescale.fitting import load_fit

    result = _run(load_fit, fit_path)
    typer.echo(_run(_format_summary, result, ci, format))
    _strict_exit(strict, result)


def _group_values(pairs: list[str] | None) -> dict[str, list[str]]:
    from bayescale.errors import RunTableError

    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise RunTableError(f"--group-value {pair!r}: expected COLUMN=VALUE")
        key, value = pair.split("=", 1)
        out[key.strip()] = [value.strip()]
    return out


def _forecast(fit_path, params, tokens, unique_tokens, flops, group_value, targets, ci, seed):
    from bayescale.errors import RunTableError
    from bayescale.fitting import _check_ci, load_fit
    from bayescale.forecasting import forecast_table

    _check_ci(ci)
    result = load_fit(fit_path)
    if targets is not None:
        if any(v is not None for v in (params, tokens, unique_tokens, flops)):
            raise RunTableError("give either --targets or --params/--tokens/--flops, not both")
        ds = result.forecast(targets, seed=seed)
    else:
        columns: dict[str, Any] = {k: v for k, v in (("params", params), ("tokens", tokens), ("unique_tokens", unique_tokens), ("flops", flops)) if v is not None}
        if not columns:
            raise RunTableError("nothing to forecast: give --params and --tokens (or --flops), or --targets TARGETS.csv")
        columns.update(_group_values(group_value))
        ds = result.forecast(seed=seed, **columns)
    return result, forecast_table(ds, ci)


@app.command("forecast")
def forecast_cmd(
    fit_path: Annotated[Path, typer.Argument(metavar="FIT", help="A saved fit (.nc or .zarr).")],
    params: Annotated[str | None, typer.Option(help="Model size, e.g. 70B.")] = None,
    tokens: Annotated[str | None, typer.Option(help="Training tokens, e.g. 1.4T.")] = None,
    unique_tokens: Annotated[str | None, typer.Option(help="Unique tokens (repeat-aware forms).")] = None,
    flops: Annotated[str | None, typer.Option(help="Training compute (compute form).")] = None,
    group_value: Annotated[list[str] | None, typer.Option(help="COLUMN=VALUE for grouped fits (repeatable).")] = None,
    targets: Annotated[Path | None, typer.Option(help="CSV of targets, one row each; all columns kept.")] = None,
    ci: Annotated[float, typer.Option(help="Interval probability.")] = 0.9,
    format: Annotated[Format, typer.Option("--format", help="table, json or csv.")] = Format.table,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write here instead of stdout.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the observation-noise draws.")] = 0,
) -> None:
    """Posterior forecast of the loss of models never trained."""
    result, table = _run(_forecast, fit_path, params, tokens, unique_tokens, flops, group_value, targets, ci, seed)
    if format is Format.json:
        text = json.dumps({"ci": ci, "converged": result.converged, "targets": json.loads(table.to_json(orient="records"))}, indent=2)
    elif format is Format.csv or output is not None and format is Format.table and output.suffix == ".csv":
        text = table.to_csv(index=False)
    else:
        text = table.to_string(index=False, float_format=lambda v: f"{v:.4g}")
    _emit(text, output)


@app.command("demo")
def demo_cmd(
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the fit and figure.")] = Path("bayescale-demo"),
    draws: Annotated[int, typer.Option(help="Posterior draws per chain.")] = 1000,
    tune: Annotated[int, typer.Option(help="Tuning steps per chain.")] = 1000,
    chains: Annotated[int, typer.Option(help="Number of chains.")] = 4,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Fit Chinchilla to the embedded runs and forecast a 70B model on 1.4T tokens."""
    _run(_demo, output, draws, tune, chains, seed, quiet)


def _demo(output: Path, draws: int, tune: int, chains: int, seed: int, quiet: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from bayescale.plots import isoflop_profiles
    from bayescale.resources import data_path

    runs_path = data_path("chinchilla_figure4_runs.csv")
    typer.echo(f"Fitting the chinchilla law to {runs_path.name} (Hoffmann et al. 2022, Fig. 4 points; the 5 highest-loss runs dropped as in Besiroglu et al. 2024) ...")
    result = _fit(runs_path, "chinchilla", None, None, 5, None, draws, tune, chains, seed, "nutpie", quiet)
    typer.echo("")
    typer.echo(_format_summary(result, 0.9, Format.table))
    from bayescale.forecasting import forecast_table

    row = forecast_table(result.forecast(params=70e9, tokens=1.4e12, seed=seed), 0.9).iloc[0]
    typer.echo(f"\nForecast: 70B parameters on 1.4T tokens (Chinchilla's own size): loss {row['loss_median']:.3f}, 90% interval [{row['loss_lo']:.3f}, {row['loss_hi']:.3f}] (mean curve {row['mean_median']:.3f} [{row['mean_lo']:.3f}, {row['mean_hi']:.3f}])")
    output.mkdir(parents=True, exist_ok=True)
    fit_path = result.save(output / "chinchilla_fit.nc")
    figure = output / "chinchilla_isoflops.png"
    isoflop_profiles(result).savefig(figure, dpi=120)
    typer.echo(f"\nSaved the fit to {fit_path} and a figure to {figure}.")
    typer.echo(f"Next: bayescale summary {fit_path} --format json   |   bayescale forecast {fit_path} --params 7B --tokens 140B")


def run() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
