"""Batch fitting and forecasting on Dask: one job per run table (or per value of a column).

A manifest (``bayescale.manifest``) lists jobs; each job fits, forecasts and allocates, and
writes its results under ``RESULTS/jobs/<name>/``; ``RESULTS/summary.csv`` has one row per job.
Jobs are isolated (a failure is recorded, never fatal) and resumable (a job whose inputs, spec
and options hash to the key stored in its complete ``result.json`` is skipped).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from bayescale.errors import BayescaleError
from bayescale.manifest import Job, read_manifest
from bayescale.paths import check_not_input, check_output_path, write_atomic
from bayescale.strictjson import finite_json, json_text

SUMMARY_FIRST = ["job", "status", "error", "converged", "n_runs", "seconds"]
#: Environment for worker processes: one thread per BLAS/OpenMP/Numba pool, so chains do not oversubscribe cores.
WORKER_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "BAYESCALE_NUM_THREADS": "1"}


#: A Dask scheduler address: protocol://address (inproc:// ones have a path), or host / host:port (IPv6 hosts in brackets).
_ADDRESS = re.compile(r"(?:tcp|tls|inproc|ucx|ws|wss)://\S+|(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")
#: Most worker processes per CPU core: more only adds start-up cost and memory, each worker being single-threaded.
WORKERS_PER_CORE = 2


def _cluster_size(scheduler: str, workers: int) -> int:
    """Check ``scheduler`` and ``workers`` before any work; return the workers to start (capped at ``WORKERS_PER_CORE`` per core, with a warning)."""
    if scheduler != "local" and not _ADDRESS.fullmatch(scheduler):
        raise BayescaleError(f"scheduler {scheduler!r} is neither 'local' nor a scheduler address such as tcp://host:8786")
    if scheduler == "local" and (int(workers) != workers or workers < 1):
        raise BayescaleError(f"workers={workers!r}: a local cluster needs at least 1 worker process")
    most = WORKERS_PER_CORE * (os.cpu_count() or 1)
    if scheduler == "local" and workers > most:
        warnings.warn(f"workers={workers} exceeds {WORKERS_PER_CORE} per CPU core; starting {most}", UserWarning, stacklevel=3)
        return most
    return int(workers)


def _previous(folder: Path, key: str) -> dict[str, Any] | None:
    marker = folder / "result.json"
    if not marker.is_file() or not (folder / "fit.nc").is_file():
        return None
    try:
        result = json.loads(marker.read_text())
    except (json.JSONDecodeError, OSError):
        return None
    return result if result.get("key") == key and result.get("complete") is True else None


def run_job(job: Job, results: str | Path) -> dict[str, Any]:
    """Fit, forecast and allocate one job; never raises — failures become a ``failed`` row."""
    folder = Path(results) / "jobs" / job.folder_name
    start = time.perf_counter()
    row: dict[str, Any] = {"job": job.name, "status": "failed", "error": "", "converged": None, "n_runs": None, "seconds": None}
    try:
        from bayescale.fitting import fit
        from bayescale.forecasting import forecast_table
        from bayescale.sampling import SamplerConfig
        from bayescale.spec import load_spec

        table = job.load()
        row["n_runs"] = len(table)
        spec = load_spec(job.model)
        key = job.key(table.content_hash(), spec.to_json())
        previous = _previous(folder, key)
        if previous is not None:
            return {**previous["row"], "status": "skipped"}
        with warnings.catch_warnings(), _local_file_locks():  # fit writes a scratch netCDF too (check_storable)
            warnings.simplefilter("ignore")
            config = SamplerConfig(**job.options, cores=_worker_threads())
            result = fit(table, spec, job.group or None, **config.fit_options())
        marker = folder / "result.json"
        save_job_fit(result, folder)
        row["converged"] = result.converged
        for i, target in enumerate(job.forecast):
            ds = result.forecast(pd.DataFrame([dict(target)]), group_values=dict(job.group_values) or None, new_group=job.new_group)
            table_f = forecast_table(ds, 0.9).iloc[0]
            row.update({f"forecast{i}_{k}": v for k, v in target.items()})  # inputs beside outputs
            for col in ("loss_median", "loss_lo", "loss_hi", "mean_median"):
                row[f"forecast{i}_{col}"] = float(table_f[col])
        if job.allocate:
            _allocate_columns(result, job, row)
        row["status"] = "ok" if result.converged else "not_converged"
        row["seconds"] = round(time.perf_counter() - start, 3)
        row = finite_json(row)  # a number that is not finite is null with its reason, in result.json and summary.csv alike
        write_atomic(marker, json_text({"key": key, "complete": True, "row": row}))
        return row
    except Exception as exc:
        row["error"] = str(exc) if isinstance(exc, BayescaleError) else f"{type(exc).__name__}: {exc} ({traceback.format_exc(limit=2).splitlines()[-1]})"
        row["seconds"] = round(time.perf_counter() - start, 3)
        return row


@contextmanager
def _local_file_locks() -> Iterator[None]:
    """On a Dask worker, xarray would lock each netCDF write with a *distributed* lock named by the
    file, and a fit is written to memory first (no name the scheduler knows: every job failed with
    "Semaphore or Lock ... not known"); a job's files are its own, so process-local locks suffice."""
    import dask

    with dask.config.set(scheduler="synchronous"):
        yield


def save_job_fit(result: Any, folder: Path) -> Path:
    """Save a job's fit as ``folder/fit.nc`` (removing its old ``result.json`` first: an old marker
    must never vouch for new, partial output), with process-local file locks (``_local_file_locks``)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").unlink(missing_ok=True)
    with _local_file_locks():
        return result.save(folder / "fit.nc")


def warm_worker(jobs: list[Job]) -> float:
    """Import what a job needs and compile one model per (model, group, sampler) among ``jobs``; returns seconds.

    Run once on every worker before jobs are scheduled, so no job pays imports and compilation
    (the compiled models stay in ``sampling._COMPILED`` and come from PyTensor's disk cache when
    another process compiled them). Failures are left for the job itself to report.
    """
    start = time.perf_counter()
    import arviz_stats  # noqa: F401 - convergence checks

    import bayescale.allocate
    import bayescale.forecasting  # noqa: F401
    from bayescale.fitting import prepare

    seen = set()
    for job in jobs:
        kind = (job.model, job.group, job.options.get("sampler", "nutpie"))
        if kind in seen:
            continue
        seen.add(kind)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                prepare(job.load(), job.model, job.group or None, sampler=kind[2])
        except Exception:  # a bad job fails (and is recorded) when it runs
            continue
    return time.perf_counter() - start


def _worker_threads() -> int | None:
    """Threads of the Dask worker running this job (chains run on at most that many cores)."""
    try:
        from dask.distributed import get_worker

        return int(get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        return None  # not on a Dask worker: fit's own default


def _allocate_columns(result, job: Job, row: dict[str, Any]) -> None:
    from bayescale.allocate import allocate, allocation_table

    table = allocation_table(allocate(result, list(job.allocate), group_values=dict(job.group_values) or None, new_group=job.new_group), 0.9)
    for i, rec in enumerate(table.to_dict("records")):
        for col in ("flops", "params_median", "tokens_median", "loss_median"):
            row[f"allocate{i}_{col}"] = float(rec[col])


def run_batch(
    manifest: str | Path,
    results: str | Path,
    scheduler: str = "local",
    workers: int = 2,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> pd.DataFrame:
    """Run every job of ``manifest`` on Dask and write ``results/summary.csv``.

    ``scheduler="local"`` starts a ``LocalCluster`` of ``workers`` single-threaded processes;
    ``tcp://host:8786`` connects to an existing scheduler. ``on_done`` is called per finished job.
    """
    from dask.distributed import Client, LocalCluster

    workers = _cluster_size(scheduler, workers)
    results = check_output_path(results, "folder", inputs=[manifest])
    jobs = read_manifest(manifest)
    _check_outputs_are_not_inputs(manifest, jobs, results)
    results.mkdir(exist_ok=True)
    rows: dict[str, dict[str, Any]] = {}
    with _quiet_dask(), _environ(WORKER_THREAD_ENV):  # inherited by the worker processes, restored here after
        cluster = None
        if scheduler == "local":
            cluster = LocalCluster(n_workers=min(workers, len(jobs)), threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.CRITICAL)
            client = Client(cluster)
        else:
            try:
                client = Client(scheduler)
            except (OSError, ValueError) as exc:  # unreachable or refused address (TimeoutError is an OSError)
                raise BayescaleError(f"cannot connect to scheduler {scheduler!r}: {exc}") from None
        _run_all(client, cluster, jobs, results, rows, on_done)
    summary = summary_frame([rows[j.name] for j in jobs])
    write_atomic(results / "summary.csv", summary.to_csv(index=False))
    return summary


def _check_outputs_are_not_inputs(manifest: str | Path, jobs: list[Job], results: Path) -> None:
    """Before any job runs: no file the batch writes (``summary.csv``, a job's ``fit.nc`` or ``result.json``) may be the manifest or a run table."""
    inputs = [manifest, *(job.runs for job in jobs)]
    check_not_input(results / "summary.csv", inputs)
    for job in jobs:
        for name in ("fit.nc", "result.json"):
            check_not_input(results / "jobs" / job.folder_name / name, inputs)


@contextmanager
def _environ(updates: Mapping[str, str]):
    """Set ``updates`` in ``os.environ`` for the block (worker processes started in it inherit them), then restore the caller's values."""
    saved = {k: os.environ.get(k) for k in updates}
    os.environ.update(updates)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def _quiet_dask():
    """Silence distributed's own logging (e.g. "nanny ... still alive after 4.0 seconds, killing")."""
    loggers = [logging.getLogger(name) for name in ("distributed", "distributed.nanny", "distributed.worker", "distributed.scheduler", "distributed.core", "distributed.batched")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _run_all(client, cluster, jobs: list[Job], results: Path, rows: dict[str, dict[str, Any]], on_done) -> None:
    """Submit every job, collect rows as they finish, then shut the cluster down."""
    from dask.distributed import as_completed

    try:
        # every worker imports and compiles before the first job; one that cannot fails its jobs, which are recorded
        with contextlib.suppress(Exception):
            client.run(warm_worker, jobs)
        futures = {client.submit(run_job, job, str(results.resolve()), key=f"job-{i}-{job.folder_name}", pure=False): job for i, job in enumerate(jobs)}
        for future in as_completed(futures):
            job = futures[future]
            try:
                row = future.result()
            except Exception as exc:
                row = {"job": job.name, "status": "failed", "error": f"worker failure: {type(exc).__name__}: {exc}"}
            rows[job.name] = row
            if on_done is not None:
                on_done(row)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def summary_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows in manifest order, the contract columns first."""
    frame = pd.DataFrame(rows)
    for column in SUMMARY_FIRST:
        if column not in frame.columns:
            frame[column] = None
    return frame[SUMMARY_FIRST + [c for c in frame.columns if c not in SUMMARY_FIRST]]
