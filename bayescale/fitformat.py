"""Writing fit files: ``save_fit`` (atomic, with a content hash), the format version and the hash
``fitfile.load_fit`` checks. It reads a fit through ``fitted.Fitted`` only, so ``Fit.save`` can call
it without an import cycle.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from bayescale.errors import RunTableError
from bayescale.names import renamed, stored_name
from bayescale.posterior import SAMPLE_DIMS, group_dim, required_variables

if TYPE_CHECKING:
    from bayescale.fitted import Fitted
    from bayescale.runs import RunTable
    from bayescale.spec import ModelSpec

#: Version 2 adds the ``content_hash`` attribute (checked at load).
FORMAT_VERSION = 2


def package_version() -> str:
    """The installed bayescale version, written into every fit file."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bayescale")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


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


def save_fit(result: Fitted, path: str | Path) -> Path:
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
        "info": json.dumps(result.info.to_dict()),
        "data_hash": result.runs.content_hash(),
    }
    if result.self_check is not None:
        tree.attrs["self_check"] = json.dumps(result.self_check.to_dict())
    tree.attrs["content_hash"] = content_hash(tree)

    def write_store(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree.to_zarr(tmp, mode="w-")

    if path.suffix == ".zarr":
        return write_atomic(path, write_store, "fit")
    # built in memory, then written by write_atomic itself: a full disk is one OutputWriteError, never a failure inside libhdf5
    return write_atomic(path, bytes(tree.to_netcdf(engine="h5netcdf")), "fit")


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
