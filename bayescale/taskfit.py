"""Task-accuracy fits: ``fit_tasks`` samples ``taskmodel``'s joint two-step model with nutpie and
returns a ``TaskFit``, saved and loaded like any fit (one file, a content hash, root attribute
``bayescale_kind = "tasks"`` that ``forecast``/``decide`` dispatch on).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayescale.documents import Diagnostics
from bayescale.errors import BayescaleError, ConvergenceWarning, FitFileError, ModelSpecError, SamplerError, check_count, check_seed
from bayescale.taskmodel import LAWS, LINKS, POOLED, TaskTable, build_model, task_table

#: Root attribute marking a task fit, and its format version (bump on incompatible change).
KIND = "tasks"
TASK_FORMAT = 1
#: Free variables whose convergence is judged (every sampled variable of ``taskmodel.build_model``).
FREE = (*(f"{p}_{s}" for p in POOLED for s in ("mu", "tau", "z")), "e_logit", "log_A", "log_B", "sigma", "position", "ceiling_logit", "log_phi")
#: Default HalfNormal scale of the loss step's extrapolation discrepancy τ, in log task loss per
#: decade beyond the ladder (the package's loss default, ``spec.DEFAULT_DISCREPANCY_SCALE``).
DEFAULT_DISCREPANCY_SCALE = 0.02
#: nutpie mass-matrix adaptation of the task model.
ADAPTATION = "low_rank"


@dataclass
class TaskFit:
    """A posterior of the two-step task model: draws per task, the fitted table and the fit's settings."""

    posterior: xr.Dataset
    sample_stats: xr.Dataset
    table: TaskTable
    diagnostics: Diagnostics
    seed: int
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def tasks(self) -> tuple[str, ...]:
        return self.table.tasks

    @property
    def converged(self) -> bool:
        return self.diagnostics.converged

    @property
    def discrepancy_scale(self) -> float:
        return float(self.settings.get("discrepancy_scale", DEFAULT_DISCREPANCY_SCALE))

    def save(self, path: str | Path) -> Path:
        """Write the fit to ``path`` (.nc or .zarr) atomically, with a content hash."""
        return save_task_fit(self, path)

    def summary_frame(self) -> pd.DataFrame:
        """Posterior median of each task's parameters, one row per task."""
        from bayescale.taskmodel import TASK_PARAMETERS

        rows = {name: self.posterior[name].median(("chain", "draw")).values for name in TASK_PARAMETERS}
        frame = pd.DataFrame(rows)
        frame.insert(0, "task", list(self.tasks))
        frame.insert(1, "chance", self.table.chance())
        frame.insert(2, "runs", self.table.data["task"].value_counts().reindex(list(self.tasks)).to_numpy())
        return frame


def fit_tasks(
    runs: pd.DataFrame | str | Path,
    *,
    task: str = "task",
    loss: str = "task_bpb",
    accuracy: str = "accuracy",
    chance: str | float | None = None,
    tasks: tuple[str, ...] | list[str] | None = None,
    law: str = "chinchilla",
    link: str = "sigmoid",
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int = 0,
    target_accept: float = 0.95,
    discrepancy_scale: float = DEFAULT_DISCREPANCY_SCALE,
    progress: bool = False,
) -> TaskFit:
    """Fit task loss (step 1) and accuracy (step 2) of every task jointly; see ``taskmodel``.

    ``runs``: a DataFrame or a CSV/Parquet path with ``params``, ``tokens`` and the ``task``,
    ``loss``, ``accuracy`` (and optionally ``chance``) columns named. ``tasks`` restricts (and
    requires) the tasks fitted. ``discrepancy_scale``: the prior scale of the loss step's error
    beyond the runs, per decade, carried through the link into every accuracy forecast.
    ``target_accept`` defaults to 0.95: at 0.9 the OLMo ladder fit had a few divergences.
    """
    if law not in LAWS:
        raise ModelSpecError(f"law {law!r} is not a task-loss law; choose one of {', '.join(LAWS)}")
    if link not in LINKS:
        raise ModelSpecError(f"link {link!r} is unknown; choose one of {', '.join(LINKS)}")
    for name, value in (("draws", draws), ("tune", tune), ("chains", chains)):
        check_count(value, name)
    check_seed(seed)
    if not 0.0 < float(discrepancy_scale) <= 1.0:
        raise ModelSpecError(f"discrepancy_scale must be in (0, 1], got {discrepancy_scale!r}")
    source = "<DataFrame>"
    if not isinstance(runs, pd.DataFrame):
        from bayescale.tables import read_table

        source = str(runs)
        runs = read_table(Path(runs))
    table = task_table(runs, task=task, loss=loss, accuracy=accuracy, chance=chance, tasks=tuple(tasks) if tasks else None, source=source)
    raw = _sample(table, draws, tune, chains, seed, target_accept, progress)
    from bayescale.result import check_convergence

    diagnostics = check_convergence(raw, FREE)
    if not diagnostics.converged:
        warnings.warn(f"the task fit did not converge: {'; '.join(diagnostics.problems)}", ConvergenceWarning, stacklevel=2)
    settings = {
        "law": law,
        "link": link,
        "draws": draws,
        "tune": tune,
        "chains": chains,
        "target_accept": target_accept,
        "discrepancy_scale": float(discrepancy_scale),
        "columns": {"task": task, "loss": loss, "accuracy": accuracy, "chance": chance},
    }
    return TaskFit(raw["posterior"].to_dataset(), raw["sample_stats"].to_dataset(), table, diagnostics, int(seed), settings)


def _sample(table: TaskTable, draws: int, tune: int, chains: int, seed: int, target_accept: float, progress: bool) -> xr.DataTree:
    """nutpie on the Numba-compiled model (``compiled.compile_model``, the package's default path)."""
    from bayescale import compiled

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        try:
            kernels = compiled.compile_model(build_model(table), "nutpie")
            return compiled.sample(
                kernels,
                ("diverging", "maxdepth_reached", "depth", "step_size", "n_steps"),
                draws=draws,
                tune=tune,
                chains=chains,
                cores=1,
                seed=seed,
                progress_bar=progress,
                target_accept=target_accept,
                adaptation=ADAPTATION,
            )
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:
            raise SamplerError(f"the nutpie sampler failed on the task model: {type(exc).__name__}: {str(exc).split('Stack backtrace:')[0]}") from exc


def save_task_fit(result: TaskFit, path: str | Path) -> Path:
    """Write ``result`` atomically (``paths.write_atomic``): posterior, sample stats, the task table, settings and a content hash."""
    from bayescale.fitformat import content_hash, package_version
    from bayescale.paths import make_parents, write_atomic

    path = make_parents(path)
    table = result.table.data
    runs = xr.Dataset({c: ("row", table[c].to_numpy().astype(str) if c == "task" else table[c].to_numpy(dtype=float)) for c in table.columns}, attrs={"source": result.table.source})
    tree = xr.DataTree.from_dict({"posterior": result.posterior, "sample_stats": result.sample_stats, "runs": runs})
    tree.attrs = {
        "bayescale_kind": KIND,
        "bayescale_task_format": TASK_FORMAT,
        "bayescale_version": package_version(),
        "tasks": json.dumps(list(result.tasks)),
        "diagnostics": json.dumps(result.diagnostics.to_dict()),
        "seed": int(result.seed),
        "settings": json.dumps(result.settings),
    }
    tree.attrs["content_hash"] = content_hash(tree)
    if path.suffix == ".zarr":

        def write_store(tmp: Path) -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree.to_zarr(tmp, mode="w-")

        return write_atomic(path, write_store, "fit")
    return write_atomic(path, bytes(tree.to_netcdf(engine="h5netcdf")), "fit")


def is_task_fit(path: str | Path) -> bool:
    """Whether ``path`` holds a task fit (root attribute ``bayescale_kind``); False for anything unreadable (``load_fit`` then says why)."""
    path = Path(path)
    try:
        if path.is_dir():
            import zarr

            return zarr.open_group(path, mode="r").attrs.get("bayescale_kind") == KIND
        import h5py

        with h5py.File(path, "r") as handle:  # the root attributes only, in milliseconds
            return bool(handle.attrs.get("bayescale_kind") == KIND)
    except Exception:
        return False


#: The groups a task fit file holds; a file with others is foreign (refused before its groups are walked).
TASK_NODES = ("posterior", "sample_stats", "runs")


def load_task_fit(path: str | Path, *, max_bytes: int | None = None) -> TaskFit:
    """Read a task fit saved by ``TaskFit.save``; an edited, foreign or damaged file is a ``FitFileError``.

    The same file checks as ``fitfile.load_fit``: a ``.zarr`` folder of regular entries only (no
    link, FIFO or device), foreign groups refused before they are walked, the declared size bounded
    by ``max_bytes`` (``fitfile.MAX_LOAD_BYTES``) before anything is read, the content hash, every
    attribute's type, and the stored runs re-checked as a task table.
    """
    from bayescale.fitfile import MAX_LOAD_BYTES, check_fit_path, hdf5_root, open_bounded

    path = Path(path)
    limit = MAX_LOAD_BYTES if max_bytes is None else max_bytes
    check_fit_path(path, limit)
    root = hdf5_root(path) if path.is_file() else None
    if root is not None:
        _check_root(path, root[0], root[1])
    try:
        tree = open_bounded(path, limit)
    except FitFileError:
        raise
    except Exception as exc:
        raise FitFileError(f"{path}: not a readable fit file (truncated, corrupted or not netCDF/zarr: {type(exc).__name__})") from None
    attrs = {str(k): v for k, v in tree.attrs.items()}
    _check_root(path, attrs, list(map(str, tree.children)))
    _check_format(path, attrs)
    _check_hash(path, tree, attrs)
    try:
        return _task_fit_of(path, tree, attrs)
    except BayescaleError:
        raise
    except Exception as exc:
        raise FitFileError(f"{path}: a task fit with missing or damaged content ({type(exc).__name__}: {str(exc)[:200]})") from None


def _check_root(path: Path, attrs: dict[str, Any], groups: list[str]) -> None:
    """A task fit (root attribute ``bayescale_kind``) with only and all ``TASK_NODES`` groups."""
    from bayescale.fitfile import _short

    if attrs.get("bayescale_kind") != KIND:
        raise FitFileError(f"{path}: not a task fit (fit one with bayescale fit-tasks)")
    foreign = sorted(set(groups) - set(TASK_NODES))
    if foreign:
        raise FitFileError(f"{path}: not a task fit: it holds group(s) {_short(foreign)} a task fit never has")
    missing = [g for g in TASK_NODES if g not in groups]
    if missing:
        raise FitFileError(f"{path}: the task fit has no {missing[0]} group")


def _check_format(path: Path, attrs: dict[str, Any]) -> None:
    """The file's ``bayescale_task_format`` is an integer and the one this version reads."""
    from bayescale.fitfile import _short

    version = attrs.get("bayescale_task_format")
    if isinstance(version, (bool, np.bool_)) or not isinstance(version, (int, np.integer)):
        raise FitFileError(f"{path}: bayescale_task_format must be an integer, got {_short(version)}")
    if int(version) != TASK_FORMAT:
        raise FitFileError(f"{path}: task fit format {int(version)}, this bayescale reads {TASK_FORMAT}; refit")


def _check_hash(path: Path, tree: xr.DataTree, attrs: dict[str, Any]) -> None:
    """The content hash written at save matches (a text attribute: an array must not reach ``!=``)."""
    from bayescale.fitformat import content_hash

    stored = attrs.pop("content_hash", None)
    check = tree.copy()
    check.attrs = attrs
    if not isinstance(stored, str) or stored != content_hash(check):
        raise FitFileError(f"{path}: content hash mismatch: the file was edited or damaged after it was saved")


def _task_fit_of(path: Path, tree: xr.DataTree, attrs: dict[str, Any]) -> TaskFit:
    """The ``TaskFit`` a checked tree holds: attributes typed, posterior numeric and finite over (chain, draw, task), runs a valid task table."""
    from bayescale.errors import RunTableError
    from bayescale.fitfile import _short
    from bayescale.taskmodel import TASK_PARAMETERS

    tasks = json.loads(attrs["tasks"])
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) for t in tasks) or len(set(tasks)) != len(tasks):
        raise FitFileError(f"{path}: tasks must be a list of distinct task names, got {_short(tasks)}")
    settings = json.loads(attrs["settings"])
    if not isinstance(settings, dict):
        raise FitFileError(f"{path}: settings must be a JSON object, got {_short(settings)}")
    seed = attrs["seed"]
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise FitFileError(f"{path}: seed must be an integer, got {_short(seed)}")
    posterior = tree["posterior"].to_dataset()
    if min(posterior.sizes.get(dim, 0) for dim in ("chain", "draw")) < 1:
        raise FitFileError(f"{path}: the posterior holds no draws")
    for name in TASK_PARAMETERS:
        if name not in posterior:
            raise FitFileError(f"{path}: posterior variable {name!r} is missing")
    for var_name, var in posterior.data_vars.items():
        if var.dims[:2] != ("chain", "draw") or var.dtype.kind not in "fiu" or not np.all(np.isfinite(var.values)):
            raise FitFileError(f"{path}: posterior variable {var_name!r} must hold finite numbers over (chain, draw, ...), has dims {var.dims} / dtype {var.dtype}")
        if var_name in TASK_PARAMETERS and (var.dims[2:] != ("task",) or var.sizes["task"] != len(tasks)):
            raise FitFileError(f"{path}: posterior variable {var_name!r} must have one value per task ({len(tasks)}), has dims {var.dims}")
    runs = tree["runs"].to_dataset()
    frame = pd.DataFrame({c: runs[c].values.astype(str) if c == "task" else runs[c].values for c in runs.data_vars})
    try:
        table = task_table(frame, loss="loss", chance="chance", tasks=tuple(tasks), source=str(runs.attrs.get("source", path)))
    except RunTableError as exc:
        raise FitFileError(f"{path}: the stored runs are not a valid task table: {exc}") from None
    if len(table.data) != len(frame):
        raise FitFileError(f"{path}: the stored runs hold tasks the fit does not list")
    return TaskFit(posterior, tree["sample_stats"].to_dataset(), table, Diagnostics.from_dict(json.loads(attrs["diagnostics"])), int(seed), settings)
