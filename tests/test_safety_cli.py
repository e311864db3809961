"""CLI bounds and output hygiene (issue 32): bad option values give one line and exit 2, output stays strict and safe."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from bayescale.cli import app
from bayescale.resources import data_path

CHINCHILLA = str(data_path("chinchilla_figure4_runs.csv"))


def invoke(args: list[str]):
    return CliRunner().invoke(app, args)


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--sweep", "-1"], "--sweep"),
        (["--sweep", "1000"], "--sweep"),
        (["--method", "point", "--bootstrap", "100000000"], "--bootstrap"),
        (["--method", "point", "--bootstrap", "0"], "--bootstrap"),
    ],
)
def test_backtest_loop_sizes_are_bounded(args, flag):
    result = invoke(["backtest", CHINCHILLA, *args])
    assert result.exit_code == 2
    assert flag in result.output and "Traceback" not in result.output


def test_point_backtest_needs_two_resamples():
    from bayescale.errors import BayescaleError
    from bayescale.validate import backtest

    with pytest.raises(BayescaleError, match="at least 2 bootstrap"):
        backtest(CHINCHILLA, "chinchilla", 1e20, method="point", bootstrap=0)


def _one_job_manifest(tmp_path):
    import shutil

    shutil.copy(CHINCHILLA, tmp_path / "runs.csv")
    path = tmp_path / "batch.toml"
    path.write_text('[[job]]\nname = "a"\nruns = "runs.csv"\n')
    return path


@pytest.mark.parametrize(
    ("args", "match"),
    [(["--workers", "0"], "at least 1 worker"), (["--workers", "-3"], "at least 1 worker"), (["--scheduler", "not a url"], "neither 'local' nor a scheduler address")],
)
def test_batch_cluster_options_are_checked_before_any_work(tmp_path, args, match):
    result = invoke(["batch", str(_one_job_manifest(tmp_path)), "-o", str(tmp_path / "out"), "-q", *args])
    assert result.exit_code == 2
    assert match in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_batch_workers_are_capped_per_core():
    import os

    from bayescale.batch import WORKERS_PER_CORE, _cluster_size

    most = WORKERS_PER_CORE * (os.cpu_count() or 1)
    with pytest.warns(UserWarning, match="per CPU core"):
        assert _cluster_size("local", most + 100) == most
    assert _cluster_size("tcp://127.0.0.1:8786", 0) == 0  # an external cluster brings its own workers


@pytest.mark.parametrize("nested", ["[" * 5000 + "]" * 5000, "{a = " * 5000 + "1" + "}" * 5000])
def test_deeply_nested_toml_is_a_spec_or_manifest_error(tmp_path, nested):
    from bayescale.errors import ManifestError, ModelSpecError
    from bayescale.manifest import read_manifest
    from bayescale.spec import load_spec

    path = tmp_path / "deep.toml"
    path.write_text(f"x = {nested}\n")
    with pytest.raises(ModelSpecError, match="nested too deeply"):
        load_spec(path)
    with pytest.raises(ManifestError, match="nested too deeply"):
        read_manifest(path)


@pytest.mark.parametrize("name", ["loss_median", "mean_lo", "loss"])
def test_targets_with_an_output_column_are_refused_naming_it(tmp_path, name):
    from bayescale.errors import RunTableError
    from bayescale.forecasting import target_table
    from bayescale.spec import load_spec

    class Ungrouped:  # target_table reads only the spec and the groups of a fit
        spec = load_spec("chinchilla")
        groups = ()

    path = tmp_path / "targets.csv"
    path.write_text(f"params,tokens,{name}\n7e9,1.4e11,2.1\n")
    with pytest.raises(RunTableError, match=f"column '{name}' is a column the forecast writes"):
        target_table(Ungrouped(), str(path))


def test_allocate_far_beyond_the_runs_warns_and_refuses_absurd_budgets():
    from bayescale.allocate import allocate
    from bayescale.errors import BayescaleError, ExtrapolationWarning
    from tests.fakefit import fake_fit

    fit = fake_fit({"E": 1.7, "A": 400.0, "B": 410.0, "alpha": 0.34, "beta": 0.28})
    largest = float(fit.runs.data["flops"].max())
    with pytest.warns(ExtrapolationWarning, match="compute of the largest fitted run"):
        allocate(fit, largest * 1e7)
    for budget in (1e5, 1e40):
        with pytest.raises(BayescaleError, match="outside any sensible range"):
            allocate(fit, budget)


def test_cli_json_is_strict():
    """Non-finite numbers are null with a ``NAME_reason`` beside them (a document's own reason wins)."""
    import json

    import numpy as np
    import pandas as pd

    from bayescale.cli.formatting import json_text

    doc = {"a": float("inf"), "b": [np.float32("nan"), -np.inf, 1.5, np.float64(2.0)], "c": (np.int64(3), np.bool_(True)), "d": "Infinity", "e": np.nan, "e_reason": "fixed", "f": pd.NA}
    text = json_text(doc)
    assert not re.search(r"[:\[,]\s*-?(NaN|Infinity)\b", text)  # no bare constant (inside a reason's words is fine)
    parsed = json.loads(text, parse_constant=lambda name: pytest.fail(f"non-strict JSON constant {name}"))
    assert {k: parsed[k] for k in "abcdef"} == {"a": None, "b": [None, None, 1.5, 2.0], "c": [3, True], "d": "Infinity", "e": None, "f": None}
    assert "infinite" in parsed["a_reason"] and parsed["b_reason"].startswith("2 of 4 entries are null") and parsed["e_reason"] == "fixed"
    assert "c_reason" not in parsed and "d_reason" not in parsed


def test_control_characters_are_escaped_on_the_terminal(capsys):
    from bayescale.cli.core import one_line
    from bayescale.cli.formatting import emit, visible

    hostile = "web\x1b]0;pwned\x07\x9b31m\rname"
    assert visible(hostile) == "web\\x1b]0;pwned\\x07\\x9b31m\\x0dname"
    assert visible("a\tb\nc é 数据") == "a\tb\nc é 数据"  # layout and letters stay as they are
    emit(f"level {hostile}", None)
    printed = capsys.readouterr().out
    assert "\x1b" not in printed and "\x07" not in printed and "\\x1b]0;pwned" in printed
    assert "\x1b" not in one_line(f"unknown group level {hostile}")


@pytest.fixture(scope="module")
def small_fit_path(tmp_path_factory):
    from tests.safetyfit import complete_fake_fit

    return complete_fake_fit(draws=5).save(tmp_path_factory.mktemp("stdout") / "fit.nc")


def test_dash_output_is_stdout_for_text_and_refused_for_files(tmp_path, small_fit_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke(["forecast", str(small_fit_path), "--params", "7B", "--tokens", "140B", "--format", "json", "-o", "-"])
    assert result.exit_code == 0, result.output
    assert '"loss_median"' in result.stdout and not (tmp_path / "-").exists()
    refused = invoke(["report", str(small_fit_path), "-o", "-"])
    assert refused.exit_code == 2 and "cannot go to stdout" in refused.output
    assert not (tmp_path / "-").exists()


def test_spec_text_round_trips_and_a_bom_is_read(tmp_path):
    from bayescale.spec import load_spec

    text = load_spec("chinchilla").to_toml()
    named = text.replace('name = "chinchilla"', 'name = "chinchilla 🚀 données\\u007f"', 1)
    assert named != text
    spec = load_spec(_write(tmp_path / "named.toml", named))
    again = load_spec(_write(tmp_path / "again.toml", spec.to_toml()))
    assert again.name == spec.name == "chinchilla 🚀 données\x7f"
    assert load_spec(_write(tmp_path / "bom.toml", "\ufeff" + text)).name == "chinchilla"


def _write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_batch_help_shows_the_manifest_tables():
    result = invoke(["batch", "--help"])
    assert "[defaults]" in result.output and "[[job]]" in result.output


def test_a_manifest_with_a_bom_is_read(tmp_path):
    from bayescale.manifest import read_manifest

    path = _one_job_manifest(tmp_path)
    path.write_text("\ufeff" + path.read_text(), encoding="utf-8")
    assert [job.name for job in read_manifest(path)] == ["a"]


def test_forecast_unique_tokens_on_a_law_without_repeats_is_refused(small_fit_path):
    result = invoke(["forecast", str(small_fit_path), "--params", "7B", "--tokens", "140B", "--unique-tokens", "10B"])
    assert result.exit_code == 3 and "repeat-aware law" in result.output


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_uncomputable_ess_is_said_not_blamed_on_nobody():
    from bayescale.result import check_convergence
    from tests.fakefit import fake_fit

    fit = fake_fit({"E": 1.7, "A": 400.0, "B": 410.0, "alpha": 0.34, "beta": 0.28}, draws=4)  # constant draws
    problems = " ".join(check_convergence(fit.tree, ["E", "A"]).problems)
    assert "ESS" in problems and "at fault: )" not in problems and "not computable" in problems


@pytest.mark.parametrize("kind", ["dev_zero", "fifo"])
def test_zarr_fit_with_a_linked_or_special_chunk_is_refused(tmp_path, kind):
    import os

    from bayescale.errors import FitFileError
    from bayescale.fitfile import load_fit
    from tests.safetyfit import complete_fake_fit

    store = complete_fake_fit(draws=5).save(tmp_path / "fit.zarr")
    chunk = next(p for p in sorted(store.rglob("*")) if p.is_file() and p.parent.name == "E")
    chunk.unlink()
    if kind == "dev_zero":
        chunk.symlink_to("/dev/zero")
    else:
        os.mkfifo(chunk)
    with pytest.raises(FitFileError, match="link, device or FIFO"):
        load_fit(store)


@pytest.mark.parametrize(
    ("flag", "value", "match"), [("--usd-per-flop", "1e308", "usd overflows at 1e[+]22 FLOPs with usd_per_flop=1e[+]308"), ("--flops-per-gpu-hour", "1e-308", "gpu_hours overflows")]
)
def test_cost_rates_that_overflow_are_refused_not_printed_as_inf(saved_fit_path, flag, value, match):
    """Found by the adversarial pass: `decide --usd-per-flop 1e308` printed usd inf (JSON: null) with exit 0."""
    result = CliRunner().invoke(app, ["decide", str(saved_fit_path), "--target-loss", "2", "--flops", "1e22", flag, value])
    assert result.exit_code == 2 and re.search(match, result.stderr), result.output
