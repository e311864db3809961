"""Batch fitting and forecasting on Dask: one job per run table (or per value of a column).

A manifest (TOML) lists jobs; each job fits, forecasts and allocates, and writes its results
under ``RESULTS/jobs/<name>/``; ``RESULTS/summary.csv`` has one row per job. Jobs are isolated
(a failure is recorded, never fatal) and resumable (a job whose inputs, spec and options hash
to the key stored in its complete ``result.json`` is skipped).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import tomllib
import traceback
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bayescale.errors import BayescaleError

MANIFEST_KEYS = {"defaults", "job"}
JOB_KEYS = {"name", "runs", "model", "group", "forecast", "allocate", "split_by", "columns", "drop_highest_loss", "max_epochs", "where", "draws", "tune", "chains", "seed", "sampler", "adaptation"}
FIT_OPTIONS = ("draws", "tune", "chains", "seed", "sampler", "adaptation")
SUMMARY_FIRST = ["job", "status", "error", "converged", "n_runs", "seconds"]
#: Environment for worker processes: one thread per BLAS/OpenMP/Numba pool, so chains do not oversubscribe cores.
WORKER_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "BAYESCALE_NUM_THREADS": "1"}


@dataclass(frozen=True)
class Job:
    """One fit-and-forecast job, fully resolved (defaults applied, split values fixed)."""

    name: str
    runs: str
    model: str = "chinchilla"
    group: tuple[str, ...] = ()
    forecast: tuple[Mapping[str, Any], ...] = ()
    allocate: tuple[float, ...] = ()
    split_by: str | None = None
    split_value: str | None = None
    columns: Mapping[str, str] = field(default_factory=dict)
    drop_highest_loss: int = 0
    max_epochs: float | None = None
    where: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def folder_name(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", self.name.replace("/", "__"))

    def load(self):
        """The job's validated run table (the split slice, if any)."""
        from bayescale.runs import RunTable, load_runs

        table = load_runs(self.runs, columns=self.columns or None, drop_highest_loss=self.drop_highest_loss, max_epochs=self.max_epochs, where=self.where or None)
        if self.split_by is None:
            return table
        table.require_columns([self.split_by], "split_by")
        subset = table.data[table.data[self.split_by].astype(str) == self.split_value].reset_index(drop=True)
        return RunTable(subset, source=f"{table.source}[{self.split_by}={self.split_value}]", extra_columns=table.extra_columns)

    def key(self, runs_hash: str, spec_json: str) -> str:
        """Content key of the job: data, spec and every option that changes results."""
        payload = json.dumps(
            {"runs": runs_hash, "spec": spec_json, "group": self.group, "forecast": [dict(f) for f in self.forecast], "allocate": list(self.allocate), "options": dict(self.options)},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(payload.encode()).hexdigest()


def read_manifest(path: str | Path) -> list[Job]:
    """Parse a manifest and expand ``split_by`` jobs into one job per value (named ``name/value``)."""
    path = Path(path)
    if not path.is_file():
        raise BayescaleError(f"{path}: no such manifest file")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BayescaleError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(raw) - MANIFEST_KEYS
    if unknown:
        raise BayescaleError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; a manifest has [defaults] and [[job]] tables")
    defaults = dict(raw.get("defaults", {}))
    bad = set(defaults) - JOB_KEYS
    if bad:
        raise BayescaleError(f"{path}: unknown [defaults] key(s) {', '.join(sorted(bad))}; allowed: {', '.join(sorted(JOB_KEYS))}")
    entries = raw.get("job", [])
    if not entries:
        raise BayescaleError(f"{path}: no [[job]] entries")
    jobs: list[Job] = []
    for number, entry in enumerate(entries, start=1):
        merged = {**defaults, **entry}
        bad = set(merged) - JOB_KEYS
        if bad:
            raise BayescaleError(f"{path}: job {number}: unknown key(s) {', '.join(sorted(bad))}; allowed: {', '.join(sorted(JOB_KEYS))}")
        if "name" not in entry or "runs" not in merged:
            raise BayescaleError(f"{path}: job {number}: every job needs a name and runs")
        runs = Path(merged["runs"])
        if not runs.is_absolute():
            runs = (path.parent / runs) if (path.parent / runs).exists() else runs
        group = merged.get("group", ())
        base = Job(
            name=str(merged["name"]),
            runs=str(runs),
            model=str(merged.get("model", "chinchilla")),
            group=tuple([group] if isinstance(group, str) else group),
            forecast=tuple(merged.get("forecast", ())),
            allocate=tuple(float(b) for b in merged.get("allocate", ())),
            columns=dict(merged.get("columns", {})),
            drop_highest_loss=int(merged.get("drop_highest_loss", 0)),
            max_epochs=None if merged.get("max_epochs") is None else float(merged["max_epochs"]),
            where={str(k): str(v) for k, v in dict(merged.get("where", {})).items()},
            options={k: merged[k] for k in FIT_OPTIONS if k in merged},
        )
        split = merged.get("split_by")
        if split is None:
            jobs.append(base)
            continue
        try:
            values = sorted(set(base.load().data[split].astype(str)))
        except BayescaleError as exc:
            # the table is unreadable: keep one job so the failure is recorded in the summary
            jobs.append(Job(**{**base.__dict__, "split_by": split, "split_value": f"<{type(exc).__name__}>"}))
            continue
        for value in values:
            jobs.append(Job(**{**base.__dict__, "name": f"{base.name}/{value}", "split_by": split, "split_value": value}))
    names = [j.name for j in jobs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise BayescaleError(f"{path}: job names must be unique; repeated: {', '.join(duplicates)}")
    return jobs


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
        from bayescale.spec import load_spec

        table = job.load()
        row["n_runs"] = len(table)
        spec = load_spec(job.model)
        key = job.key(table.content_hash(), spec.to_json())
        previous = _previous(folder, key)
        if previous is not None:
            return {**previous["row"], "status": "skipped"}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = fit(table, spec, job.group or None, cores=_worker_threads(), **job.options)
        folder.mkdir(parents=True, exist_ok=True)
        marker = folder / "result.json"
        marker.unlink(missing_ok=True)  # an old marker must never vouch for new, partial output
        result.save(folder / "fit.nc")
        row["converged"] = result.converged
        for i, target in enumerate(job.forecast):
            table_f = forecast_table(result.forecast(pd.DataFrame([dict(target)])), 0.9).iloc[0]
            for col in ("loss_median", "loss_lo", "loss_hi", "mean_median"):
                row[f"forecast{i}_{col}"] = float(table_f[col])
        if job.allocate:
            _allocate_columns(result, job.allocate, row)
        row["status"] = "ok"
        row["seconds"] = round(time.perf_counter() - start, 3)
        tmp = folder / "result.json.tmp"
        tmp.write_text(json.dumps({"key": key, "complete": True, "row": row}, default=float))
        os.replace(tmp, marker)
        return row
    except Exception as exc:  # noqa: BLE001 - isolation: any failure is recorded, the batch goes on
        row["error"] = str(exc) if isinstance(exc, BayescaleError) else f"{type(exc).__name__}: {exc} ({traceback.format_exc(limit=2).splitlines()[-1]})"
        row["seconds"] = round(time.perf_counter() - start, 3)
        return row


def _worker_threads() -> int | None:
    """Threads of the Dask worker running this job (chains run on at most that many cores)."""
    try:
        from dask.distributed import get_worker

        return int(get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        return None  # not on a Dask worker: fit's own default


def _allocate_columns(result, budgets, row: dict[str, Any]) -> None:
    from bayescale.allocate import allocate, allocation_table

    table = allocation_table(allocate(result, list(budgets)), 0.9)
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
    from dask.distributed import Client, LocalCluster, as_completed

    jobs = read_manifest(manifest)
    results = Path(results)
    results.mkdir(parents=True, exist_ok=True)
    os.environ.update(WORKER_THREAD_ENV)  # inherited by the worker processes
    cluster = None
    if scheduler == "local":
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    else:
        client = Client(scheduler)
    rows: dict[str, dict[str, Any]] = {}
    try:
        futures = {client.submit(run_job, job, str(results.resolve()), key=f"job-{i}-{job.folder_name}", pure=False): job for i, job in enumerate(jobs)}
        for future in as_completed(futures):
            job = futures[future]
            try:
                row = future.result()
            except Exception as exc:  # noqa: BLE001 - a worker died: record it
                row = {"job": job.name, "status": "failed", "error": f"worker failure: {type(exc).__name__}: {exc}"}
            rows[job.name] = row
            if on_done is not None:
                on_done(row)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    summary = summary_frame([rows[j.name] for j in jobs])
    tmp = results / "summary.csv.tmp"
    summary.to_csv(tmp, index=False)
    os.replace(tmp, results / "summary.csv")
    return summary


def summary_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows in manifest order, the contract columns first."""
    frame = pd.DataFrame(rows)
    for column in SUMMARY_FIRST:
        if column not in frame.columns:
            frame[column] = None
    return frame[SUMMARY_FIRST + [c for c in frame.columns if c not in SUMMARY_FIRST]]
