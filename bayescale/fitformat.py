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

if TYPE_CHECKING:
    from bayescale.fitted import Fitted
    from bayescale.runs import RunTable

#: Version 2 adds the ``content_hash`` attribute (checked at load).
FORMAT_VERSION = 2


def package_version() -> str:
    """The installed bayescale version, written into every fit file."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bayescale")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


def _runs_dataset(runs: RunTable) -> xr.Dataset:
    data = {}
    for column in runs.data.columns:
        values = runs.data[column].to_numpy()
        if values.dtype.kind not in "fiu":
            values = values.astype(str).astype(object)
        data[column] = ("run", values)
    return xr.Dataset(data, attrs={"source": runs.source, "extra_columns": json.dumps(list(runs.extra_columns))})


def save_fit(result: Fitted, path: str | Path) -> Path:
    """Write ``result`` to ``path`` atomically (``paths.write_atomic``), with a content hash.

    The path is checked first (``paths.check_output_path``); missing parent folders are
    created. Nothing but this call's own temporary (and stale ones of a killed save) is removed.
    """
    from bayescale.paths import make_parents, write_atomic

    path = make_parents(path)
    tree = result.tree.copy()
    tree["runs"] = xr.DataTree(_runs_dataset(result.runs))
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
