"""The extrapolation discrepancy and the self-check, on cases with known answers."""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayescale import ModelSpecError, load_spec
from bayescale.discrepancy import coordinates, directions, distance, draw_tau, ranges, tau_log_density
from bayescale.documents import SelfCheck
from bayescale.fitting import load_fit
from bayescale.forecasting import forecast_summary
from bayescale.spec import Discrepancy

BOUNDS = {"params": (8.0, 10.0), "tokens": (9.0, 11.0), "tokens_per_param": (0.5, 2.0), "flops": (18.0, 21.0)}


def test_distance_is_zero_inside_and_euclidean_beyond():
    inside = {"params": 9.0, "tokens": 10.0, "tokens_per_param": 1.0, "flops": 20.0}
    assert distance(inside, BOUNDS) == 0.0
    # one decade above in N (D/N then 0.5 below its minimum... here 1 - 1 = 0, inside), compute 21 -> at the edge
    beyond_n = {"params": 11.0, "tokens": 10.0, "tokens_per_param": -1.0, "flops": 21.5}
    # e = (1, 0, 1.5, 0.5) -> sqrt(1 + 2.25 + 0.25)
    assert distance(beyond_n, BOUNDS) == pytest.approx(np.sqrt(3.5))
    below = {"params": 7.0, "tokens": 8.5, "tokens_per_param": 1.5, "flops": 16.0}
    assert distance(below, BOUNDS) == pytest.approx(np.sqrt(1 + 0.25 + 4))


def test_coordinates_follow_the_laws_inputs():
    assert directions(("params", "tokens")) == ("params", "tokens", "tokens_per_param", "flops")
    assert directions(("flops",)) == ("flops",)
    assert directions(("active_params", "experts", "tokens")) == directions(("params", "tokens"))
    c = coordinates(("params", "tokens"), {"params": [1e9], "tokens": [2e10]})
    assert c["tokens_per_param"][0] == pytest.approx(np.log10(20))
    assert c["flops"][0] == pytest.approx(np.log10(6 * 1e9 * 2e10))
    only_c = coordinates(("flops",), {"flops": [1e21], "params": [1.0], "tokens": [1.0]})
    assert set(only_c) == {"flops"}
    train = coordinates(("flops",), {"flops": [1e18, 1e20]})
    assert distance(coordinates(("flops",), {"flops": [1e22, 1e19]}), ranges(train)).tolist() == pytest.approx([2.0, 0.0])


def test_tau_posterior_shrinks_when_residuals_are_explained_and_grows_when_not():
    scale, n = 0.01, 12
    rng = np.random.default_rng(0)
    sd, dist = np.full(n, 0.01), np.full(n, 1.5)
    prior, _ = draw_tau(scale, (4000,), seed=1)
    explained, _ = draw_tau(scale, (4000,), seed=1, residuals=0.01 * rng.standard_normal(n), sd=sd, dist=dist)
    unexplained, _ = draw_tau(scale, (4000,), seed=1, residuals=np.full(n, 0.04) * rng.choice([-1, 1], n), sd=sd, dist=dist)
    assert np.median(explained) < 0.75 * np.median(prior)
    assert np.median(unexplained) > 2.0 * np.median(prior)
    # the prior alone is HalfNormal(scale): median scale * 0.6745
    assert np.median(prior) == pytest.approx(0.6745 * scale, rel=0.05)
    # tempering discounts the evidence: between the prior and the full update
    tempered, _ = draw_tau(scale, (4000,), seed=1, residuals=np.full(n, 0.04), sd=sd, dist=dist, temper=0.25)
    assert np.median(prior) < np.median(tempered) < np.median(unexplained)


def test_tau_draws_are_reproducible_and_runs_at_zero_distance_carry_no_evidence():
    a = draw_tau(0.02, (2, 50), seed=5)
    b = draw_tau(0.02, (2, 50), seed=5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    grid, prior = tau_log_density(0.02)
    _, same = tau_log_density(0.02, residuals=[0.3], sd=[0.01], dist=[0.0])
    np.testing.assert_allclose(same - same.max(), prior - prior.max())
    assert grid[0] == 0.0


def test_spec_discrepancy_table_is_validated_and_saved():
    spec = load_spec("chinchilla")
    assert spec.discrepancy.enabled and spec.discrepancy.scale > 0
    raw = spec.to_dict()
    assert raw["discrepancy"] == {"enabled": True, "scale": spec.discrepancy.scale}
    off = load_spec({**raw, "discrepancy": {"enabled": False}})
    assert off.discrepancy.enabled is False
    assert load_spec({k: v for k, v in raw.items() if k != "discrepancy"}).discrepancy == Discrepancy()
    with pytest.raises(ModelSpecError, match=r"discrepancy\.scale"):
        load_spec({**raw, "discrepancy": {"scale": -1}})
    with pytest.raises(ModelSpecError, match="unknown discrepancy key"):
        load_spec({**raw, "discrepancy": {"sigma": 0.1}})
    with pytest.raises(ModelSpecError, match="enabled must be true or false"):
        load_spec({**raw, "discrepancy": {"enabled": "yes"}})


def _without_discrepancy(fit):
    return dataclasses.replace(fit, spec=dataclasses.replace(fit.spec, discrepancy=Discrepancy(False)))


def test_zero_discrepancy_inside_the_data_and_growth_beyond(synthetic_fit, synthetic_frame):
    assert "discrepancy_tau" in synthetic_fit.posterior and synthetic_fit.spec.discrepancy.enabled
    plain = _without_discrepancy(synthetic_fit)
    inside = synthetic_frame[["params", "tokens"]].iloc[::7]
    xr.testing.assert_identical(synthetic_fit.forecast(inside, seed=2), plain.forecast(inside, seed=2))
    pd.testing.assert_frame_equal(forecast_summary(synthetic_fit, inside, seed=2), forecast_summary(plain, inside, seed=2))
    far = {"params": [1e11, 1e12], "tokens": [2e12, 2e13]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wide, narrow = forecast_summary(synthetic_fit, seed=2, **far), forecast_summary(plain, seed=2, **far)
    width, base = (wide["mean_hi"] - wide["mean_lo"]).to_numpy(), (narrow["mean_hi"] - narrow["mean_lo"]).to_numpy()
    assert np.all(width > base)
    assert (width / base)[1] > (width / base)[0]  # further out, relatively wider


def test_decisions_carry_the_discrepancy_beyond_the_data(synthetic_fit):
    from bayescale.decide import decide, prob_below

    plain = _without_discrepancy(synthetic_fit)
    # a near-certain target at a far plan becomes less certain with the discrepancy
    args = (synthetic_fit.forecast(params=[1e12], tokens=[2e13])["loss"].median().item() * 1.02, 1e12, 2e13)
    assert prob_below(synthetic_fit, *args, predictive=False) < prob_below(plain, *args, predictive=False)
    inside = synthetic_fit.runs.data.iloc[10]
    target = float(inside["loss"])
    assert prob_below(synthetic_fit, target, inside["params"], inside["tokens"]) == prob_below(plain, target, inside["params"], inside["tokens"])
    doc = decide(synthetic_fit, 2.0, 0.9, params=1e12, tokens=2e13)
    assert doc["plans"][0]["beyond_data_decades"] > 1.0
    assert "covered" in doc["trust"] and set(doc["self_check"]) >= {"extrapolation", "median_abs_log_error", "coverage_90", "n_test"}


def test_self_check_on_law_true_data_covers(synthetic_fit):
    check = synthetic_fit.self_check
    assert check is not None and check.ran
    assert check.n_test >= 3 and check.n_train + check.n_test == len(synthetic_fit.runs)
    assert check.extrapolation > 1.5
    assert check.coverage_90 >= 0.7
    assert check.median_abs_log_error < 0.02  # noise is 0.01
    doc = synthetic_fit.summary_dict()
    assert set(doc["self_check"]) >= {"extrapolation", "median_abs_log_error", "coverage_90", "n_test"}
    assert json.loads(json.dumps(doc, allow_nan=False))["discrepancy"]["enabled"] is True


def test_saved_fit_keeps_discrepancy_and_self_check(chinchilla_fit, saved_fit_path, tmp_path):
    loaded = load_fit(saved_fit_path)
    assert loaded.self_check == chinchilla_fit.self_check
    assert SelfCheck.from_dict(json.loads(json.dumps(chinchilla_fit.self_check.to_dict()))) == chinchilla_fit.self_check
    assert loaded.spec.discrepancy == chinchilla_fit.spec.discrepancy
    far = {"params": [7e10], "tokens": [1.4e12]}
    xr.testing.assert_allclose(loaded.forecast(seed=1, **far), chinchilla_fit.forecast(seed=1, **far), rtol=0, atol=0)


def test_no_self_check_keeps_tau_at_its_prior(synthetic_frame):
    from bayescale import fit

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit(synthetic_frame, "chinchilla", draws=100, tune=100, chains=2, seed=2, self_check=False)
    assert result.self_check is None and result.summary_dict()["self_check"] is None
    prior, _ = draw_tau(result.spec.discrepancy.scale, (2, 100), seed=2)
    np.testing.assert_array_equal(result.posterior["discrepancy_tau"].values, prior)


def test_self_check_split_holds_out_the_largest_runs_per_group_when_needed():
    from bayescale.runs import load_runs
    from bayescale.self_check import Skip, split

    n = np.geomspace(1e7, 1e9, 10)
    frame = pd.DataFrame({"params": n, "tokens": 20 * n, "loss": np.linspace(3.2, 2.8, 10), "dataset": "a"})
    held, how = split(load_runs(frame), ())
    assert how == "compute" and held.sum() >= 3 and held[-1] and not held[0]
    small = pd.DataFrame({"params": n[:4] * 1e3, "tokens": 20 * n[:4] * 1e3, "loss": 2.0, "dataset": "b"})  # only large runs
    runs = load_runs(pd.concat([frame, small], ignore_index=True))
    held, how = split(runs, ("dataset",))
    assert how == "compute within each group"
    assert held[:10].sum() >= 3 and not held[10:].any()  # group b (4 runs) keeps all of them to train on
    tiny = load_runs(pd.concat([frame.iloc[:4].assign(dataset="a"), frame.iloc[:4].assign(dataset="c")], ignore_index=True))
    with pytest.raises(Skip, match="too few runs per group"):
        split(tiny, ("dataset",))


def test_grouped_fit_runs_its_self_check(grouped_fit):
    check = grouped_fit.self_check
    assert check.ran and check.n_test >= 3 and 0.0 <= check.coverage_90 <= 1.0


def test_cli_no_self_check(synthetic_frame, tmp_path):
    from typer.testing import CliRunner

    from bayescale.cli import app

    runs, out = tmp_path / "runs.csv", tmp_path / "fit.nc"
    synthetic_frame.to_csv(runs, index=False)
    runner = CliRunner()
    result = runner.invoke(app, ["fit", str(runs), "--model", "chinchilla", "--no-self-check", "--draws", "100", "--tune", "100", "--chains", "2", "-q", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "no self-check in this fit" in result.output
    doc = json.loads(runner.invoke(app, ["summary", str(out), "--format", "json"]).stdout)
    assert doc["self_check"] is None and doc["discrepancy"]["enabled"] is True
    text = runner.invoke(app, ["summary", str(out)]).stdout
    assert "self-check:" in text and "discrepancy: tau median" in text


def test_shared_u_likelihood_is_the_exact_multivariate_normal():
    from scipy.stats import multivariate_normal

    r, s, d = np.array([0.02, -0.01, 0.03]), np.array([0.01, 0.02, 0.015]), np.array([0.5, 1.0, 2.0])
    grid, log_p = tau_log_density(0.01, r, s, d, shared=True)
    prior = -0.5 * (grid / 0.01) ** 2
    for i in (0, 400, 2000, 4000):
        exact = multivariate_normal(np.zeros(3), np.diag(s**2) + grid[i] ** 2 * np.outer(d, d)).logpdf(r)
        base = multivariate_normal(np.zeros(3), np.diag(s**2)).logpdf(r)
        assert log_p[i] - prior[i] == pytest.approx(exact - base, abs=1e-9)


def test_forecast_summary_with_discrepancy_is_independent_of_blocks_and_threads(synthetic_fit, monkeypatch):
    """Targets inside and far beyond the data: one target per block or one thread, the same table bit for bit."""
    from bayescale import forecasting

    targets = {"params": np.geomspace(1e8, 1e12, 30), "tokens": np.geomspace(2e9, 2e13, 30)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = forecasting.forecast_summary(synthetic_fit, seed=1, **targets)
        monkeypatch.setattr(forecasting, "SUMMARY_BLOCK_ELEMENTS", 1)
        monkeypatch.setenv("BAYESCALE_NUM_THREADS", "2")
        pd.testing.assert_frame_equal(forecasting.forecast_summary(synthetic_fit, seed=1, **targets), reference)
        monkeypatch.setenv("BAYESCALE_NUM_THREADS", "1")
        pd.testing.assert_frame_equal(forecasting.forecast_summary(synthetic_fit, seed=1, **targets), reference)


def test_a_law_without_tokens_measures_distance_in_size():
    """The routed law (one training length) has no tokens: the distance is decades of active parameters."""
    from bayescale.laws import get_law

    inputs = get_law("routed").inputs
    assert directions(inputs) == ("params",)
    runs = coordinates(inputs, {"active_params": np.array([1e7, 3.7e8])})
    target = coordinates(inputs, {"active_params": np.array([1e8, 3.7e9])})
    np.testing.assert_allclose(distance(target, ranges(runs)), [0.0, 1.0])
