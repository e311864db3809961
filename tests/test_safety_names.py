"""Headers of any characters (W&B exports: ``run/name``, ``eval/paloma/macro_loss``; spaces, unicode,
dots, a leading digit) are read, stored safely and shown as the user wrote them (issue 31 §2)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bayescale import ConvergenceWarning, fit, load_runs
from bayescale.errors import RunTableError
from bayescale.fitting import load_fit
from bayescale.names import RESERVED_DIMS, original_name, stored_name
from bayescale.resources import data_path

GROUP = "data set/ü.v"
HEADERS = {"params": "model/params", "tokens": "train/tokens", "loss": "eval/paloma/macro_loss"}


@given(st.text(max_size=20))
def test_stored_names_are_storable_and_invertible(name):
    stored = stored_name(name)
    assert "/" not in stored and stored not in ("", ".", "..") and not stored.startswith("__")
    assert all(ch.isprintable() for ch in stored)
    assert original_name(stored) == name


@given(st.text(max_size=8), st.text(max_size=8))
def test_stored_names_are_one_to_one(a, b):
    assert (stored_name(a) == stored_name(b)) == (a == b)


def test_ordinary_names_are_kept():
    for name in ("params", "dataset", "Model Size", "Größe", "1st col", "emoji😀"):
        assert stored_name(name) == name


@pytest.fixture(scope="module")
def export_csv(grouped_frame, tmp_path_factory):
    """The grouped runs as a W&B export writes them: every header with '/', a space, unicode or a dot."""
    frame = grouped_frame.rename(columns={"dataset": GROUP, **{k: v for k, v in HEADERS.items()}})
    frame.insert(0, "run/name", [f"run-{i}" for i in range(len(frame))])
    frame["1st.col"] = "x"
    path = tmp_path_factory.mktemp("export") / "wandb export.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def export_fit(export_csv, tmp_path_factory):
    runs = load_runs(export_csv, columns=HEADERS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = fit(runs, "chinchilla", group=GROUP, draws=150, tune=150, chains=2, seed=1, self_check=False)
    return result, result.save(tmp_path_factory.mktemp("fits") / "export.nc")


def test_fit_with_slashed_headers_saves_and_loads_with_the_users_names(export_fit):
    result, path = export_fit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        loaded = load_fit(path)
    assert loaded.groups == (GROUP,)
    for column in ("run/name", GROUP, "1st.col"):
        assert column in loaded.runs.data.columns
    assert list(loaded.runs.data["run/name"])[:2] == ["run-0", "run-1"]
    assert f"E[{GROUP}=web]" in loaded.summary().index
    assert np.allclose(loaded.posterior["E"].values, result.posterior["E"].values)


def test_forecast_of_a_slashed_group_names_the_users_column(export_fit):
    _, path = export_fit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        loaded = load_fit(path)
    table = loaded.forecast(params=[1e10], tokens=[2e11], group_values={GROUP: "code"}, seed=0)
    assert GROUP in table.coords and np.all(np.isfinite(table["loss"].values))


@pytest.mark.slow
def test_cli_fit_of_a_wandb_export_saves(export_csv, tmp_path):
    from typer.testing import CliRunner

    from bayescale.cli import app

    out = tmp_path / "fit.nc"
    args = ["fit", str(export_csv), "-o", str(out), "--group", GROUP, "--model", "chinchilla", "--draws", "100", "--tune", "100", "--chains", "2", "--no-self-check", "-q"]
    args += [f"--column={k}={v}" for k, v in HEADERS.items()]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "saved" in result.output and out.is_file()
    summary = CliRunner().invoke(app, ["summary", str(out), "--format", "json"])
    assert summary.exit_code == 0
    assert f"E[{GROUP}=books]" in json.loads(summary.stdout[summary.stdout.index("{") :])["parameters"]


def test_unstorable_table_is_refused_before_sampling(monkeypatch):
    """Whatever makes the fit file unwritable (here xarray refusing the tree) fails in a second, before any sampling."""
    import xarray as xr

    def refuse(*args, **kwargs):
        raise ValueError("Given variables have names containing the '/' character")

    def no_sampling(*args, **kwargs):
        raise AssertionError("sampled a fit that could not be saved")

    monkeypatch.setattr(xr.DataTree, "to_netcdf", refuse)
    monkeypatch.setattr("bayescale.fitting.sample", no_sampling)
    with pytest.raises(RunTableError, match=r"could not be saved \(ValueError: Given variables.*nothing was sampled"):
        fit(data_path("chinchilla_figure4_runs.csv"), "chinchilla", draws=50, tune=50, chains=1)


@pytest.mark.parametrize("name", RESERVED_DIMS)
def test_group_named_like_a_fit_dimension_is_refused(name):
    frame = pd.read_csv(data_path("chinchilla_figure4_runs.csv"))
    frame[name] = "a"
    with pytest.raises(RunTableError, match="its own dimension"):
        fit(frame, "chinchilla", group=name, draws=50, tune=50, chains=1)
