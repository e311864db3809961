"""Reading fit files: ``load_fit`` (size bound, hash, format and content checks), so an edited,
truncated or foreign file is a ``FitFileError``; ``fit_identity`` says which fit a file holds without
reading its posterior. Writing them is ``fitformat.save_fit``.
"""

from __future__ import annotations

import json
import os
import stat
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayescale.documents import Diagnostics, FitInfo, SelfCheck
from bayescale.errors import ConvergenceWarning, FitFileError
from bayescale.fitformat import FORMAT_VERSION, NAMES_ATTR, content_hash
from bayescale.names import stored_name
from bayescale.posterior import SAMPLE_DIMS, group_dim, required_variables
from bayescale.result import Fit
from bayescale.runs import RunTable
from bayescale.spec import ModelSpec

#: A load refuses a file whose variables declare more than this many bytes (checked before reading).
MAX_LOAD_BYTES = 2**30


def _runs_frame(path: Path, runs_ds: xr.Dataset) -> pd.DataFrame:
    """The stored runs with the user's column names back (``NAMES_ATTR``)."""
    names = json.loads(runs_ds.attrs.get(NAMES_ATTR, "{}"))
    if not isinstance(names, dict) or not all(isinstance(k, str) and isinstance(v, str) and stored_name(v) == k for k, v in names.items()):
        raise FitFileError(f"{path}: runs attribute {NAMES_ATTR} must map stored column names to the names they encode")
    return pd.DataFrame({names.get(str(k), str(k)): v.values for k, v in runs_ds.data_vars.items()})


def _short(value: Any, limit: int = 40) -> str:
    """``repr`` of a file's value cut to ``limit`` characters: a message stays one readable line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def open_bounded(path: Path, max_bytes: int) -> xr.DataTree:
    """Open ``path`` lazily, refuse it if its variables declare more than ``max_bytes``, then read it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree = xr.open_datatree(path, engine="zarr" if path.is_dir() else "h5netcdf")
        try:
            declared = sum(int(var.size) * var.dtype.itemsize for node in tree.subtree for var in node.dataset.variables.values())
            if declared > max_bytes:
                raise FitFileError(f"{path}: declares {declared / 2**30:.3g} GiB of data, more than a fit may hold ({max_bytes / 2**30:.3g} GiB); refusing to read it")
            return tree.load()
        finally:
            tree.close()


def _check_loaded(path: Path, tree: xr.DataTree, spec: ModelSpec, groups: tuple[str, ...], frame: pd.DataFrame) -> None:
    """Raise ``FitFileError`` unless the posterior and runs hold what the rest of the package reads."""
    for needed in ("posterior", "sample_stats", "runs"):
        if needed not in tree.children:
            raise FitFileError(f"{path}: the fit file has no {needed} group")
    for column in ("params", "tokens", "loss", "flops", "unique_tokens", "epochs", "experts", "active_params", "arch", *groups):
        if column not in frame.columns:
            raise FitFileError(f"{path}: runs/{column} is missing" + (" (a grouping column of the fit)" if column in groups else ""))
        if column not in ("arch", *groups):
            values = frame[column].to_numpy()
            if values.dtype.kind not in "fiu" or not np.all(np.isfinite(values) & (values > 0)):
                raise FitFileError(f"{path}: runs/{column} holds non-numeric, non-finite or non-positive values")
    posterior = tree["posterior"].to_dataset()
    if min(posterior.sizes.get(dim, 0) for dim in SAMPLE_DIMS) < 1:
        raise FitFileError(f"{path}: the posterior holds {posterior.sizes.get('chain', 0)} chain(s) of {posterior.sizes.get('draw', 0)} draw(s); a fit has at least one of each")
    for name in required_variables(spec, groups):
        if name not in posterior:
            raise FitFileError(f"{path}: posterior variable {name!r} is missing")
    for var_name, var in posterior.data_vars.items():
        if var.dims[:2] != SAMPLE_DIMS or var.dtype.kind not in "fiu":
            raise FitFileError(f"{path}: posterior variable {var_name!r} has dims {var.dims} / dtype {var.dtype}, expected numeric (chain, draw, ...)")
        if not np.all(np.isfinite(var.values)):
            raise FitFileError(f"{path}: posterior variable {var_name!r} holds NaN or infinite draws")
    levels = {g: sorted(set(frame[g].astype(str))) for g in groups}
    for g in groups:
        if group_dim(g) not in posterior.coords or sorted(map(str, posterior[group_dim(g)].values)) != levels[g]:
            raise FitFileError(f"{path}: posterior levels of group {g!r} do not match the runs' levels")


def load_fit(path: str | Path, *, max_bytes: int = MAX_LOAD_BYTES) -> Fit:
    """Read and check a fit saved by ``Fit.save``: any unreadable, foreign, edited or incompatible file is a ``FitFileError``.

    The file's declared size is bounded by ``max_bytes`` before anything is read; the content
    hash written at save must match, and the posterior and runs must hold what forecasts read.
    """
    path = Path(path)
    tree = _read_checked(path, max_bytes)
    attrs = tree.attrs
    try:
        spec = ModelSpec.from_dict(json.loads(attrs["spec"]), source=f"{path}:spec")
        groups = json.loads(attrs["groups"])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise FitFileError(f"{path}: groups must be a list of column names, got {_short(groups)}")
        groups = tuple(groups)
        diagnostics = Diagnostics.from_dict(json.loads(attrs["diagnostics"]))
        runs_ds = tree["runs"].to_dataset() if "runs" in tree.children else xr.Dataset()
        frame = _runs_frame(path, runs_ds)
        _check_loaded(path, tree, spec, groups, frame)
        runs = RunTable(frame, source=str(runs_ds.attrs.get("source", path)), extra_columns=tuple(json.loads(runs_ds.attrs.get("extra_columns", "[]"))))
        info = json.loads(attrs.get("info", "{}"))
        if not isinstance(info, dict):
            raise FitFileError(f"{path}: info must be a JSON object, got {_short(info)}")
        seed = attrs["seed"]
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
            raise FitFileError(f"{path}: seed must be an integer, got {_short(seed)}")
        result = Fit(
            tree=xr.DataTree.from_dict({k: tree[k].to_dataset() for k in tree.children if k != "runs"}),
            spec=spec,
            runs=runs,
            groups=groups,
            diagnostics=diagnostics,
            seed=int(seed),
            sampler=str(attrs["sampler"]),
            info=FitInfo.from_dict(info),
            self_check=SelfCheck.from_dict(checked) if (checked := _check_self_check(path, json.loads(attrs["self_check"]) if "self_check" in attrs else None)) is not None else None,
        )
    except FitFileError:
        raise
    except Exception as exc:
        raise FitFileError(f"{path}: a bayescale fit file with missing or damaged content ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not diagnostics.converged:
        warnings.warn(f"{path}: {diagnostics.message(result.info)}", ConvergenceWarning, stacklevel=2)
    return result


def spec_identity(spec_json: str) -> dict[str, Any]:
    """A spec's JSON without its centring choice, which a fit stores resolved (``auto`` becomes a list)."""
    spec = json.loads(spec_json)
    spec.get("pooling", {}).pop("centered", None)
    return spec


def fit_identity(path: str | Path) -> dict[str, Any]:
    """What makes the saved fit at ``path`` this fit, from its root attributes alone (no posterior is read).

    Keys: ``runs`` (the data hash), ``model spec`` (``spec_identity``), ``groups``, ``seed``,
    ``sampler``, ``draws``, ``tune``, ``chains``; a ``FitFileError`` if the file is no bayescale fit.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with xr.open_datatree(path, engine="zarr" if path.suffix == ".zarr" else "h5netcdf") as tree:
                attrs = dict(tree.attrs)
        info = json.loads(attrs.get("info", "{}"))
        return {
            "runs": attrs.get("data_hash"),
            "model spec": spec_identity(attrs.get("spec", "{}")),
            "groups": json.loads(attrs.get("groups", "[]")),
            "seed": int(attrs.get("seed", -1)),
            "sampler": attrs.get("sampler"),
            **{k: info.get(k) for k in ("draws", "tune", "chains")},
        }
    except Exception:
        raise FitFileError(f"{path}: not a bayescale fit") from None


#: The groups a fit file holds; a file with others is foreign (refused before its groups are walked).
FIT_NODES = ("posterior", "sample_stats", "observed_data", "constant_data", "runs", "parameter_diagnostics")


def hdf5_root(path: Path) -> tuple[dict[str, Any], list[str]] | None:
    """The root attributes and top-level group names of an HDF5 file, read in milliseconds; None if it is not HDF5."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            return dict(handle.attrs), list(handle.keys())
    except OSError:
        return None


def _check_hdf5_root(path: Path) -> None:
    """Refuse an HDF5 file without the fit's root attribute or with foreign top-level groups in
    milliseconds, before xarray walks every (nested) group of it."""
    root = hdf5_root(path)
    if root is None:
        return  # not HDF5: the netCDF reader gives its own error
    marked = "bayescale_format" in root[0]
    task_fit = root[0].get("bayescale_kind") == "tasks"
    foreign = sorted(set(root[1]) - set(FIT_NODES))
    if task_fit:
        raise FitFileError(f"{path}: a task-accuracy fit (bayescale fit-tasks): forecast and decide read it; this command reads loss fits")
    if not marked:
        raise FitFileError(f"{path}: not a bayescale fit (no bayescale_format attribute); it may be a plain ArviZ/PyMC file")
    if foreign:
        raise FitFileError(f"{path}: not a bayescale fit: it holds group(s) {_short(foreign)} a fit never has")


def _check_self_check(path: Path, doc: Any) -> dict[str, Any] | None:
    """The stored self-check if it holds what ``documents.sentence`` and the summaries read, else ``FitFileError``."""
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise FitFileError(f"{path}: self_check must be a JSON object, got {_short(doc)}")
    if doc.get("skipped") is not None:
        if not isinstance(doc["skipped"], str):
            raise FitFileError(f"{path}: self_check.skipped must be a text, got {_short(doc['skipped'])}")
        return doc
    for key in (*SelfCheck.SUMMARY_KEYS, *(k for k in ("coverage_50", "covered_90", "n_train", "cutoff_flops") if k in doc)):
        value = doc.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise FitFileError(f"{path}: self_check.{key} must be a finite number, got {_short(value)}")
    return doc


def _check_zarr_store(path: Path, max_bytes: int) -> None:
    """Every entry of a ``.zarr`` fit is a regular file or folder inside it (no link to ``/dev/zero``, no FIFO), all within ``max_bytes``."""
    total = 0
    for folder, dirs, files in os.walk(path):  # links are not followed
        for name in (*dirs, *files):
            entry = Path(folder) / name
            info = entry.lstat()
            if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
                raise FitFileError(f"{path}: {entry.relative_to(path)} is a link, device or FIFO, not a file of the fit; refusing to read it")
            total += info.st_size if stat.S_ISREG(info.st_mode) else 0
            if total > max_bytes:
                raise FitFileError(f"{path}: holds more than a fit may ({max_bytes / 2**30:.3g} GiB); refusing to read it")


def check_fit_path(path: Path, max_bytes: int) -> None:
    """``path`` is an existing regular file, or a ``.zarr`` folder of regular entries within ``max_bytes`` (``_check_zarr_store``): no device, FIFO or link out."""
    if not path.exists():
        raise FitFileError(f"{path}: no such fit file")
    if not (path.is_file() or (path.is_dir() and path.suffix == ".zarr")):
        raise FitFileError(f"{path}: not a fit file (a folder or a device); a fit is a .nc file or a .zarr folder")
    if path.is_dir():
        _check_zarr_store(path, max_bytes)


def _read_checked(path: Path, max_bytes: int) -> xr.DataTree:
    """The file's tree, once it is known to be a bayescale fit of this format whose content hash matches."""
    check_fit_path(path, max_bytes)
    if path.is_file():
        _check_hdf5_root(path)
    try:
        tree = open_bounded(path, max_bytes)
    except FitFileError:
        raise
    except Exception as exc:
        raise FitFileError(f"{path}: cannot read as a bayescale fit (truncated, corrupted or not netCDF/zarr): {type(exc).__name__}: {str(exc)[:200]}") from None
    attrs = tree.attrs
    if "bayescale_format" not in attrs:
        raise FitFileError(f"{path}: not a bayescale fit (no bayescale_format attribute); it may be a plain ArviZ/PyMC file")
    version = attrs["bayescale_format"]
    if isinstance(version, (bool, np.bool_)) or not isinstance(version, (int, np.integer)):
        raise FitFileError(f"{path}: bayescale_format must be an integer, got {_short(version)}")
    if int(version) != FORMAT_VERSION:
        raise FitFileError(
            f"{path}: fit file format {int(version)} written by bayescale {_short(attrs.get('bayescale_version'))} is not readable by this version (format {FORMAT_VERSION}); refit with this version"
        )
    stored_hash = attrs.get("content_hash")
    if not isinstance(stored_hash, str) or stored_hash != content_hash(tree):  # an array attribute must not reach ``!=``
        raise FitFileError(f"{path}: the content hash does not match: the file was edited or corrupted after it was saved; refit")
    return tree
