"""Task-accuracy fits (issue 27): recovery of a known two-step truth, bounded forecasts, saved fits,
clear errors for bad task tables, and the CLI's fit-tasks/forecast/decide on a task fit."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bayescale.errors import BayescaleError, FitFileError, RunTableError
from bayescale.taskmodel import accuracy_link, task_loss, task_table

#: The truth of the synthetic ladder: three tasks, different chance levels and link positions.
TRUTH = {
    "E": np.array([0.5, 0.7, 0.4]),
    "A": np.array([0.35, 0.3, 0.4]),
    "B": np.array([0.3, 0.35, 0.25]),
    "alpha": np.array([0.3, 0.35, 0.28]),
    "beta": np.array([0.3, 0.28, 0.32]),
    "k": np.array([4.0, 5.0, 3.5]),
    "L0": np.array([1.0, 1.3, 0.8]),
    "ceiling": np.array([0.9, 0.95, 0.85]),
}
CHANCE = np.array([0.25, 0.5, 0.2])
TASKS = ("alpha_task", "beta_task", "gamma_task")


def synthetic_runs(seed: int = 0) -> tuple[pd.DataFrame, tuple[float, float]]:
    """A 4-size × 4-multiple ladder per task from ``TRUTH`` with small loss and accuracy noise."""
    rng = np.random.default_rng(seed)
    rows = [(n, 20 * mult * n) for n in (2e8, 4e8, 8e8, 1.6e9) for mult in (1, 2, 5, 10)]
    n, d = np.array(rows).T
    centres = (float(np.log(n).mean()), float(np.log(d).mean()))
    frames = []
    for t, name in enumerate(TASKS):
        p = {k: v[t] for k, v in TRUTH.items()}
        loss = task_loss(np.log(n), np.log(d), p, centres) * np.exp(rng.normal(0, 0.01, n.size))
        mean = accuracy_link(loss, CHANCE[t], p["k"], p["L0"], p["ceiling"])
        acc = rng.beta(mean * 2000, (1 - mean) * 2000)
        frames.append(pd.DataFrame({"task": name, "params": n, "tokens": d, "task_bpb": loss, "accuracy": acc, "chance": CHANCE[t]}))
    return pd.concat(frames, ignore_index=True), centres


@pytest.fixture(scope="module")
def task_fit():
    """A task fit whose posterior is the truth with a little spread (no sampling): exact checks of forecasts, files and the CLI."""
    import xarray as xr

    from bayescale.documents import Diagnostics
    from bayescale.taskfit import TaskFit

    rng = np.random.default_rng(0)
    extra = {"sigma": np.full(3, 0.01), "phi": np.full(3, 2000.0)}
    values = {k: v * np.exp(rng.normal(0, 0.02, (2, 100, 3))) for k, v in {**TRUTH, **extra}.items()}
    values["ceiling"] = np.minimum(values["ceiling"], 0.999)
    posterior = xr.Dataset({k: (("chain", "draw", "task"), v) for k, v in values.items()}, coords={"task": list(TASKS)})
    table = task_table(synthetic_runs()[0])
    return TaskFit(posterior, xr.Dataset(), table, Diagnostics(1.0, 1000.0, 1000.0, 0, 0, 100, 2), seed=1)


@pytest.mark.slow
def test_fit_recovers_the_truth():
    """A real joint fit (nutpie): the 98% posterior interval of each task's exponents, link midpoint and steepness covers the truth
    (at least 10 of these 12), and the mean accuracy at a run inside the ladder is recovered. Slow: ~90 s on 2 shared cores."""
    from bayescale.taskfit import fit_tasks

    task_fit = fit_tasks(synthetic_runs()[0], draws=250, tune=400, chains=2, seed=3)
    covered = 0
    for name in ("alpha", "beta", "k", "L0"):
        draws = task_fit.posterior[name].values.reshape(-1, len(TASKS))
        lo, hi = np.quantile(draws, [0.01, 0.99], axis=0)
        covered += int(np.sum((lo <= TRUTH[name]) & (TRUTH[name] <= hi)))
    assert covered >= 10
    from bayescale.taskplan import chained_draws

    _, centres = synthetic_runs()
    n, d = 8e8, 8e8 * 100
    draws = chained_draws(task_fit, n, d, predictive=False)
    for t in range(len(TASKS)):
        p = {k: v[t] for k, v in TRUTH.items()}
        truth = accuracy_link(task_loss(np.log(n), np.log(d), p, centres), CHANCE[t], p["k"], p["L0"], p["ceiling"])
        lo, hi = np.quantile(draws["accuracy"][:, 0, t], [0.02, 0.98])
        assert lo - 0.01 <= truth <= hi + 0.01


def test_forecasts_stay_between_chance_and_one(task_fit):
    from bayescale.taskplan import FIELDS, forecast_tasks

    table = forecast_tasks(task_fit, [1e8, 7e9, 1e12], [1e9, 4e12, 1e14])
    assert list(table.columns) == list(FIELDS)
    assert np.all(table["accuracy_lo"] <= table["accuracy_median"]) and np.all(table["accuracy_median"] <= table["accuracy_hi"])
    mean = forecast_tasks(task_fit, [1e8, 7e9, 1e12], [1e9, 4e12, 1e14], predictive=False)
    assert np.all(mean["accuracy_lo"] >= mean["chance"]) and np.all(mean["accuracy_hi"] <= 1.0)
    assert np.all((table["accuracy_lo"] >= 0) & (table["accuracy_hi"] <= 1))
    assert table.loc[table["params"] == 1e8, "extrapolation_decades"].iloc[0] > 0


def test_save_and_load_round_trip(task_fit, tmp_path):
    from bayescale.taskfit import is_task_fit, load_task_fit
    from bayescale.taskplan import forecast_tasks

    path = task_fit.save(tmp_path / "tasks.nc")
    assert is_task_fit(path)
    loaded = load_task_fit(path)
    assert loaded.tasks == TASKS
    pd.testing.assert_frame_equal(forecast_tasks(loaded, 7e9, 4e12), forecast_tasks(task_fit, 7e9, 4e12))


def test_decide_answers_probability_and_compute(task_fit):
    from bayescale.taskplan import decide_task

    doc = decide_task(task_fit, "alpha_task", 0.5, params=7e9, tokens=4e12)
    assert 0.0 <= doc["prob"] <= 1.0
    needed = decide_task(task_fit, "alpha_task", 0.4, prob=0.5)["compute_needed"]
    assert needed is not None and needed["prob"] >= 0.5
    with pytest.raises(BayescaleError, match="not in this fit"):
        decide_task(task_fit, "nope", 0.5)
    with pytest.raises(BayescaleError, match="accuracy-target"):
        decide_task(task_fit, "alpha_task", 1.5)


def test_bad_task_tables_are_clear_errors():
    runs, _ = synthetic_runs()
    with pytest.raises(RunTableError, match="no task column 'task'"):
        task_table(runs.drop(columns="task"))
    bad = runs.copy()
    bad.loc[4, "accuracy"] = 1.2
    with pytest.raises(RunTableError, match=r"row 5, column 'accuracy': value 1.2 is not a proportion"):
        task_table(bad)
    with pytest.raises(RunTableError, match="task 'mmlu' has no runs"):
        task_table(runs, tasks=("alpha_task", "mmlu"))
    with pytest.raises(RunTableError, match="no loss column 'bpb'"):
        task_table(runs, loss="bpb")


def test_load_refuses_an_ordinary_fit_and_garbage(tmp_path, saved_fit_path):
    from bayescale.taskfit import is_task_fit, load_task_fit

    assert not is_task_fit(saved_fit_path)
    with pytest.raises(FitFileError, match="not a task fit"):
        load_task_fit(saved_fit_path)
    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"not a fit")
    with pytest.raises(FitFileError):
        load_task_fit(junk)


def test_cli_forecast_and_decide_on_a_task_fit(task_fit, tmp_path):
    from bayescale.cli import app

    path = task_fit.save(tmp_path / "tasks.nc")
    runner = CliRunner()
    out = runner.invoke(app, ["forecast", str(path), "--params", "7B", "--tokens", "4T", "--format", "json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert [t["task"] for t in doc["targets"]] == list(TASKS)
    assert {"accuracy_median", "accuracy_lo", "accuracy_hi", "loss_median", "loss_lo", "loss_hi"} <= set(doc["targets"][0])
    csv = runner.invoke(app, ["forecast", str(path), "--params", "7B", "--tokens", "4T", "--format", "csv"])
    assert csv.stdout.splitlines()[0].startswith("task,params,tokens,accuracy_median")
    out = runner.invoke(app, ["decide", str(path), "--task", "alpha_task", "--accuracy-target", "0.5", "--params", "7B", "--tokens", "4T", "--format", "json"])
    assert out.exit_code == 0, out.output
    assert 0 <= json.loads(out.stdout)["prob"] <= 1
    out = runner.invoke(app, ["decide", str(path), "--task", "nope", "--accuracy-target", "0.5"])
    assert out.exit_code != 0 and "not in this fit" in out.output


def test_cli_fit_tasks_errors(tmp_path):
    from bayescale.cli import app

    runs, _ = synthetic_runs()
    path = tmp_path / "runs.csv"
    runs.drop(columns="task").to_csv(path, index=False)
    out = CliRunner().invoke(app, ["fit-tasks", str(path), "-o", str(tmp_path / "f.nc")])
    assert out.exit_code == 3 and "no task column 'task'" in out.output


def test_fit_tasks_is_public():
    import bayescale
    from bayescale.taskfit import fit_tasks, load_task_fit

    assert bayescale.fit_tasks is fit_tasks and bayescale.load_task_fit is load_task_fit


def test_loss_commands_name_a_task_fit(task_fit, tmp_path):
    from bayescale.fitfile import load_fit

    path = task_fit.save(tmp_path / "tasks.nc")
    with pytest.raises(FitFileError, match="task-accuracy fit"):
        load_fit(path)


def test_summary_of_a_task_fit(task_fit, tmp_path):
    """Per task and pooled parameters with intervals around the median, the ladder, diagnostics; text, JSON and CSV."""
    import dataclasses

    from bayescale.cli import app
    from bayescale.tasksummary import POOLED_LABEL, summary_dict, summary_frame

    rng = np.random.default_rng(1)
    pooled = {name: (("chain", "draw"), rng.normal(0, 0.1, (2, 100))) for name in ("alpha_mu", "alpha_tau")}
    fit = dataclasses.replace(task_fit, posterior=task_fit.posterior.assign(pooled))
    frame = summary_frame(fit, ci=0.8)
    assert set(frame["task"]) == {*TASKS, POOLED_LABEL}
    assert np.all((frame["lo"] <= frame["median"]) & (frame["median"] <= frame["hi"]))
    alpha = frame[(frame["task"] == "beta_task") & (frame["parameter"] == "alpha")].iloc[0]
    assert alpha["lo"] <= TRUTH["alpha"][1] * 1.05 and alpha["hi"] >= TRUTH["alpha"][1] * 0.95
    assert np.all(np.isfinite(frame[["rhat", "ess_bulk", "ess_tail"]].to_numpy()))
    doc = summary_dict(fit)
    assert doc["kind"] == "tasks" and doc["tasks"] == list(TASKS) and set(doc["pooled"]) == {"alpha_mu", "alpha_tau"}
    assert doc["ladder"]["runs_per_task"] == {t: 16 for t in TASKS} and doc["ladder"]["params"] == [2e8, 1.6e9]
    assert doc["ladder"]["chance"]["beta_task"] == 0.5 and doc["converged"]

    path = task_fit.save(tmp_path / "tasks.nc")
    runner = CliRunner()
    out = runner.invoke(app, ["summary", str(path)])
    assert out.exit_code == 0, out.output
    assert "gamma_task (chance 0.2, 16 runs)" in out.stdout and "convergence: converged" in out.stdout and "ladder: params 2e+08–1.6e+09" in out.stdout
    out = runner.invoke(app, ["summary", str(path), "--format", "json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert set(doc["parameters"]["alpha_task"]) == {"E", "A", "B", "alpha", "beta", "sigma", "k", "L0", "ceiling", "phi"}
    assert doc["pooled"] == {}
    csv = runner.invoke(app, ["summary", str(path), "--format", "csv"])
    assert csv.stdout.splitlines()[0] == "task,parameter,median,lo,hi,rhat,ess_bulk,ess_tail"


def test_report_of_a_task_fit(task_fit, tmp_path):
    """``report`` on a task fit: every section, a figure and a forecast row per task and budget, strict embedded JSON, loss-only flags refused."""
    import re

    from bayescale.cli import app
    from bayescale.taskreport import SECTIONS

    path = task_fit.save(tmp_path / "tasks.nc")
    html_path = tmp_path / "r.html"
    runner = CliRunner()
    out = runner.invoke(app, ["report", str(path), "-o", str(html_path), "--flops", "1e22", "--flops", "1e23", "--ci", "0.8"])
    assert out.exit_code == 0, out.output
    html = html_path.read_text()
    for section in (*SECTIONS, *(f"task-{i + 1}" for i in range(len(TASKS)))):
        assert f'id="{section}"' in html
    assert html.count("data:image/png;base64,") == len(TASKS)
    doc = json.loads(re.search(r'<script type="application/json" id="headline-data">(.*?)</script>', html, re.S).group(1))
    rows = doc["forecasts"]
    assert doc["ci"] == 0.8 and len(rows) == 2 * len(TASKS)
    assert sorted(r["flops"] for r in rows) == pytest.approx([1e22] * len(TASKS) + [1e23] * len(TASKS))
    assert all(r["accuracy_lo"] <= r["accuracy_median"] <= r["accuracy_hi"] and r["tokens"] == pytest.approx(20 * r["params"]) for r in rows)
    assert "--ci 0.8" in html and "NOT CONVERGED" not in html
    out = runner.invoke(app, ["report", str(path), "-o", str(tmp_path / "r2.html"), "--target-loss", "2"])
    assert out.exit_code != 0 and "--target-loss: for loss fits" in out.output


def _rewrite(path, out, edit, rehash=True):
    """The task fit at ``path`` with ``edit(tree)`` applied and (``rehash``) its content hash recomputed: an edit that passes the hash."""
    import xarray as xr

    from bayescale.fitformat import content_hash

    with xr.open_datatree(path, engine="h5netcdf") as lazy:
        tree = lazy.load()
    edit(tree)
    if rehash:
        tree.attrs.pop("content_hash", None)
        tree.attrs["content_hash"] = content_hash(tree)
    tree.to_netcdf(out, engine="h5netcdf")
    return out


@pytest.mark.parametrize("kind", ["dev_zero", "fifo"])
def test_task_zarr_with_a_linked_or_special_chunk_is_refused(task_fit, tmp_path, kind):
    import os

    from bayescale.taskfit import load_task_fit

    store = task_fit.save(tmp_path / "tasks.zarr")
    assert load_task_fit(store).tasks == TASKS
    chunk = next(p for p in sorted(store.rglob("*")) if p.is_file() and p.parent.name == "alpha")
    chunk.unlink()
    chunk.symlink_to("/dev/zero") if kind == "dev_zero" else os.mkfifo(chunk)
    with pytest.raises(FitFileError, match="link, device or FIFO"):
        load_task_fit(store)


def test_task_fit_file_checks(task_fit, tmp_path):
    """Foreign groups, devices, size bound, hash and every attribute's type: one clear ``FitFileError`` each."""
    import h5py

    from bayescale.taskfit import load_task_fit

    path = task_fit.save(tmp_path / "tasks.nc")
    with pytest.raises(FitFileError, match="not a fit file"):
        load_task_fit("/dev/zero")
    with pytest.raises(FitFileError, match="no such fit file"):
        load_task_fit(tmp_path / "missing.nc")
    with pytest.raises(FitFileError, match="more than a fit may hold"):
        load_task_fit(path, max_bytes=100)
    foreign = tmp_path / "foreign.nc"
    with h5py.File(foreign, "w") as handle:
        handle.attrs["bayescale_kind"] = "tasks"
        for i in range(300):
            handle.create_group(f"g{i}").create_dataset("x", data=[1.0])
    with pytest.raises(FitFileError, match=r"group\(s\) .*a task fit never has"):
        load_task_fit(foreign)
    with pytest.raises(FitFileError, match="content hash mismatch"):
        load_task_fit(_rewrite(path, tmp_path / "edited.nc", lambda tree: tree.attrs.__setitem__("seed", 2), rehash=False))

    def set_attr(name, value):
        return lambda tree: tree.attrs.__setitem__(name, value)

    for i, (edit, match) in enumerate(
        [
            (set_attr("bayescale_task_format", "1"), "bayescale_task_format must be an integer"),
            (set_attr("seed", "one"), "seed must be an integer"),
            (set_attr("tasks", json.dumps(["alpha_task", "alpha_task", "x"])), "tasks must be a list of distinct task names"),
            (set_attr("settings", "[1]"), "settings must be a JSON object"),
            (set_attr("tasks", json.dumps(["alpha_task", "beta_task"])), "hold tasks the fit does not list|one value per task"),
        ]
    ):
        with pytest.raises(FitFileError, match=match):
            load_task_fit(_rewrite(path, tmp_path / f"e{i}.nc", edit))

    def bad_accuracy(tree):
        tree["runs"]["accuracy"].values[3] = 1.5

    with pytest.raises(FitFileError, match=r"stored runs are not a valid task table: .*row 4, column 'accuracy'"):
        load_task_fit(_rewrite(path, tmp_path / "acc.nc", bad_accuracy))
