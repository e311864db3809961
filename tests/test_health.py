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
