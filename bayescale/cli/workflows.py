"""Commands that run whole workflows or print a starting point: ``demo``, ``batch`` (many jobs on Dask) and ``spec``."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Annotated

import typer

from bayescale.cli.core import check_output, run
from bayescale.cli.formatting import Format, format_summary
from bayescale.cli.options import ChainsOpt, DrawsOpt, QuietOpt, SeedOpt, TuneOpt


def spec_cmd(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="A shipped spec name (chinchilla, kaplan, …) or a TOML file.")],
) -> None:
    """Print a spec as the TOML a fit uses, every prior written out (shipped specs list only what differs from the law's defaults)."""
    from bayescale.spec import load_spec

    typer.echo(run(load_spec, model).to_toml(), nl=False)


def demo_cmd(
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the fit and figure.")] = Path("bayescale-demo"),
    draws: DrawsOpt = 1000,
    tune: TuneOpt = 1000,
    chains: ChainsOpt = 4,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Fit Chinchilla to the embedded runs and forecast a 70B model on 1.4T tokens."""
    check_output(output, "folder")
    run(_demo, output, draws, tune, chains, seed, quiet)


def _demo(output: Path, draws: int, tune: int, chains: int, seed: int, quiet: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from bayescale.cli.fit import fit_runs
    from bayescale.paths import write_atomic
    from bayescale.plots import plot_isoflop_profiles
    from bayescale.resources import data_path

    runs_path = data_path("chinchilla_figure4_runs.csv")
    typer.echo(f"Fitting the chinchilla law to {runs_path.name} (Hoffmann et al. 2022, Fig. 4 points; the 5 highest-loss runs dropped as in Besiroglu et al. 2024) ...")
    from bayescale.sampling import SamplerConfig

    result = fit_runs(runs_path, "chinchilla", None, SamplerConfig(draws=draws, tune=tune, chains=chains, seed=seed, progress=not quiet), drop_highest_loss=5)
    typer.echo("")
    typer.echo(format_summary(result, 0.9, Format.table))
    from bayescale.forecasting import forecast_table

    row = forecast_table(result.forecast(params=70e9, tokens=1.4e12, seed=seed), 0.9).iloc[0]
    typer.echo(
        f"\nForecast: 70B parameters on 1.4T tokens (Chinchilla's own size): loss {row['loss_median']:.3f}, 90% interval [{row['loss_lo']:.3f}, {row['loss_hi']:.3f}] (mean curve {row['mean_median']:.3f} [{row['mean_lo']:.3f}, {row['mean_hi']:.3f}])"
    )
    output.mkdir(parents=True, exist_ok=True)
    fit_path = result.save(output / "chinchilla_fit.nc")
    figure = output / "chinchilla_isoflops.png"
    image = io.BytesIO()
    plot_isoflop_profiles(result).savefig(image, format="png", dpi=120)
    write_atomic(figure, image.getvalue())
    typer.echo(f"\nSaved the fit to {fit_path} and a figure to {figure}.")
    typer.echo(f"Next: bayescale summary {fit_path} --format json   |   bayescale forecast {fit_path} --params 7B --tokens 140B")


def batch_cmd(
    manifest: Annotated[Path, typer.Argument(help="Manifest TOML: \\[defaults] and \\[\\[job]] tables.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Results folder (summary.csv, jobs/<name>/).")] = Path("results"),
    scheduler: Annotated[str, typer.Option(help="'local' (a LocalCluster) or a scheduler address, e.g. tcp://host:8786.")] = "local",
    workers: Annotated[int, typer.Option(help="Worker processes of the LocalCluster.")] = 2,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    strict: Annotated[bool, typer.Option(help="Count jobs whose fit did not converge as failures in the exit code.")] = False,
) -> None:
    """Fit, forecast and allocate many run tables on Dask. Exit code: the number of failed (with --strict, also not converged) jobs."""
    check_output(output, "folder", inputs=[manifest])
    from bayescale.batch import run_batch
    from bayescale.manifest import read_manifest

    jobs = run(read_manifest, manifest)
    with typer.progressbar(length=len(jobs), label="jobs", file=sys.stderr, hidden=quiet) as bar:
        summary = run(run_batch, manifest, output, scheduler=scheduler, workers=workers, on_done=lambda row: bar.update(1))
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
