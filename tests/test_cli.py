"""The CLI contract: command names, flags, JSON/CSV fields, one-line errors and exit codes."""

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from bayescale.cli import app
from bayescale.errors import FitFileError, ModelSpecError, RunTableError, SamplerError
from bayescale.fitting import load_fit

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def cli_fit(synthetic_frame, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    runs = folder / "runs.csv"
    frame = synthetic_frame.rename(columns={"params": "Model Size"})
    frame.to_csv(runs, index=False)
    out = folder / "fit.nc"
    result = invoke("fit", runs, "--column", "params=Model Size", "--draws", 150, "--tune", 150, "--chains", 2, "--seed", 3, "-q", "-o", out)
    assert result.exit_code == 0, result.output
    assert f"saved {out}" in result.output
    return out


def test_summary_json_contract(saved_fit_path):
    result = invoke("summary", saved_fit_path, "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["ci"] == 0.9
    assert set(doc["parameters"]) >= {"E", "A", "B", "alpha", "beta", "sigma"}
    assert set(doc["parameters"]["E"]) >= {"median", "lo", "hi"}
    assert set(doc["diagnostics"]) >= {"rhat_max", "ess_bulk_min", "divergences"}
    assert doc["converged"] is doc["diagnostics"]["converged"]  # a bool, whatever this machine's sampler did


def test_summary_table(saved_fit_path):
    result = invoke("summary", saved_fit_path, "--ci", 0.8)
    assert result.exit_code == 0
    assert "lo80%" in result.stdout and "alpha" in result.stdout and "converged" in result.stdout


def test_forecast_json_contract(saved_fit_path):
    result = invoke("forecast", saved_fit_path, "--params", "70B", "--tokens", "1.4T", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["ci"] == 0.9
    (target,) = doc["targets"]
    for field in ("params", "tokens", "loss_median", "loss_lo", "loss_hi", "mean_median", "mean_lo", "mean_hi"):
        assert field in target
    assert target["params"] == 7e10
    assert target["loss_lo"] < target["loss_median"] < target["loss_hi"]
    assert 1.85 < target["loss_median"] < 2.1


def test_forecast_targets_csv_keeps_columns(saved_fit_path, tmp_path):
    targets = tmp_path / "targets.csv"
    pd.DataFrame({"name": ["small", "big"], "params": ["1B", "7B"], "tokens": ["20B", "140B"]}).to_csv(targets, index=False)
    out = tmp_path / "out.csv"
    result = invoke("forecast", saved_fit_path, "--targets", targets, "-o", out)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert list(table.columns) == ["name", "params", "tokens", "loss_median", "loss_lo", "loss_hi", "mean_median", "mean_lo", "mean_hi"]
    assert list(table["name"]) == ["small", "big"]
    assert table.loc[0, "loss_median"] > table.loc[1, "loss_median"]


def test_cli_fit_and_forecast_round_trip(cli_fit):
    result = invoke("forecast", cli_fit, "--params", "1B", "--tokens", "20B", "--format", "csv")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("params,tokens,loss_median")


def test_cli_fit_records_its_command(cli_fit):
    """The fit keeps the command that made it (paths as given, never the machine's absolute ones) for the report."""
    import warnings

    from bayescale import load_fit

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        command = load_fit(cli_fit).info.command
    assert command.startswith("bayescale fit runs.csv -o fit.nc --column 'params=Model Size'")  # no --model: the fit chose it, and chooses the same again
    assert "--draws 150 --tune 150 --chains 2 --seed 3" in command
    assert str(cli_fit.parent) not in command


@pytest.mark.parametrize(
    ("args", "code", "match"),
    [
        (["fit", "{missing}"], RunTableError.exit_code, "no such file"),
        (["fit", "{bad}"], RunTableError.exit_code, "row 2 (line 3), column 'loss'"),
        (["fit", "{good}", "--model", "nonsense"], ModelSpecError.exit_code, "unknown model 'nonsense'"),
        (["fit", "{good}", "--column", "params"], RunTableError.exit_code, "expected CANONICAL=HEADER"),
        (["fit", "{good}", "--where", "dataset"], RunTableError.exit_code, "expected COLUMN OP VALUE"),
        (["fit", "{good}", "--where", "dataset=c4"], RunTableError.exit_code, "cannot select rows by column 'dataset'"),
        (["fit", "{good}", "--adaptation", "dense"], SamplerError.exit_code, "unknown adaptation 'dense'"),
        (["summary", "{missing}"], FitFileError.exit_code, "no such fit file"),
        (["summary", "{bad}"], FitFileError.exit_code, "cannot read as a bayescale fit"),
        (["forecast", "{fit}", "--params", "big", "--tokens", "1T"], RunTableError.exit_code, "cannot read 'big'"),
        (["forecast", "{fit}"], RunTableError.exit_code, "nothing to forecast"),
        (["forecast", "{fit}", "--params", "1B", "--tokens", "1T", "--ci", "1.5"], 2, "strictly between 0 and 1"),
    ],
)
def test_cli_errors_are_one_line(args, code, match, tmp_path, saved_fit_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("params,tokens,loss\n1e8,1e9,3\n1e8,2e9,oops\n")
    good = tmp_path / "good.csv"
    good.write_text("params,tokens,loss\n1e8,1e9,3\n")
    names = {"missing": tmp_path / "missing.csv", "bad": bad, "good": good, "fit": saved_fit_path}
    result = invoke(*[a.format(**names) for a in args])
    assert result.exit_code == code, result.output
    assert match in result.stderr
    assert "Traceback" not in result.output
    assert result.stderr.count("error:") == 1


def test_help_lists_every_command():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("demo", "fit", "summary", "forecast", "allocate", "decide", "report", "batch", "backtest", "compare"):
        assert command in result.stdout, command


def test_debug_flag_shows_the_traceback(tmp_path):
    missing = tmp_path / "missing.nc"
    plain = invoke("summary", missing)
    assert plain.exit_code == FitFileError.exit_code and not isinstance(plain.exception, FitFileError), plain.output
    assert plain.stderr.startswith("error: ") and "Traceback" not in plain.output
    debug = invoke("--debug", "summary", missing)
    assert isinstance(debug.exception, FitFileError), debug.output  # raised, so a traceback is shown
    assert "no such fit file" in str(debug.exception)


DEMO_FORECAST = re.compile(r"Forecast: 70B parameters on 1\.4T tokens .*: loss ([\d.]+), 90% interval \[([\d.]+), ([\d.]+)\]")


def check_demo_output(result, folder, draws, chains):
    """The demo's summary, forecast line and saved files; returns (median, lo, hi) of the forecast."""
    assert result.exit_code == 0, result.output
    assert "240 runs" in result.stdout
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.split()}
    assert {"E", "alpha", "beta", "A", "B", "sigma"} <= set(rows)
    assert 1.7 < float(rows["E"][1]) < 1.9  # Epoch AI's 95% interval is 1.769-1.871
    median, lo, hi = map(float, DEMO_FORECAST.search(result.stdout).groups())
    assert lo < median < hi
    saved = load_fit(folder / "chinchilla_fit.nc")
    assert (saved.posterior.sizes["chain"], saved.posterior.sizes["draw"]) == (chains, draws)
    assert (folder / "chinchilla_isoflops.png").stat().st_size > 10_000
    return median, lo, hi


def test_demo_fits_and_forecasts(chinchilla_fit, tmp_path):
    """``bayescale demo`` (the README's headline command) with few draws; ``chinchilla_fit`` has
    already compiled the same-shaped model, so the demo samples from the cache."""
    folder = tmp_path / "demo"
    result = invoke("demo", "-o", folder, "--draws", 300, "--tune", 300, "--chains", 2, "-q")
    median, lo, hi = check_demo_output(result, folder, draws=300, chains=2)
    assert 1.9 < median < 2.05 and hi - lo < 0.3  # 70B is ~2.5 decades beyond the runs: the discrepancy widens it


@pytest.mark.slow
def test_demo_full_size_matches_the_readme(tmp_path):
    """The demo as the README prints it (4 chains x 1000 draws): the README's forecast to 0.01."""
    folder = tmp_path / "demo"
    median, lo, hi = check_demo_output(invoke("demo", "-o", folder, "-q"), folder, draws=1000, chains=4)
    printed = DEMO_FORECAST.search((Path(__file__).resolve().parents[1] / "README.md").read_text())
    assert printed, "the README no longer prints the demo's forecast line"
    assert (median, lo, hi) == pytest.approx(tuple(map(float, printed.groups())), abs=0.01)


def test_same_seed_identical_across_api_and_cli(cli_fit, synthetic_frame):
    """The CLI fit (seed 3) and the API fit with the same settings give identical posteriors and forecasts."""
    import warnings

    import xarray as xr

    from bayescale import ConvergenceWarning, fit, load_fit

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        api = fit(synthetic_frame, draws=150, tune=150, chains=2, seed=3)
        cli = load_fit(cli_fit)
    xr.testing.assert_identical(api.posterior, cli.posterior)
    xr.testing.assert_identical(api.forecast(params="7B", tokens="140B"), cli.forecast(params="7B", tokens="140B"))
