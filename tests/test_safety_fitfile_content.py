"""What ``load_fit`` reads is validated at load (self-check document, draws and chains, foreign HDF5
refused fast), and spec values are finite and in range at load (issue 32 §2-§3)."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import h5py
import pytest
import xarray as xr

from bayescale.documents import SelfCheck
from bayescale.errors import FitFileError, ModelSpecError
from bayescale.fitfile import content_hash
from bayescale.fitting import load_fit
from bayescale.spec import ModelSpec, load_spec

from .safetyfit import complete_fake_fit


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    result = complete_fake_fit()
    result = replace(result, self_check=SelfCheck.from_dict({"extrapolation": 3.0, "median_abs_log_error": 0.01, "coverage_90": 0.9, "n_test": 10}))
    return result.save(tmp_path_factory.mktemp("content") / "fit.nc")


def _rewritten(saved, tmp_path, edit) -> str:
    """The saved fit with ``edit(tree)`` applied and its content hash recomputed: well-formed but wrong content."""
    tree = xr.open_datatree(saved, engine="h5netcdf").load()
    tree = edit(tree)
    tree.attrs["content_hash"] = content_hash(tree)
    out = tmp_path / "edited.nc"
    tree.to_netcdf(out, engine="h5netcdf")
    return str(out)


def _with_self_check(doc):
    def edit(tree):
        tree.attrs["self_check"] = json.dumps(doc)
        return tree

    return edit


def test_valid_self_check_loads(saved):
    assert load_fit(saved).self_check.n_test == 10


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ("a text", "self_check must be a JSON object"),
        ([1, 2], "self_check must be a JSON object"),
        ({"extrapolation": 3.0, "median_abs_log_error": 0.01, "coverage_90": 0.9}, r"self_check.n_test must be a finite number, got None"),
        ({"extrapolation": "far", "median_abs_log_error": 0.01, "coverage_90": 0.9, "n_test": 10}, "self_check.extrapolation must be a finite number"),
        ({"extrapolation": 3.0, "median_abs_log_error": 0.01, "coverage_90": True, "n_test": 10}, "self_check.coverage_90"),
        ({"skipped": 5}, "self_check.skipped must be a text"),
    ],
)
def test_malformed_self_check_is_refused_at_load(saved, tmp_path, doc, match):
    with pytest.raises(FitFileError, match=match):
        load_fit(_rewritten(saved, tmp_path, _with_self_check(doc)))


@pytest.mark.parametrize("dim", ["draw", "chain"])
def test_posterior_without_draws_or_chains_is_refused(saved, tmp_path, dim):
    def edit(tree):
        nodes = {k: tree[k].to_dataset() for k in tree.children}
        nodes["posterior"] = nodes["posterior"].isel({dim: slice(0, 0)})
        out = xr.DataTree.from_dict(nodes)
        out.attrs = dict(tree.attrs)
        return out

    with pytest.raises(FitFileError, match=r"0 (chain|draw)\(s\)"):
        load_fit(_rewritten(saved, tmp_path, edit))


@pytest.mark.parametrize("marked", [False, True])
def test_foreign_hdf5_with_many_groups_is_refused_fast(tmp_path, marked):
    path = tmp_path / "foreign.nc"
    with h5py.File(path, "w") as handle:
        if marked:
            handle.attrs["bayescale_format"] = 2
        for i in range(300):
            group = handle.create_group(f"g{i}")
            for j in range(5):
                group.create_group(f"inner{j}").create_dataset("x", data=[1.0])
    start = time.perf_counter()
    with pytest.raises(FitFileError, match="not a bayescale fit"):
        load_fit(path)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"likelihood": {"nu": float("inf")}}, "likelihood.nu = inf must be a number from 0.1 to 1e"),
        ({"likelihood": {"nu": 1e-300}}, "likelihood.nu = 1e-300"),
        ({"likelihood": {"nu": 1e7}}, "likelihood.nu = 10000000.0"),
        ({"pooling": {"scale": {"E": float("inf")}}}, r"pooling.scale.E = inf must be in \(0, 100\]"),
        ({"pooling": {"scale": {"E": 1000.0}}}, "pooling.scale.E = 1000.0"),
        ({"discrepancy": {"scale": 1e300}}, r"discrepancy.scale = 1e\+300 must be in \(0, 1\]"),
        ({"priors": {"E": {"dist": "LogNormal", "mu": 700.0, "sigma": 1.0}}}, "priors.E: LogNormal mu = 700.0 must be within"),
        ({"priors": {"E": {"dist": "LogNormal", "mu": 0.5, "sigma": float("nan")}}}, "priors.E: prior argument sigma = nan must be a finite number"),
        ({"likelihood": {"sigma": {"dist": "HalfNormal", "sigma": float("inf")}}}, "likelihood.sigma: prior argument sigma = inf must be a finite number"),
    ],
)
def test_spec_values_out_of_range_are_refused_naming_the_key(change, match):
    raw = {"name": "x", "form": "chinchilla", **change}
    with pytest.raises(ModelSpecError, match=match):
        ModelSpec.from_dict(raw, source="bad.toml")


def test_shipped_specs_are_in_range():
    from bayescale.spec import shipped_specs

    for name in shipped_specs():
        load_spec(name)
