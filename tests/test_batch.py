"""Batch: isolation of failures, resumability, equality with one-by-one runs.

The fast test runs the batch on an in-process Dask cluster (one thread); the 2-worker LocalCluster
of separate processes (each compiles its own models) is in the slow set."""

import os
import warnings

import pandas as pd
import pytest
from typer.testing import CliRunner

from bayescale.batch import run_batch, run_job
from bayescale.cli import app
from bayescale.errors import BayescaleError
from bayescale.manifest import read_manifest

OPTIONS = "draws = 120\ntune = 120\nchains = 2\nseed = 5\n"


@pytest.fixture(scope="module")
def manifest(synthetic_frame, tmp_path_factory):
    folder = tmp_path_factory.mktemp("batch")
    frame = synthetic_frame.copy()
    frame["config"] = ["wide" if i % 2 else "narrow" for i in range(len(frame))]
    frame.to_csv(folder / "runs.csv", index=False)
    (folder / "broken.csv").write_text("params,tokens,loss\n1e8,1e9,oops\n")
    text = f"""[defaults]
model = "chinchilla"
{OPTIONS}
[[job]]
name = "all"
runs = "runs.csv"
forecast = [{{ params = "7B", tokens = "140B" }}]

[[job]]
name = "broken"
runs = "broken.csv"

[[job]]
name = "sweeps"
runs = "runs.csv"
split_by = "config"
"""
    path = folder / "manifest.toml"
    path.write_text(text)
    return path


def test_batch_in_process_isolates_failures_and_resumes(manifest, tmp_path):
    """Dask in this process: a broken table fails alone, the sweeps succeed, a rerun skips them."""
    from dask.distributed import LocalCluster

    text = manifest.read_text()
    small = manifest.with_name("small.toml")
    small.write_text(text[: text.index("[[job]]")] + text[text.index('[[job]]\nname = "broken"') :])  # broken + sweeps
    out = tmp_path / "results"
    with pytest.MonkeyPatch.context() as mp, LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        mp.setenv("OMP_NUM_THREADS", "3")  # the caller's own settings: one set, one unset
        mp.delenv("NUMBA_NUM_THREADS", raising=False)
        caller = dict(os.environ)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            first = run_batch(small, out, scheduler=cluster.scheduler_address)
            assert dict(os.environ) == caller  # the workers' thread settings are not left in the caller's process
            again = CliRunner().invoke(app, ["batch", str(small), "-o", str(out), "--scheduler", cluster.scheduler_address, "-q"])
    statuses = dict(zip(first["job"], first["status"], strict=True))
    assert statuses["broken"] == "failed"
    for job in ("sweeps/narrow", "sweeps/wide"):  # short test fits: converged or not, the status must say which
        assert statuses[job] == ("ok" if first.set_index("job").loc[job, "converged"] else "not_converged")
    assert "row 1 (line 2), column 'loss'" in first.set_index("job").loc["broken", "error"]
    assert (first.set_index("job").loc[["sweeps/narrow", "sweeps/wide"], "n_runs"] == 32).all()
    assert again.exit_code == 1 and "failed: broken" in again.stderr, again.output  # the exit code counts failed jobs
    rerun = pd.read_csv(out / "summary.csv")
    assert dict(zip(rerun["job"], rerun["status"], strict=True)) == {"broken": "failed", "sweeps/narrow": "skipped", "sweeps/wide": "skipped"}


@pytest.fixture(scope="module")
def batch_results(manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    return out, run_batch(manifest, out, workers=2)


def test_manifest_expands_split_by(manifest):
    names = [job.name for job in read_manifest(manifest)]
    assert names == ["all", "broken", "sweeps/narrow", "sweeps/wide"]


def test_manifest_selects_rows_like_the_cli(tmp_path):
    from bayescale.resources import data_path

    (tmp_path / "m.toml").write_text(
        f'[[job]]\nname = "c4"\nruns = "{data_path("datablations_c4_runs.csv")}"\nmodel = "data_constrained_two_stage"\nwhere = {{ published_fit = true }}\nmax_epochs = 50\nadaptation = "diag"\n'
    )
    (job,) = read_manifest(tmp_path / "m.toml")
    table = job.load()
    assert 0 < len(table) < 182
    assert table.data["published_fit"].str.lower().eq("true").all() and table.data["epochs"].max() <= 50
    assert job.options["adaptation"] == "diag"


@pytest.mark.slow
def test_batch_records_failure_and_succeeds_elsewhere(batch_results):
    out, summary = batch_results
    assert list(summary.columns[:6]) == ["job", "status", "error", "converged", "n_runs", "seconds"]
    status = dict(zip(summary["job"], summary["status"], strict=True))
    fitted = {job: "ok" if converged else "not_converged" for job, converged in zip(summary["job"], summary["converged"], strict=True)}
    assert status == {**fitted, "broken": "failed"}
    broken = summary.set_index("job").loc["broken"]
    assert "row 1 (line 2), column 'loss'" in broken["error"]
    on_disk = pd.read_csv(out / "summary.csv")
    assert list(on_disk["job"]) == list(summary["job"])
    assert (out / "jobs" / "sweeps__narrow" / "fit.nc").is_file()


@pytest.mark.slow
def test_batch_matches_one_by_one(batch_results, manifest, tmp_path):
    _, summary = batch_results
    job = next(j for j in read_manifest(manifest) if j.name == "all")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alone = run_job(job, tmp_path)
    row = summary.set_index("job").loc["all"]
    assert alone["status"] == row["status"] and alone["status"] in ("ok", "not_converged")
    assert alone["forecast0_loss_median"] == pytest.approx(row["forecast0_loss_median"], rel=1e-12)
    assert alone["n_runs"] == row["n_runs"]


@pytest.mark.slow
def test_batch_resumes_and_never_trusts_partial_results(batch_results, manifest):
    out, _ = batch_results
    (out / "jobs" / "sweeps__wide" / "result.json").write_text('{"key": "x", "complete": false}')
    again = run_batch(manifest, out, workers=2)
    status = dict(zip(again["job"], again["status"], strict=True))
    assert {k: v for k, v in status.items() if k != "sweeps/wide"} == {"all": "skipped", "broken": "failed", "sweeps/narrow": "skipped"}
    assert status["sweeps/wide"] in ("ok", "not_converged")


@pytest.mark.slow
def test_cli_exit_code_counts_failures(manifest, tmp_path):
    result = CliRunner().invoke(app, ["batch", str(manifest), "-o", str(tmp_path / "r"), "--workers", "1", "-q"])
    assert result.exit_code == 1, result.output
    assert "failed: broken" in result.stderr


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[[jobs]]\nname='a'\n", "unknown key"),
        ("", "no \\[\\[job\\]\\] entries"),
        ("[[job]]\nruns='x.csv'\n", "needs a name"),
        ("[[job]]\nname='a'\nruns='x'\nmodle='c'\n", "unknown key\\(s\\) modle"),
    ],
)
def test_bad_manifests(tmp_path, text, match):
    path = tmp_path / "m.toml"
    path.write_text(text)
    with pytest.raises(BayescaleError, match=match):
        read_manifest(path)


def test_grouped_jobs_name_their_group_in_the_manifest(tmp_path):
    """group_values/new_group reach the job (and its content key); a wrong type names the key."""
    from bayescale.errors import BayescaleError
    from bayescale.manifest import read_manifest

    manifest = tmp_path / "m.toml"
    manifest.write_text('[[job]]\nname = "a"\nruns = "r.csv"\ngroup = "dataset"\ngroup_values = { dataset = "web" }\n[[job]]\nname = "b"\nruns = "r.csv"\ngroup = "dataset"\nnew_group = true\n')
    a, b = read_manifest(manifest)
    assert dict(a.group_values) == {"dataset": "web"} and not a.new_group
    assert b.new_group and not b.group_values
    assert a.key("h", "{}") != b.key("h", "{}")
    manifest.write_text('[[job]]\nname = "a"\nruns = "r.csv"\nnew_group = "yes"\n')
    with pytest.raises(BayescaleError, match="new_group must be true or false"):
        read_manifest(manifest)
