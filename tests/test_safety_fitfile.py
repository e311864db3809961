"""Fit files (issue 19): ``load_fit`` checks what it loads, bounds what it allocates and detects edits (exit 5)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from bayescale import FitFileError, load_fit
from bayescale.cli import app
from bayescale.fitting import FORMAT_VERSION, content_hash

from .safetyfit import complete_fake_fit


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return complete_fake_fit().save(tmp_path_factory.mktemp("fitfile") / "fit.nc")


def _tree(saved):
    return xr.open_datatree(saved, engine="h5netcdf").load()


def _write(tree, path, rehash=True):
    if rehash:
        tree.attrs["content_hash"] = content_hash(tree)
    tree.to_netcdf(path, engine="h5netcdf")
    return path


def test_round_trip(saved):
    loaded = load_fit(saved)
    assert loaded.spec.name == "chinchilla" and loaded.posterior.sizes["draw"] == 20


@pytest.mark.parametrize("version", ["abc", [1, 2], float("nan"), "9" * 5000, 2.5])
def test_format_that_is_not_an_integer(saved, tmp_path, version):
    tree = _tree(saved)
    tree.attrs["bayescale_format"] = version
    path = _write(tree, tmp_path / "f.nc")
    with pytest.raises(FitFileError, match="bayescale_format must be an integer") as info:
        load_fit(path)
    assert len(str(info.value)) < 300


@pytest.mark.parametrize(
    ("attr", "value", "match"),
    [
        ("groups", json.dumps(["dataset"]), "runs/dataset is missing"),
        ("groups", json.dumps("dataset"), "groups must be a list"),
        ("groups", json.dumps([1]), "groups must be a list"),
        ("groups", "not json", "damaged content"),
        ("spec", json.dumps([1]), "damaged content"),
        ("seed", "x", "seed must be an integer"),
        ("info", json.dumps([1]), "info must be a JSON object"),
    ],
)
def test_bad_attributes(saved, tmp_path, attr, value, match):
    tree = _tree(saved)
    tree.attrs[attr] = value
    with pytest.raises(FitFileError, match=match):
        load_fit(_write(tree, tmp_path / "f.nc"))


@pytest.mark.parametrize(("node", "var"), [("posterior", "sigma"), ("posterior", "E_z"), ("runs", "loss"), ("runs", "params")])
def test_missing_variables(saved, tmp_path, node, var):
    tree = _tree(saved)
    tree[node] = xr.DataTree(tree[node].to_dataset().drop_vars(var))
    with pytest.raises(FitFileError, match=f"{node}.*{var}|{var}.*missing"):
        load_fit(_write(tree, tmp_path / "f.nc"))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_posterior_even_with_a_matching_hash(saved, tmp_path, bad):
    tree = _tree(saved)
    post = tree["posterior"].to_dataset()
    values = post["E"].values.copy()
    values[0, 3] = bad
    tree["posterior"] = xr.DataTree(post.assign(E=(post["E"].dims, values)))
    with pytest.raises(FitFileError, match="'E' holds NaN or infinite"):
        load_fit(_write(tree, tmp_path / "f.nc"))


def test_edits_are_detected_by_the_content_hash(saved, tmp_path):
    tree = _tree(saved)
    post = tree["posterior"].to_dataset()
    tree["posterior"] = xr.DataTree(post.assign(E=post["E"] * 1.01))
    with pytest.raises(FitFileError, match="content hash does not match"):
        load_fit(_write(tree, tmp_path / "post.nc", rehash=False))
    tree = _tree(saved)
    diagnostics = json.loads(tree.attrs["diagnostics"])
    diagnostics["rhat_max"] = 0.999
    tree.attrs["diagnostics"] = json.dumps(diagnostics)
    with pytest.raises(FitFileError, match="content hash does not match"):
        load_fit(_write(tree, tmp_path / "diag.nc", rehash=False))
    tree = _tree(saved)
    del tree.attrs["content_hash"]
    with pytest.raises(FitFileError, match="content hash"):
        load_fit(_write(tree, tmp_path / "none.nc", rehash=False))


def test_huge_declared_variable_is_refused_quickly(saved, tmp_path):
    """A small file declaring a 4 GiB compressed variable is refused before it is read."""
    import shutil

    import h5netcdf

    path = tmp_path / "bomb.nc"
    shutil.copy(saved, path)
    with h5netcdf.File(path, "a") as handle:
        group = handle["posterior"]
        group.dimensions["huge"] = 2**29
        group.create_variable("bomb", ("huge",), dtype="f8", chunks=(2**20,), compression="gzip")  # never written: tiny on disk
    assert path.stat().st_size < 2**22
    start = time.perf_counter()
    with pytest.raises(FitFileError, match="declares 4 GiB"):
        load_fit(path)
    assert time.perf_counter() - start < 30


def test_load_refuses_a_folder_or_device(tmp_path):
    with pytest.raises(FitFileError):
        load_fit(tmp_path)
    with pytest.raises(FitFileError):
        load_fit("/dev/zero")


def test_cli_exit_5_one_line(saved, tmp_path):
    tree = _tree(saved)
    tree.attrs["bayescale_format"] = "9" * 5000
    path = _write(tree, tmp_path / "f.nc")
    result = CliRunner().invoke(app, ["summary", str(path)])
    assert result.exit_code == 5
    assert result.stderr.startswith("error:") and len(result.stderr.strip().splitlines()) == 1


def test_format_version_is_current(saved):
    assert _tree(saved).attrs["bayescale_format"] == FORMAT_VERSION
