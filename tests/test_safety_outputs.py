"""Outputs never destroy inputs (issue 32 §1): an output that is an input is refused before any work,
and every write goes through the one atomic writer (exclusive temporary, no link followed, nothing left on failure)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bayescale import paths
from bayescale.cli import app
from bayescale.errors import OutputPathError, OutputWriteError
from bayescale.paths import check_output_path, write_atomic
from bayescale.resources import data_path

from .fakefit import fake_fit

TRUTH = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


@pytest.fixture(scope="module")
def fit_bytes(tmp_path_factory) -> bytes:
    """The bytes of a small saved fit (no sampling), copied into each test's folder."""
    return fake_fit(TRUTH).save(tmp_path_factory.mktemp("outputs") / "fit.nc").read_bytes()


@pytest.fixture
def folder(tmp_path, monkeypatch, fit_bytes) -> Path:
    """A working folder with a saved fit, a run table and a targets table."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fit.nc").write_bytes(fit_bytes)
    (tmp_path / "runs.csv").write_bytes(data_path("chinchilla_figure4_runs.csv").read_bytes())
    (tmp_path / "targets.csv").write_text("params,tokens\n7e9,1.4e11\n")
    return tmp_path


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file in ``folder`` with its bytes: an unchanged snapshot means nothing was written or left behind."""
    return {p.name: (p.read_bytes() if p.is_file() else b"<link or folder>") for p in sorted(folder.iterdir())}


def refused(args: list[str], folder: Path, match: str = "is the input") -> None:
    """The command exits 2 with one line naming the clash, and the folder is exactly as it was."""
    before = snapshot(folder)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert match in result.stderr and "Traceback" not in result.output
    assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1
    assert snapshot(folder) == before


@pytest.mark.parametrize(
    "args",
    [
        ["forecast", "fit.nc", "--params", "7B", "--tokens", "140B", "-o", "fit.nc"],
        ["forecast", "fit.nc", "--targets", "targets.csv", "-o", "targets.csv"],
        ["allocate", "fit.nc", "--flops", "1e22", "-o", "fit.nc"],
        ["decide", "fit.nc", "--target-loss", "2.5", "--flops", "1e22", "-o", "fit.nc"],
        ["report", "fit.nc", "-o", "fit.nc"],
        ["backtest", "runs.csv", "--sweep", "1", "-o", "runs.csv"],
        ["compare", "runs.csv", "--model", "chinchilla", "--model", "kaplan", "-o", "runs.csv"],
    ],
)
def test_an_output_that_is_an_input_is_refused_before_any_work(folder, args):
    refused(args, folder)


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_the_same_file_through_a_link_is_refused(folder, link):
    (os.symlink if link == "symlink" else os.link)("fit.nc", "alias.nc")
    refused(["allocate", "fit.nc", "--flops", "1e22", "-o", "alias.nc"], folder, "the same file through a link")
    refused(["report", "alias.nc", "-o", "fit.nc"], folder, "the same file through a link")


def test_an_output_inside_an_input_store_is_refused(tmp_path):
    store = tmp_path / "fit.zarr"
    store.mkdir()
    (store / "zarr.json").write_text("{}")
    with pytest.raises(OutputPathError, match="inside it"):
        check_output_path(store / "zarr.json", "file", inputs=[store])
    check_output_path(tmp_path / "other.json", "file", inputs=[store])  # beside it is fine


def test_report_compare_naming_the_fit_itself_is_refused(folder):
    os.symlink("fit.nc", "alias.nc")
    refused(["report", "fit.nc", "-o", "r.html", "--compare", "fit.nc"], folder, "that is the fit being reported")
    refused(["report", "fit.nc", "-o", "r.html", "--compare", "alias.nc"], folder, "that is the fit being reported")


def test_batch_refuses_results_that_overwrite_its_inputs(folder):
    """A job's run table at RESULTS/summary.csv (or the manifest there) would be replaced by the summary."""
    (folder / "results").mkdir()
    (folder / "results" / "summary.csv").write_bytes((folder / "runs.csv").read_bytes())
    (folder / "m.toml").write_text('[[job]]\nname = "a"\nruns = "results/summary.csv"\n')
    before = snapshot(folder / "results")
    result = CliRunner().invoke(app, ["batch", "m.toml", "-o", "results", "-q"])
    assert result.exit_code == 2, result.output
    assert "is the input" in result.stderr and "Traceback" not in result.output
    assert snapshot(folder / "results") == before


def test_writes_replace_a_link_at_the_output_never_its_target(folder):
    """``-o link`` replaces the link itself: the file it pointed to (another of the user's files) is untouched."""
    (folder / "elsewhere.txt").write_text("keep me")
    os.symlink("elsewhere.txt", "out.txt")
    write_atomic(folder / "out.txt", "new text\n")
    assert (folder / "elsewhere.txt").read_text() == "keep me"
    assert not (folder / "out.txt").is_symlink() and (folder / "out.txt").read_text() == "new text\n"


def test_a_replaced_output_keeps_its_permissions(folder):
    (folder / "private.csv").write_text("old\n")
    os.chmod(folder / "private.csv", 0o600)
    write_atomic(folder / "private.csv", "new\n")
    assert (folder / "private.csv").read_text() == "new\n"
    assert (folder / "private.csv").stat().st_mode & 0o777 == 0o600


def test_a_planted_link_at_a_temporary_name_is_not_followed(folder, monkeypatch):
    """A link planted where the writer's first temporary name would be is skipped, never written through."""
    (folder / "victim.txt").write_text("keep me")
    names = iter(["000000000000", "111111111111"])
    monkeypatch.setattr(paths.secrets, "token_hex", lambda n: next(names))
    trap = folder / f".out.txt.bayescale-tmp-{os.getpid()}-000000000000"
    os.symlink(folder / "victim.txt", trap)
    write_atomic(folder / "out.txt", "result\n")
    assert (folder / "victim.txt").read_text() == "keep me"
    assert (folder / "out.txt").read_text() == "result\n"
    assert trap.is_symlink()  # not ours: left alone


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_is_one_line_and_leaves_nothing(folder, monkeypatch):
    """ENOSPC while writing: exit 8, one line, the old output as it was, no temporary left."""
    (folder / "out.csv").write_text("old\n")
    before = snapshot(folder)
    monkeypatch.setattr(paths.os, "write", no_space)
    with pytest.raises(OutputWriteError, match=r"cannot write .*out\.csv: No space left on device"):
        write_atomic(folder / "out.csv", "new\n")
    assert snapshot(folder) == before
    result = CliRunner().invoke(app, ["forecast", "fit.nc", "--params", "7B", "--tokens", "140B", "-o", "out.csv"])
    assert result.exit_code == OutputWriteError.exit_code == 8, result.output
    assert result.stderr.strip().splitlines()[-1] == "error: cannot write out.csv: No space left on device"
    assert snapshot(folder) == before


def test_a_fit_saved_to_a_full_disk_is_one_error_and_the_old_fit_kept(folder, monkeypatch):
    """Saving a fit when the disk is full: ``OutputWriteError`` (never a failure inside libhdf5), the old file byte for byte."""
    from bayescale.fitting import load_fit

    before = snapshot(folder)
    fit = load_fit("fit.nc")
    monkeypatch.setattr(paths.os, "write", no_space)
    with pytest.raises(OutputWriteError, match="No space left on device"):
        fit.save("fit.nc")
    assert snapshot(folder) == before


def test_a_failing_writer_function_leaves_nothing(folder, monkeypatch):
    """A fit save (a writer function) that runs out of space: one line, the old fit kept, its private folder removed."""
    before = snapshot(folder)

    def full(tmp: Path) -> None:
        tmp.write_bytes(b"partial")
        raise OSError("Can't write data (file write failed: time = now, errno = 28, error message = 'No space left on device')")

    with pytest.raises(OutputWriteError, match="No space left on device"):
        write_atomic(folder / "fit.nc", full, "fit")
    assert snapshot(folder) == before


def test_report_and_text_outputs_go_through_the_atomic_writer(folder, monkeypatch):
    """The report and ``-o`` text outputs are written by ``write_atomic`` (no fixed ``.NAME.tmp``, no ``write_text`` over the target)."""
    import jinja2

    from bayescale import report

    written: list[str] = []
    real = paths.write_atomic

    def spy(path, write, kind="file"):
        written.append(Path(path).name)
        return real(path, write, kind)

    monkeypatch.setattr(paths, "write_atomic", spy)
    monkeypatch.setattr(report, "report_context", lambda fit, **kwargs: {})  # the writing is under test, not the figures
    monkeypatch.setattr(jinja2.Template, "render", lambda self, **kwargs: "<html></html>")
    result = CliRunner().invoke(app, ["report", "fit.nc", "-o", "r.html"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["allocate", "fit.nc", "--flops", "1e21", "-o", "plan.json", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert written == ["r.html", "plan.json"]
    assert (folder / "r.html").read_text() == "<html></html>"
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_a_fit_written_to_the_same_output_meanwhile_is_not_replaced(folder, monkeypatch):
    """Two fits to one ``-o``: the check that the file holds no different fit runs again at save time."""
    import bayescale.fitting

    other = fake_fit({**TRUTH, "E": 1.8})

    def sample_while_another_saves(table, *args, **kwargs):
        other.save(folder / "new.nc")  # the other process finishes first
        return fake_fit(TRUTH)

    monkeypatch.setattr(bayescale.fitting, "fit", sample_while_another_saves)
    result = CliRunner().invoke(app, ["fit", "runs.csv", "-o", "new.nc", "-q"])
    assert result.exit_code == 2, result.output
    assert "already holds a different fit" in result.stderr and "saved" not in result.stdout
    assert float(bayescale.fitting.load_fit("new.nc").posterior["E"].mean()) == pytest.approx(1.8)
