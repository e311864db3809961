"""The ``bayescale`` command line: thin typer commands over the public API.

Every ``BayescaleError`` is printed as its one-line message and exits with the error's
code (see ``errors.EXIT_CODES``); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:
    from bayescale.fitting import Fit
    from bayescale.runs import RunTable
    from bayescale.sampling import SamplerConfig


def _one_line(text: str) -> str:
    """A message on one line: the CLI promises one ``error:`` line per failure."""
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


class _Group(TyperGroup):
    """The command group: a usage error (bad flag value, missing argument) is one ``error:`` line, exit 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as exc:  # typer's (vendored click's) usage errors
            if type(exc).__name__ == "NoArgsIsHelpError":
                typer.echo(exc.format_message(), err=True)
                sys.exit(exc.exit_code)
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            typer.secho(f"error: {_one_line(exc.format_message())}{hint}", err=True, fg=typer.colors.RED)
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def _is_budget(text: str) -> bool:
    """Whether ``text`` reads as a FLOP budget (``1e21``, ``5.76e23``, ``1e21:1e25:9``), not a path or flag."""
    from bayescale.units import parse_quantity

    try:
        for part in text.split(":"):
            parse_quantity(part)
    except ValueError:
        return False
    return not text.startswith("-")


class _SeveralFlops(TyperCommand):
    """Lets one ``--flops`` take several values (``--flops 1e21 1e22 1e23``), besides repeated flags and ranges."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        out: list[str] = []
        state = "idle"  # "value": the next word is --flops's own value; "more": later budgets continue the list
        for arg in args:
            if state == "value":
                out.append(arg)
                state = "more"
            elif state == "more" and _is_budget(arg):
                out += ["--flops", arg]
            else:
                out.append(arg)
                state = "value" if arg == "--flops" else "more" if arg.startswith("--flops=") else "idle"
        return super().parse_args(ctx, out)


app = typer.Typer(
    cls=_Group,
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
    from bayescale.errors import (
        BayescaleError,
        ConvergenceWarning,
        ExtrapolationWarning,
    )

    def show(message, category, filename, lineno, file=None, line=None):
        label = {ConvergenceWarning: "WARNING (convergence)", ExtrapolationWarning: "WARNING (extrapolation)"}.get(category, "warning")
        typer.secho(f"{label}: {_one_line(str(message))}", err=True, fg=typer.colors.YELLOW)

    try:
        with warnings.catch_warnings():  # restores the caller's showwarning afterwards
            warnings.showwarning = show
            return fn(*args, **kwargs)
    except BayescaleError as exc:
        if STATE["debug"]:
            raise
        typer.secho(f"error: {_one_line(str(exc))}", err=True, fg=typer.colors.RED)
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


def _check_output(output: Path | None, kind: str = "file") -> None:
    """Refuse a bad ``-o`` before any work (``paths.check_output_path``, exit 2); ``None`` is stdout."""
    if output is not None:
        from bayescale.paths import check_output_path

        _run(check_output_path, output, kind)


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


def _command(name: str, *positional: object, options: Sequence[tuple[str, object]] = ()) -> str:
    """A ``bayescale`` command line from parsed values (paths as the user gave them; absolute ones never)."""
    import shlex

    from bayescale.report import display_path

    def word(value: object) -> str:
        return shlex.quote(display_path(value) if isinstance(value, Path) else str(value))

    parts = ["bayescale", name, *(word(p) for p in positional)]
    for flag, value in options:
        if value is None or value is False or value == []:
            continue
        for item in value if isinstance(value, list) else [value]:
            parts += [flag] if item is True else [flag, word(item)]
    return " ".join(parts)


def _fit(
    runs: Path,
    model: str,
    group: list[str] | None,
    config: SamplerConfig,
    *,
    column: list[str] | None = None,
    drop_highest_loss: int = 0,
    max_epochs: float | None = None,
    where: list[str] | None = None,
    flops_unit: str | None = None,
    output: Path | None = None,
    force: bool = True,
    command: str | None = None,
    strict: bool = False,
    self_check: bool = True,
) -> Fit:
    """Load the runs as the flags select them, refuse to replace a different saved fit, and fit with ``config``."""
    import bayescale

    table = bayescale.load_runs(runs, columns=_columns(column), drop_highest_loss=drop_highest_loss, max_epochs=max_epochs, where=where, strict=strict, flops_unit=flops_unit)
    if output is not None and not force:
        _refuse_overwrite(output, table, model, group, config)
    return bayescale.fit(table, model, group or None, **config.fit_options(), command=command, self_check=self_check)


def _refuse_overwrite(output: Path, table: RunTable, model: str, group: list[str] | None, config: SamplerConfig) -> None:
    """Before any sampling: refuse to replace an existing file unless it holds this very fit (same runs, spec, groups, seed, settings)."""
    from bayescale.errors import BayescaleError
    from bayescale.spec import load_spec

    if not output.exists():
        return
    options = {"draws": config.draws, "tune": config.tune, "chains": config.chains}
    advice = "pass --force to replace it, or choose another -o"
    try:
        import xarray as xr

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with xr.open_datatree(output, engine="zarr" if output.suffix == ".zarr" else "h5netcdf") as tree:
                attrs = dict(tree.attrs)
        info = json.loads(attrs.get("info", "{}"))
        existing = {
            "runs": attrs.get("data_hash"),
            "model spec": _spec_identity(attrs.get("spec", "{}")),
            "groups": json.loads(attrs.get("groups", "[]")),
            "seed": int(attrs.get("seed", -1)),
            "sampler": attrs.get("sampler"),
            **{k: info.get(k) for k in options},
        }
    except Exception:
        raise BayescaleError(f"{output} already exists and is not a bayescale fit: {advice}") from None
    wanted = {
        "runs": table.content_hash(),
        "model spec": _spec_identity(load_spec(model).to_json()),
        "groups": list(group) if group else list(load_spec(model).group),
        "seed": config.seed,
        "sampler": config.sampler,
        **options,
    }
    differ = [k for k in wanted if existing[k] != wanted[k]]
    if differ:
        raise BayescaleError(f"{output} already holds a different fit (other {', '.join(differ)}): {advice}")


def _spec_identity(text: str) -> dict[str, Any]:
    """A spec's JSON without its centring choice, which a fit stores resolved (``auto`` becomes a list)."""
    spec = json.loads(text)
    spec.get("pooling", {}).pop("centered", None)
    return spec


# --- row selection (issue 31 §4): the help text; parsing and order live in bayescale.where / runs.load_runs
WHERE_HELP = (
    "Keep only runs matching COLUMN OP VALUE, OP one of = != < <= > >= (repeatable; quote it: 'params<=1e9'). "
    "= and != take lists (arch=dense,moe); several = on one column mean OR, other conditions AND. "
    "Numeric columns compare as numbers (= within 1e-5 relative, so a printed value matches), text ignoring case. "
    "Filters apply in this order: --where, then --drop-highest-loss, then --max-epochs."
)
FLOPS_UNIT_HELP = "Unit of the table's flops column: FLOPs, GFLOPs, TFLOPs, PFLOPs, EFLOPs or PF-days (default: from a header such as total_gflops, else FLOPs; a column 10x off 6·N·D is refused)."


@app.command("fit")
def fit_cmd(
    runs: Annotated[Path, typer.Argument(help="Run table: CSV, TSV or Parquet.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to save the fit (.nc or .zarr).")] = Path("fit.nc"),
    model: Annotated[str, typer.Option(help="Shipped spec name or path to a TOML spec.")] = "chinchilla",
    group: Annotated[list[str] | None, typer.Option(help="Grouping column (repeatable): partially pooled parameters per group.")] = None,
    column: Annotated[list[str] | None, typer.Option(help="Rename a header: CANONICAL=HEADER, e.g. params='Model Size'.")] = None,
    drop_highest_loss: Annotated[int, typer.Option(help="Drop the k highest-loss runs (Epoch AI dropped 5 Chinchilla points); applied after --where.")] = 0,
    max_epochs: Annotated[float | None, typer.Option(help="Keep only runs with at most this many epochs (tokens / unique_tokens); applied last.")] = None,
    where: Annotated[list[str] | None, typer.Option(help=WHERE_HELP)] = None,
    flops_unit: Annotated[str | None, typer.Option(help=FLOPS_UNIT_HELP)] = None,
    draws: Annotated[int, typer.Option(help="Posterior draws per chain.")] = 1000,
    tune: Annotated[int, typer.Option(help="Tuning steps per chain.")] = 1000,
    chains: Annotated[int, typer.Option(help="Number of chains.")] = 4,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same posterior.")] = 0,
    sampler: Annotated[str, typer.Option(help="nutpie (default; PyTensor's disk-cached Numba kernels), nutpie-cfunc (nutpie's own compile, no per-gradient Python call), pymc or numpyro.")] = "nutpie",
    adaptation: Annotated[str | None, typer.Option(help="nutpie mass matrix: low_rank (default) or diag (default when a --group level is sampled non-centred).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file at -o that holds a different fit.")] = False,
    strict: Annotated[bool, typer.Option(help="Refuse implausible magnitudes in the runs (exit 3) and exit with code 7 if the fit did not converge.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
    self_check: Annotated[
        bool, typer.Option("--self-check/--no-self-check", help="Backtest the fit on its own largest runs (a quick refit on the rest); its result is stored and shown with every forecast.")
    ] = True,
) -> None:
    """Fit a scaling law to a run table and save the posterior."""
    _check_output(output, "fit")
    command = _command(
        "fit",
        runs,
        options=[
            ("-o", output), ("--model", Path(model) if model.endswith(".toml") else model), ("--group", group or []), ("--column", column or []),
            ("--where", where or []), ("--drop-highest-loss", drop_highest_loss or None), ("--max-epochs", max_epochs), ("--flops-unit", flops_unit),
            ("--draws", draws), ("--tune", tune), ("--chains", chains), ("--seed", seed),
            ("--sampler", None if sampler == "nutpie" else sampler), ("--adaptation", adaptation), ("--no-self-check", not self_check),
        ],
    )  # fmt: skip
    from bayescale.sampling import SamplerConfig

    config = SamplerConfig(draws=draws, tune=tune, chains=chains, seed=seed, sampler=sampler, adaptation=adaptation, progress=not quiet)
    selection = {"column": column, "drop_highest_loss": drop_highest_loss, "max_epochs": max_epochs, "where": where, "flops_unit": flops_unit, "strict": strict}
    result = _run(_fit, runs, model, group, config, **selection, output=output, force=force, command=command, self_check=self_check)
    path = _run(result.save, output)
    typer.echo(f"{result.spec.name} fit of {len(result.runs)} runs: {result.diagnostics.message()}")
    typer.echo(result.selection_sentence())
    if result.groups:
        typer.echo(result.pooling_sentence())
    from bayescale.self_check import sentence

    typer.echo(f"self-check: {sentence(result.self_check)}")
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
    scope = "Convergence is judged on every sampled variable, including the internal coordinates not shown above (*_z, and *_tau_*/*_eta_* of pooled groups)."
    from bayescale.self_check import sentence

    disc = result.discrepancy_summary(ci)
    trust = f"discrepancy: tau median {disc['tau_median']:.3g} log loss per decade beyond the runs (prior scale {disc['scale']:g})" if "tau_median" in disc else "discrepancy: off"
    pooling = f"\n{result.pooling_sentence()}" if result.groups else ""
    return f"{result.spec.name} ({result.spec.description}); {len(result.runs)} runs\n{result.selection_sentence()}\n{body}\n\n{result.diagnostics.message()}\n{scope}{pooling}\nself-check: {sentence(result.self_check)}\n{trust}"


@app.command("summary")
def summary_cmd(
    fit_path: Annotated[Path, typer.Argument(metavar="FIT", help="A saved fit (.nc or .zarr).")],
    ci: Annotated[float, typer.Option(help="Interval probability.")] = 0.9,
    format: Annotated[Format, typer.Option("--format", help="table, json or csv.")] = Format.table,
    strict: Annotated[bool, typer.Option(help="Exit with code 7 if the fit did not converge.")] = False,
) -> None:
    """Parameter medians, intervals and convergence diagnostics of a saved fit."""
    from bayescale.fitfile import load_fit

    result = _run(load_fit, fit_path)
    typer.echo(_run(_format_summary, result, ci, format))
    _strict_exit(strict, result)


@app.command("spec")
def spec_cmd(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="A shipped spec name (chinchilla, kaplan, …) or a TOML file.")],
) -> None:
    """Print a spec as the TOML a fit uses, every prior written out (shipped specs list only what differs from the law's defaults)."""
    from bayescale.spec import load_spec

    typer.echo(_run(load_spec, model).to_toml(), nl=False)


def _group_values(pairs: list[str] | None) -> dict[str, str]:
    return _pairs(pairs, "--group-value", "COLUMN=LEVEL", "dataset=web")


GROUP_VALUE_HELP = "COLUMN=LEVEL of a grouped fit (repeatable); levels match ignoring case."
NEW_GROUP_HELP = "For a new group not seen at fit time: population level, with the spread between groups."


def _forecast(fit_path, params, tokens, unique_tokens, flops, group_value, new_group, targets, column, ci, seed):
    from bayescale.errors import RunTableError, check_probability, check_seed
    from bayescale.fitfile import load_fit
    from bayescale.forecasting import forecast_summary

    check_probability(ci)
    check_seed(seed)
    groups = {"group_values": _group_values(group_value), "new_group": new_group}
    if column and targets is None:
        raise RunTableError("--column renames headers of a --targets file; give --targets too")
    result = load_fit(fit_path)
    if targets is not None:
        if any(v is not None for v in (params, tokens, unique_tokens, flops)):
            raise RunTableError("give either --targets or --params/--tokens/--flops, not both")
        return result, forecast_summary(result, targets, ci=ci, seed=seed, rename=_columns(column), **groups)
    columns: dict[str, Any] = {k: v for k, v in (("params", params), ("tokens", tokens), ("unique_tokens", unique_tokens), ("flops", flops)) if v is not None}
    if not columns:
        raise RunTableError("nothing to forecast: give --params and --tokens (or --flops), or --targets TARGETS.csv")
    return result, forecast_summary(result, ci=ci, seed=seed, **groups, **columns)


@app.command("forecast")
def forecast_cmd(
    fit_path: Annotated[Path, typer.Argument(metavar="FIT", help="A saved fit (.nc or .zarr).")],
    params: Annotated[str | None, typer.Option(help="Model size, e.g. 70B.")] = None,
    tokens: Annotated[str | None, typer.Option(help="Training tokens, e.g. 1.4T.")] = None,
    unique_tokens: Annotated[str | None, typer.Option(help="Unique tokens (repeat-aware forms).")] = None,
    flops: Annotated[str | None, typer.Option(help="Training compute (compute form).")] = None,
    group_value: Annotated[list[str] | None, typer.Option(help=GROUP_VALUE_HELP)] = None,
    new_group: Annotated[bool, typer.Option("--new-group", help=NEW_GROUP_HELP)] = False,
    targets: Annotated[Path | None, typer.Option(help="CSV of targets, one row each; all columns kept.")] = None,
    column: Annotated[list[str] | None, typer.Option(help="Rename a header of --targets: CANONICAL=HEADER, e.g. params='Model Size'.")] = None,
    ci: Annotated[float, typer.Option(help="Interval probability.")] = 0.9,
    format: Annotated[Format, typer.Option("--format", help="table, json or csv.")] = Format.table,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write here instead of stdout.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the observation-noise draws.")] = 0,
) -> None:
    """Posterior forecast of the loss of models never trained."""
    _check_output(output)
    result, table = _run(_forecast, fit_path, params, tokens, unique_tokens, flops, group_value, new_group, targets, column, ci, seed)
    if format is Format.json:
        text = json.dumps({"ci": ci, "converged": result.converged, "groups": list(result.groups), "targets": json.loads(table.to_json(orient="records"))}, indent=2)
    elif format is Format.csv or (output is not None and format is Format.table and output.suffix == ".csv"):
        text = table.to_csv(index=False)
    else:
        text = table.to_string(index=False, float_format=lambda v: f"{v:.4g}")
        if "new_group" in table and table["new_group"].any():
            text += "\nnew_group=True: a group not seen at fit time, forecast from the population level (the spread between groups included)."
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
    _check_output(output, "folder")
    _run(_demo, output, draws, tune, chains, seed, quiet)


def _demo(output: Path, draws: int, tune: int, chains: int, seed: int, quiet: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from bayescale.plots import plot_isoflop_profiles
    from bayescale.resources import data_path

    runs_path = data_path("chinchilla_figure4_runs.csv")
    typer.echo(f"Fitting the chinchilla law to {runs_path.name} (Hoffmann et al. 2022, Fig. 4 points; the 5 highest-loss runs dropped as in Besiroglu et al. 2024) ...")
    from bayescale.sampling import SamplerConfig

    result = _fit(runs_path, "chinchilla", None, SamplerConfig(draws=draws, tune=tune, chains=chains, seed=seed, progress=not quiet), drop_highest_loss=5)
    typer.echo("")
    typer.echo(_format_summary(result, 0.9, Format.table))
    from bayescale.forecasting import forecast_table

    row = forecast_table(result.forecast(params=70e9, tokens=1.4e12, seed=seed), 0.9).iloc[0]
    typer.echo(
        f"\nForecast: 70B parameters on 1.4T tokens (Chinchilla's own size): loss {row['loss_median']:.3f}, 90% interval [{row['loss_lo']:.3f}, {row['loss_hi']:.3f}] (mean curve {row['mean_median']:.3f} [{row['mean_lo']:.3f}, {row['mean_hi']:.3f}])"
    )
    output.mkdir(parents=True, exist_ok=True)
    fit_path = result.save(output / "chinchilla_fit.nc")
    figure = output / "chinchilla_isoflops.png"
    plot_isoflop_profiles(result).savefig(figure, dpi=120)
    typer.echo(f"\nSaved the fit to {fit_path} and a figure to {figure}.")
    typer.echo(f"Next: bayescale summary {fit_path} --format json   |   bayescale forecast {fit_path} --params 7B --tokens 140B")


def _group_header(doc: dict[str, Any]) -> str:
    """A first line naming the group a plan is for ("" for fits without groups)."""
    return f"for {doc['group_description']}\n" if doc.get("group_description") else ""


def _allocate(fit_path, flops, unique_tokens, ci, robust_quantile, group_value, new_group):
    from bayescale.allocate import allocation_table, parse_flops
    from bayescale.errors import check_probability
    from bayescale.fitfile import load_fit

    check_probability(ci)
    budgets = parse_flops(flops or [])
    groups = _group_values(group_value)
    result = load_fit(fit_path)
    ds = result.allocate(budgets, unique_tokens=unique_tokens, ci=ci, robust_quantile=robust_quantile, group_values=groups, new_group=new_group)
    return result, _group_doc(result, groups, new_group), allocation_table(ds, ci)


def _group_doc(result, groups: dict[str, str], new_group: bool) -> dict[str, Any]:
    """The JSON fields saying which group a plan is for: ``group``, ``new_group``, ``group_description`` (none without groups)."""
    from bayescale.groups import describe, resolve_request

    resolved = resolve_request(result, groups, new_group)
    if not resolved:
        return {}
    return {"group": {g: level for g, (level, _) in resolved.items()}, "new_group": any(new for _, new in resolved.values()), "group_description": describe(result, resolved)}


@app.command("allocate", cls=_SeveralFlops)
def allocate_cmd(
    fit_path: Annotated[Path, typer.Argument(metavar="FIT", help="A saved fit (.nc or .zarr).")],
    flops: Annotated[list[str] | None, typer.Option(help="FLOP budget(s): --flops 1e21 1e22 1e23, repeated flags, or a log-spaced range LOW:HIGH:COUNT like 1e21:1e25:9.")] = None,
    unique_tokens: Annotated[str | None, typer.Option(help="Unique tokens available (repeat-aware forms, e.g. data_constrained): adds epochs and the loss penalty.")] = None,
    ci: Annotated[float, typer.Option(help="Interval probability.")] = 0.9,
    robust_quantile: Annotated[float | None, typer.Option(help="Robust plan minimises this quantile of loss instead of its posterior mean.")] = None,
    group_value: Annotated[list[str] | None, typer.Option(help=GROUP_VALUE_HELP)] = None,
    new_group: Annotated[bool, typer.Option("--new-group", help=NEW_GROUP_HELP)] = False,
    format: Annotated[Format, typer.Option("--format", help="table, json or csv.")] = Format.table,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write here instead of stdout.")] = None,
) -> None:
    """Compute-optimal parameters and tokens per FLOP budget (C = 6ND), with posterior intervals."""
    _check_output(output)
    result, group, table = _run(_allocate, fit_path, flops, unique_tokens, ci, robust_quantile, group_value, new_group)
    if format is Format.json:
        text = json.dumps({"ci": ci, "converged": result.converged, **group, "budgets": json.loads(table.to_json(orient="records"))}, indent=2)
    elif format is Format.csv:
        text = table.to_csv(index=False)
    else:
        text = _group_header(group) + table.to_string(index=False, float_format=lambda v: f"{v:.4g}")
    _emit(text, output)


def _decide(fit_path, target_loss, prob, flops, params, tokens, unique_tokens, predictive, usd_per_flop, flops_per_gpu_hour, group_value, new_group):
    from bayescale.allocate import parse_flops
    from bayescale.decide import cost, decide
    from bayescale.errors import BayescaleError, check_probability
    from bayescale.fitfile import load_fit
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
    groups = _group_values(group_value)
    result = load_fit(fit_path)
    return decide(
        result, target_loss, prob, flops=budgets, params=n, tokens=d, unique_tokens=u, predictive=predictive,
        usd_per_flop=usd_per_flop, flops_per_gpu_hour=flops_per_gpu_hour, group_values=groups, new_group=new_group,
    )  # fmt: skip


@app.command("decide", cls=_SeveralFlops)
def decide_cmd(
    fit_path: Annotated[Path, typer.Argument(metavar="FIT", help="A saved fit (.nc or .zarr).")],
    target_loss: Annotated[float | None, typer.Option(help="The loss to beat.")] = None,
    prob: Annotated[float, typer.Option(help="Required probability of beating it.")] = 0.9,
    flops: Annotated[list[str] | None, typer.Option(help="Evaluate these budgets' robust plans (several values, repeated flags, or LOW:HIGH:COUNT).")] = None,
    params: Annotated[str | None, typer.Option(help="Evaluate this plan: model size, e.g. 70B (with --tokens).")] = None,
    tokens: Annotated[str | None, typer.Option(help="Evaluate this plan: training tokens, e.g. 1.4T (with --params).")] = None,
    unique_tokens: Annotated[str | None, typer.Option(help="Unique tokens available (repeat-aware forms).")] = None,
    predictive: Annotated[bool, typer.Option("--predictive/--mean-curve", help="Include run-to-run noise (posterior predictive) or only the law's uncertainty.")] = True,
    usd_per_flop: Annotated[float | None, typer.Option(help="Cost per FLOP in USD: adds a usd field.")] = None,
    flops_per_gpu_hour: Annotated[float | None, typer.Option(help="Delivered FLOPs per GPU-hour: adds a gpu_hours field.")] = None,
    group_value: Annotated[list[str] | None, typer.Option(help=GROUP_VALUE_HELP)] = None,
    new_group: Annotated[bool, typer.Option("--new-group", help=NEW_GROUP_HELP)] = False,
    format: Annotated[Format, typer.Option("--format", help="table, json or csv.")] = Format.table,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write here instead of stdout.")] = None,
) -> None:
    """P(loss < target) for a plan or budgets, or the least compute that reaches the target with --prob."""
    _check_output(output)
    doc = _run(_decide, fit_path, target_loss, prob, flops, params, tokens, unique_tokens, predictive, usd_per_flop, flops_per_gpu_hour, group_value, new_group)
    if format is Format.json:
        text = json.dumps(doc, indent=2)
    else:
        import pandas as pd

        table = pd.DataFrame(doc["plans"])
        if format is Format.csv:
            text = table.to_csv(index=False)
        else:
            head = f"P(loss < {doc['target_loss']:g}) ({'posterior predictive' if doc['predictive'] else 'mean curve'}), required {doc['prob_required']:g}; mode: {doc['mode']}"
            text = _group_header(doc) + head + "\n" + table.to_string(index=False, float_format=lambda v: f"{v:.4g}")
            if len(doc["plans"]) == 1:
                text += f"\nP(loss < {doc['target_loss']:g}) = {doc['plans'][0]['prob']:.3g} — {doc['trust']}"
            else:
                text += f"\nEvery probability above: {doc['trust']}"
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
        except Exception as exc:
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
    _check_output(output)
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
    _check_output(output)
    table = _run(_compare, runs, model, column, drop_highest_loss, draws, tune, chains, seed, quiet, by_group, lfo, pooling, group, train_max_flops)
    if format is Format.json:
        text = json.dumps(json.loads(table.to_json(orient="index")), indent=2)
    elif format is Format.csv:
        text = table.to_csv()
    elif lfo:
        cutoffs = ", ".join(f"{c:.3g}" for c in table.attrs["cutoffs"])
        text = (
            table.to_string(float_format=lambda v: f"{v:.4g}") + f"\n\nleave-future-out: fitted on runs with flops <= {cutoffs}, scored on every larger run (log loss). "
            "elpd: held-out log predictive density (higher is better); crps, median_abs_log_error: lower is better; coverage_90: share inside the 90% interval"
        )
    else:
        text = (
            table.to_string(float_format=lambda v: f"{v:.4g}")
            + "\n\n"
            + (
                "elpd_kfold: leave-one-group-out log predictive density (higher is better)"
                if by_group
                else "elpd: PSIS-LOO expected log predictive density of log loss (higher is better); weight: stacking weight; n_bad_k: runs with Pareto k > 0.7"
            )
        )
    _emit(text, output)


@app.command("batch")
def batch_cmd(
    manifest: Annotated[Path, typer.Argument(help="Manifest TOML: [defaults] and [[job]] tables.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Results folder (summary.csv, jobs/<name>/).")] = Path("results"),
    scheduler: Annotated[str, typer.Option(help="'local' (a LocalCluster) or a scheduler address, e.g. tcp://host:8786.")] = "local",
    workers: Annotated[int, typer.Option(help="Worker processes of the LocalCluster.")] = 2,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    strict: Annotated[bool, typer.Option(help="Count jobs whose fit did not converge as failures in the exit code.")] = False,
) -> None:
    """Fit, forecast and allocate many run tables on Dask. Exit code: the number of failed (with --strict, also not converged) jobs."""
    _check_output(output, "folder")
    from bayescale.batch import read_manifest, run_batch

    jobs = _run(read_manifest, manifest)
    with typer.progressbar(length=len(jobs), label="jobs", file=sys.stderr, hidden=quiet) as bar:
        summary = _run(run_batch, manifest, output, scheduler=scheduler, workers=workers, on_done=lambda row: bar.update(1))
    counts = summary["status"].value_counts().to_dict()
    typer.echo(
        f"{len(summary)} jobs: {counts.get('ok', 0)} ok, {counts.get('not_converged', 0)} not converged, {counts.get('skipped', 0)} skipped, {counts.get('failed', 0)} failed; summary in {output / 'summary.csv'}"
    )
    for _, row in summary[summary["status"] == "failed"].iterrows():
        typer.secho(f"failed: {row['job']}: {row['error']}", err=True, fg=typer.colors.RED)
    unconverged = summary["status"].ne("failed") & summary["converged"].eq(False)
    for job in summary.loc[unconverged, "job"]:
        typer.secho(f"not converged: {job}", err=True, fg=typer.colors.YELLOW)
    failed = int((summary["status"] == "failed").sum()) + (int(unconverged.sum()) if strict else 0)
    if failed:
        raise typer.Exit(min(failed, 125))


@app.command("report", cls=_SeveralFlops)
def report_cmd(
    fit_path: Annotated[Path, typer.Argument(metavar="FIT", help="A saved fit (.nc or .zarr).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="HTML file to write.")] = Path("report.html"),
    flops: Annotated[list[str] | None, typer.Option(help="FLOP budget(s) for the headline (several values, repeated flags, or a range 1e21:1e25:5).")] = None,
    target_loss: Annotated[float | None, typer.Option(help="Target loss: report P(loss < target) per plan.")] = None,
    prob: Annotated[float, typer.Option(help="Required probability of reaching the target.")] = 0.9,
    unique_tokens: Annotated[str | None, typer.Option(help="Unique tokens available (repeat-aware plans).")] = None,
    group_value: Annotated[list[str] | None, typer.Option(help=GROUP_VALUE_HELP)] = None,
    new_group: Annotated[bool, typer.Option("--new-group", help=NEW_GROUP_HELP)] = False,
    ci: Annotated[float, typer.Option(help="Interval probability.")] = 0.9,
    compare: Annotated[
        list[Path] | None, typer.Option("--compare", metavar="FIT", help="Other saved fits of the same runs (e.g. another form): the report ranks them with this one by PSIS-LOO. Repeat the flag.")
    ] = None,
) -> None:
    """Write a self-contained HTML uncertainty report for budget decisions."""
    _check_output(output)
    command = _command(
        "report",
        fit_path,
        options=[
            ("-o", output), ("--flops", flops or []), ("--target-loss", target_loss), ("--prob", prob if target_loss is not None and prob != 0.9 else None),
            ("--unique-tokens", unique_tokens), ("--group-value", group_value or []), ("--new-group", new_group), ("--ci", ci if ci != 0.9 else None),
            ("--compare", compare or []),
        ],
    )  # fmt: skip
    path = _run(_report, fit_path, output, flops, target_loss, prob, unique_tokens, ci, group_value, new_group, command, compare or [])
    typer.echo(f"wrote {path}")


def _report(fit_path, output, flops, target_loss, prob, unique_tokens, ci, group_value, new_group, command, others):
    from bayescale.allocate import parse_flops
    from bayescale.errors import check_probability
    from bayescale.fitfile import load_fit
    from bayescale.report import render_report
    from bayescale.validate.compare import compare

    check_probability(ci)
    budgets = parse_flops(flops) if flops else None
    groups = _group_values(group_value)
    result = load_fit(fit_path)
    comparison = compare(_named_fits([(fit_path, result), *((p, load_fit(p)) for p in others)])) if others else None
    return render_report(
        result, output, flops=budgets, target_loss=target_loss, unique_tokens=unique_tokens, prob=prob, ci=ci, group_values=groups, new_group=new_group, command=command, comparison=comparison
    )


def _named_fits(fits):
    """Fits keyed by spec name, or by ``spec (file)`` where two share a spec."""
    names = [f.spec.name for _, f in fits]
    return {(f.spec.name if names.count(f.spec.name) == 1 else f"{f.spec.name} ({Path(p).name})"): f for p, f in fits}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
