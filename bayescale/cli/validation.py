"""Commands that judge laws on held-out runs: ``backtest`` (leave-future-out) and ``compare`` (PSIS-LOO, LFO, by group)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from bayescale.cli.core import check_output, column_map, run
from bayescale.cli.formatting import Format, emit, json_text, table_text
from bayescale.cli.options import ChainsOpt, ColumnOpt, DrawsOpt, DropHighestLossOpt, FormatOpt, ModelOpt, OutputOpt, QuietOpt, RunsArg, SeedOpt, TuneOpt

#: Bounds of ``backtest``'s loops: each sweep cutoff is a whole fit, each bootstrap resample a point fit.
MAX_SWEEP = 20
MAX_BOOTSTRAP = 10_000


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

    table = bayescale.load_runs(runs, columns=column_map(column), drop_highest_loss=drop_highest_loss)
    kwargs = {"draws": draws, "tune": tune, "chains": chains} if method == "bayes" else {"bootstrap": bootstrap}
    return [backtest(table, model, c, method=method, group=group or None, seed=seed, **kwargs) for c in _cutoffs(cutoffs, sweep, table)]


def backtest_cmd(
    runs: RunsArg,
    model: ModelOpt = "chinchilla",
    train_max_flops: Annotated[list[str] | None, typer.Option(help="Fit on runs with flops <= X, forecast the rest (repeatable).")] = None,
    sweep: Annotated[int, typer.Option(min=0, max=MAX_SWEEP, help="Instead of --train-max-flops: N cutoffs at flops quantiles 40%..90%.")] = 0,
    method: Annotated[Method, typer.Option(help="bayes (posterior) or point (Huber fit + bootstrap).")] = Method.bayes,
    group: Annotated[list[str] | None, typer.Option(help="Grouping column (repeatable), Bayesian fits only.")] = None,
    column: ColumnOpt = None,
    drop_highest_loss: DropHighestLossOpt = 0,
    draws: DrawsOpt = 1000,
    tune: TuneOpt = 1000,
    chains: ChainsOpt = 4,
    bootstrap: Annotated[int, typer.Option(min=2, max=MAX_BOOTSTRAP, help="Bootstrap resamples of the point fit (an interval needs at least 2).")] = 200,
    seed: SeedOpt = 0,
    format: FormatOpt = Format.table,
    output: OutputOpt = None,
) -> None:
    """Leave-future-out backtest: fit on small-compute runs, score forecasts of the larger ones."""
    check_output(output, inputs=[runs, model if model.endswith(".toml") else None], stdout=True)
    import pandas as pd

    rows = run(_backtest, runs, model, group, column, drop_highest_loss, train_max_flops, sweep, method.value, draws, tune, chains, seed, bootstrap)
    if format is Format.json:
        text = json_text(rows[0] if len(rows) == 1 else rows)
    elif format is Format.csv:
        text = pd.DataFrame(rows).to_csv(index=False)
    else:
        text = table_text(pd.DataFrame(rows))
    emit(text, output)


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
    table = bayescale.load_runs(runs, columns=column_map(column), drop_highest_loss=drop_highest_loss)
    if by_group:
        return kfold_by_group(table, models, by_group, draws=draws, tune=tune, chains=chains, seed=seed)
    if lfo:
        cutoffs = _cutoffs(train_max_flops, 0, table) if train_max_flops else None
        return compare_lfo(table, candidates, group=group or None, cutoff=cutoffs, seed=seed, draws=draws, tune=tune, chains=chains)
    fits = {name: fit(table, spec, group or None, draws=draws, tune=tune, chains=chains, seed=seed, progress=not quiet) for name, spec in candidates.items()}
    return compare(fits)


def compare_cmd(
    runs: RunsArg,
    model: Annotated[list[str] | None, typer.Option(help="Spec to fit and compare (repeat: --model chinchilla --model kaplan).")] = None,
    column: ColumnOpt = None,
    drop_highest_loss: DropHighestLossOpt = 0,
    draws: DrawsOpt = 1000,
    tune: TuneOpt = 1000,
    chains: ChainsOpt = 4,
    seed: SeedOpt = 0,
    format: FormatOpt = Format.table,
    output: OutputOpt = None,
    quiet: QuietOpt = False,
    by_group: Annotated[str | None, typer.Option("--by-group", help="Instead of PSIS-LOO: leave each level of COLUMN out in turn and refit (slow).")] = None,
    lfo: Annotated[bool, typer.Option("--lfo", help="Instead of PSIS-LOO: fit on the smaller runs, rank by forecasts of the larger ones.")] = False,
    pooling: Annotated[list[str] | None, typer.Option(help="What varies by --group (repeatable, crossed with --model): levels, all, none or a comma list like E,A,B.")] = None,
    group: Annotated[list[str] | None, typer.Option(help="Grouping column (repeatable) for every candidate.")] = None,
    train_max_flops: Annotated[list[str] | None, typer.Option(help="--lfo cutoff(s): fit on runs with flops <= X (default: the 70% flops quantile).")] = None,
) -> None:
    """Rank laws and pooling structures: PSIS-LOO by default, leave-future-out forecasts with --lfo."""
    check_output(output, inputs=[runs, *(m for m in model or [] if m.endswith(".toml"))], stdout=True)
    table = run(_compare, runs, model, column, drop_highest_loss, draws, tune, chains, seed, quiet, by_group, lfo, pooling, group, train_max_flops)
    if format is Format.json:
        text = json_text({str(k): row for k, row in table.to_dict(orient="index").items()})
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
    emit(text, output)
