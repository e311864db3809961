"""``bayescale.design.next_runs``: what a run is expected to teach about a target, against what a refit shows."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from bayescale import BayescaleError, RunTableError, fit
from bayescale.design import candidate_grid, next_runs
from bayescale.simulate import EPOCH_CHINCHILLA, grid_runs, simulate_runs

TARGET = {"params": 7e10, "tokens": 1.4e12}


def _observed(candidate: pd.Series, seed: int) -> pd.DataFrame:
    """The run a candidate would give, drawn from the true law."""
    return simulate_runs("chinchilla", EPOCH_CHINCHILLA, pd.DataFrame({"params": [candidate["params"]], "tokens": [candidate["tokens"]]}), sigma=0.01, seed=seed)


@pytest.mark.slow
def test_expected_sd_reduction_matches_a_refit():
    """On law-true data, each of three single picks' expected sd reduction at the target matches the
    reduction a refit with that run shows: their mean within 35% (the sd of a 1,000-draw posterior's
    variance is a few percent, and the Gaussian update is a linearisation), and every one positive.
    The self-check is off so τ stays at its prior in both fits, as ``next_runs`` assumes. About a
    minute (two compiles, four fits): ``test_expected_law_variance_matches_reweighted_draws`` is the
    fast check of the same update."""
    runs = simulate_runs("chinchilla", EPOCH_CHINCHILLA, grid_runs(np.geomspace(2e7, 4e8, 4), np.geomspace(1e9, 2e10, 4)), sigma=0.01, seed=5)
    settings = {"draws": 500, "tune": 500, "chains": 2, "self_check": False, "seed": 1}
    target = {"params": 7e9, "tokens": 1.4e11}
    pool = grid_runs(np.geomspace(1e7, 3e9, 6), np.geomspace(5e8, 1e11, 6))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = fit(runs, "chinchilla", **settings)
        scored = next_runs(base, pool, target, k=0).candidates.sort_values("gain", ascending=False)
        expected, realised = [], []
        for i, (_, candidate) in enumerate(scored.head(3).iterrows()):
            alone = next_runs(base, candidate.to_frame().T[["params", "tokens"]].astype(float), target, k=1)
            refit = fit(pd.concat([runs, _observed(candidate, 100 + i)], ignore_index=True), "chinchilla", **settings)
            expected.append(alone.sd_now - alone.sd_expected_after)
            realised.append(alone.sd_now - next_runs(refit, pool, target, k=0).sd_now)
    assert all(r > 0 for r in realised), (expected, realised)
    assert np.mean(realised) == pytest.approx(np.mean(expected), rel=0.35), (expected, realised)


def test_expected_law_variance_matches_reweighted_draws(synthetic_fit):
    """The Gaussian update against exact Bayes on the same draws: weighting each draw by the likelihood
    of a simulated run at the candidate (importance reweighting = the posterior with that run added),
    averaged over runs drawn from the predictive, gives the law's expected variance at the target
    after the pick. The variance the two remove (about 10% here) agrees within 30% over two
    candidates inside the runs' range (no discrepancy gain), at its largest corner."""
    from bayescale.evaluate import PosteriorEvaluator

    ev = PosteriorEvaluator.of(synthetic_fit)
    law = synthetic_fit.spec.likelihood
    values = {k: np.broadcast_to(v, (ev.size, 1))[:, 0] for k, v in (ev.noise_values or {}).items()}
    target = ev.at([7e10], [1.4e12])[0][:, 0]
    rng = np.random.default_rng(0)
    gaussian, exact = [], []
    for params, tokens in [(1e10, 2e11), (1e10, 1e11)]:
        candidate = ev.at([params], [tokens])[0][:, 0]
        after = []
        for s in rng.choice(ev.size, 200, replace=False):  # a run drawn from the predictive at a draw s
            y = candidate[s] + ev.sigma[s, 0] * law.unit_noise(rng, {k: v[s] for k, v in values.items()}, (1,))[0]
            logw = law.logpdf(y, candidate, ev.sigma[:, 0], values)
            w = np.exp(logw - logw.max())
            w /= w.sum()
            after.append(np.sum(w * (target - np.sum(w * target)) ** 2))
        exact.append(np.var(target) - np.mean(after))
        result = next_runs(synthetic_fit, pd.DataFrame({"params": [params], "tokens": [tokens]}), TARGET, k=1)
        gaussian.append(result.sd_now**2 - result.sd_expected_after**2)
    assert np.mean(gaussian) == pytest.approx(np.mean(exact), rel=0.3), (gaussian, exact, np.var(target))
    assert min(exact) > 0.05 * np.var(target)


def test_a_run_like_an_existing_one_teaches_less_than_a_far_one(synthetic_fit):
    runs = synthetic_fit.runs.data
    known = runs.loc[runs["params"].idxmax(), ["params", "tokens"]].astype(float)
    pool = pd.DataFrame({"params": [known["params"], 3e10], "tokens": [known["tokens"], 6e11]})
    result = next_runs(synthetic_fit, pool, TARGET, k=2)
    gains = result.candidates["gain"].to_numpy()
    assert 0 <= gains[0] < gains[1]
    assert result.selected.iloc[0]["params"] == 3e10
    assert (np.diff(result.selected["expected_sd_after"]) <= 0).all() and result.selected["expected_sd_after"].iloc[0] < result.sd_now


def test_a_second_pick_at_the_same_place_teaches_less(synthetic_fit):
    """The rank-one update: a duplicate of the first pick gains less than it did alone."""
    pool = pd.DataFrame({"params": [3e10, 3e10], "tokens": [6e11, 6e11]})
    result = next_runs(synthetic_fit, pool, TARGET, k=2)
    first, second = result.selected["gain"]
    assert 0 <= second < first


def test_zero_budget_selects_nothing(synthetic_fit):
    result = next_runs(synthetic_fit, pd.DataFrame({"params": [1e8], "tokens": [2e9]}), TARGET, budget_flops=0)
    assert result.selected.empty and result.sd_expected_after == result.sd_now
    assert "nothing selected" in result.notes[0]
    doc = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert doc["selected"] == [] and doc["sd_expected_after"] == doc["sd_now"]


def test_budget_caps_the_cost_and_picks_are_in_order(synthetic_fit):
    budget = 1e20
    result = next_runs(synthetic_fit, "grid", 1e23, budget_flops=budget)
    assert 0 < result.selected["cost"].sum() <= budget
    assert np.allclose(result.selected["cumulative_cost"], result.selected["cost"].cumsum())
    assert set(result.candidates.loc[result.candidates["pick"] > 0].index) == set(result.candidates.index[result.candidates["pick"] > 0])
    doc = result.to_dict()
    assert {"params", "tokens", "flops", "cost", "expected_sd_after", "gain_per_flop"} <= set(doc["selected"][0])
    assert doc["target"]["flops"] == pytest.approx(1e23, rel=1e-6)


def test_decision_objective_moves_the_probability_towards_certainty(synthetic_fit):
    median = float(np.exp(np.median(np.log(synthetic_fit.forecast(params=[7e10], tokens=[1.4e12])["loss"].values))))
    result = next_runs(synthetic_fit, "grid", TARGET, k=3, objective="decision", target_loss=median)
    after = result.selected["expected_decision_after"].to_numpy()
    assert 0.5 <= result.decision_now < after[0] and (np.diff(after) >= 0).all()


def test_grid_pool_stays_below_the_target_and_budget(synthetic_fit):
    grid = candidate_grid(synthetic_fit, pd.DataFrame(TARGET, index=[0]), budget_flops=1e21)
    cost = 6 * grid["params"] * grid["tokens"]
    assert len(grid) > 10 and (cost <= 1e21).all() and (grid["params"] <= 2 * synthetic_fit.runs.data["params"].max() * (1 + 1e-9)).all()
    small = candidate_grid(synthetic_fit, pd.DataFrame({"params": [1e9], "tokens": [2e10]}))
    assert (6 * small["params"] * small["tokens"] <= 0.1 * 6 * 1e9 * 2e10 * (1 + 1e-9)).all()


def test_pool_without_a_group_column_trains_in_the_targets_group(grouped_fit):
    """A far run in the target's own group extends its range (less discrepancy); one in another group does not."""
    pool = pd.DataFrame({"params": [3e10, 3e10], "tokens": [6e11, 6e11], "dataset": ["web", "code"]})
    result = next_runs(grouped_fit, pool, TARGET, k=0, group_values={"dataset": "web"})
    same, other = result.candidates["gain"]
    assert same > other > 0
    defaulted = next_runs(grouped_fit, pool.drop(columns="dataset"), TARGET, k=1, group_values={"dataset": "web"})
    assert defaulted.selected["dataset"].tolist() == ["web"]


@pytest.mark.parametrize(
    ("pool", "message"),
    [
        (pd.DataFrame({"size": [1e9]}), "needs column(s) params, tokens"),
        (pd.DataFrame({"params": [1e9], "tokens": [2e10], "cost": [-1.0]}), "row 1, column 'cost'"),
        (pd.DataFrame(columns=["params", "tokens"]), "empty"),
        (pd.DataFrame({"params": [70], "tokens": [2e10]}), "candidate pool: row 1, column 'params'"),
    ],
)
def test_bad_pools_are_refused_in_one_line(synthetic_fit, pool, message):
    with pytest.raises(RunTableError, match=message.replace("(", r"\(").replace(")", r"\)")):
        next_runs(synthetic_fit, pool, TARGET, k=1)


def test_unknown_group_level_in_the_pool_is_refused(grouped_fit):
    pool = pd.DataFrame({"params": [1e9], "tokens": [2e10], "dataset": ["poetry"]})
    with pytest.raises(BayescaleError, match="poetry"):
        next_runs(grouped_fit, pool, TARGET, k=1, group_values={"dataset": "web"})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "give a budget"),
        ({"k": -1}, "whole number"),
        ({"k": 1, "objective": "loss"}, "choose one of sd, decision"),
        ({"k": 1, "objective": "decision"}, "target_loss"),
        ({"budget_flops": -1.0}, "≥ 0"),
    ],
)
def test_bad_requests_are_refused(synthetic_fit, kwargs, message):
    with pytest.raises(BayescaleError, match=message):
        next_runs(synthetic_fit, "grid", TARGET, **kwargs)


def test_exported_from_the_package():
    import bayescale
    from bayescale import design

    assert bayescale.next_runs is design.next_runs and "next_runs" in bayescale.__all__


# --------------------------------------------------------------------------- the command line: bayescale next


@pytest.fixture(scope="module")
def spread_fit_path(tmp_path_factory):
    """A fake fit with some spread in its draws (exact numbers, no sampling)."""
    from .fakefit import fake_fit

    return fake_fit(EPOCH_CHINCHILLA, spread=0.02, sigma=0.01, draws=200).save(tmp_path_factory.mktemp("next") / "fit.nc")


def _invoke(*args):
    from typer.testing import CliRunner

    from bayescale.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_json_is_the_contract(spread_fit_path):
    result = _invoke("next", spread_fit_path, "--candidates", "grid", "--target-params", "70B", "--target-tokens", "1.4T", "--k", "2", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
    assert doc["target"]["params"] == 7e10 and doc["sd_now"] > doc["sd_expected_after"] > 0
    assert len(doc["selected"]) == 2
    assert {"params", "tokens", "flops", "cost", "expected_sd_after", "gain_per_flop"} <= set(doc["selected"][0])


def test_cli_pool_file_table_csv_and_output(spread_fit_path, tmp_path):
    pool = tmp_path / "pool.csv"
    pd.DataFrame({"params": ["1B", "3B", "10B"], "tokens": ["20B", "60B", "200B"], "cost": [1e20, 3e20, 1e21]}).to_csv(pool, index=False)
    table = _invoke("next", spread_fit_path, "--candidates", pool, "--target-flops", "5.8e23", "--budget-flops", "5e20")
    assert table.exit_code == 0, table.output
    assert "sd of log loss now" in table.stdout and "expected sd after" in table.stdout
    out = tmp_path / "picks.csv"
    written = _invoke("next", spread_fit_path, "--candidates", pool, "--target-flops", "5.8e23", "--budget-flops", "5e20", "-o", out)
    assert written.exit_code == 0, written.output
    picks = pd.read_csv(out)
    assert picks["cost"].sum() <= 5e20 and list(picks.columns[:4]) == ["params", "tokens", "flops", "cost"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--candidates", "grid", "--k", "1"], 2, "no target"),
        (["--candidates", "grid", "--target-params", "70B", "--k", "1"], 2, "both --target-params and --target-tokens"),
        (["--candidates", "grid", "--target-flops", "1e23"], 2, "--budget-flops"),
        (["--candidates", "grid", "--target-flops", "1e23", "--k", "1", "--objective", "decision"], 2, "--target-loss"),
        (["--candidates", "missing.csv", "--target-flops", "1e23", "--k", "1"], 3, "missing.csv"),
    ],
)
def test_cli_errors_are_one_line(spread_fit_path, args, code, message):
    result = _invoke("next", spread_fit_path, *args)
    assert result.exit_code == code, result.output
    assert message in result.stderr and result.stderr.count("error:") == 1 and "Traceback" not in result.output


def test_cli_refuses_to_write_over_its_pool(spread_fit_path, tmp_path):
    pool = tmp_path / "pool.csv"
    pd.DataFrame({"params": [1e9], "tokens": [2e10]}).to_csv(pool, index=False)
    result = _invoke("next", spread_fit_path, "--candidates", pool, "--target-flops", "1e23", "--k", "1", "-o", pool)
    assert result.exit_code == 2 and "error:" in result.stderr
    assert pd.read_csv(pool).shape == (1, 2)


def test_report_section_what_to_train_next(spread_fit_path, tmp_path):
    """Only when asked: the picks, their figure and the command that gives the same answer; otherwise how to ask."""
    from bayescale.fitting import load_fit
    from bayescale.report import render_report

    result = load_fit(spread_fit_path)
    html = render_report(result, tmp_path / "with.html", flops=[1e23], next_runs=True).read_text()
    section = html[html.index('<section id="next">') : html.index("</section>", html.index('<section id="next">'))]
    assert "What to train next" in section and 'alt="candidate runs coloured by gain per FLOP"' in section
    assert "<td>1</td>" in section and "bayescale next FIT --candidates grid --target-flops 1e+23" in section
    plain = render_report(result, tmp_path / "without.html", flops=[1e23]).read_text()
    assert "Not computed for this report: add <code>--next-runs</code>" in plain and "gain per FLOP" not in plain


def test_other_laws_moe_pool_and_compute_only():
    """A pool of MoE runs (active parameters, experts) and a compute-only law's FLOP pool both work; MoE's cost counts active parameters."""
    from bayescale.resources import data_path

    from .fakefit import fake_fit

    design = pd.read_csv(data_path("synthetic_moe_runs.csv")).drop(columns=["loss"])
    moe = fake_fit({"A": 480.0, "alpha": 0.34, "beta": 0.36, "c": 0.4, "E": 1.84, "B": 2200.0}, form="moe", design=design, spread=0.02, sigma=0.01)
    pool = design.sample(20, random_state=0).assign(tokens=lambda f: f["tokens"] * 3).reset_index(drop=True)
    picked = next_runs(moe, pool, {"active_params": [3e9], "experts": [8], "tokens": [1e12]}, k=2)
    assert len(picked.selected) == 2 and np.allclose(picked.selected["cost"], 6 * picked.selected["active_params"] * picked.selected["tokens"])
    with pytest.raises(BayescaleError, match="grid pool needs a law of params and tokens"):
        next_runs(moe, "grid", {"active_params": [3e9], "experts": [8], "tokens": [1e12]}, k=1)
    compute = fake_fit({"E": 1.7, "gamma": 0.15, "K": 3e3}, form="compute", spread=0.02, sigma=0.01)
    result = next_runs(compute, pd.DataFrame({"flops": [1e19, 1e20, 1e21]}), 1e23, budget_flops=1e20)
    assert len(result.selected) >= 1 and result.selected["cost"].sum() <= 1e20 and result.target["flops"].tolist() == [1e23]
