"""The law library: parameter recovery per form, token-crisis and MoE behaviour, datablations.

The fast checks evaluate each law directly and through hand-built posteriors (``fakefit``). The
full-size fits (four chains of 1000 draws, one per form, session-scoped) are marked slow: recovery
checks every truth against its 99% interval and the 90% intervals with a binomial rule.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayescale import ConvergenceWarning, fit, load_runs
from bayescale.fitting import Fit
from bayescale.forecasting import forecast_table
from bayescale.laws import LAWS, get_law
from bayescale.resources import data_path
from bayescale.simulate import EPOCH_CHINCHILLA, grid_runs, simulate_runs

from .fakefit import fake_fit

#: Four chains of 1000 draws: with two, R-hat <= 1.01 and tail ESS >= 400 were marginal (kaplan,
#: datablations, compute, data_constrained, token_crisis, moe all failed a check at least once).
SMALL = {"draws": 1000, "tune": 1000, "chains": 4, "cores": 2}

KAPLAN_TRUTH = {"alpha_N": 0.076, "alpha_D": 0.095, "N_c": 8.8e13, "D_c": 5.4e13}
COMPUTE_TRUTH = {"E": 1.7, "gamma": 0.15, "K": 1062.0}
DC_TRUTH = {**EPOCH_CHINCHILLA, "R_D_star": 15.4, "R_N_star": 5.3}
TC_TRUTH = {**DC_TRUTH, "K_o": 0.05, "gamma_o": 0.5, "R_o": 10.0, "delta": 10.0}
#: Drifting truths: the data exponent falls with model size (farseer), the exponents drift in
#: opposite directions (drift), so a sign swap between kappa_N and kappa_D would show.
FARSEER_TRUTH = {**EPOCH_CHINCHILLA, "gamma": -0.15, "delta": 0.0}
DRIFT_TRUTH = {**EPOCH_CHINCHILLA, "kappa_N": -0.03, "kappa_D": 0.03}
#: Routed truth near the least-squares fit of ScaleBench's MoE runs (models/routed.toml).
ROUTED_TRUTH = {"alpha": 0.09, "c": 0.005, "beta": 0.13, "d": 2.67, "E_start": 3.2, "E_max": 400.0}
#: Few draws, no self-check: enough to read the sign of a drift parameter, not to pin R-hat.
SIGN = {"draws": 300, "tune": 300, "chains": 2, "cores": 2, "self_check": False}


def repeat_design(dropout: tuple[float, ...] = ()) -> pd.DataFrame:
    """Sizes × unique-token budgets × epochs (1 to 100), optionally × dropout rates."""
    rows = []
    for n in np.geomspace(3e7, 3e9, 5):
        for u in (3e8, 3e9):
            for epochs in (1, 3, 10, 30, 100):
                for rate in dropout or (None,):
                    row = {"params": n, "unique_tokens": u, "tokens": u * epochs}
                    if rate is not None:
                        row["dropout"] = rate
                    rows.append(row)
    return pd.DataFrame(rows)


def coverage(result, truth: dict[str, float], label: str = "{}") -> tuple[list, list]:
    """(name, truth, lo, hi) rows outside the 99% interval, and 90% coverage flags."""
    t90, t99 = result.summary(0.9), result.summary(0.99)
    outside99, covered90 = [], []
    for name, value in truth.items():
        key = label.format(name)
        lo, hi = t99.loc[key, "lo"], t99.loc[key, "hi"]
        if not lo <= value <= hi:
            outside99.append((key, value, lo, hi))
        covered90.append(bool(t90.loc[key, "lo"] <= value <= t90.loc[key, "hi"]))
    return outside99, covered90


def min_covered(k: int, level: float = 0.9, false_alarm: float = 0.05) -> int:
    """Fewest of ``k`` calibrated ``level`` intervals that must cover: P(fewer) <= false_alarm."""
    m = k
    while m > 0 and stats.binom.cdf(m - 1, k, level) > false_alarm:
        m -= 1
    return m


def assert_recovers(result, truth, label="{}"):
    """Coverage of the truth (sampler diagnostics are what the package warns about, not what a test pins)."""
    outside99, covered90 = coverage(result, truth, label)
    assert not outside99, outside99
    assert sum(covered90) >= min_covered(len(covered90)), (covered90, result.summary().to_string())


# --- fits ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kaplan_fit():
    frame = simulate_runs("kaplan", KAPLAN_TRUTH, grid_runs(np.geomspace(2e7, 1e10, 6), np.geomspace(5e8, 2e11, 6)), sigma=0.01, seed=21)
    return fit(frame, "kaplan", seed=21, **SMALL)


@pytest.fixture(scope="session")
def compute_fit():
    frame = simulate_runs("compute", COMPUTE_TRUTH, grid_runs(np.geomspace(2e7, 1e10, 6), np.geomspace(5e8, 2e11, 6)), sigma=0.01, seed=22)
    return fit(frame, "compute", seed=22, **SMALL)  # E-K-gamma ridge: 2 chains give ESS ~300


@pytest.fixture(scope="session")
def dc_frame():
    return simulate_runs("data_constrained", DC_TRUTH, repeat_design(), sigma=0.01, seed=23)


@pytest.fixture(scope="session")
def dc_fit(dc_frame):
    return fit(dc_frame, "data_constrained", seed=23, **SMALL)  # 2 chains: ESS ~260-400, marginal


@pytest.fixture(scope="session")
def tc_frame():
    return simulate_runs("token_crisis", TC_TRUTH, repeat_design(dropout=(0.0, 0.1)), sigma=0.01, seed=24)


@pytest.fixture(scope="session")
def tc_fit(tc_frame):
    return fit(tc_frame, "token_crisis", seed=24, **SMALL)  # 12 parameters: 2 chains gave R-hat 1.012


def drift_runs(form: str, truth: dict[str, float], seed: int) -> pd.DataFrame:
    """36 runs, 3e7-1e10 parameters × 5e8-2e11 tokens, from a drifting law (0.5% noise)."""
    return simulate_runs(form, truth, grid_runs(np.geomspace(3e7, 1e10, 6), np.geomspace(5e8, 2e11, 6)), sigma=0.005, seed=seed)


def quiet_fit(frame: pd.DataFrame, model: str, seed: int, settings: dict) -> Fit:
    """A fit whose convergence warning is expected (few draws): the tests read intervals, not R-hat."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit(frame, model, seed=seed, **settings)


@pytest.fixture(scope="session")
def farseer_sign_fit():
    return quiet_fit(drift_runs("farseer", FARSEER_TRUTH, 27), "farseer_exponent", 27, SIGN)


@pytest.fixture(scope="session")
def drift_sign_fit():
    return quiet_fit(drift_runs("drift", DRIFT_TRUTH, 28), "drift", 28, SIGN)


@pytest.fixture(scope="session")
def farseer_fit():
    return fit(drift_runs("farseer", FARSEER_TRUTH, 29), "farseer", seed=29, **SMALL)


@pytest.fixture(scope="session")
def drift_fit():
    return fit(drift_runs("drift", DRIFT_TRUTH, 30), "drift", seed=30, **SMALL)


def routed_design() -> pd.DataFrame:
    """Six dense sizes × ten expert counts (1–512), one token count: the design of Clark et al.'s runs."""
    n, e = np.meshgrid(np.geomspace(1.5e7, 1.5e9, 6), 2.0 ** np.arange(10), indexing="ij")
    design = pd.DataFrame({"active_params": n.ravel(), "experts": e.ravel(), "tokens": 1.3e11})
    design["params"] = design["active_params"]
    design["arch"] = np.where(design["experts"] == 1, "dense", "moe")
    return design


def routed_runs(truth: dict[str, float], seed: int) -> pd.DataFrame:
    return simulate_runs("routed", truth, routed_design(), sigma=0.01, seed=seed)


@pytest.fixture(scope="session")
def routed_fit():
    return fit(routed_runs(ROUTED_TRUTH, 31), "routed", seed=31, **SMALL)


@pytest.fixture(scope="session")
def moe_truth():
    return json.loads(data_path("synthetic_moe_truth.json").read_text())


@pytest.fixture(scope="session")
def moe_runs():
    return load_runs(data_path("synthetic_moe_runs.csv"))


@pytest.fixture(scope="session")
def moe_fit(moe_runs):
    # two-level arch hierarchy, non-centred: 4 chains for R-hat; at the default target_accept 0.9
    # it mixed poorly here (R-hat 1.046, tail ESS 69), at 0.95 it converged (R-hat 1.003, ESS 1001)
    return fit(moe_runs, "moe", seed=25, target_accept=0.95, **SMALL)


@pytest.fixture(scope="session")
def dense_only_fit(moe_runs):
    dense = moe_runs.data[moe_runs.data["arch"] == "dense"][["params", "tokens", "loss"]]
    return fit(dense, "chinchilla", seed=26, **SMALL)  # 16 runs: a ridge, 4 chains for ESS


@pytest.fixture(scope="session")
def datablations():
    return load_runs(data_path("datablations_c4_runs.csv"))


@pytest.fixture(scope="session")
def datablations_fit(datablations):
    return fit(datablations, "data_constrained", seed=1, **SMALL)


@pytest.fixture(scope="session")
def two_stage_fit():
    """The published procedure: Chinchilla constants fixed at the C4 fit, the authors' 182 runs."""
    runs = load_runs(data_path("datablations_c4_runs.csv"), where={"published_fit": "true"})
    return fit(runs, "data_constrained_two_stage", seed=1, **SMALL)


@pytest.fixture(scope="session")
def few_epoch_fit():
    """data_constrained on the datablations runs with at most 4 epochs (97 runs)."""
    return fit(load_runs(data_path("datablations_c4_runs.csv"), max_epochs=4), "data_constrained", seed=2, **SMALL)


# --- laws as functions --------------------------------------------------------------------


def test_new_forms_registered():
    assert {"token_crisis", "moe"} <= set(LAWS)
    assert get_law("token_crisis").covariates == ("dropout",)


def test_token_crisis_term_vanishes_without_repetition():
    tc, dc = get_law("token_crisis"), get_law("data_constrained")
    inputs = {"params": np.array([1e8, 3e9, 3e9]), "tokens": np.array([1e10, 1e10, 1e11]), "unique_tokens": np.array([1e10, 1e10, 1e10])}
    a, b = tc.loss(TC_TRUTH, inputs), dc.loss(DC_TRUTH, inputs)
    assert a[0] == b[0] and a[1] == b[1]  # exactly the data-constrained loss at R_D = 0
    assert a[2] > b[2]  # repetition adds loss
    dropped = tc.loss(TC_TRUTH, {**inputs, "dropout": np.array([0.0, 0.0, 0.1])})
    assert b[2] < dropped[2] < a[2]  # dropout mitigates, but does not remove it


def test_token_crisis_loss_rises_with_repetition_for_large_models():
    """Strong over-fitting (as on datablations' 100M-token sets): the big model's loss rises again."""
    tc = get_law("token_crisis")
    strong = {**TC_TRUTH, "K_o": 0.3, "gamma_o": 0.7}
    epochs = np.array([1, 4, 16, 64, 256])
    u = np.full(5, 1e8)
    big = tc.loss(strong, {"params": np.full(5, 1e10), "unique_tokens": u, "tokens": 1e8 * epochs})
    small = tc.loss(strong, {"params": np.full(5, 1e7), "unique_tokens": u, "tokens": 1e8 * epochs})
    rise_big, rise_small = big[-1] - big.min(), small[-1] - small.min()
    assert rise_big > 1.0 and rise_big > rise_small + 0.5, (big, small)


def test_moe_dense_runs_reduce_to_chinchilla():
    moe, chin = get_law("moe"), get_law("chinchilla")
    p = {**EPOCH_CHINCHILLA, "c": 0.4}
    n, d = np.array([1e8, 1e9]), np.array([2e9, 2e10])
    np.testing.assert_allclose(moe.loss(p, {"active_params": n, "experts": np.ones(2), "tokens": d}), chin.loss(EPOCH_CHINCHILLA, {"params": n, "tokens": d}), rtol=1e-12)
    more = moe.loss(p, {"active_params": n, "experts": np.full(2, 8.0), "tokens": d})
    assert np.all(more < chin.loss(EPOCH_CHINCHILLA, {"params": n, "tokens": d}))


def test_routed_expert_count_saturates():
    """Ê is E_start for a dense model, grows about one for one with E, and tends to E_max."""
    law = get_law("routed")
    flat = {**ROUTED_TRUTH, "alpha": 0.0, "c": 0.0, "d": 0.0, "beta": -1.0}  # log L = log Ê
    experts = np.array([1.0, 2.0, 8.0, 1e7])
    e_hat = law.loss(flat, {"active_params": np.ones(4), "experts": experts})
    assert e_hat[0] == pytest.approx(ROUTED_TRUTH["E_start"])
    assert e_hat[1] - e_hat[0] == pytest.approx(1.0, abs=0.05)
    assert e_hat[-1] == pytest.approx(ROUTED_TRUTH["E_max"], rel=1e-4)
    loss = law.loss(ROUTED_TRUTH, {"active_params": np.full(4, 1e8), "experts": experts})
    assert np.all(np.diff(loss) < 0)  # experts help, less and less
    dense = law.loss(ROUTED_TRUTH, {"active_params": np.array([1e8, 1e9]), "experts": np.ones(2)})
    gain = law.loss(ROUTED_TRUTH, {"active_params": np.array([1e8, 1e9]), "experts": np.full(2, 64.0)}) / dense
    assert gain[1] > gain[0]  # c > 0: routing helps the larger model less


NULL_DRIFT = {"farseer": {"gamma": 0.0, "delta": 0.0}, "drift": {"kappa_N": 0.0, "kappa_D": 0.0}}


@pytest.mark.parametrize("form", sorted(NULL_DRIFT))
def test_drift_laws_are_chinchilla_at_null_values(form):
    """At their null values the drifting laws give Chinchilla's log loss bit for bit (both numpy
    namespaces), so a posterior piled at 0 means "no drift"; away from 0 they differ."""
    from bayescale.laws.ops import NUMPY, NUMPY_FAST

    law, chin, rng = get_law(form), get_law("chinchilla"), np.random.default_rng(1)
    x = {"params": rng.uniform(np.log(1e6), np.log(1e13), 300), "tokens": rng.uniform(np.log(1e8), np.log(1e14), 300)}
    p = {k: v * np.exp(rng.normal(0, 0.2, 300)) for k, v in EPOCH_CHINCHILLA.items()}
    for ops in (NUMPY, NUMPY_FAST):
        np.testing.assert_array_equal(law.log_loss(ops, {**p, **NULL_DRIFT[form]}, x), chin.log_loss(ops, p, x))
    for name in NULL_DRIFT[form]:
        moved = law.log_loss(NUMPY, {**p, **NULL_DRIFT[form], name: 0.05}, x)
        assert np.all(np.abs(moved - chin.log_loss(NUMPY, p, x)) > 0), name


def test_drift_is_anchored_at_the_reference_scales():
    """gamma leaves the loss unchanged at N = 1e9 and at D = 2e10; kappa_N at N = 1e9, kappa_D at D = 2e10."""
    farseer, drift = get_law("farseer"), get_law("drift")
    base_f, base_d = {**EPOCH_CHINCHILLA, **NULL_DRIFT["farseer"]}, {**EPOCH_CHINCHILLA, **NULL_DRIFT["drift"]}
    at_n = {"params": np.full(3, 1e9), "tokens": np.array([1e9, 2e10, 1e12])}
    at_d = {"params": np.array([1e7, 1e9, 1e11]), "tokens": np.full(3, 2e10)}
    for inputs in (at_n, at_d):
        np.testing.assert_allclose(farseer.loss({**base_f, "gamma": 0.2}, inputs), farseer.loss(base_f, inputs), rtol=1e-12)
    np.testing.assert_allclose(drift.loss({**base_d, "kappa_N": 0.05}, at_n), drift.loss(base_d, at_n), rtol=1e-12)
    np.testing.assert_allclose(drift.loss({**base_d, "kappa_D": 0.05}, at_d), drift.loss(base_d, at_d), rtol=1e-12)
    # a falling data exponent (gamma < 0) makes data worth less to large models beyond D_ref
    big = {"params": np.array([1e11]), "tokens": np.array([1e12])}
    assert farseer.loss({**base_f, "gamma": -0.1}, big)[0] > farseer.loss(base_f, big)[0]


def test_farseer_exponent_spec_fixes_delta_at_zero():
    from bayescale.spec import load_spec

    spec = load_spec("farseer_exponent")
    assert spec.form == "farseer" and spec.priors["delta"].dist == "Fixed" and spec.priors["delta"].kwargs == {"value": 0.0}
    assert spec.pooled == ("E", "A", "B")


def test_drift_fits_read_the_sign_of_the_drift(farseer_sign_fit, drift_sign_fit):
    """On runs simulated with drift, the 90% interval of each drift parameter excludes 0 on the truth's side."""
    for result, truth in ((farseer_sign_fit, FARSEER_TRUTH), (drift_sign_fit, DRIFT_TRUTH)):
        table = result.summary(0.9)
        for name in ("gamma", "kappa_N", "kappa_D"):
            if name in truth:
                lo, hi = table.loc[name, "lo"], table.loc[name, "hi"]
                assert (hi < 0) if truth[name] < 0 else (lo > 0), (name, truth[name], lo, hi)


@pytest.mark.parametrize("form", sorted(NULL_DRIFT))
def test_drift_laws_allocate_numerically_and_reduce_to_chinchillas_plan(form):
    """No closed form: the numeric search allocates; at null drift it finds Chinchilla's closed-form plan."""
    from bayescale.allocate import allocate_params

    rng = np.random.default_rng(2)
    draws = {k: v * np.exp(0.05 * rng.standard_normal((2, 100))) for k, v in EPOCH_CHINCHILLA.items()}
    flops = np.geomspace(1e19, 1e26, 8)
    exact = allocate_params(get_law("chinchilla"), draws, flops)
    null = allocate_params(get_law(form), {**draws, **NULL_DRIFT[form]}, flops)
    assert null.attrs["method"] == "numeric"
    for name in ("params", "tokens", "loss"):
        np.testing.assert_allclose(null[name], exact[name], rtol=1e-2)
    # with drift, the plan found beats Chinchilla's plan under the drifting law, budget by budget
    drift = {**draws, **{k: np.full((2, 100), LAW_TRUTHS[form][k]) for k in NULL_DRIFT[form]}}
    plan = allocate_params(get_law(form), drift, flops)
    at_chinchillas = get_law(form).loss({k: v[..., None] for k, v in drift.items()}, {"params": exact["params"].values, "tokens": exact["tokens"].values})
    assert np.all(plan["loss"].values <= at_chinchillas * (1 + 1e-9))
    assert np.any(np.abs(plan["params"].values / exact["params"].values - 1) > 0.05)  # and it is a different plan


LAW_TRUTHS = {
    "chinchilla": EPOCH_CHINCHILLA,
    "kaplan": KAPLAN_TRUTH,
    "compute": COMPUTE_TRUTH,
    "data_constrained": DC_TRUTH,
    "token_crisis": TC_TRUTH,
    "moe": {**EPOCH_CHINCHILLA, "c": 0.4},
    "routed": ROUTED_TRUTH,
    "farseer": {**FARSEER_TRUTH, "delta": 0.05},
    "drift": DRIFT_TRUTH,
}


def test_every_law_has_a_truth_for_the_float32_check():
    assert set(LAW_TRUTHS) == set(LAWS)


@pytest.mark.parametrize("name", sorted(LAW_TRUTHS))
def test_float32_fast_namespace_matches_float64(name):
    """Bulk summaries evaluate each law in float32 with NUMPY_FAST: within float32 rounding of NUMPY."""
    from bayescale.laws.ops import NUMPY, NUMPY_FAST

    law, rng = get_law(name), np.random.default_rng(0)
    n = 500
    params = np.exp(rng.uniform(np.log(1e6), np.log(1e13), n))
    unique = np.exp(rng.uniform(np.log(1e8), np.log(1e13), n))
    raw = {
        "params": params,
        "active_params": params,
        "experts": rng.choice([1.0, 8.0, 64.0], n),
        "unique_tokens": unique,
        "tokens": unique * rng.choice([1.0, 4.0, 40.0, 400.0], n),
        "dropout": rng.choice([0.0, 0.1], n),
    }
    raw["flops"] = 6 * raw["params"] * raw["tokens"]
    # draws around the truth, as a posterior would give them (one row of parameters per target)
    p = {k: v * np.exp(rng.normal(0, 0.05, n)) for k, v in LAW_TRUTHS[name].items()}
    x = {c: np.log(raw[c]) for c in law.inputs} | {c: raw[c] for c in law.covariates}
    exact = law.log_loss(NUMPY, p, x)
    with np.errstate(divide="ignore"):  # as in forecast_summary
        fast = law.log_loss(NUMPY_FAST, {k: v.astype(np.float32) for k, v in p.items()}, {k: v.astype(np.float32) for k, v in x.items()})
    assert fast.dtype == np.float32
    np.testing.assert_allclose(fast, exact, rtol=0, atol=2e-5)


@pytest.mark.parametrize(
    ("form", "design"),
    [("kaplan", None), ("compute", None), ("data_constrained", repeat_design()), ("token_crisis", repeat_design(dropout=(0.0, 0.1))), ("farseer", None), ("drift", None), ("routed", routed_design())],
)
def test_forecast_summary_mean_curve_matches_full_forecast(form, design):
    """End to end for every non-Chinchilla form: the float32 bulk path agrees with float64 draws
    (a hand-built posterior spread around the truth, so no sampling is needed)."""
    from bayescale.forecasting import forecast_summary

    result = fake_fit(LAW_TRUTHS[form], form, chains=2, draws=200, spread=0.05, sigma=0.01, design=design)
    targets = result.runs.data[list(result.spec.law.inputs)].iloc[::7].reset_index(drop=True)
    full = forecast_table(result.forecast(targets))
    summary = forecast_summary(result, targets)
    assert (full["mean_hi"] - full["mean_lo"]).min() > 0  # the draws really differ
    for stat in ("median", "lo", "hi"):
        np.testing.assert_allclose(summary[f"mean_{stat}"], full[f"mean_{stat}"], rtol=2e-5)


def test_fast_logaddexp_matches_numpy_including_infinities():
    from bayescale.laws.ops import NUMPY_FAST

    x = np.array([0.0, 1.0, -5.0, 30.0, -np.inf, -np.inf, np.inf, 3.0], dtype=np.float32)
    y = np.array([0.0, -3.0, 7.0, -40.0, 2.0, -np.inf, np.inf, -np.inf], dtype=np.float32)
    np.testing.assert_allclose(NUMPY_FAST.logaddexp(x, y), np.logaddexp(x, y), rtol=1e-6)


def test_fast_logsumexp_sums_directly_and_falls_back_on_overflow():
    from bayescale.laws.ops import NUMPY, NUMPY_FAST

    a = np.array([[0.5, -3.0, 2.0]], dtype=np.float32)
    b = np.array([[-1.0, 1.0, -200.0]], dtype=np.float32)
    e = np.array([[0.6], [0.7]], dtype=np.float32)  # broadcasts like a per-draw constant
    np.testing.assert_allclose(NUMPY_FAST.logsumexp(a, b, e), NUMPY.logsumexp(a.astype(float), b.astype(float), e.astype(float)), rtol=1e-6)
    huge = np.array([100.0, 0.0], dtype=np.float32)  # exp(100) overflows float32: the stable chain answers
    np.testing.assert_allclose(NUMPY_FAST.logsumexp(huge, np.float32(0.0)), np.logaddexp(huge.astype(float), 0.0), rtol=1e-6)
    none = np.array([-200.0], dtype=np.float32)  # every term underflows: still finite
    np.testing.assert_allclose(NUMPY_FAST.logsumexp(none, none), np.logaddexp(-200.0, -200.0), rtol=1e-6)


# --- recovery, one per form ---------------------------------------------------------------


@pytest.mark.slow
def test_recovers_kaplan(kaplan_fit):
    assert_recovers(kaplan_fit, KAPLAN_TRUTH)


@pytest.mark.slow
def test_recovers_compute(compute_fit):
    assert_recovers(compute_fit, COMPUTE_TRUTH)


@pytest.mark.slow
def test_recovers_data_constrained(dc_fit):
    assert_recovers(dc_fit, DC_TRUTH)


@pytest.mark.slow
def test_recovers_token_crisis(tc_fit):
    assert_recovers(tc_fit, TC_TRUTH)


@pytest.mark.slow
def test_recovers_farseer(farseer_fit):
    assert_recovers(farseer_fit, FARSEER_TRUTH)


@pytest.mark.slow
def test_recovers_drift(drift_fit):
    assert_recovers(drift_fit, DRIFT_TRUTH)


@pytest.mark.slow
def test_recovers_routed(routed_fit):
    assert_recovers(routed_fit, ROUTED_TRUTH)


@pytest.mark.slow
def test_recovers_moe_with_arch_levels(moe_fit, moe_truth):
    assert moe_fit.groups == ("arch",)
    assert_recovers(moe_fit, moe_truth["shared"])
    for arch, values in moe_truth["by_arch"].items():
        outside99, _covered90 = coverage(moe_fit, values, label=f"{{}}[arch={arch}]")
        assert not outside99, outside99


def _law_only(result):
    """``result`` with its discrepancy scale τ set to zero: forecasts carry parameter uncertainty only."""
    return result.with_posterior(result.posterior.assign(discrepancy_tau=result.posterior["discrepancy_tau"] * 0.0))


@pytest.mark.slow
def test_moe_proxies_sharpen_dense_forecast(moe_fit, dense_only_fit, moe_runs, moe_truth):
    """A dense forecast at 10x the largest dense compute: covering, and with MoE proxies the law's
    parameters pin it down more tightly (widths compared without the discrepancy term, which both
    fits add alike beyond their runs and which proxies cannot shrink)."""
    dense = moe_runs.data[moe_runs.data["arch"] == "dense"]
    c = 10 * float(dense["flops"].max())
    n = 1.2e9
    d = c / (6 * n)
    truth = get_law("moe").loss({**moe_truth["shared"], **moe_truth["by_arch"]["dense"]}, {"active_params": np.array([n]), "experts": np.ones(1), "tokens": np.array([d])})[0]
    with_moe = forecast_table(moe_fit.forecast(active_params=n, experts=1, tokens=d, arch="dense", params=n)).iloc[0]
    assert with_moe["mean_lo"] <= truth <= with_moe["mean_hi"], (truth, with_moe.to_dict())
    law_moe = forecast_table(_law_only(moe_fit).forecast(active_params=n, experts=1, tokens=d, arch="dense", params=n)).iloc[0]
    law_alone = forecast_table(_law_only(dense_only_fit).forecast(params=n, tokens=d)).iloc[0]
    width_moe, width_alone = law_moe["mean_hi"] - law_moe["mean_lo"], law_alone["mean_hi"] - law_alone["mean_lo"]
    print(f"truth {truth:.4f}; with MoE {with_moe['mean_lo']:.4f}-{with_moe['mean_hi']:.4f}; law only: with MoE {width_moe:.4f} wide, dense only {width_alone:.4f}")
    assert width_moe < 0.85 * width_alone, (width_moe, width_alone)


# --- datablations (Muennighoff et al. 2023) -----------------------------------------------


@pytest.mark.slow
def test_datablations_fit_reports_repeat_constants(datablations_fit):
    table = datablations_fit.summary()
    assert {"R_D_star", "R_N_star"} <= set(table.index)
    assert table.loc["R_D_star", "lo"] > 1 and table.loc["R_N_star", "lo"] > 0.5


@pytest.mark.slow
def test_datablations_two_stage_fit_contains_published_r_d_star(two_stage_fit):
    """Muennighoff et al.'s procedure as a Bayesian fit: R_D_star's 90% interval holds 15.4.

    Measured (seed 1): R_D_star 33 (90%: 14.2-95), R_N_star 2.2; the Huber objective of the
    paper is nearly flat in R_D_star on these runs (15.4 is a local optimum), so the honest
    interval is wide.
    """
    assert len(two_stage_fit.runs) == 182
    table = two_stage_fit.summary()
    row = table.loc["R_D_star"]
    assert row["lo"] <= 15.4 <= row["hi"], row.to_dict()
    assert table.loc["R_N_star", "lo"] > 0.5
    assert np.isnan(table.loc[list(two_stage_fit.spec.fixed), "rhat"]).all()  # no R-hat for a constant


#: Muennighoff et al.'s stage-1 C4 fit as published (logs of E, A, B; alpha = beta), data/README.md.
PAPER_STAGE_1 = {"E": np.exp(0.6254804), "A": np.exp(6.255414), "B": np.exp(7.3049974), "alpha": 0.3526596, "beta": 0.3526596}


@pytest.fixture(scope="module")
def two_stage_quick():
    """The two-stage spec on the 182 published runs with few draws: enough to check fixed constants."""
    runs = load_runs(data_path("datablations_c4_runs.csv"), where={"published_fit": "true"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit(runs, "data_constrained_two_stage", draws=100, tune=100, chains=1, seed=1)


def test_two_stage_holds_the_papers_constants_fixed(two_stage_quick):
    """The spec's fixed constants are the paper's stage-1 fit, and forecasts use exactly them: with
    fresh data and N below U_N no repetition term acts, so every draw gives Chinchilla at stage 1."""
    assert two_stage_quick.spec.fixed == pytest.approx(PAPER_STAGE_1, rel=1e-6)
    doc = json.loads(json.dumps(two_stage_quick.summary_dict(), allow_nan=False))  # valid JSON: no NaN
    assert doc["fixed"] == pytest.approx(PAPER_STAGE_1, rel=1e-6) and doc["parameters"]["alpha"]["rhat"] is None
    n, d = 1e8, 2e10  # 200 tokens per parameter, all unique: U_N > N, R_D = 0
    mean = two_stage_quick.forecast(params=n, tokens=d, unique_tokens=d)["loss"].values.ravel()
    chinchilla = get_law("chinchilla").loss(PAPER_STAGE_1, {"params": np.array([n]), "tokens": np.array([d])})[0]
    assert np.ptp(mean) < 1e-12  # the same value for every draw: nothing uncertain acts here
    np.testing.assert_allclose(mean, chinchilla, rtol=1e-6)  # the spec stores the paper's values to 8 digits
    repeated = two_stage_quick.forecast(params=n, tokens=d, unique_tokens=d / 40)["loss"].values.ravel()
    assert repeated.std() > 0 and np.all(repeated > chinchilla)  # 40 epochs: R_D_star matters, and costs loss


def test_cli_summary_marks_fixed_parameters(two_stage_quick, tmp_path):
    from typer.testing import CliRunner

    from bayescale.cli import app

    path = two_stage_quick.save(tmp_path / "two_stage.nc")
    result = CliRunner().invoke(app, ["summary", str(path)])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.split()}
    assert rows["alpha"][-3:] == ["fixed", "fixed", "fixed"]
    assert "fixed" not in rows["R_D_star"]


@pytest.mark.slow
def test_datablations_joint_fit_of_all_runs_puts_r_d_star_above_published(datablations_fit):
    """The joint fit of all 296 runs (diverged and seed repeats included) does not give 15.4.

    Measured (seed 1): R_D_star 46 (90%: 29-87). Documented in the README as a finding, not a bug.
    """
    row = datablations_fit.summary().loc["R_D_star"]
    assert row["lo"] > 15.4, row.to_dict()


@pytest.mark.slow
def test_datablations_forecasts_many_epoch_runs_from_few_epoch_runs(few_epoch_fit, datablations):
    """Fit on <= 4 epochs (97 runs), forecast held-back runs with more than 10 epochs.

    Measured (seed 2): on unique budgets >= 1B tokens and 10-20 epochs the 90% predictive
    intervals cover 16 of 17 runs with a median error under 1%. Beyond that the law fails in
    both directions and the test only reports it: on 100M-400M unique tokens it is too
    pessimistic for large models (R_N_star is barely identified by few-epoch runs), and at
    40+ epochs with N >= U_D it is too optimistic (over-fitting: the token-crisis regime).
    """
    data = datablations.data
    held = data[data["epochs"] > 10]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = forecast_table(few_epoch_fit.forecast(held[["params", "tokens", "unique_tokens"]]))
    observed = held["loss"].to_numpy()
    inside = (table["loss_lo"].to_numpy() <= observed) & (observed <= table["loss_hi"].to_numpy())
    log_error = np.abs(np.log(table["loss_median"].to_numpy() / observed))
    moderate = ((held["unique_tokens"] >= 1e9) & (held["epochs"] <= 20)).to_numpy()
    print(f"held-back > 10 epochs: {held.shape[0]} runs, 90% coverage {inside.mean():.2f}, median |log error| {np.median(log_error):.3f}")
    print(f"moderate subset: {moderate.sum()} runs, coverage {inside[moderate].mean():.2f}, median |log error| {np.median(log_error[moderate]):.4f}")
    assert moderate.sum() >= 15
    assert inside[moderate].sum() >= min_covered(int(moderate.sum()))
    assert np.median(log_error[moderate]) < 0.01
