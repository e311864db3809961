"""A sampled fit is never lost (issue 31 §2, issue 32 §1): a failed save keeps the draws in a
recovery file that ``summary``/``forecast`` read, and the save re-checks ``-o`` (another fit may
have been written there while this one sampled)."""

from __future__ import annotations

import errno
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import bayescale
from bayescale import paths
from bayescale.cli import app
from bayescale.errors import BayescaleError, OutputPathError
from bayescale.fitting import load_fit
from bayescale.recovery import output_state, recovery_path, save_or_recover
from bayescale.resources import data_path

from .safetyfit import complete_fake_fit

CHINCHILLA = str(data_path("chinchilla_figure4_runs.csv"))
QUICK = ["--draws", "60", "--tune", "60", "--chains", "2", "--no-self-check", "-q"]


def _failing_at(monkeypatch: pytest.MonkeyPatch, target: Path) -> None:
    """Make every write to ``target`` fail as a full disk does; other paths write normally."""
    real = paths.write_atomic

    def write_atomic(path, write, kind="file"):
        if Path(path) == target:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, write, kind)

    monkeypatch.setattr(paths, "write_atomic", write_atomic)


def test_failed_save_keeps_the_fit_in_a_recovery_file(tmp_path, monkeypatch):
    result = complete_fake_fit()
    target = tmp_path / "fit.nc"
    _failing_at(monkeypatch, target)
    with pytest.raises(OutputPathError, match=r"No space left on device; the sampled fit was kept in .*fit\.recovery\.nc") as caught:
        save_or_recover(result, target)
    assert "\n" not in str(caught.value)
    assert not target.exists()
    kept = load_fit(tmp_path / "fit.recovery.nc")
    np.testing.assert_array_equal(kept.posterior["E"].values, result.posterior["E"].values)


def test_recovery_never_replaces_an_earlier_recovery_file(tmp_path, monkeypatch):
    result = complete_fake_fit()
    target = tmp_path / "fit.zarr"
    _failing_at(monkeypatch, target)
    for _ in range(2):
        with pytest.raises(OutputPathError):
            save_or_recover(result, target)
    assert (tmp_path / "fit.recovery.nc").is_file() and (tmp_path / "fit.recovery-1.nc").is_file()
    assert recovery_path(target) == tmp_path / "fit.recovery-2.nc"


def test_a_refused_recheck_keeps_the_error_class_and_the_fit(tmp_path):
    result = complete_fake_fit()
    target = tmp_path / "fit.nc"

    def refuse() -> None:
        raise BayescaleError(f"{target} already holds a different fit (other seed): pass --force")

    with pytest.raises(BayescaleError, match=r"different fit.*kept in") as caught:
        save_or_recover(result, target, recheck=refuse)
    assert type(caught.value) is BayescaleError
    assert load_fit(tmp_path / "fit.recovery.nc").seed == result.seed


def test_recheck_is_skipped_only_when_the_target_is_as_it_was(tmp_path):
    result = complete_fake_fit()
    target = tmp_path / "fit.nc"
    calls: list[int] = []
    seen = output_state(target)
    save_or_recover(result, target, recheck=lambda: calls.append(1), seen=seen)
    assert calls == []  # nothing was there before, nothing is there now: what --force agreed to
    save_or_recover(result, target, recheck=lambda: calls.append(1), seen=seen)
    assert calls == [1]  # a file appeared since: checked


def test_cli_fit_whose_save_fails_names_the_recovery_file_and_summary_reads_it(tmp_path, monkeypatch):
    target = tmp_path / "fit.nc"
    _failing_at(monkeypatch, target)
    run = CliRunner().invoke(app, ["fit", CHINCHILLA, "--model", "chinchilla", "-o", str(target), *QUICK])
    assert run.exit_code == OutputPathError.exit_code, run.output
    errors = [line for line in run.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "fit.recovery.nc" in errors[0] and "No space left" in errors[0]
    assert "saved" not in run.output
    recovered = tmp_path / "fit.recovery.nc"
    summary = CliRunner().invoke(app, ["summary", str(recovered)])
    assert summary.exit_code == 0, summary.output
    forecast = CliRunner().invoke(app, ["forecast", str(recovered), "--params", "1e10", "--tokens", "2e11"])
    assert forecast.exit_code == 0, forecast.output


def test_two_fits_to_one_output_do_not_both_say_saved(tmp_path, monkeypatch):
    """Another process saves a different fit to -o while this one samples: the save re-checks and refuses."""
    target = tmp_path / "fit.nc"
    real_fit = bayescale.fit

    def fit_while_another_saves(*args, **kwargs):
        result = real_fit(*args, **kwargs)
        complete_fake_fit().save(target)  # the other process finished first
        return result

    monkeypatch.setattr(bayescale, "fit", fit_while_another_saves)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = CliRunner().invoke(app, ["fit", CHINCHILLA, "--model", "chinchilla", "-o", str(target), *QUICK])
        assert run.exit_code != 0, run.output
        assert "already holds a different fit" in run.output and "saved " not in run.output
        assert load_fit(target).runs.content_hash() == complete_fake_fit().runs.content_hash()  # the other fit is kept
        assert len(load_fit(tmp_path / "fit.recovery.nc").runs) == len(bayescale.load_runs(CHINCHILLA))
