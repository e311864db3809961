"""Ctrl-C during sampling writes nothing, incomplete posteriors are never kept, and a sampler that
cannot start is one error line with exit 6, never a segfault (issue 32 §1-§2)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from bayescale import compiled, fit
from bayescale.cli import app
from bayescale.errors import BayescaleError, SamplerError
from bayescale.resources import data_path
from bayescale.sampling import SamplerConfig, check_complete

from .safetyfit import complete_fake_fit

CHINCHILLA = str(data_path("chinchilla_figure4_runs.csv"))


class _InterruptedSampler:
    """nutpie's background sampler as Ctrl-C leaves it: ``wait`` raises, ``cancel`` is recorded."""

    cancelled = False

    def wait(self):
        raise KeyboardInterrupt

    def cancel(self):
        type(self).cancelled = True


@pytest.fixture
def interrupted(monkeypatch):
    nutpie = compiled.import_nutpie()

    def sample(model, **kwargs):
        assert kwargs["blocking"] is False  # a blocking nutpie call returns a partial trace on Ctrl-C
        return _InterruptedSampler()

    _InterruptedSampler.cancelled = False
    monkeypatch.setattr(nutpie, "sample", sample)
    return _InterruptedSampler


def test_interrupt_during_sampling_propagates_and_cancels_the_chains(interrupted):
    with pytest.raises(KeyboardInterrupt):
        fit(CHINCHILLA, draws=20, tune=20, chains=2, self_check=False)
    assert interrupted.cancelled


def test_cli_interrupt_writes_nothing_and_exits_130(interrupted, tmp_path):
    target = tmp_path / "fit.nc"
    complete_fake_fit().save(target)
    before = hashlib.sha256(target.read_bytes()).hexdigest()
    run = CliRunner().invoke(app, ["fit", CHINCHILLA, "--model", "chinchilla", "-o", str(target), "--force", "--draws", "20", "--tune", "20", "-q"])
    assert run.exit_code == 130, run.output
    assert "error: interrupted; nothing was written" in run.output and "saved" not in run.output
    assert hashlib.sha256(target.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.nc"]


def _raw(chains: int, draws: int, value: float = 1.0) -> xr.DataTree:
    posterior = xr.Dataset({"E_z": (("chain", "draw"), np.full((chains, draws), value))})
    return xr.DataTree.from_dict({"posterior": posterior})


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (_raw(2, 7), "2 chain.s. of 7 draw.s., not the 2 of 10"),
        (_raw(1, 10), "1 chain.s. of 10 draw.s., not the 2 of 10"),
        (_raw(2, 0), "2 chain.s. of 0 draw.s."),
        (_raw(2, 10, np.nan), "NaN or infinite draws of 'E_z'"),
        (xr.DataTree(), "no posterior"),
    ],
)
def test_incomplete_or_nan_posteriors_are_refused(raw, match):
    with pytest.raises(SamplerError, match=match):
        check_complete(raw, SamplerConfig(draws=10, chains=2))


def test_complete_posterior_passes():
    raw = _raw(2, 10)
    assert check_complete(raw, SamplerConfig(draws=10, chains=2)) is raw


def test_one_draw_gets_a_clear_message():
    with pytest.raises(BayescaleError, match=r"draws=1: convergence \(R-hat, ESS\) cannot be judged"):
        fit(CHINCHILLA, draws=1, tune=10, chains=2)


def _bayescale(*args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([str(Path(sys.executable).parent / "bayescale"), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


@pytest.mark.slow
def test_real_ctrl_c_during_sampling_keeps_the_old_fit(tmp_path):
    """A real SIGINT to a real process while nutpie samples (long draws, so it is mid-sampling)."""
    target = tmp_path / "fit.nc"
    complete_fake_fit().save(target)
    before = target.read_bytes()
    proc = _bayescale("fit", CHINCHILLA, "-o", str(target), "--force", "--draws", "2000000", "--tune", "500", "--chains", "2", "--no-self-check", "-q")
    time.sleep(30)  # imports and compile take seconds; 2e6 draws take minutes
    assert proc.poll() is None
    os.kill(proc.pid, signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    assert "error: interrupted; nothing was written" in output and "saved" not in output
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.nc"]


_INIT_FAILURE = """
import sys
from dataclasses import replace
import bayescale
from bayescale.errors import SamplerError
from bayescale.spec import load_spec
spec = load_spec("chinchilla")
spec = replace(spec, likelihood=replace(spec.likelihood, nu=float("inf")))  # past the spec's own range check
try:
    bayescale.fit(sys.argv[1], spec, draws=20, tune=20, chains=2, self_check=False)
except SamplerError as exc:
    print(exc)
    sys.exit(exc.exit_code)
"""


@pytest.mark.slow
def test_sampler_that_cannot_start_exits_6_without_a_segfault():
    """nutpie's own initialisation failure corrupts its threads (exit 139 at interpreter exit); the model is checked first."""
    run = subprocess.run([sys.executable, "-c", _INIT_FAILURE, CHINCHILLA], check=False, capture_output=True, text=True, timeout=300)
    assert run.returncode == SamplerError.exit_code, run.stdout + run.stderr
    assert "log density is not finite at its initial values" in run.stdout
    assert "Stack backtrace" not in run.stdout


def _swallowed_interrupt() -> None:
    """A real SIGINT whose ``KeyboardInterrupt`` a library swallows (as a weakref callback or
    ``__del__`` does: printed as "Exception ignored", then execution goes on)."""
    with contextlib.suppress(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)


def test_a_swallowed_interrupt_still_stops_the_write(tmp_path):
    """Found by the adversarial pass: Ctrl-C 50 ms into `fit`'s save landed in a weakref callback
    inside the netCDF writer; the save went on, replaced -o, and the command exited 0."""
    from bayescale.paths import remember_interrupts, write_atomic

    target = tmp_path / "out.txt"
    target.write_text("old")
    handler = signal.getsignal(signal.SIGINT)

    finished = []

    def writer(tmp):
        tmp.write_text("new")
        signal.raise_signal(signal.SIGINT)  # while writing: remembered, not raised inside the writer's library
        finished.append(True)

    with pytest.raises(KeyboardInterrupt), remember_interrupts():
        write_atomic(target, writer)
    assert finished and target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    assert signal.getsignal(signal.SIGINT) is handler  # restored: later writes are not refused
    write_atomic(target, "after")
    assert target.read_text() == "after"


def test_cli_swallowed_interrupt_exits_130_and_keeps_the_old_report(monkeypatch, tmp_path):
    from bayescale import report

    saved = complete_fake_fit().save(tmp_path / "fit.nc")
    out = tmp_path / "r.html"
    out.write_text("old report")
    real = report.report_context

    def interrupted(*args, **kwargs):
        _swallowed_interrupt()
        return real(*args, **kwargs)

    monkeypatch.setattr(report, "report_context", interrupted)
    run = CliRunner().invoke(app, ["report", str(saved), "-o", str(out), "--flops", "1e21"])
    assert run.exit_code == 130, run.output
    assert "error: interrupted; nothing was written" in run.output and "wrote" not in run.output
    assert out.read_text() == "old report" and sorted(p.name for p in tmp_path.iterdir()) == ["fit.nc", "r.html"]
