"""Output paths (issue 19, critical 1): checked up front, written atomically, nothing deleted that bayescale did not create."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import xarray as xr
from typer.testing import CliRunner

from bayescale import OutputPathError, check_output_path
from bayescale.cli import app
from bayescale.fitting import load_fit
from bayescale.paths import clean_stale, write_atomic

from .safetyfit import complete_fake_fit


@pytest.fixture(scope="module")
def small_fit():
    return complete_fake_fit()


@pytest.fixture
def inside(tmp_path, monkeypatch):
    """Work inside a folder holding a file the package must never delete."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "precious.txt").write_text("keep me")
    return tmp_path


@pytest.mark.parametrize("out", ["", ".", "./", "..", "/", "precious.txt/fit.nc", "missing/fit.nc", "sub"])
def test_bad_output_paths_are_refused(inside, out):
    (inside / "sub").mkdir()
    with pytest.raises(OutputPathError):
        check_output_path(out, "fit")
    assert (inside / "precious.txt").read_text() == "keep me"


def test_existing_files_of_another_kind(inside, small_fit):
    with pytest.raises(OutputPathError, match="not a saved fit"):
        check_output_path("precious.txt", "fit")  # a run table given as -o by mistake
    check_output_path("precious.txt", "file")  # a report or table may be replaced
    (inside / "store.zarr").mkdir()
    (inside / "store.zarr" / "mine.txt").write_text("x")
    with pytest.raises(OutputPathError, match="not a bayescale zarr fit"):
        small_fit.save("store.zarr")
    assert (inside / "store.zarr" / "mine.txt").exists()
    with pytest.raises(OutputPathError, match="not a folder"):
        check_output_path("precious.txt", "folder")
    if os.path.exists("/dev/null"):
        with pytest.raises(OutputPathError, match="device, FIFO or socket"):
            check_output_path("/dev/null", "file")
    fifo = inside / "pipe.nc"
    os.mkfifo(fifo)
    with pytest.raises(OutputPathError, match="device, FIFO or socket"):
        check_output_path(fifo, "fit")


def test_unwritable_folder(inside, monkeypatch):
    locked = inside / "locked"
    locked.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(locked) else real(p, mode))
    with pytest.raises(OutputPathError, match="not writable"):
        check_output_path(locked / "fit.nc", "fit")


@pytest.mark.parametrize("out", ["", "."])
def test_cli_fit_dash_o_empty_or_dot_deletes_nothing(inside, out):
    """The exact reproduction: ``fit runs.csv -o ""`` once deleted the current folder after the fit."""
    from bayescale.resources import data_path

    before = sorted(p.name for p in inside.iterdir())
    result = CliRunner().invoke(app, ["fit", str(data_path("chinchilla_figure4_runs.csv")), "--model", "chinchilla", "-o", out, "-q", "--draws", "10", "--tune", "10"])
    assert result.exit_code == 2, result.output
    assert "error:" in result.stderr and "Traceback" not in result.output
    assert "Fitting" not in result.output and "saved" not in result.output  # refused before any work
    assert sorted(p.name for p in inside.iterdir()) == before
    assert (inside / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("command", "kind"),
    [
        (["forecast", "FIT", "--params", "7B", "--tokens", "140B", "-o"], "file"),
        (["allocate", "FIT", "--flops", "1e22", "-o"], "file"),
        (["report", "FIT", "-o"], "file"),
        (["batch", "MANIFEST", "-o"], "folder"),
        (["demo", "-q", "--draws", "10", "--tune", "10", "-o"], "folder"),
    ],
)
def test_every_writing_command_checks_its_output_first(inside, command, kind):
    args = [("precious.txt" if a in ("FIT", "MANIFEST") else a) for a in command]
    bad = "precious.txt/x" if kind == "file" else "precious.txt"
    result = CliRunner().invoke(app, [*args, bad])
    assert result.exit_code == 2, result.output
    assert "error: output" in result.stderr and "Traceback" not in result.output
    assert (inside / "precious.txt").read_text() == "keep me"


def test_save_removes_only_its_own_temporary(inside, small_fit, monkeypatch):
    target = inside / "fit.nc"
    small_fit.save(target)
    before = target.read_bytes()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(xr.DataTree, "to_netcdf", boom)
    with pytest.raises(KeyboardInterrupt):
        small_fit.save(target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in inside.iterdir()) == ["fit.nc", "precious.txt"]


def test_stale_temporaries_of_a_killed_save_are_cleaned(inside, small_fit):
    """``kill -9`` during a save leaves a temporary (its writer's pid is dead); the next save to that path removes it (only it)."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    stale = inside / f".fit.nc.bayescale-tmp-{int(dead.stdout)}-0123456789ab"  # what a killed save leaves
    stale.write_bytes(b"partial")
    legacy = inside / ".fit.nc.ab12cd_3"  # bayescale 0.1's mkdtemp folder
    legacy.mkdir()
    (legacy / "fit.nc").write_bytes(b"partial")
    foreign = inside / ".fit.nc.notours"
    foreign.write_text("someone else's")
    small_fit.save("fit.nc")
    assert sorted(p.name for p in inside.iterdir()) == [".fit.nc.notours", "fit.nc", "precious.txt"]
    load_fit("fit.nc")


def test_live_writers_temporaries_are_kept(inside):
    live = inside / f".fit.nc.bayescale-tmp-{os.getpid()}-0123456789ab"
    live.write_bytes(b"in progress")
    assert clean_stale(inside / "fit.nc") == []
    assert live.exists()


def test_zarr_store_replaced_and_interrupted(inside, small_fit, monkeypatch):
    small_fit.save("fit.zarr")
    small_fit.save("fit.zarr")  # replacing a bayescale store is allowed
    load_fit("fit.zarr")

    def boom(tmp):
        tmp.mkdir()
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(inside / "fit.zarr", boom, "fit")
    assert sorted(p.name for p in inside.iterdir()) == ["fit.zarr", "precious.txt"]
    load_fit("fit.zarr")


def test_api_save_creates_missing_folders_but_not_under_a_file(inside, small_fit):
    assert small_fit.save(inside / "a" / "b" / "fit.nc").is_file()
    with pytest.raises(OutputPathError, match="is a file"):
        small_fit.save(inside / "precious.txt" / "fit.nc")
