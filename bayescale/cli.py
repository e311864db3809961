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

    try:
        with warnings.catch_warnings():  # restores the caller's showwarning afterwards
            warnings.showwarning = show
            return fn(*args, **kwargs)
    except BayescaleError as exc:
        if STATE["debug"]:
            raise
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(exc.exit_code) from None


def _pairs(pairs: list[str] | None, flag: str, form: str, example: str) -> dict[str, str]:
    """``KEY=VALUE`` options (repeatable) as a dict; a malformed one names the flag."""
    from bayescale.errors import RunTableError

    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise RunTableError(f"{flag} {pair!r}: expected {form}, e.g. {flag} {example}")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip().strip("'\"")
    return out


def _columns(pairs: list[str] | None) -> dict[str, str]:
    return _pairs(pairs, "--column", "CANONICAL=HEADER", "params='Model Size'")


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


def _fit(runs, model, group, column, drop_highest_loss, max_epochs, where, draws, tune, chains, seed, sampler, quiet, adaptation=None):
    import bayescale

    where = _pairs(where, "--where", "COLUMN=VALUE", "published_fit=true")
    table = bayescale.load_runs(runs, columns=_columns(column), drop_highest_loss=drop_highest_loss, max_epochs=max_epochs, where=where)
    return bayescale.fit(table, model, group or None, draws=draws, tune=tune, chains=chains, seed=seed, sampler=sampler, adaptation=adaptation, progress=not quiet)


@app.command("fit")
def fit_cmd(
    runs: Annotated[Path, typer.Argument(help="Run table: CSV, TSV or Parquet.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to save the fit (.nc or .zarr).")] = Path("fit.nc"),
    model: Annotated[str, typer.Option(help="Shipped spec name or path to a TOML spec.")] = "chinchilla",
    group: Annotated[list[str] | None, typer.Option(help="Grouping column (repeatable): partially pooled parameters per group.")] = None,
    column: Annotated[list[str] | None, typer.Option(help="Rename a header: CANONICAL=HEADER, e.g. params='Model Size'.")] = None,
    drop_highest_loss: Annotated[int, typer.Option(help="Drop the k highest-loss runs (Epoch AI dropped 5 Chinchilla points).")] = 0,
    max_epochs: Annotated[float | None, typer.Option(help="Keep only runs with at most this many epochs (tokens / unique_tokens).")] = None,
    where: Annotated[list[str] | None, typer.Option(help="Keep only runs with COLUMN=VALUE (repeatable), e.g. published_fit=true.")] = None,
    draws: Annotated[int, typer.Option(help="Posterior draws per chain.")] = 1000,
    tune: Annotated[int, typer.Option(help="Tuning steps per chain.")] = 1000,
    chains: Annotated[int, typer.Option(help="Number of chains.")] = 4,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same posterior.")] = 0,
    sampler: Annotated[str, typer.Option(help="nutpie (default), pymc or numpyro.")] = "nutpie",
    adaptation: Annotated[str | None, typer.Option(help="nutpie mass matrix: low_rank (default) or diag (default when a --group level is sampled non-centred).")] = None,
    strict: Annotated[bool, typer.Option(help="Exit with code 7 if the fit did not converge.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Fit a scaling law to a run table and save the posterior."""
    result = _run(_fit, runs, model, group, column, drop_highest_loss, max_epochs, where, draws, tune, chains, seed, sampler, quiet, adaptation)
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
    shown = table.rename(columns={"lo": lo, "hi": hi}).astype(object)
    shown.loc[[p for p in result.spec.fixed if p in shown.index], ["rhat", "ess_bulk", "ess_tail"]] = "fixed"
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
    from bayescale.errors import RunTableError, check_probability
    from bayescale.fitting import load_fit
    from bayescale.forecasting import forecast_summary

    check_probability(ci)
    result = load_fit(fit_path)
    if targets is not None:
        if any(v is not None for v in (params, tokens, unique_tokens, flops)):
            raise RunTableError("give either --targets or --params/--tokens/--flops, not both")
        return result, forecast_summary(result, targets, ci=ci, seed=seed)
    else:
        columns: dict[str, Any] = {k: v for k, v in (("params", params), ("tokens", tokens), ("unique_tokens", unique_tokens), ("flops", flops)) if v is not None}
        if not columns:
            raise RunTableError("nothing to forecast: give --params and --tokens (or --flops), or --targets TARGETS.csv")
        columns.update(_group_values(group_value))
        return result, forecast_summary(result, ci=ci, seed=seed, **columns)


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
    result = _fit(runs_path, "chinchilla", None, None, 5, None, None, draws, tune, chains, seed, "nutpie", quiet)
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


def _allocate(fit_path, flops, unique_tokens, ci, robust_quantile):
    from bayescale.allocate import allocation_table, parse_flops
    from bayescale.errors import check_probability
    from bayescale.fitting import load_fit

    check_probability(ci)
    budgets = parse_flops(flops or [])
    result = load_fit(fit_path)
    ds = result.allocate(budgets, unique_tokens=unique_tokens, ci=ci, robust_quantile=robust_quantile)
    return result, allocation_table(ds, ci)


@app.command("allocate")
def allocate_cmd(
    fit_path: Annotated[Path, typer.Argument(metavar="FIT", help="A saved fit (.nc or .zarr).")],
    flops: Annotated[list[str] | None, typer.Option(help="FLOP budget (repeatable): 5.76e23, or a log-spaced range LOW:HIGH:COUNT like 1e21:1e25:9.")] = None,
    unique_tokens: Annotated[str | None, typer.Option(help="Unique tokens available (repeat-aware forms, e.g. data_constrained): adds epochs and the loss penalty.")] = None,
    ci: Annotated[float, typer.Option(help="Interval probability.")] = 0.9,
    robust_quantile: Annotated[float | None, typer.Option(help="Robust plan minimises this quantile of loss instead of its posterior mean.")] = None,
    format: Annotated[Format, typer.Option("--format", help="table, json or csv.")] = Format.table,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write here instead of stdout.")] = None,
) -> None:
    """Compute-optimal parameters and tokens per FLOP budget (C = 6ND), with posterior intervals."""
    result, table = _run(_allocate, fit_path, flops, unique_tokens, ci, robust_quantile)
    if format is Format.json:
        text = json.dumps({"ci": ci, "converged": result.converged, "budgets": json.loads(table.to_json(orient="records"))}, indent=2)
    elif format is Format.csv:
        text = table.to_csv(index=False)
    else:
        text = table.to_string(index=False, float_format=lambda v: f"{v:.4g}")
    _emit(text, output)


def _decide(fit_path, target_loss, prob, flops, params, tokens, unique_tokens, predictive, usd_per_flop, flops_per_gpu_hour):
    from bayescale.allocate import parse_flops
    from bayescale.decide import cost, decide
    from bayescale.errors import BayescaleError, check_probability
    from bayescale.fitting import load_fit
    from bayescale.units import parse_quantity

    def quantity(name, value):
        if value is None:
            return None
        try:
            number = parse_quantity(value)
        except ValueError as exc:
            raise BayescaleError(f"--{name}: {exc}") from None
        if not (number > 0 and number < float("inf")):
            raise BayescaleError(f"--{name} must be a positive, finite number (got {value!r})")
        return number

    if target_loss is None:
        raise BayescaleError("give --target-loss, e.g. --target-loss 2.0")
    n, d, u = quantity("params", params), quantity("tokens", tokens), quantity("unique-tokens", unique_tokens)
    if (n is None) != (d is None):
        raise BayescaleError("give both --params and --tokens (a plan), or --flops, or neither (find the compute)")
    if n is not None and flops:
        raise BayescaleError("give either --flops or --params/--tokens, not both")
    check_probability(prob, "--prob")
    cost(1.0, usd_per_flop, flops_per_gpu_hour)  # validates the rates before loading the fit
    result = load_fit(fit_path)
    return decide(result, target_loss, prob, flops=parse_flops(flops) if flops else None, params=n, tokens=d, unique_tokens=u, predictive=predictive, usd_per_flop=usd_per_flop, flops_per_gpu_hour=flops_per_gpu_hour)


@app.command("decide")
def decide_cmd(
    fit_path: Annotated[Path, typer.Argument(metavar="FIT", help="A saved fit (.nc or .zarr).")],
    target_loss: Annotated[float | None, typer.Option(help="The loss to beat.")] = None,
    prob: Annotated[float, typer.Option(help="Required probability of beating it.")] = 0.9,
    flops: Annotated[list[str] | None, typer.Option(help="Evaluate these budgets' robust plans (repeatable, or LOW:HIGH:COUNT).")] = None,
    params: Annotated[str | None, typer.Option(help="Evaluate this plan: model size, e.g. 70B (with --tokens).")] = None,
    tokens: Annotated[str | None, typer.Option(help="Evaluate this plan: training tokens, e.g. 1.4T (with --params).")] = None,
    unique_tokens: Annotated[str | None, typer.Option(help="Unique tokens available (repeat-aware forms).")] = None,
    predictive: Annotated[bool, typer.Option("--predictive/--mean-curve", help="Include run-to-run noise (posterior predictive) or only the law's uncertainty.")] = True,
    usd_per_flop: Annotated[float | None, typer.Option(help="Cost per FLOP in USD: adds a usd field.")] = None,
    flops_per_gpu_hour: Annotated[float | None, typer.Option(help="Delivered FLOPs per GPU-hour: adds a gpu_hours field.")] = None,
    format: Annotated[Format, typer.Option("--format", help="table, json or csv.")] = Format.table,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write here instead of stdout.")] = None,
) -> None:
    """P(loss < target) for a plan or budgets, or the least compute that reaches the target with --prob."""
    doc = _run(_decide, fit_path, target_loss, prob, flops, params, tokens, unique_tokens, predictive, usd_per_flop, flops_per_gpu_hour)
    if format is Format.json:
        text = json.dumps(doc, indent=2)
    else:
        import pandas as pd

        table = pd.DataFrame(doc["plans"])
        if format is Format.csv:
            text = table.to_csv(index=False)
        else:
            head = f"P(loss < {doc['target_loss']:g}) ({'posterior predictive' if doc['predictive'] else 'mean curve'}), required {doc['prob_required']:g}; mode: {doc['mode']}"
            text = head + "\n" + table.to_string(index=False, float_format=lambda v: f"{v:.4g}")
    _emit(text, output)


class Method(str, Enum):
    bayes = "bayes"
    point = "point"


def _cutoffs(values: list[str] | None, sweep: int, runs) -> list[float]:
    from bayescale.errors import BayescaleError
    from bayescale.units import parse_quantity
    from bayescale.validate import default_cutoffs

    if values and sweep:
        raise BayescaleError("give either --train-max-flops or --sweep, not both")
    if sweep:
        return default_cutoffs(runs, sweep)
    if not values:
        raise BayescaleError("give --train-max-flops X (repeatable, e.g. 1e20) or --sweep N")
    out = []
    for value in values:
        try:
            out.append(float(parse_quantity(value)))
        except Exception as exc:  # noqa: BLE001 - any parse failure is a usage error
            raise BayescaleError(f"--train-max-flops {value!r}: not a number of FLOPs ({exc})") from None
    return out


def _backtest(runs, model, group, column, drop_highest_loss, cutoffs, sweep, method, draws, tune, chains, seed, bootstrap):
    import bayescale
    from bayescale.validate import backtest

    table = bayescale.load_runs(runs, columns=_columns(column), drop_highest_loss=drop_highest_loss)
    kwargs = {"draws": draws, "tune": tune, "chains": chains} if method == "bayes" else {"bootstrap": bootstrap}
    return [backtest(table, model, c, method=method, group=group or None, seed=seed, **kwargs) for c in _cutoffs(cutoffs, sweep, table)]


@app.command("backtest")
def backtest_cmd(
    runs: Annotated[Path, typer.Argument(help="Run table: CSV, TSV or Parquet.")],
    model: Annotated[str, typer.Option(help="Shipped spec name or path to a TOML spec.")] = "chinchilla",
    train_max_flops: Annotated[list[str] | None, typer.Option(help="Fit on runs with flops <= X, forecast the rest (repeatable).")] = None,
    sweep: Annotated[int, typer.Option(help="Instead of --train-max-flops: N cutoffs at flops quantiles 40%..90%.")] = 0,
    method: Annotated[Method, typer.Option(help="bayes (posterior) or point (Huber fit + bootstrap).")] = Method.bayes,
    group: Annotated[list[str] | None, typer.Option(help="Grouping column (repeatable), Bayesian fits only.")] = None,
    column: Annotated[list[str] | None, typer.Option(help="Rename a header: CANONICAL=HEADER.")] = None,
    drop_highest_loss: Annotated[int, typer.Option(help="Drop the k highest-loss runs first.")] = 0,
    draws: Annotated[int, typer.Option(help="Posterior draws per chain.")] = 1000,
    tune: Annotated[int, typer.Option(help="Tuning steps per chain.")] = 1000,
    chains: Annotated[int, typer.Option(help="Number of chains.")] = 4,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples of the point fit.")] = 200,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    format: Annotated[Format, typer.Option("--format", help="table, json or csv.")] = Format.table,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write here instead of stdout.")] = None,
) -> None:
    """Leave-future-out backtest: fit on small-compute runs, score forecasts of the larger ones."""
    import pandas as pd

    rows = _run(_backtest, runs, model, group, column, drop_highest_loss, train_max_flops, sweep, method.value, draws, tune, chains, seed, bootstrap)
    if format is Format.json:
        text = json.dumps(rows[0] if len(rows) == 1 else rows, indent=2)
    elif format is Format.csv:
        text = pd.DataFrame(rows).to_csv(index=False)
    else:
        text = pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4g}")
    _emit(text, output)


def _compare(runs, models, column, drop_highest_loss, draws, tune, chains, seed, quiet, by_group=None, lfo=False, pooling=None, group=None, train_max_flops=None):
    import bayescale
    from bayescale.errors import BayescaleError
    from bayescale.fitting import fit
    from bayescale.validate import compare, compare_lfo, kfold_by_group, lfo_candidates

    models, pooling, group = models or ["chinchilla"], pooling or [], group or []
    if len(set(models)) != len(models):
        raise BayescaleError(f"a --model is listed twice: {', '.join(models)}")
    if len(set(pooling)) != len(pooling):
        raise BayescaleError(f"a --pooling is listed twice: {', '.join(pooling)}")
    if pooling and not group:
        raise BayescaleError("--pooling chooses which parameters vary by group: give --group COLUMN too")
    if by_group and (lfo or pooling or group):
        raise BayescaleError("--by-group (leave-one-group-out) cannot be combined with --lfo, --pooling or --group")
    if train_max_flops and not lfo:
        raise BayescaleError("--train-max-flops sets the leave-future-out cutoff: add --lfo")
    candidates = lfo_candidates(models, pooling)  # validates every --pooling value before any fit
    if len(candidates) < 2:
        raise BayescaleError("give at least two candidates to compare: several --model options and/or several --pooling choices")
    table = bayescale.load_runs(runs, columns=_columns(column), drop_highest_loss=drop_highest_loss)
    if by_group:
        return kfold_by_group(table, models, by_group, draws=draws, tune=tune, chains=chains, seed=seed)
    if lfo:
        cutoffs = _cutoffs(train_max_flops, 0, table) if train_max_flops else None
        return compare_lfo(table, candidates, group=group or None, cutoff=cutoffs, seed=seed, draws=draws, tune=tune, chains=chains)
    fits = {name: fit(table, spec, group or None, draws=draws, tune=tune, chains=chains, seed=seed, progress=not quiet) for name, spec in candidates.items()}
    return compare(fits)


@app.command("compare")
def compare_cmd(
    runs: Annotated[Path, typer.Argument(help="Run table: CSV, TSV or Parquet.")],
    model: Annotated[list[str] | None, typer.Option(help="Spec to fit and compare (repeat: --model chinchilla --model kaplan).")] = None,
    column: Annotated[list[str] | None, typer.Option(help="Rename a header: CANONICAL=HEADER.")] = None,
    drop_highest_loss: Annotated[int, typer.Option(help="Drop the k highest-loss runs first.")] = 0,
    draws: Annotated[int, typer.Option(help="Posterior draws per chain.")] = 1000,
    tune: Annotated[int, typer.Option(help="Tuning steps per chain.")] = 1000,
    chains: Annotated[int, typer.Option(help="Number of chains.")] = 4,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    format: Annotated[Format, typer.Option("--format", help="table, json or csv.")] = Format.table,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write here instead of stdout.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
    by_group: Annotated[str | None, typer.Option("--by-group", help="Instead of PSIS-LOO: leave each level of COLUMN out in turn and refit (slow).")] = None,
    lfo: Annotated[bool, typer.Option("--lfo", help="Instead of PSIS-LOO: fit on the smaller runs, rank by forecasts of the larger ones.")] = False,
    pooling: Annotated[list[str] | None, typer.Option(help="What varies by --group (repeatable, crossed with --model): levels, all, none or a comma list like E,A,B.")] = None,
    group: Annotated[list[str] | None, typer.Option(help="Grouping column (repeatable) for every candidate.")] = None,
    train_max_flops: Annotated[list[str] | None, typer.Option(help="--lfo cutoff(s): fit on runs with flops <= X (default: the 70% flops quantile).")] = None,
) -> None:
    """Rank laws and pooling structures: PSIS-LOO by default, leave-future-out forecasts with --lfo."""
    table = _run(_compare, runs, model, column, drop_highest_loss, draws, tune, chains, seed, quiet, by_group, lfo, pooling, group, train_max_flops)
    if format is Format.json:
        text = json.dumps(json.loads(table.to_json(orient="index")), indent=2)
    elif format is Format.csv:
        text = table.to_csv()
    elif lfo:
        cutoffs = ", ".join(f"{c:.3g}" for c in table.attrs["cutoffs"])
        text = (
            table.to_string(float_format=lambda v: f"{v:.4g}")
            + f"\n\nleave-future-out: fitted on runs with flops <= {cutoffs}, scored on every larger run (log loss). "
            "elpd: held-out log predictive density (higher is better); crps, median_abs_log_error: lower is better; coverage_90: share inside the 90% interval"
        )
    else:
        text = table.to_string(float_format=lambda v: f"{v:.4g}") + "\n\n" + ("elpd_kfold: leave-one-group-out log predictive density (higher is better)" if by_group else "elpd: PSIS-LOO expected log predictive density of log loss (higher is better); weight: stacking weight; n_bad_k: runs with Pareto k > 0.7")
    _emit(text, output)




@app.command("batch")
def batch_cmd(
    manifest: Annotated[Path, typer.Argument(help="Manifest TOML: [defaults] and [[job]] tables.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Results folder (summary.csv, jobs/<name>/).")] = Path("results"),
    scheduler: Annotated[str, typer.Option(help="'local' (a LocalCluster) or a scheduler address, e.g. tcp://host:8786.")] = "local",
    workers: Annotated[int, typer.Option(help="Worker processes of the LocalCluster.")] = 2,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Fit, forecast and allocate many run tables on Dask. Exit code: the number of failed jobs."""
    from bayescale.batch import read_manifest, run_batch

    jobs = _run(read_manifest, manifest)
    with typer.progressbar(length=len(jobs), label="jobs", file=sys.stderr, hidden=quiet) as bar:
        summary = _run(run_batch, manifest, output, scheduler=scheduler, workers=workers, on_done=lambda row: bar.update(1))
    counts = summary["status"].value_counts().to_dict()
    typer.echo(f"{len(summary)} jobs: {counts.get('ok', 0)} ok, {counts.get('skipped', 0)} skipped, {counts.get('failed', 0)} failed; summary in {output / 'summary.csv'}")
    for _, row in summary[summary["status"] == "failed"].iterrows():
        typer.secho(f"failed: {row['job']}: {row['error']}", err=True, fg=typer.colors.RED)
    failed = int((summary["status"] == "failed").sum())
    if failed:
        raise typer.Exit(min(failed, 125))



@app.command("report")
def report_cmd(
    fit_path: Annotated[Path, typer.Argument(metavar="FIT", help="A saved fit (.nc or .zarr).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="HTML file to write.")] = Path("report.html"),
    flops: Annotated[list[str] | None, typer.Option(help="FLOP budget(s) for the headline (repeatable, or a range 1e21:1e25:5).")] = None,
    target_loss: Annotated[float | None, typer.Option(help="Target loss: report P(loss < target) per plan.")] = None,
    prob: Annotated[float, typer.Option(help="Required probability of reaching the target.")] = 0.9,
    unique_tokens: Annotated[str | None, typer.Option(help="Unique tokens available (repeat-aware plans).")] = None,
    ci: Annotated[float, typer.Option(help="Interval probability.")] = 0.9,
) -> None:
    """Write a self-contained HTML uncertainty report for budget decisions."""
    path = _run(_report, fit_path, output, flops, target_loss, prob, unique_tokens, ci)
    typer.echo(f"wrote {path}")


def _report(fit_path, output, flops, target_loss, prob, unique_tokens, ci):
    from bayescale.allocate import parse_flops
    from bayescale.errors import check_probability
    from bayescale.fitting import load_fit
    from bayescale.report import command_line, render_report
    from bayescale.units import parse_quantity

    check_probability(ci)
    budgets = parse_flops(flops) if flops else None
    unique = parse_quantity(unique_tokens) if unique_tokens is not None else None
    result = load_fit(fit_path)
    return render_report(result, output, flops=budgets, target_loss=target_loss, unique_tokens=unique, prob=prob, ci=ci, command=command_line())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
