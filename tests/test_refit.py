"""A grouped fit that does not converge samples once more with the other centring and, if that fails
too, once more with every pooled level non-centred (issue 26); it keeps the best run and records
every one (issue 31 §8); its message names only what was tried and untried options.

The sampler runs for real on a small grouped table; the verdicts are forced by wrapping the judging
step, so no test depends on whether a few draws happen to converge.
"""

from __future__ import annotations

import dataclasses
import warnings

import pytest

from bayescale import fitting
from bayescale.documents import Attempt, Diagnostics, FitInfo, Uncentering
from bayescale.errors import ConvergenceWarning
from bayescale.spec import load_spec

TINY = {"draws": 40, "tune": 40, "chains": 2, "self_check": False}


def _failed(diagnostics: Diagnostics, divergences: int, rhat: float) -> Diagnostics:
    return dataclasses.replace(diagnostics, divergences=divergences, rhat_max=rhat, problems=(f"{divergences} divergent transitions", f"R-hat {rhat:.3f} > 1.01"))


def _passed(diagnostics: Diagnostics) -> Diagnostics:
    return dataclasses.replace(diagnostics, divergences=0, rhat_max=1.0, problems=())


@pytest.fixture
def forced(monkeypatch):
    """Run the real sampler but report the verdicts given (one per run); records each run's centred levels."""
    sampled: list[tuple[str, ...]] = []
    verdicts: list = []
    real = fitting._sample_judged

    def judged(spec, design, prior_draws, config, adaptation):
        tree, diagnostics, config = real(spec, design, prior_draws, config, adaptation)
        sampled.append(tuple(spec.centered))
        return tree, verdicts[len(sampled) - 1](diagnostics), config

    monkeypatch.setattr(fitting, "_sample_judged", judged)
    return sampled, verdicts


def _fit(frame, model="chinchilla", progress=False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fitting.fit(frame, model, group="dataset", seed=1, progress=progress, **TINY)


@pytest.mark.slow
def test_not_converged_samples_the_other_centring_and_keeps_the_converged_run(grouped_frame, forced, capsys):
    sampled, verdicts = forced
    verdicts += [lambda d: _failed(d, 0, 1.2), _passed]  # no divergences: every pooled level switches
    result = _fit(grouped_frame, progress=True)
    assert "sampling again with E, A, B in the other centring" in capsys.readouterr().err
    assert len(sampled) == 2 and set(sampled[0]) ^ set(sampled[1]) == {"E", "A", "B"}
    again = result.info.uncentered
    assert again is not None and again.kept == 1 and again.attempts is not None
    assert [a.converged for a in again.attempts] == [False, True] and [a.centered for a in again.attempts] == sampled
    assert result.diagnostics.converged and tuple(result.spec.centered) == sampled[1] == result.info.centered
    line = result.pooling_sentence()
    assert f"kept the {'centred' if set(sampled[1]) == {'E', 'A', 'B'} else 'non-centred'} run" in line and "neither converged" not in line
    stored = FitInfo.from_dict(result.info.to_dict())
    assert stored == result.info and result.pooling_summary()["recentred"]["kept"] == 1


@pytest.mark.slow
def test_neither_converged_keeps_the_better_and_names_only_what_was_tried(grouped_frame, forced):
    sampled, verdicts = forced
    verdicts += [lambda d: _failed(d, 0, 1.05), lambda d: _failed(d, 30, 1.3)]
    result = _fit(grouped_frame)
    again = result.info.uncentered
    assert len(sampled) == 2 and again is not None and again.kept == 0 and set(sampled[0]) == {"E", "A", "B"}  # the design centres every level
    assert tuple(result.spec.centered) == sampled[0] and result.diagnostics.rhat_max == pytest.approx(1.05)
    message = result.diagnostics.message(result.info)
    assert message.startswith("NOT CONVERGED") and "Tried: centred and non-centred group levels for E, A, B" in message
    assert "neither converged; kept the centred run" in message and "non-centred: 30 divergences" in message
    assert "--group" in message and "pool fewer parameters" in message
    assert "tune" not in message and "draws" not in message and "other centring" not in message


def test_a_converged_fit_samples_once(grouped_frame, forced):
    sampled, verdicts = forced
    verdicts += [_passed]
    result = _fit(grouped_frame)
    assert len(sampled) == 1 and result.info.uncentered is None and result.info.centering == "auto"


def test_a_centring_the_spec_fixes_is_not_switched(grouped_frame, forced):
    """The spec's own centring is a choice the fit respects; the message offers the other as untried."""
    sampled, verdicts = forced
    verdicts += [lambda d: _failed(d, 3, 1.1)]
    result = _fit(grouped_frame, dataclasses.replace(load_spec("chinchilla"), centered=("E",)))
    assert sampled == [("E",)] and result.info.uncentered is None and result.info.centering == "spec"
    message = result.diagnostics.message(result.info)
    assert 'pooling.centered = "auto"' in message and "Tried" not in message and "tune" not in message


def test_an_ungrouped_message_recommends_no_unchecked_fix():
    diagnostics = Diagnostics(1.2, 40.0, 40.0, 3, 0, 100, 2, ("R-hat 1.200 > 1.01",))
    for message in (diagnostics.message(), diagnostics.message(FitInfo(pooled=()))):
        assert message.startswith("NOT CONVERGED") and "Untried options" in message
        assert "tune" not in message and "draws" not in message


@pytest.fixture
def funnel_in_a(monkeypatch):
    """The second run switches only A (as after divergences in A's funnel), so every level non-centred is still untried."""
    monkeypatch.setattr(fitting, "other_centering", lambda spec, *_: ("A",))


def test_both_failing_samples_every_level_non_centred_and_keeps_the_best(grouped_frame, forced, funnel_in_a, capsys):
    sampled, verdicts = forced
    verdicts += [lambda d: _failed(d, 5, 1.1), lambda d: _failed(d, 9, 1.2), lambda d: _failed(d, 2, 1.05)]
    result = _fit(grouped_frame, progress=True)
    assert "sampling again with every pooled level non-centred" in capsys.readouterr().err
    assert sampled == [("E", "A", "B"), ("E", "B"), ()]  # the design centres every level
    again = result.info.uncentered
    assert again is not None and again.kept == 2 and again.params == ("E", "A", "B") and again.attempts is not None
    assert [a.centered for a in again.attempts] == sampled and [a.divergences for a in again.attempts] == [5, 9, 2]
    assert tuple(result.spec.centered) == () == result.info.centered and result.diagnostics.divergences == 2
    message = result.diagnostics.message(result.info)
    assert "Tried: centred, then E, B centred, then non-centred group levels for E, A, B" in message
    assert "none converged; kept the non-centred run" in message and "E, B centred: 9 divergences" in message
    assert "--group" in message and "pool fewer parameters" in message
    assert "other centring" not in message and "pooling.centered = false" not in message and "tune" not in message
    assert FitInfo.from_dict(result.info.to_dict()) == result.info


def test_a_converged_second_run_is_not_sampled_again(grouped_frame, forced, funnel_in_a):
    sampled, verdicts = forced
    verdicts += [lambda d: _failed(d, 5, 1.1), _passed]
    result = _fit(grouped_frame)
    again = result.info.uncentered
    assert len(sampled) == 2 and again is not None and again.kept == 1 and again.params == ("A",)
    assert result.diagnostics.converged and tuple(result.spec.centered) == ("E", "B")


@pytest.mark.slow
def test_the_first_run_is_kept_when_it_is_the_best_of_three(grouped_frame, forced, funnel_in_a):
    sampled, verdicts = forced
    verdicts += [lambda d: _failed(d, 0, 1.05), lambda d: _failed(d, 4, 1.02), lambda d: _failed(d, 1, 1.01)]
    result = _fit(grouped_frame)
    assert len(sampled) == 3 and result.info.uncentered is not None and result.info.uncentered.kept == 0
    assert tuple(result.spec.centered) == sampled[0] and result.diagnostics.rhat_max == pytest.approx(1.05)


def test_a_file_from_two_runs_offers_every_level_non_centred_as_untried():
    """Fits from before the third run: when neither run had every level non-centred, that is still an untried option."""
    diagnostics = Diagnostics(1.2, 40.0, 40.0, 3, 0, 100, 2, ("R-hat 1.200 > 1.01",))
    attempts = (Attempt(("E", "A"), False, 3, 1.2), Attempt(("E",), False, 3, 1.3))
    info = FitInfo(pooled=("E", "A"), centered=("E", "A"), centering="auto", uncentered=Uncentering(("A",), 3, attempts, 0))
    message = diagnostics.message(info)
    assert "Tried: centred and non-centred group levels for A" in message and "every group level non-centred (the spec's pooling.centered = false)" in message
    tried = dataclasses.replace(info, uncentered=Uncentering(("E", "A"), 3, (*attempts, Attempt((), False, 3, 1.4)), 0))
    assert "pooling.centered = false" not in diagnostics.message(tried)
