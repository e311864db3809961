"""Group targeting and argument checks of the API: no silent population forecasts, no tracebacks on bad seeds/sizes."""

import warnings

import numpy as np
import pytest
import xarray as xr

from bayescale import BayescaleError
from bayescale.allocate import parse_flops
from bayescale.decide import decide
from bayescale.fitting import check_convergence, fit
from bayescale.forecasting import forecast_summary

from .fakefit import fake_fit, fake_grouped_fit

TRUTH = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
LEVELS = {"RPJ": TRUTH, "web": {"E": 1.55, "A": 520.0, "B": 2300.0, "alpha": 0.36, "beta": 0.38}}


@pytest.fixture(scope="module")
def grouped():
    return fake_grouped_fit(TRUTH, LEVELS, chains=2, draws=200)


def by_hand(truth, n, d):
    return truth["E"] + truth["A"] / n ** truth["alpha"] + truth["B"] / d ** truth["beta"]


def test_levels_match_ignoring_case_and_are_labelled(grouped):
    table = forecast_summary(grouped, params=["1B", "1B"], tokens=["20B", "20B"], dataset=["rpj", "WEB"])
    assert list(table["dataset"]) == ["RPJ", "web"]  # the canonical level, not the typed spelling
    assert list(table["new_group"]) == [False, False]
    expected = [by_hand(LEVELS[g], 1e9, 2e10) for g in ("RPJ", "web")]
    np.testing.assert_allclose(table["mean_median"], expected, rtol=1e-5)
    same = forecast_summary(grouped, params="1B", tokens="20B", group_values={"dataset": "rPj"})
    assert same.loc[0, "mean_median"] == table.loc[0, "mean_median"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dataset": "legal"}, r"'legal' is not a level seen at fit time \(levels: RPJ, web"),
        ({}, r"grouped by 'dataset' \(levels: RPJ, web\): name a level"),
        ({"group_values": {"ds": "web"}}, "'ds' not in this fit; its groups: dataset"),
    ],
)
def test_unknown_or_missing_group_is_an_error(grouped, kwargs, match):
    for call in (lambda: forecast_summary(grouped, params="1B", tokens="20B", **kwargs), lambda: grouped.forecast(params="1B", tokens="20B", **kwargs)):
        with pytest.raises(BayescaleError, match=match):
            call()


def test_ambiguous_case_is_an_error():
    fit_ = fake_grouped_fit(TRUTH, {"RPJ": TRUTH, "rpj": TRUTH})
    with pytest.raises(BayescaleError, match="matches several levels"):
        forecast_summary(fit_, params="1B", tokens="20B", dataset="Rpj")


def test_new_group_only_when_asked_and_wider(grouped):
    with pytest.warns(UserWarning, match="not seen at fit time"):
        table = forecast_summary(grouped, params="1B", tokens="20B", new_group=True)
    assert table.loc[0, "dataset"] == "(new)" and bool(table.loc[0, "new_group"])
    seen = forecast_summary(grouped, params="1B", tokens="20B", dataset="web")
    assert table.loc[0, "mean_hi"] - table.loc[0, "mean_lo"] > 10 * (seen.loc[0, "mean_hi"] - seen.loc[0, "mean_lo"])
    with pytest.warns(UserWarning):
        named = grouped.forecast(params="1B", tokens="20B", dataset="legal", new_group=True)
    assert named["dataset"].values[0] == "legal" and bool(named["new_group"].values[0])


def test_group_requests_on_a_fit_without_groups_are_errors():
    plain = fake_fit(TRUTH)
    for kwargs in ({"group_values": {"dataset": "web"}}, {"new_group": True}):
        with pytest.raises(BayescaleError, match="this fit has no groups"):
            forecast_summary(plain, params="1B", tokens="20B", **kwargs)
        with pytest.raises(BayescaleError, match="this fit has no groups"):
            plain.allocate(1e21, **kwargs)
        with pytest.raises(BayescaleError, match="this fit has no groups"):
            decide(plain, 2.5, flops=[1e21], **kwargs)


def test_allocate_and_decide_target_groups_consistently(grouped):
    seen = grouped.allocate([1e21], group_values={"dataset": "WEB"})
    assert seen.attrs["group_values"] == "dataset=web" and seen.attrs["new_group"] == 0
    new = grouped.allocate([1e21], new_group=True)
    assert new.attrs["new_group"] == 1 and "new, unseen dataset" in new.attrs["group"]
    spread = {name: float(np.log(ds["params"]).std()) for name, ds in (("new", new), ("seen", seen))}
    assert spread["new"] > 0.1 and spread["seen"] < 1e-6  # a new group carries the spread between groups
    with pytest.raises(BayescaleError, match="new_group=True"):
        grouped.allocate([1e21])
    doc = decide(grouped, 2.5, flops=[1e21], group_values={"dataset": "rpj"})
    assert doc["group"] == {"dataset": "RPJ"} and doc["new_group"] is False
    doc = decide(grouped, 2.5, flops=[1e21], new_group=True)
    assert doc["new_group"] is True and 0 < doc["plans"][0]["prob"] < 1
    # the same seed gives the same new-group draws in allocate and decide (common random numbers)
    np.testing.assert_allclose(doc["plans"][0]["params"], grouped.allocate([1e21], new_group=True)["robust_params"].values[0])


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, "3"])
def test_bad_seeds_are_clear_errors(seed):
    plain = fake_fit(TRUTH)
    with pytest.raises(BayescaleError, match=r"seed=.* must be a whole number from 0 to 4294967295"):
        forecast_summary(plain, params="1B", tokens="20B", seed=seed)
    with pytest.raises(BayescaleError, match=r"seed=.* must be a whole number"):
        plain.forecast(params="1B", tokens="20B", seed=seed)
    with pytest.raises(BayescaleError, match=r"seed=.* must be a whole number"):
        fit(plain.runs, seed=seed)


@pytest.mark.parametrize(("kwargs", "match"), [({"draws": 0}, "draws=0 must be a whole number >= 1"), ({"chains": 0}, "chains=0"), ({"draws": 10**9}, r"GiB of posterior draws \(limit")])
def test_sizes_are_checked_before_sampling(kwargs, match):
    with pytest.raises(BayescaleError, match=match) as info:
        fit(fake_fit(TRUTH).runs, **kwargs)
    assert info.value.exit_code == 2


def test_budget_grid_is_capped():
    with pytest.raises(BayescaleError, match="100000000 budgets is more than the 1000"):
        parse_flops("1e21:1e25:100000000")
    assert parse_flops(["1e21", "1e22:1e23:3"]).size == 4


def test_slow_fit_warns_with_an_estimate_and_options():
    from bayescale.sampling import _warn_if_slow

    with pytest.warns(UserWarning, match=r"1,000,000 runs: this fit may take roughly .* --draws 300") as record:
        _warn_if_slow(1_000_000, 1000, 1000, 4, 2)
    assert "h" in str(record[0].message) or "min" in str(record[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_if_slow(240, 1000, 1000, 4, 2)


def test_convergence_message_names_the_variables_at_fault():
    rng = np.random.default_rng(0)
    good = rng.standard_normal((2, 500))
    bad = np.stack([rng.standard_normal(500), rng.standard_normal(500) + 3.0])
    post = xr.Dataset({"E_z": (("chain", "draw"), good), "B_eta_dataset": (("chain", "draw", "dataset"), np.stack([good, bad], axis=-1))}, coords={"dataset": ["code", "web"]})
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((2, 500), bool))})
    diag = check_convergence(xr.DataTree.from_dict({"posterior": post, "sample_stats": stats}), ["E_z", "B_eta_dataset"])
    rhat = next(p for p in diag.problems if p.startswith("R-hat"))
    assert "at fault: B_eta_dataset[web]" in rhat and "E_z" not in rhat


def test_repr_is_a_short_summary(grouped):
    text = repr(grouped)
    assert len(text.splitlines()) <= 3 and len(text) < 400
    for part in ("chinchilla", "18 runs", "dataset: 2 levels", "converged", "E=1.69", "alpha=0.34"):
        assert part in text
