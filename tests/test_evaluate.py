"""The one evaluation path: plan inputs, the discrepancy shift, and that every consumer goes through it."""

from __future__ import annotations

import numpy as np
import pytest

from bayescale import evaluate
from bayescale.decide import compare_plans, prob_below
from bayescale.errors import BayescaleError
from bayescale.evaluate import PosteriorEvaluator, plan_distance, plan_inputs, with_discrepancy
from bayescale.forecasting import forecast_summary
from bayescale.laws import get_law
from bayescale.runs import RunTable
from bayescale.self_check import score
from bayescale.simulate import EPOCH_CHINCHILLA as TRUTH

from .fakefit import fake_fit

SHIFT = 0.1


def test_plan_inputs_cap_unique_tokens_and_name_what_plans_cannot_give():
    law = get_law("data_constrained")
    x = plan_inputs(law, np.log(1e9), np.log(2e10), np.log(5e9))
    assert x["unique_tokens"] == pytest.approx(np.log(5e9)) and x["tokens"] == pytest.approx(np.log(2e10))
    assert plan_inputs(law, np.log(1e9), np.log(2e10), np.log(5e11))["unique_tokens"] == pytest.approx(np.log(2e10))  # U_eff = min(U, D)
    assert plan_inputs(law, np.log(1e9), np.log(2e10))["unique_tokens"] == pytest.approx(np.log(2e10))  # fresh data
    assert plan_inputs(get_law("compute"), np.log(1e9), np.log(2e10))["flops"] == pytest.approx(np.log(6 * 1e9 * 2e10))
    with pytest.raises(BayescaleError, match="repeat-aware"):
        plan_inputs(get_law("chinchilla"), 0.0, 0.0, 0.0)
    with pytest.raises(BayescaleError, match="experts"):
        plan_inputs(get_law("moe"), 0.0, 0.0)


def test_with_discrepancy_is_exact_inside_the_data_and_linear_beyond():
    mu = np.array([[0.5, 0.7]])
    assert with_discrepancy(mu, np.array([[2.0]]), np.zeros((1, 2))) is mu
    assert with_discrepancy(mu, None, np.ones((1, 2))) is mu
    np.testing.assert_array_equal(with_discrepancy(mu, np.array([[2.0]]), np.array([[0.0, 0.25]])), [[0.5, 1.2]])


def test_evaluator_at_plans_is_the_law_plus_the_shift_times_the_distance():
    fit = fake_fit(TRUTH, spread=0.05, draws=20)
    ev = PosteriorEvaluator.of(fit)
    law_only, shifted = ev.at([7e10, 1e8], [1.4e12, 2e9])
    expected = np.log(fit.spec.law.loss({k: v for k, v in ev.params.items()}, {"params": np.array([7e10, 1e8]), "tokens": np.array([1.4e12, 2e9])}))
    np.testing.assert_allclose(law_only, expected, rtol=1e-12)
    assert ev.shift is None and shifted is law_only  # the fake fit has no discrepancy
    bounds = {"params": (7.0, 9.0), "tokens": (9.0, 11.0), "tokens_per_param": (1.0, 2.0), "flops": (17.0, 20.0)}
    shift = np.linspace(-1.0, 1.0, ev.size)
    with_shift = PosteriorEvaluator.from_draws(fit.spec.law, {k: v.reshape(ev.shape) for k, v in ev.params.items()}, shift.reshape(ev.shape), bounds)
    law_only_b, shifted_b = with_shift.at([7e10, 1e8], [1.4e12, 2e9])
    dist = plan_distance(fit.spec.law.inputs, bounds, np.log([7e10, 1e8]), np.log([1.4e12, 2e9]))
    assert dist[0] > 0
    np.testing.assert_allclose(shifted_b - law_only_b, shift[:, None] * dist[None, :], atol=1e-12)


@pytest.mark.filterwarnings("ignore::bayescale.errors.ExtrapolationWarning")
def test_one_evaluator_changes_forecasts_allocations_decisions_and_the_self_check_alike(monkeypatch):
    """Replace the one place the shift is added: every consumer moves by the same constant in log loss."""
    fit = fake_fit(TRUTH, spread=0.05, draws=100)
    target = {"params": [7e10], "tokens": [1.4e12]}
    test = RunTable(fit.runs.data.iloc[-3:].reset_index(drop=True), source="held out")
    median = float(np.median(fit.forecast(**target, seed=3)["loss_pred"].values))

    def everything():
        ds = fit.forecast(**target, seed=3)
        return {
            "forecast": ds["loss_pred"].values,
            "forecast_summary": forecast_summary(fit, **target, seed=3)["loss_median"].to_numpy(),
            "robust_loss": fit.allocate([5.76e23], seed=2)["robust_loss_mean"].values,
            "prob_below": prob_below(fit, median, **target, seed=5),
            "plan_a": compare_plans(fit, (7e10, 1.4e12), (1e10, 1e13), seed=5)["loss_a_median"],
            "self_check": np.asarray(score(fit, test).log_error),
        }

    before = everything()
    original = evaluate.with_discrepancy
    monkeypatch.setattr(evaluate, "with_discrepancy", lambda log_loss, shift, dist: original(log_loss, shift, dist) + SHIFT)
    after = everything()
    for name in ("forecast", "robust_loss", "plan_a"):
        np.testing.assert_allclose(after[name], before[name] * np.exp(SHIFT), rtol=1e-9, err_msg=name)
    np.testing.assert_allclose(after["forecast_summary"], before["forecast_summary"] * np.exp(SHIFT), rtol=1e-5)
    assert after["prob_below"] < before["prob_below"]  # every run is predicted worse
    np.testing.assert_allclose(after["self_check"], before["self_check"] - SHIFT, atol=1e-9)  # the refit's forecasts moved up


def _agree(fit, plan_flops: float, **groups) -> None:
    """allocate's headline interval, decide's and forecast's at the very plan allocate recommends are one answer."""
    from bayescale.allocate import allocation_table
    from bayescale.decide import decide
    from bayescale.forecasting import forecast_table

    row = allocation_table(fit.allocate([plan_flops], seed=7, **groups), 0.8).iloc[0]
    at_plan = forecast_table(fit.forecast(params=[row["robust_params"]], tokens=[row["robust_tokens"]], seed=7, **groups), 0.8).iloc[0]
    plan = decide(fit, 2.0, 0.8, flops=[plan_flops], seed=7, ci=0.8, **groups)["plans"][0]
    for key in ("loss_median", "loss_lo", "loss_hi"):
        assert row[key] == pytest.approx(at_plan[key], rel=1e-12), key
        assert plan[key] == pytest.approx(at_plan[key], rel=1e-12), key
    # the law-only spread of each draw's own optimum is narrower: it is neither noise nor discrepancy
    assert row["loss_optimum_hi"] - row["loss_optimum_lo"] < row["loss_hi"] - row["loss_lo"]


@pytest.mark.filterwarnings("ignore::bayescale.errors.ExtrapolationWarning")
def test_allocate_decide_and_forecast_agree_at_the_plan_ungrouped(chinchilla_fit):
    _agree(chinchilla_fit, 5.76e23)


@pytest.mark.filterwarnings("ignore::bayescale.errors.ExtrapolationWarning", "ignore::UserWarning")
def test_allocate_decide_and_forecast_agree_at_the_plan_grouped(grouped_fit):
    _agree(grouped_fit, 1e22, group_values={"dataset": "web"})
    _agree(grouped_fit, 1e22, new_group=True)
