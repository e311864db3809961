"""``bayescale fit``: load the runs as the flags select them, fit, save, and say what was saved."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bayescale.cli.core import check_output, column_map, command_line, health_line, run, strict_exit, visible
from bayescale.cli.options import ChainsOpt, DrawsOpt, QuietOpt, RunsArg, TuneOpt

if TYPE_CHECKING:
    from bayescale.fitting import Fit
    from bayescale.runs import RunTable
    from bayescale.sampling import SamplerConfig
    from bayescale.spec import ModelSpec


#: Help of the row filters (issue 31 §4); parsing and order live in ``bayescale.where`` and ``runs.load_runs``.
WHERE_HELP = (
    "Keep only runs matching COLUMN OP VALUE, OP one of = != < <= > >= (repeatable; quote it: 'params<=1e9'). "
    "= and != take lists (arch=dense,moe); several = on one column mean OR, other conditions AND. "
    "Numeric columns compare as numbers (= within 1e-5 relative, so a printed value matches), text ignoring case. "
    "Filters apply in this order: --where, then --drop-highest-loss, then --max-epochs."
)
FLOPS_UNIT_HELP = "Unit of the table's flops column: FLOPs, GFLOPs, TFLOPs, PFLOPs, EFLOPs or PF-days (default: from a header such as total_gflops, else FLOPs; a column 10x off 6·N·D is refused)."


def fit_runs(
    runs: Path,
    model: str | None,
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
    prior: str | None = None,
) -> Fit:
    """Load the runs as the flags select them, refuse to replace a different saved fit, and fit with ``config``."""
    import bayescale

    spec = model_spec(model, prior)  # a bad --model or --prior fails before the runs are read
    table = bayescale.load_runs(runs, columns=column_map(column), drop_highest_loss=drop_highest_loss, max_epochs=max_epochs, where=where, strict=strict, flops_unit=flops_unit)
    if output is not None and not force:
        _refuse_overwrite(output, table, spec, group, config)
    return bayescale.fit(table, spec, group or None, **config.fit_options(), command=command, self_check=self_check, prior=prior if spec is None else None)


def model_spec(model: str | None, prior: str | None) -> ModelSpec | None:
    """The spec ``--model`` names, under the named prior ``--prior`` when one is given; ``None``
    without ``--model`` (the form is chosen by forecasting, under ``--prior`` too)."""
    from bayescale.literature import check_name
    from bayescale.spec import load_spec

    if model is None:
        if prior is not None:
            check_name(prior, "--prior")  # the candidates take it later, after the runs are read
        return None
    spec = load_spec(model)
    return spec if prior is None else spec.with_prior(prior)


def _refuse_overwrite(output: Path, table: RunTable, spec: ModelSpec | None, group: list[str] | None, config: SamplerConfig) -> None:
    """Before any sampling: refuse to replace an existing file unless it holds this very fit (same runs, spec, groups, seed, settings).

    Without ``--model`` the spec is chosen from the runs, groups and seed compared here, so it is not compared itself."""
    from bayescale.errors import BayescaleError, FitFileError
    from bayescale.fitfile import fit_identity, spec_identity

    if not output.exists():
        return
    advice = "pass --force to replace it, or choose another -o"
    try:
        existing = fit_identity(output)
    except FitFileError:
        raise BayescaleError(f"{output} already exists and is not a bayescale fit: {advice}") from None
    wanted = {
        "runs": table.content_hash(),
        **({} if spec is None else {"model spec": spec_identity(spec.to_json())}),
        "groups": list(group) if group else ([] if spec is None else list(spec.group)),
        "seed": config.seed,
        "sampler": config.sampler,
        "draws": config.draws,
        "tune": config.tune,
        "chains": config.chains,
    }
    differ = [k for k in wanted if existing[k] != wanted[k]]
    if differ:
        raise BayescaleError(f"{output} already holds a different fit (other {', '.join(differ)}): {advice}")


def fit_cmd(
    runs: RunsArg,
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to save the fit (.nc or .zarr).")] = Path("fit.nc"),
    model: Annotated[
        str | None,
        typer.Option(
            help="Shipped spec name or path to a TOML spec. Default: chosen by forecasting your own largest runs from the rest "
            "(chinchilla or farseer_exponent, data_constrained too when runs repeat data; with --group, levels or all pooled)."
        ),
    ] = None,
    prior: Annotated[
        str | None,
        typer.Option(
            help="Named prior for the exponents alpha and beta, the noise sigma and the discrepancy scale: default (the law's) or literature (learned from the public studies bayescale ships)."
        ),
    ] = None,
    group: Annotated[list[str] | None, typer.Option(help="Grouping column (repeatable): partially pooled parameters per group.")] = None,
    column: Annotated[list[str] | None, typer.Option(help="Rename a header: CANONICAL=HEADER, e.g. params='Model Size'.")] = None,
    drop_highest_loss: Annotated[int, typer.Option(help="Drop the k highest-loss runs (Epoch AI dropped 5 Chinchilla points); applied after --where.")] = 0,
    max_epochs: Annotated[float | None, typer.Option(help="Keep only runs with at most this many epochs (tokens / unique_tokens); applied last.")] = None,
    where: Annotated[list[str] | None, typer.Option(help=WHERE_HELP)] = None,
    flops_unit: Annotated[str | None, typer.Option(help=FLOPS_UNIT_HELP)] = None,
    draws: DrawsOpt = 1000,
    tune: TuneOpt = 1000,
    chains: ChainsOpt = 4,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same posterior.")] = 0,
    sampler: Annotated[str, typer.Option(help="nutpie (default; PyTensor's disk-cached Numba kernels), nutpie-cfunc (nutpie's own compile, no per-gradient Python call), pymc or numpyro.")] = "nutpie",
    adaptation: Annotated[str | None, typer.Option(help="nutpie mass matrix: low_rank (default) or diag (default when a --group level is sampled non-centred).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file at -o that holds a different fit.")] = False,
    strict: Annotated[bool, typer.Option(help="Refuse implausible magnitudes in the runs (exit 3) and exit with code 7 if the fit did not converge.")] = False,
    quiet: QuietOpt = False,
    self_check: Annotated[
        bool, typer.Option("--self-check/--no-self-check", help="Backtest the fit on its own largest runs (a quick refit on the rest); its result is stored and shown with every forecast.")
    ] = True,
) -> None:
    """Fit a scaling law to a run table and save the posterior."""
    check_output(output, "fit", inputs=[runs, model if model and model.endswith(".toml") else None])
    command = command_line(
        "fit",
        runs,
        options=[
            ("-o", output), ("--model", Path(model) if model and model.endswith(".toml") else model), ("--prior", prior), ("--group", group or []), ("--column", column or []),
            ("--where", where or []), ("--drop-highest-loss", drop_highest_loss or None), ("--max-epochs", max_epochs), ("--flops-unit", flops_unit),
            ("--draws", draws), ("--tune", tune), ("--chains", chains), ("--seed", seed),
            ("--sampler", None if sampler == "nutpie" else sampler), ("--adaptation", adaptation), ("--no-self-check", not self_check),
        ],
    )  # fmt: skip
    from bayescale.sampling import SamplerConfig

    config = SamplerConfig(draws=draws, tune=tune, chains=chains, seed=seed, sampler=sampler, adaptation=adaptation, progress=not quiet)
    selection = {"column": column, "drop_highest_loss": drop_highest_loss, "max_epochs": max_epochs, "where": where, "flops_unit": flops_unit, "strict": strict}
    from bayescale.recovery import output_state, save_or_recover

    seen = output_state(output)  # what --force agreed to replace; anything written there meanwhile is re-checked
    result = run(fit_runs, runs, model, group, config, **selection, output=output, force=force, command=command, self_check=self_check, prior=prior)

    def recheck() -> None:  # again at save time: another process may have written -o while this fit sampled
        _refuse_overwrite(output, result.runs, model_spec(model, prior), group, config)

    if not quiet:
        from bayescale.progress import phase

        phase(f"saving {output}")
    path = run(save_or_recover, result, output, recheck=recheck, seen=seen if force else None)  # a sampled fit is never lost
    typer.echo(visible(f"{result.spec.name} fit of {len(result.runs)} runs: {result.diagnostics.message(result.info)}"))
    typer.echo(visible(result.selection_sentence()))
    typer.echo(visible(result.model_choice_sentence()))
    if result.groups:
        typer.echo(visible(result.pooling_sentence()))
    from bayescale.documents import sentence

    typer.echo(f"self-check: {sentence(result.self_check)}")
    warning = health_line(result)
    if warning:
        typer.secho(warning, fg=typer.colors.YELLOW)
    typer.echo(f"saved {path}")
    strict_exit(strict, result)
