"""Fits: parameter recovery, the published Chinchilla refit, pooling, diagnostics, save/load."""

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayescale import BayescaleError, ConvergenceWarning, FitFileError, RunTableError, SamplerError, fit, load_fit, load_runs
from bayescale.fitting import check_convergence
from bayescale.sampling import _adaptation
from bayescale.simulate import EPOCH_CHINCHILLA

from .conftest import GROUP_TRUTHS


def inside(fit_result, name, truth, ci=0.9):
    row = fit_result.summary(ci).loc[name]
    return row["lo"] <= truth <= row["hi"], (name, truth, row["lo"], row["hi"])


def test_recovers_known_chinchilla_law(synthetic_fit):
    for name, truth in EPOCH_CHINCHILLA.items():
        ok, detail = inside(synthetic_fit, name, truth)
        assert ok, detail


def test_recovers_three_group_hierarchy(grouped_fit):
    """The default pooling recovers the known structure: each group's E, A, B and the shared exponents.

    Every truth inside its 99% interval, and the groups' irreducible losses in their true order.
    (No binomial count of 90% misses: the groups' A and B all move with the shared exponents, so
    their misses are not independent.)
    """
    assert grouped_fit.spec.pooled == ("E", "A", "B")
    assert grouped_fit.info.centered == ("E", "A", "B") and grouped_fit.info.centering == "auto"  # 36 runs a group
    assert "alpha_by_dataset" not in grouped_fit.posterior
    for group, truth in GROUP_TRUTHS.items():
        for name in ("E", "A", "B"):
            ok, detail = inside(grouped_fit, f"{name}[dataset={group}]", truth[name], ci=0.99)
            assert ok, detail
    for name in ("alpha", "beta"):  # shared by every group, learned from all of them
        ok, detail = inside(grouped_fit, name, GROUP_TRUTHS["web"][name], ci=0.99)
        assert ok, detail
    medians = grouped_fit.summary()["median"]
    assert medians["E[dataset=code]"] < medians["E[dataset=web]"] < medians["E[dataset=books]"]


def test_epoch_ai_refit_on_embedded_runs(chinchilla_fit):
    """Posterior medians inside Epoch AI's 95% bootstrap intervals (Besiroglu et al. 2024)."""
    table = chinchilla_fit.summary()
    assert 1.769 <= table.loc["E", "median"] <= 1.871
    assert 0.317 <= table.loc["alpha", "median"] <= 0.373
    assert 0.331 <= table.loc["beta", "median"] <= 0.415
    assert 285 <= table.loc["A", "median"] <= 744
    assert 1042 <= table.loc["B", "median"] <= 5810


def test_summary_shape_and_json(chinchilla_fit):
    table = chinchilla_fit.summary(ci=0.5)
    assert list(table.index) == ["E", "alpha", "beta", "A", "B", "sigma"]
    assert (table["lo"] < table["median"]).all() and (table["median"] < table["hi"]).all()
    doc = chinchilla_fit.summary_dict()
    assert doc["ci"] == 0.9 and set(doc["parameters"]["E"]) >= {"median", "lo", "hi"}
    assert set(doc["diagnostics"]) >= {"rhat_max", "ess_bulk_min", "divergences"}


def test_summary_says_what_was_pooled_and_how(chinchilla_fit, grouped_fit):
    """A grouped fit's summary names the pooled levels, the centred ones and the rule (plus any re-sampling)."""
    pooling = grouped_fit.summary_dict()["pooling"]
    assert pooling["pooled"] == ["E", "A", "B"] and pooling["centering"] == "auto"
    assert set(pooling["centered"]) <= {"E", "A", "B"}
    if "recentred" in pooling:  # a first run did not converge: the two runs differ in the switched levels; the kept one is reported
        again = pooling["recentred"]
        first, second = again["attempts"]
        assert set(first["centered"]) ^ set(second["centered"]) == set(again["params"])
        assert again["attempts"][again["kept"]]["centered"] == pooling["centered"]
    line = grouped_fit.pooling_sentence()
    assert line.startswith("pooling: E, A, B vary by dataset; centred: ") and "(auto)" in line
    assert chinchilla_fit.summary_dict()["pooling"] == {} and chinchilla_fit.pooling_sentence() == "pooling: none (no groups)"


def test_forecast_dims_and_monotone(chinchilla_fit):
    ds = chinchilla_fit.forecast(params=["1B", "7B", "70B"], tokens=["20B", "140B", "1.4T"])
    assert ds["loss"].dims == ("chain", "draw", "target")
    med = ds["loss"].median(("chain", "draw")).values
    assert med[0] > med[1] > med[2] > chinchilla_fit.posterior["E"].median()
    # the predictive adds noise: never narrower than the mean curve
    assert float(ds["loss_pred"].std()) >= float(ds["loss"].std()) * 0.99


def test_forecast_matches_law_on_draws(chinchilla_fit):
    post = chinchilla_fit.posterior
    ds = chinchilla_fit.forecast(params=7e10, tokens=1.4e12)
    direct = post["E"] + post["A"] / 7e10 ** post["alpha"] + post["B"] / 1.4e12 ** post["beta"]
    # beyond the runs the law carries the model discrepancy tau * d * u on log loss
    from bayescale.discrepancy import coordinates, distance, group_bounds

    d = distance(coordinates(("params", "tokens"), {"params": 7e10, "tokens": 1.4e12}), group_bounds(chinchilla_fit))
    assert d > 0
    direct = direct * np.exp(post["discrepancy_tau"] * post["discrepancy_u"] * d)
    np.testing.assert_allclose(ds["loss"].isel(target=0).values, direct.values, rtol=1e-10)


def test_grouped_forecast_seen_and_unseen(grouped_fit):
    seen = grouped_fit.forecast(params=[1e9, 1e9], tokens=[2e10, 2e10], dataset=["code", "books"])
    med = seen["loss"].median(("chain", "draw")).values
    truths = [GROUP_TRUTHS[g] for g in ("code", "books")]
    expected = [t["E"] + t["A"] / 1e9 ** t["alpha"] + t["B"] / 2e10 ** t["beta"] for t in truths]
    np.testing.assert_allclose(med, expected, rtol=0.02)
    with pytest.warns(UserWarning, match="not seen at fit time"):
        new = grouped_fit.forecast(params=[1e9], tokens=[2e10], dataset=["legal"], new_group=True)
    # an unseen group is drawn from the population: wider than any seen group, never an index error
    assert float(new["loss"].std()) > float(seen["loss"].isel(target=0).std())


def test_extrapolation_warning(chinchilla_fit):
    from bayescale import ExtrapolationWarning

    with pytest.warns(ExtrapolationWarning, match="compute of the largest fitted run"):
        chinchilla_fit.forecast(params="1T", tokens="20T")


def test_save_load_round_trip(chinchilla_fit, saved_fit_path, tmp_path):
    loaded = load_fit(saved_fit_path)
    assert loaded.spec == chinchilla_fit.spec
    assert loaded.summary().equals(chinchilla_fit.summary())
    a = chinchilla_fit.forecast(params="7B", tokens="140B", seed=5)
    b = loaded.forecast(params="7B", tokens="140B", seed=5)
    xr.testing.assert_identical(a, b)
    zarr_path = chinchilla_fit.save(tmp_path / "fit.zarr")
    assert load_fit(zarr_path).summary().equals(chinchilla_fit.summary())


def test_bad_fit_files(saved_fit_path, tmp_path):
    truncated = tmp_path / "truncated.nc"
    truncated.write_bytes(saved_fit_path.read_bytes()[:5000])
    with pytest.raises(FitFileError, match="cannot read"):
        load_fit(truncated)
    foreign = tmp_path / "foreign.nc"
    xr.Dataset({"x": ("a", [1, 2])}).to_netcdf(foreign, engine="h5netcdf")
    with pytest.raises(FitFileError, match="not a bayescale fit"):
        load_fit(foreign)
    with pytest.raises(FitFileError, match="no such fit file"):
        load_fit(tmp_path / "missing.nc")
    text = tmp_path / "text.nc"
    text.write_text("hello")
    with pytest.raises(FitFileError):
        load_fit(text)


def test_save_is_atomic(chinchilla_fit, tmp_path, monkeypatch):
    target = tmp_path / "fit.nc"
    chinchilla_fit.save(target)
    before = target.read_bytes()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(xr.DataTree, "to_netcdf", boom)
    with pytest.raises(KeyboardInterrupt):
        chinchilla_fit.save(target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["fit.nc"]


def test_same_seed_same_posterior(synthetic_frame):
    kwargs = {"draws": 100, "tune": 100, "chains": 2, "seed": 7}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a, b = fit(synthetic_frame, "chinchilla", **kwargs), fit(synthetic_frame, "chinchilla", **kwargs)
    xr.testing.assert_identical(a.posterior, b.posterior)


def test_non_convergence_warns(synthetic_frame):
    with pytest.warns(ConvergenceWarning, match="NOT CONVERGED"):
        result = fit(synthetic_frame, "chinchilla", draws=20, tune=20, chains=2, seed=0)
    assert not result.converged
    assert result.summary_dict()["converged"] is False


def test_check_convergence_flags_divergences(chinchilla_fit):
    tree = chinchilla_fit.tree.copy()
    stats = tree["sample_stats"].to_dataset()
    diverging = stats["diverging"].copy()
    diverging[0, :3] = True
    tree["sample_stats"] = xr.DataTree(stats.assign(diverging=diverging))
    diag = check_convergence(tree, ["E_z"])
    assert diag.divergences == 3 and not diag.converged and "divergent" in diag.message()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"group": "nope"}, RunTableError, "column\\(s\\) 'nope' needed for grouping not found"),
        ({"group": "params"}, RunTableError, "cannot group by the numeric"),
        ({"sampler": "stan"}, SamplerError, "unknown sampler 'stan'"),
        ({"draws": 0}, BayescaleError, "draws=0 must be"),
    ],
)
def test_fit_rejects_bad_arguments(synthetic_frame, kwargs, error, match):
    with pytest.raises(error, match=match):
        fit(synthetic_frame, **kwargs)


def test_too_few_runs_and_one_size(synthetic_frame):
    with pytest.raises(RunTableError, match="at least 7 runs are needed"):
        fit(synthetic_frame.iloc[:4])
    one_size = synthetic_frame[synthetic_frame["params"] == synthetic_frame["params"].iloc[0]]
    with pytest.raises(RunTableError, match="column 'params' has only 1 distinct value"):
        fit(one_size)


@pytest.mark.slow
def test_compiled_model_cache_gives_identical_posteriors(synthetic_frame):
    """A cached compiled model with swapped data gives exactly what a fresh compile gives."""
    from bayescale import sampling

    kwargs = {"draws": 100, "tune": 100, "chains": 2, "seed": 9}
    other = synthetic_frame.assign(params=synthetic_frame["params"] * 3.0, loss=synthetic_frame["loss"] * 1.05)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sampling._COMPILED.clear()
        fresh = fit(synthetic_frame, **kwargs)
        sampling._COMPILED.clear()
        moved = fit(other, **kwargs)  # compiles on other data (other centres)
        cached = fit(synthetic_frame, **kwargs)  # reuses that compiled model with swapped data
        sampling._COMPILED.clear()
        moved_fresh = fit(other, **kwargs)
    xr.testing.assert_identical(fresh.posterior, cached.posterior)
    xr.testing.assert_identical(moved.posterior, moved_fresh.posterior)
    assert not np.allclose(fresh.posterior["E"].values, moved.posterior["E"].values)


def test_extrapolation_is_measured_per_group(grouped_fit, grouped_frame):
    from bayescale import ExtrapolationWarning
    from bayescale.forecasting import extrapolation_factor, target_table

    biggest = float(grouped_frame["params"].max() * grouped_frame["tokens"].max() * 6)
    targets = target_table(grouped_fit, {"params": [1e10], "tokens": [2e11], "dataset": ["web"]})
    assert extrapolation_factor(grouped_fit, targets)[0] == pytest.approx(6 * 1e10 * 2e11 / biggest)
    with pytest.warns(ExtrapolationWarning, match="of its group"):
        grouped_fit.forecast(params=["1T"], tokens=["20T"], dataset=["web"])


def test_forecast_summary_agrees_with_table_of_forecast(grouped_fit):
    """The bulk summary (float32, shared noise) matches the full forecast: the mean curve to float32
    rounding (same draws, same fresh draws for the unseen group), the predictive within MC error."""
    from bayescale import forecasting

    targets = {"params": ["1B", "3B", "10B"], "tokens": ["20B", "60B", "200B"], "dataset": ["web", "legal", "code"]}
    with pytest.warns(UserWarning, match="not seen"):
        full = forecasting.forecast_table(grouped_fit.forecast(seed=3, new_group=True, **targets), 0.8)
    with pytest.warns(UserWarning, match="not seen"):
        summary = forecasting.forecast_summary(grouped_fit, ci=0.8, seed=3, new_group=True, **targets)
    inputs = [c for c in full.columns if not c.startswith(("loss_", "mean_"))]
    pd.testing.assert_frame_equal(summary[inputs], full[inputs])
    for stat in ("median", "lo", "hi"):
        np.testing.assert_allclose(summary[f"mean_{stat}"], full[f"mean_{stat}"], rtol=2e-6)
        width = full["loss_hi"] - full["loss_lo"]
        assert np.all(np.abs(summary[f"loss_{stat}"] - full[f"loss_{stat}"]) < 0.1 * width), stat


def test_forecast_summary_is_independent_of_blocks_threads_and_kernel(grouped_fit, monkeypatch):
    """One target per block, one thread, or the Numba selection kernel: the same table, bit for bit."""
    from bayescale import forecasting

    targets = {"params": np.geomspace(1e8, 1e11, 40), "tokens": np.geomspace(2e9, 2e12, 40), "dataset": ["web", "code"] * 20}
    reference = forecasting.forecast_summary(grouped_fit, seed=1, **targets)
    monkeypatch.setattr(forecasting, "SUMMARY_BLOCK_ELEMENTS", 1)
    monkeypatch.setenv("BAYESCALE_NUM_THREADS", "2")
    pd.testing.assert_frame_equal(forecasting.forecast_summary(grouped_fit, seed=1, **targets), reference)
    monkeypatch.setenv("BAYESCALE_NUM_THREADS", "1")
    monkeypatch.setattr(forecasting, "NUMBA_MIN_ELEMENTS", 0)
    pd.testing.assert_frame_equal(forecasting.forecast_summary(grouped_fit, seed=1, **targets), reference)


def test_forecast_summary_rejects_bad_ci_and_thread_count(chinchilla_fit, monkeypatch):
    from bayescale import BayescaleError
    from bayescale.forecasting import forecast_summary

    with pytest.raises(BayescaleError, match=r"ci=1\.5 must be a probability"):
        forecast_summary(chinchilla_fit, ci=1.5, params=1e9, tokens=2e10)
    monkeypatch.setenv("BAYESCALE_NUM_THREADS", "two")
    with pytest.raises(BayescaleError, match="BAYESCALE_NUM_THREADS='two' must be a positive integer"):
        forecast_summary(chinchilla_fit, params=[1e9, 2e9], tokens=[2e10, 4e10])


def test_incompatible_format_version(saved_fit_path, tmp_path):
    tree = xr.open_datatree(saved_fit_path, engine="h5netcdf").load()
    tree.attrs["bayescale_format"] = 99
    path = tmp_path / "future.nc"
    tree.to_netcdf(path, engine="h5netcdf")
    with pytest.raises(FitFileError, match=r"format 99 .* not readable by this version"):
        load_fit(path)


@pytest.mark.parametrize(("column", "value"), [("params", 70), ("tokens", "1e30"), ("params", "2e17")])
def test_targets_outside_sensible_range(chinchilla_fit, column, value):
    targets = {"params": "7B", "tokens": "140B", column: value}
    with pytest.raises(RunTableError, match=f"column '{column}'.*outside any sensible range"):
        chinchilla_fit.forecast(**targets)


def test_compiled_model_cache_refits_a_model_with_unused_data():
    """data_constrained leaves some pm.Data out of its graph; a cached refit must not pass them to nutpie."""
    from bayescale import sampling
    from bayescale.resources import data_path

    runs = load_runs(data_path("datablations_c4_runs.csv"), where={"published_fit": "true"})
    kwargs = {"draws": 50, "tune": 50, "chains": 1, "seed": 2}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sampling._COMPILED.clear()
        first = fit(runs, "data_constrained_two_stage", **kwargs)
        second = fit(runs.data.assign(loss=runs.data["loss"] * 1.02), "data_constrained_two_stage", **kwargs)
    assert len(sampling._COMPILED) == 1
    assert second.info.adaptation == "low_rank"
    assert float(second.posterior["sigma"].median()) > 0
    assert not np.allclose(first.posterior["R_D_star"].values, second.posterior["R_D_star"].values)


def test_adaptation_is_checked_and_defaults_by_hierarchy(synthetic_frame):
    with pytest.raises(SamplerError, match="unknown adaptation 'dense'"):
        fit(synthetic_frame, adaptation="dense")
    with pytest.raises(SamplerError, match="is a nutpie option"):
        fit(synthetic_frame, sampler="pymc", adaptation="diag")
    with pytest.raises(SamplerError, match="unknown sampler 'stan'"):
        fit(synthetic_frame, sampler="stan", adaptation="diag")
    assert _adaptation(None, "nutpie", True) == "diag"  # a non-centred hierarchy
    assert _adaptation(None, "nutpie", False) == "low_rank"


def test_centered_levels_keep_the_non_centered_view(grouped_fit):
    """``pooling.centered`` samples the levels directly; eta stays in the posterior as a Deterministic."""
    post = grouped_fit.posterior
    assert grouped_fit.info.centered == ("E", "A", "B")
    for p in ("E", "A", "B"):
        assert f"{p}_z_dataset" in post
        np.testing.assert_allclose(post[f"{p}_tau_dataset"] * post[f"{p}_eta_dataset"], post[f"{p}_z_dataset"] - post[f"{p}_z"], atol=1e-9)
    assert "alpha_eta_dataset" not in post and post["alpha"].dims == ("chain", "draw")  # shared, as the spec says


@pytest.mark.slow
def test_non_centered_hierarchy_keeps_groups_apart(grouped_frame):
    """A spec that samples the levels non-centred (``centered = []``): a short fit keeps the groups'
    irreducible losses in order and forecasts each group from its own level."""
    spec = {"form": "chinchilla", "pooling": {"params": ["E", "A", "B"], "centered": [], "scale": {"E": 0.3, "A": 0.5, "B": 0.5}}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = fit(
            grouped_frame, spec, group="dataset", draws=150, tune=200, chains=2, seed=6, self_check=False, adaptation="low_rank"
        )  # the structure, not the self-check; low-rank: 54k leapfrog steps instead of 141k
    post = result.posterior
    assert "E_eta_dataset" in post and "E_z_dataset" not in post
    medians = {g: float(result.summary().loc[f"E[dataset={g}]", "median"]) for g in GROUP_TRUTHS}
    assert medians["code"] < medians["web"] < medians["books"], medians
    code, books = (float(result.forecast(params=[7e10], tokens=[1.4e12], dataset=[g])["loss"].median()) for g in ("code", "books"))
    assert code < books
