"""Fit files: ``save_fit`` (atomic, with a content hash) and ``load_fit`` (size bound, hash,
format and content checks), so an edited, truncated or foreign file is a ``FitFileError``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayescale.errors import ConvergenceWarning, FitFileError, RunTableError
from bayescale.names import renamed, stored_name
from bayescale.posterior import SAMPLE_DIMS, group_dim, required_variables
from bayescale.result import Diagnostics, Fit, package_version
from bayescale.runs import RunTable
from bayescale.spec import ModelSpec

#: Version 2 adds the ``content_hash`` attribute (checked at load).
FORMAT_VERSION = 2
#: A load refuses a file whose variables declare more than this many bytes (checked before reading).
MAX_LOAD_BYTES = 2**30


#: Attribute of the ``runs`` node: ``{stored: original}`` for the headers ``names.stored_name`` changed.
NAMES_ATTR = "original_names"


def runs_dataset(runs: RunTable) -> xr.Dataset:
    """The runs as a fit stores them: one variable per column under its storable name, the
    user's names kept in ``NAMES_ATTR`` (written only when a name changed)."""
    data = {}
    for column in runs.data.columns:
        values = runs.data[column].to_numpy()
        if values.dtype.kind not in "fiu":
            values = values.astype(str).astype(object)
        data[stored_name(column)] = ("run", values)
    attrs = {"source": runs.source, "extra_columns": json.dumps(list(runs.extra_columns))}
    changed = renamed(map(str, runs.data.columns))
    if changed:
        attrs[NAMES_ATTR] = json.dumps({stored: original for original, stored in changed.items()})
    return xr.Dataset(data, attrs=attrs)


def _runs_frame(path: Path, runs_ds: xr.Dataset) -> pd.DataFrame:
    """The stored runs with the user's column names back (``NAMES_ATTR``)."""
    names = json.loads(runs_ds.attrs.get(NAMES_ATTR, "{}"))
    if not isinstance(names, dict) or not all(isinstance(k, str) and isinstance(v, str) and stored_name(v) == k for k, v in names.items()):
        raise FitFileError(f"{path}: runs attribute {NAMES_ATTR} must map stored column names to the names they encode")
    return pd.DataFrame({names.get(str(k), str(k)): v.values for k, v in runs_ds.data_vars.items()})


def save_fit(result: Fit, path: str | Path) -> Path:
    """Write ``result`` to ``path`` atomically (``paths.write_atomic``), with a content hash.

    The path is checked first (``paths.check_output_path``); missing parent folders are
    created. Nothing but this call's own temporary (and stale ones of a killed save) is removed.
    """
    from bayescale.paths import make_parents, write_atomic

    path = make_parents(path)
    tree = result.tree.copy()
    tree["runs"] = xr.DataTree(runs_dataset(result.runs))
    tree.attrs = {
        "bayescale_format": FORMAT_VERSION,
        "bayescale_version": package_version(),
        "spec": result.spec.to_json(),
        "groups": json.dumps(list(result.groups)),
        "diagnostics": json.dumps(result.diagnostics.to_dict()),
        "seed": int(result.seed),
        "sampler": result.sampler,
        "info": json.dumps(dict(result.info)),
        "data_hash": result.runs.content_hash(),
    }
    if result.self_check is not None:
        tree.attrs["self_check"] = json.dumps(dict(result.self_check))
    tree.attrs["content_hash"] = content_hash(tree)

    def write(tmp: Path) -> None:
        if path.suffix == ".zarr":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree.to_zarr(tmp, mode="w-")
        else:
            tree.to_netcdf(tmp, engine="h5netcdf")

    return write_atomic(path, write, "fit")


def check_storable(runs: RunTable, spec: ModelSpec, groups: tuple[str, ...]) -> None:
    """Before sampling: write what this fit's file will hold (the runs, the variable and dimension
    names, one draw) to a scratch file, so a table a fit file cannot hold fails in a second, not after sampling."""
    import tempfile

    try:
        coords = {group_dim(g): sorted(set(runs.data[g].astype(str))) for g in groups}
        posterior = xr.Dataset({name: (SAMPLE_DIMS, np.zeros((1, 1))) for name in required_variables(spec, groups)}, coords=coords)
        tree = xr.DataTree.from_dict({"posterior": posterior, "runs": runs_dataset(runs)})
        tree.attrs = {"spec": spec.to_json(), "groups": json.dumps(list(groups))}
        with tempfile.TemporaryDirectory(prefix="bayescale-check-") as folder, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree.to_netcdf(Path(folder) / "check.nc", engine="h5netcdf")
    except Exception as exc:
        raise RunTableError(f"{runs.source}: a fit of this table could not be saved ({type(exc).__name__}: {str(exc)[:200]}); nothing was sampled") from None


def content_hash(tree: xr.DataTree) -> str:
    """SHA-256 of every node's variables (names, shapes, values as float64 or text) and the root attributes.

    Written at save and checked at load, so an edited posterior, diagnostics or spec is found.
    """
    import hashlib

    digest = hashlib.sha256()
    attrs = {k: (int(v) if isinstance(v, np.integer) else v) for k, v in tree.attrs.items() if k != "content_hash"}
    digest.update(json.dumps(attrs, sort_keys=True, default=str).encode())
    for node in sorted(tree.children):
        ds = tree[node].to_dataset()
        digest.update(json.dumps([node, {k: str(v) for k, v in sorted(ds.attrs.items())}]).encode())
        for name in sorted(map(str, ds.variables)):
            values = np.asarray(ds[name].values)
            digest.update(json.dumps([str(name), list(ds[name].dims), list(values.shape)]).encode())
            if values.dtype.kind in "fiub":
                digest.update(np.ascontiguousarray(values, dtype="<f8").tobytes())
            else:
                digest.update(json.dumps([str(v) for v in values.ravel()]).encode())
    return digest.hexdigest()


def _short(value: Any, limit: int = 40) -> str:
    """``repr`` of a file's value cut to ``limit`` characters: a message stays one readable line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _open_bounded(path: Path, max_bytes: int) -> xr.DataTree:
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
            info=info,
            self_check=_check_self_check(path, json.loads(attrs["self_check"]) if "self_check" in attrs else None),
        )
    except FitFileError:
        raise
    except Exception as exc:
        raise FitFileError(f"{path}: a bayescale fit file with missing or damaged content ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not diagnostics.converged:
        warnings.warn(f"{path}: {diagnostics.message()}", ConvergenceWarning, stacklevel=2)
    return result


#: The groups a fit file holds; a file with others is foreign (refused before its groups are walked).
FIT_NODES = ("posterior", "sample_stats", "observed_data", "constant_data", "runs", "parameter_diagnostics")


def _check_hdf5_root(path: Path) -> None:
    """Refuse an HDF5 file without the fit's root attribute or with foreign top-level groups in
    milliseconds, before xarray walks every (nested) group of it."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            marked = "bayescale_format" in handle.attrs
            foreign = sorted(set(handle.keys()) - set(FIT_NODES))
    except OSError:
        return  # not HDF5: the netCDF reader gives its own error
    if not marked:
        raise FitFileError(f"{path}: not a bayescale fit (no bayescale_format attribute); it may be a plain ArviZ/PyMC file")
    if foreign:
        raise FitFileError(f"{path}: not a bayescale fit: it holds group(s) {_short(foreign)} a fit never has")


def _check_self_check(path: Path, doc: Any) -> dict[str, Any] | None:
    """The stored self-check if it holds what ``self_check.sentence`` and the summaries read, else ``FitFileError``."""
    from bayescale.self_check import SUMMARY_KEYS

    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise FitFileError(f"{path}: self_check must be a JSON object, got {_short(doc)}")
    if doc.get("skipped") is not None:
        if not isinstance(doc["skipped"], str):
            raise FitFileError(f"{path}: self_check.skipped must be a text, got {_short(doc['skipped'])}")
        return doc
    for key in (*SUMMARY_KEYS, *(k for k in ("coverage_50", "covered_90", "n_train", "cutoff_flops") if k in doc)):
        value = doc.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise FitFileError(f"{path}: self_check.{key} must be a finite number, got {_short(value)}")
    return doc


def _read_checked(path: Path, max_bytes: int) -> xr.DataTree:
    """The file's tree, once it is known to be a bayescale fit of this format whose content hash matches."""
    if not path.exists():
        raise FitFileError(f"{path}: no such fit file")
    if not (path.is_file() or (path.is_dir() and path.suffix == ".zarr")):
        raise FitFileError(f"{path}: not a fit file (a folder or a device); a fit is a .nc file or a .zarr folder")
    if path.is_file():
        _check_hdf5_root(path)
    try:
        tree = _open_bounded(path, max_bytes)
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
