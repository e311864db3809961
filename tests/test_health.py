"""A fit whose own forecasts failed its self-check is flagged, and only then."""

from __future__ import annotations

import pytest

from bayescale.documents import SelfCheck, failure


@pytest.mark.parametrize(("covered", "n"), [(34, 91), (1, 3), (0, 3), (4, 7), (10, 20)])
def test_markedly_low_coverage_is_a_failure(covered, n):
    message = failure(SelfCheck(n_test=n, covered_90=covered, coverage_90=covered / n, extrapolation=2.0, median_abs_log_error=0.01))
    assert message is not None and f"{covered}/{n} at 90%" in message


@pytest.mark.parametrize(("covered", "n"), [(2, 3), (6, 7), (80, 91), (3, 3), (16, 20)])
def test_coverage_within_chance_is_not_a_failure(covered, n):
    assert failure(SelfCheck(n_test=n, covered_90=covered, coverage_90=covered / n, extrapolation=2.0, median_abs_log_error=0.01)) is None


def test_no_or_skipped_check_is_not_called_a_failure():
    assert failure(None) is None
    assert failure(SelfCheck.skip("too few runs")) is None


FAILED = SelfCheck(n_test=91, covered_90=34, coverage_90=34 / 91, coverage_50=0.2, extrapolation=3.0, median_abs_log_error=0.03)


@pytest.fixture(scope="module")
def failed_fit_path(tmp_path_factory):
    from dataclasses import replace

    from .safetyfit import complete_fake_fit

    return replace(complete_fake_fit(), self_check=FAILED).save(tmp_path_factory.mktemp("health") / "failed.nc")


def _cli(*args):
    from typer.testing import CliRunner

    from bayescale.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_every_output_flags_a_failed_self_check(failed_fit_path, tmp_path):
    import json

    summary = _cli("summary", failed_fit_path)
    assert summary.exit_code == 0 and "WARNING: forecasts beyond the data failed their own check: 34/91 at 90%" in summary.output
    assert json.loads(_cli("summary", failed_fit_path, "--format", "json").stdout)["self_check_warning"].startswith("forecasts beyond the data failed")
    table = _cli("forecast", failed_fit_path, "--params", "7B", "--tokens", "140B")
    assert table.exit_code == 0 and "34/91 at 90%" in table.output
    doc = json.loads(_cli("forecast", failed_fit_path, "--params", "7B", "--tokens", "140B", "--format", "json").stdout)
    assert "34/91" in doc["self_check_warning"]
    strict = _cli("summary", failed_fit_path, "--strict")
    assert strict.exit_code == 7 and "failed their own check" in strict.output
    report = _cli("report", failed_fit_path, "-o", tmp_path / "r.html")
    assert report.exit_code == 0, report.output
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert 'id="self-check-failed"' in html and "34/91 at 90%" in html


def test_a_passed_self_check_adds_no_warning(saved_fit_path):
    import json

    assert json.loads(_cli("summary", saved_fit_path, "--format", "json").stdout)["self_check_warning"] is None
    assert "WARNING" not in _cli("summary", saved_fit_path).output
