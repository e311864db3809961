"""Budget decisions: P(loss < target), the compute a target needs, plan comparisons, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from bayescale.allocate import closed_form_chinchilla
from bayescale.cli import app
from bayescale.decide import compare_plans, compute_for_target, cost, prob_below
from bayescale.errors import BayescaleError
from bayescale.simulate import EPOCH_CHINCHILLA as TRUTH

from .fakefit import fake_fit


def chinchilla_loss(n, d, t=TRUTH):
    return t["E"] + t["A"] / n ** t["alpha"] + t["B"] / d ** t["beta"]


def optimal_loss(c):
    n, d = closed_form_chinchilla(TRUTH, c)
    return float(chinchilla_loss(n, d))


def test_prob_below_on_constant_draws_is_zero_or_one():
    fit = fake_fit(TRUTH)
    loss = chinchilla_loss(70e9, 1.4e12)
    for predictive in (False, True):  # sigma = 1e-6: noise cannot cross a 1e-3 margin
        assert prob_below(fit, loss * 1.001, 70e9, 1.4e12, predictive=predictive) == 1.0
        assert prob_below(fit, loss * 0.999, "70B", "1.4T", predictive=predictive) == 0.0
    both = prob_below(fit, loss * 1.001, [70e9, 1e9], [1.4e12, 1e10], predictive=False)
    np.testing.assert_array_equal(both, [1.0, 0.0])


def test_prob_below_predictive_matches_student_t_noise():
    sigma = 0.02
    fit = fake_fit(TRUTH, chains=4, draws=2000, sigma=sigma)  # chinchilla spec: Student-t, nu = 4
    loss = chinchilla_loss(70e9, 1.4e12)
    target = loss * np.exp(sigma)
    expect = stats.t.cdf(1.0, df=4)
    assert prob_below(fit, target, 70e9, 1.4e12) == pytest.approx(expect, abs=0.02)
    assert prob_below(fit, target, 70e9, 1.4e12, predictive=False) == 1.0


def test_compute_for_target_inverts_the_optimal_loss():
    fit = fake_fit(TRUTH)
    c_true = 5.76e23
    target = optimal_loss(c_true)
    decision = compute_for_target(fit, target, 0.9, predictive=False, usd_per_flop=2e-18, flops_per_gpu_hour=1e18)
    assert decision.flops == pytest.approx(c_true, rel=1e-3)
    n, d = closed_form_chinchilla(TRUTH, decision.flops)
    assert decision.params == pytest.approx(float(n), rel=1e-3)
    assert decision.tokens == pytest.approx(float(d), rel=1e-3)
    assert decision.prob >= 0.9
    assert decision.usd == pytest.approx(decision.flops * 2e-18)
    assert decision.gpu_hours == pytest.approx(decision.flops / 1e18)
    assert set(decision.to_dict()) >= {"flops", "params", "tokens", "prob", "usd", "gpu_hours"}


def test_compute_for_target_with_uncertain_draws_needs_more_compute_for_higher_prob():
    fit = fake_fit(TRUTH, draws=200, spread=0.03)
    target = optimal_loss(1e23)
    half = compute_for_target(fit, target, 0.5, predictive=False)
    sure = compute_for_target(fit, target, 0.95, predictive=False)
    assert sure.flops > half.flops
    assert prob_below(fit, target, sure.params, sure.tokens, predictive=False) >= 0.95
    # just below the answer the robust plan misses the required probability
    with pytest.raises(BayescaleError, match="unreachable"):
        compute_for_target(fit, target, 0.95, predictive=False, flops_range=(1e18, sure.flops * 0.99))


def test_unreachable_target_is_a_clear_error():
    fit = fake_fit(TRUTH)
    with pytest.raises(BayescaleError, match="irreducible"):
        compute_for_target(fit, TRUTH["E"] * 0.99, 0.9)
    with pytest.raises(BayescaleError, match="unreachable"):
        compute_for_target(fit, optimal_loss(1e30), 0.9, flops_range=(1e18, 1e24))
    with pytest.raises(BayescaleError):
        compute_for_target(fit, 2.0, 1.5)


def test_compare_plans_sign_and_probability():
    fit = fake_fit(TRUTH, draws=100, spread=0.01)
    c = 1e23
    n, d = closed_form_chinchilla(TRUTH, c)
    optimal = {"params": float(n), "tokens": float(d)}
    skewed = (float(n) * 8, float(d) / 8)  # same compute, far from optimal
    result = compare_plans(fit, optimal, skewed)
    assert result["prob_a_better"] == 1.0
    assert result["diff_hi"] < 0 and result["diff_median"] < 0
    assert result["diff"].dims == ("chain", "draw")
    reverse = compare_plans(fit, skewed, optimal)
    assert reverse["prob_a_better"] == 0.0
    assert reverse["diff_median"] == pytest.approx(-result["diff_median"])
    with pytest.raises(BayescaleError):
        compare_plans(fit, {"params": 1e9}, skewed)


def test_cost_conversions():
    assert cost(1e24, usd_per_flop=1e-18) == {"usd": pytest.approx(1e6)}
    assert cost(1e24, flops_per_gpu_hour=1e18)["gpu_hours"] == pytest.approx(1e6)
    with pytest.raises(BayescaleError):
        cost(1e24, usd_per_flop=-1.0)


def test_cli_decide_compute_for_target(saved_fit_path):
    result = CliRunner().invoke(app, ["decide", str(saved_fit_path), "--target-loss", "2.1", "--prob", "0.9", "--usd-per-flop", "1e-18", "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["mode"] == "compute_for_target" and doc["prob_required"] == 0.9
    plan = doc["plans"][0]
    assert {"flops", "params", "tokens", "prob", "usd"} <= set(plan)
    assert plan["prob"] >= 0.9 and plan["flops"] == pytest.approx(6 * plan["params"] * plan["tokens"], rel=1e-9)


def test_cli_decide_plan_and_budgets(saved_fit_path):
    runner = CliRunner()
    plan = runner.invoke(app, ["decide", str(saved_fit_path), "--target-loss", "2.0", "--params", "70B", "--tokens", "1.4T", "--format", "json"])
    assert plan.exit_code == 0, plan.output
    assert json.loads(plan.stdout)["plans"][0]["flops"] == pytest.approx(6 * 70e9 * 1.4e12)
    budgets = runner.invoke(app, ["decide", str(saved_fit_path), "--target-loss", "2.0", "--flops", "1e22:1e26:3"])
    assert budgets.exit_code == 0, budgets.output
    assert "meets_target" in budgets.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--target-loss", "2.0", "--flops", "-1"],
        ["--target-loss", "2.0", "--flops", "abc"],
        ["--target-loss", "1.0"],  # below the irreducible loss
        ["--target-loss", "2.0", "--prob", "1.2"],
        ["--target-loss", "2.0", "--params", "70B"],
        ["--prob", "0.9"],
    ],
)
def test_cli_decide_bad_input_is_one_line_error(saved_fit_path, args):
    result = CliRunner().invoke(app, ["decide", str(saved_fit_path), *args])
    assert result.exit_code != 0
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("WARNING (")]  # the fixture may warn
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.output
