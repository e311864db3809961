"""Property-based: arbitrary tables through load_runs and the CLI give a valid table or a bayescale error."""

import string

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bayescale import BayescaleError, load_runs
from bayescale.cli import app

cell = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.text(alphabet=string.printable, max_size=8),
    st.sampled_from(["70M", "1.5B", "1.4T", "5e23", "-1", "0", "nan", "", "1e400", "dense", "moe"]),
)
column_names = st.sampled_from(["params", "tokens", "loss", "flops", "unique_tokens", "arch", "experts", "active_params", "dataset", "Model Size"])


@st.composite
def tables(draw):
    columns = draw(st.lists(column_names, min_size=0, max_size=6, unique=True))
    rows = draw(st.integers(min_value=0, max_value=6))
    return pd.DataFrame({c: [draw(cell) for _ in range(rows)] for c in columns})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_load_runs_valid_or_bayescale_error(frame):
    try:
        table = load_runs(frame)
    except BayescaleError:
        return
    data = table.data
    for column in ("params", "tokens", "loss", "flops", "unique_tokens", "epochs"):
        values = data[column].to_numpy(dtype=float)
        assert np.all(np.isfinite(values)) and np.all(values > 0)
    assert np.all(data["tokens"] >= data["unique_tokens"] * (1 - 1e-9))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(tables())
def test_cli_fit_never_crashes_on_bad_tables(tmp_path_factory, frame):
    path = tmp_path_factory.mktemp("prop") / "runs.csv"
    frame.to_csv(path, index=False)
    try:
        load_runs(path)
    except BayescaleError:
        result = CliRunner().invoke(app, ["fit", str(path), "--model", "chinchilla", "-q", "-o", str(path.with_suffix(".nc"))])
        assert result.exit_code in (2, 3, 4, 5, 6), result.output
        assert "Traceback" not in result.output and "error:" in result.stderr


# --- hostile inputs beyond run tables (issue 19): output paths, spec tables, manifests, fit-file attributes ---

import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from bayescale import OutputPathError, check_output_path  # noqa: E402
from bayescale.manifest import read_manifest  # noqa: E402
from bayescale.spec import ModelSpec  # noqa: E402

path_part = st.sampled_from(["", ".", "..", "/", " ", "file.txt", "folder", "fifo", "fit.nc", "fit.zarr", "missing", "a b", "x" * 300, "\u00e9", "~"])
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(allow_nan=True), st.text(max_size=6), st.sampled_from(["E", "A", "alpha", "Normal", "chinchilla", "dataset"]))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["E", "A", "dist", "mu", "sigma", "sgima", "value", "x"]), inner, max_size=3)),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def playground(tmp_path_factory):
    root = tmp_path_factory.mktemp("paths")
    (root / "file.txt").write_text("precious")
    (root / "folder").mkdir()
    os.mkfifo(root / "fifo")
    return root


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(path_part, max_size=3), kind=st.sampled_from(["file", "fit", "folder"]), absolute=st.booleans())
def test_output_paths_checked_or_refused(playground, parts, kind, absolute):
    raw = "/".join(parts)
    path = (str(playground) + "/" + raw) if absolute else raw
    before = sorted(p.name for p in playground.iterdir())
    try:
        checked = check_output_path(path, kind)
    except OutputPathError as exc:
        assert "\n" not in str(exc)
    else:
        assert checked.parent.is_dir() and checked.name not in ("", ".", "..")
        assert not checked.is_dir() or kind != "file"
    assert sorted(p.name for p in playground.iterdir()) == before


spec_tables = st.fixed_dictionaries(
    {"form": st.one_of(st.sampled_from(["chinchilla", "kaplan", "nope"]), scalars)},
    optional={"priors": values, "pooling": values, "likelihood": values, "options": values, "name": scalars, "description": scalars},
)


@settings(max_examples=400, deadline=None)
@given(spec_tables)
def test_spec_tables_valid_or_spec_error(raw):
    try:
        spec = ModelSpec.from_dict(raw)
    except BayescaleError:
        return
    assert set(spec.pooled) <= set(spec.law.parameter_names)
    assert all(s > 0 for s in spec.pool_scale.values())


def _toml(value) -> str:
    """A TOML literal for ``value`` (strings through JSON escapes, which TOML shares; TOML has no null)."""
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"


job_keys = st.sampled_from(["name", "runs", "model", "group", "forecast", "allocate", "split_by", "columns", "drop_highest_loss", "max_epochs", "where", "draws", "seed", "sampler", "job", "defaults"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(job_keys, st.one_of(values, st.just("runs.csv")), max_size=6), st.booleans())
def test_manifests_valid_or_bayescale_error(entries, as_job):
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "runs.csv").write_text("params,tokens,loss,dataset\n1e8,2e9,3.1,a\n2e8,4e9,3.0,b\n")
        body = "".join(f"{json.dumps(k)} = {_toml(v)}\n" for k, v in entries.items() if v is not None)
        text = ("[[job]]\n" + body) if as_job else body
        (Path(folder) / "m.toml").write_text(text)
        try:
            jobs = read_manifest(Path(folder) / "m.toml")
        except BayescaleError:
            return
        folders = [j.folder_name for j in jobs]
        assert len({f.casefold() for f in folders}) == len(folders) and all(f not in ("", ".", "..") for f in folders)


@pytest.fixture(scope="module")
def saved_tree(tmp_path_factory):
    import xarray as xr

    from tests.safetyfit import complete_fake_fit

    path = complete_fake_fit(draws=5).save(tmp_path_factory.mktemp("attrs") / "fit.nc")
    return xr.open_datatree(path, engine="h5netcdf").load()


attr_values = st.one_of(
    st.integers(-(10**18), 10**18),
    st.floats(allow_nan=True),
    st.text(st.characters(blacklist_characters="\x00"), max_size=8),  # HDF5 strings cannot hold NUL: the file could not be written
    st.lists(st.integers(0, 3), max_size=3),
    st.sampled_from(['["dataset"]', '"x"', "{}", "[]", "null", '{"a": 1}', "9" * 400]),
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["bayescale_format", "spec", "groups", "diagnostics", "seed", "sampler", "info", "content_hash"]), attr_values, min_size=1, max_size=3), st.booleans())
def test_fit_file_attributes_loaded_or_fit_file_error(tmp_path_factory, saved_tree, attrs, rehash):
    from bayescale.errors import FitFileError
    from bayescale.fitting import content_hash, load_fit

    tree = saved_tree.copy()
    tree.attrs = {**saved_tree.attrs, **attrs}
    if rehash:
        tree.attrs["content_hash"] = content_hash(tree)
    path = tmp_path_factory.mktemp("attr") / "fit.nc"
    tree.to_netcdf(path, engine="h5netcdf")
    try:
        load_fit(path)
    except FitFileError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 600
