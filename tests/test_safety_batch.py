"""Batch (issue 19 critical 3, issue 16): injective job folders, typed manifests, not_converged status, quiet Dask."""

from __future__ import annotations

import logging
import re
import warnings

import pandas as pd
import pytest

from bayescale import OutputPathError
from bayescale.batch import _quiet_dask, run_batch, run_job
from bayescale.errors import ManifestError
from bayescale.manifest import read_manifest


def _manifest(tmp_path, body: str, frame: pd.DataFrame | None = None):
    if frame is not None:
        frame.to_csv(tmp_path / "runs.csv", index=False)
    path = tmp_path / "m.toml"
    path.write_text(body)
    return path


def _jobs(*names: str) -> str:
    return "".join(f'[[job]]\nname = "{n}"\nruns = "runs.csv"\n' for n in names)


@pytest.mark.parametrize(("a", "b"), [("a/b", "a__b"), ("x y", "x_y"), ("Web", "web"), ("a:b", "a?b")])
def test_colliding_job_folders_are_refused_naming_both(tmp_path, a, b):
    path = _manifest(tmp_path, _jobs(a, b))
    with pytest.raises(ManifestError, match=re.escape(f"job '{b}' and job '{a}' would both write")):
        read_manifest(path)


@pytest.mark.parametrize("name", ["", ".", "..", "/", " ", "/../", "x" * 300])
def test_names_that_cannot_be_a_folder(tmp_path, name):
    with pytest.raises(ManifestError, match="cannot name a job folder"):
        read_manifest(_manifest(tmp_path, _jobs(name)))


def test_split_values_that_collide(tmp_path, synthetic_frame):
    frame = synthetic_frame.copy()
    frame["config"] = ["x y" if i % 2 else "x_y" for i in range(len(frame))]
    path = _manifest(tmp_path, '[[job]]\nname = "s"\nruns = "runs.csv"\nsplit_by = "config"\n', frame)
    with pytest.raises(ManifestError, match="'s/x_y' and job 's/x y' would both write to jobs/s__x_y/"):
        read_manifest(path)


def test_parent_traversal_stays_inside(tmp_path, synthetic_frame):
    frame = synthetic_frame.copy()
    frame["config"] = ".."
    path = _manifest(tmp_path, '[[job]]\nname = "s"\nruns = "runs.csv"\nsplit_by = "config"\n', frame)
    (job,) = read_manifest(path)
    assert job.folder_name == "s__.." and "/" not in job.folder_name


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("forecast = 5", "job 1: forecast must be a list of tables"),
        ('forecast = ["x"]', "job 1: forecast must be a list of tables"),
        ("forecast = [{ params = [1] }]", r"forecast\[0\] must be a table"),
        ('allocate = ["x"]', r"allocate\[0\] must be a number"),
        ("allocate = 5", "allocate must be a list"),
        ('drop_highest_loss = "x"', "drop_highest_loss must be a whole number"),
        ("drop_highest_loss = 1.5", "drop_highest_loss must be a whole number"),
        ('max_epochs = "x"', "max_epochs must be a number"),
        ("runs = 5", "runs must be a string"),
        ("runs = { a = 1 }", "runs must be a string"),
        ("group = 5", "group must be a column name or a list"),
        ("columns = 5", "columns must be a table"),
        ("where = 5", "where must be a table"),
        ("model = 5", "model must be a string"),
        ('draws = "many"', "draws must be a whole number"),
        ("seed = -1", "seed must be a whole number >= 0"),
        ("split_by = 5", "split_by must be a string"),
        ('split_by = "nope"', "split_by = 'nope': .* has no such column"),
    ],
)
def test_mistyped_job_keys_name_the_key(tmp_path, synthetic_frame, text, match):
    body = f'[[job]]\nname = "a"\n{text}\n' + ('runs = "runs.csv"\n' if not text.startswith("runs") else "")
    with pytest.raises(ManifestError, match=match):
        read_manifest(_manifest(tmp_path, body, synthetic_frame))


@pytest.mark.parametrize(
    ("text", "match"),
    [("job = 5", "job must be a list of \\[\\[job\\]\\] tables"), ("job = [1, 2]", "job must be a list"), ("defaults = 5", "defaults must be a table"), ("name = 5\n[[job]]", "unknown key")],
)
def test_mistyped_manifest_tables(tmp_path, text, match):
    with pytest.raises(ManifestError, match=match):
        read_manifest(_manifest(tmp_path, text + "\n"))


def test_results_folder_that_is_a_file(tmp_path, synthetic_frame):
    path = _manifest(tmp_path, _jobs("a"), synthetic_frame)
    (tmp_path / "results").write_text("not a folder")
    with pytest.raises(OutputPathError, match="not a folder"):
        run_batch(path, tmp_path / "results")


def test_unconverged_job_status_and_forecast_inputs(tmp_path, synthetic_frame):
    body = '[[job]]\nname = "tiny"\nruns = "runs.csv"\ndraws = 20\ntune = 20\nchains = 2\nforecast = [{ params = "7B", tokens = "140B" }]\n'
    (job,) = read_manifest(_manifest(tmp_path, body, synthetic_frame))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        row = run_job(job, tmp_path / "out")
    assert row["converged"] is False and row["status"] == "not_converged"
    assert row["forecast0_params"] == "7B" and row["forecast0_tokens"] == "140B"
    assert row["forecast0_loss_median"] > 0
    keys = list(row)
    assert keys.index("forecast0_params") < keys.index("forecast0_loss_median")


def test_dask_loggers_are_quiet_during_a_batch():
    nanny = logging.getLogger("distributed.nanny")
    before = nanny.level
    with _quiet_dask():
        assert not nanny.isEnabledFor(logging.WARNING)
    assert nanny.level == before


def test_split_values_in_other_scripts_keep_their_own_folders(tmp_path, synthetic_frame):
    frame = synthetic_frame.copy()
    frame["ds"] = [("代码", "网页", "données")[i % 3] for i in range(len(frame))]
    path = _manifest(tmp_path, '[[job]]\nname = "s"\nruns = "runs.csv"\nsplit_by = "ds"\n', frame)
    folders = sorted(job.folder_name for job in read_manifest(path))
    assert folders == sorted(["s__代码", "s__网页", "s__données"])


@pytest.mark.slow
def test_a_fit_saved_on_a_dask_worker_process(tmp_path):
    """Found by the adversarial pass: on a Dask worker process xarray locked the in-memory netCDF write
    with a distributed lock named by a BytesIO the scheduler never saw, and every batch job failed
    ("Semaphore or Lock ... not known"). A job's fit is now saved with process-local locks."""
    from dask.distributed import Client, LocalCluster

    from bayescale.batch import save_job_fit

    from .safetyfit import complete_fake_fit

    with _quiet_dask(), LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
        saved = client.submit(save_job_fit, complete_fake_fit(), tmp_path / "job", pure=False).result()
    assert saved == tmp_path / "job" / "fit.nc" and saved.is_file()
