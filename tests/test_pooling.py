"""Pooling: levels vs shape declared by each law, --pooling choices, the auto-centring rule, compare --lfo."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bayescale import load_runs
from bayescale.cli import app
from bayescale.errors import BayescaleError, ModelSpecError
from bayescale.laws import LAWS, get_law
from bayescale.modeldesign import design
from bayescale.pooling import (
    AUTO_MIN_RUNS,
    FUNNEL_TAU_RATIO,
    auto_centered,
    funnel_parameters,
    pooling_choice,
    resolve_centered,
    switch_centering,
    uncenter_after_divergences,
    with_pooling,
)
from bayescale.simulate import EPOCH_CHINCHILLA, grid_runs, simulate_runs
from bayescale.spec import AUTO, load_spec, shipped_specs


def test_every_law_declares_levels_and_shapes():
    assert get_law("chinchilla").level_names == ("E", "A", "B")
    assert get_law("kaplan").level_names == ("N_c", "D_c")
    assert get_law("compute").level_names == ("E", "K")
    for name in LAWS:
        law = get_law(name)
        exponents = [p.name for p in law.parameters if "exponent" in p.doc]
        assert exponents and not set(exponents) & set(law.level_names), name  # exponents are shape


def test_shipped_specs_pool_the_levels_with_auto_centering():
    for name in shipped_specs():
        spec = load_spec(name)
        # moe: two arch levels leave the spread unidentified, centred sampling diverged: non-centred
        assert spec.centered == (() if name == "moe" else AUTO), name
        if name not in ("moe", "data_constrained_two_stage"):  # moe shares A by design; two-stage fixes its levels
            assert spec.pooled == spec.law.level_names, name
    # a spec without pooling.params pools the free levels
    raw = {"form": "chinchilla", "priors": {"E": {"dist": "Fixed", "value": 1.8}}}
    assert load_spec(raw).pooled == ("A", "B")


@pytest.mark.parametrize(("choice", "expected"), [("levels", ("E", "A", "B")), ("all", ("E", "alpha", "beta", "A", "B")), ("none", ()), ("E, alpha", ("E", "alpha"))])
def test_pooling_choices(choice, expected):
    spec = load_spec("chinchilla")
    assert pooling_choice(spec, choice) == expected
    pooled = with_pooling(spec, choice)
    assert pooled.pooled == expected and pooled.centered == AUTO
    assert pooled.pool_scale.get("alpha") == 0.1  # the spec's own scales are kept for newly pooled exponents


@pytest.mark.parametrize(
    ("choice", "match"),
    [
        ("gamma", "gamma is not a parameter of the chinchilla form"),
        ("", "give levels, all, none or a comma list"),
        ("E,,A", "give levels, all, none or a comma list"),
        ("E,E", "listed twice"),
        ("some", "some is not a parameter"),
    ],
)
def test_bad_pooling_values_are_clear_errors(choice, match):
    with pytest.raises(ModelSpecError, match=match):
        pooling_choice(load_spec("chinchilla"), choice)


def test_pooling_a_fixed_parameter_is_refused():
    with pytest.raises(ModelSpecError, match="alpha is fixed"):
        pooling_choice(load_spec("data_constrained_two_stage"), "alpha")
    assert pooling_choice(load_spec("data_constrained_two_stage"), "all") == ("R_D_star", "R_N_star")


def _grouped(blocks: dict[str, tuple[list[float], list[float]]]):
    """A run table whose groups have the given (params, tokens) grids, and the default spec's design."""
    frames = []
    for name, (params, tokens) in blocks.items():
        block = simulate_runs("chinchilla", EPOCH_CHINCHILLA, grid_runs(params, tokens), seed=len(frames))
        block["dataset"] = name
        frames.append(block)
    spec = load_spec("chinchilla")
    return spec, design(spec, load_runs(pd.concat(frames, ignore_index=True)), ("dataset",))


WIDE = (list(np.geomspace(5e7, 3e9, 4)), list(np.geomspace(1e9, 1e11, 4)))  # 16 runs over two decades each


def test_auto_centering_when_every_group_pins_its_levels_down():
    spec, d = _grouped({"web": WIDE, "code": WIDE, "books": WIDE})
    assert auto_centered(spec, d) == ("E", "A", "B")
    assert resolve_centered(spec, d).centered == ("E", "A", "B")


def test_auto_centering_is_non_centered_when_one_group_is_small():
    spec, d = _grouped({"web": WIDE, "code": WIDE, "tiny": ([5e7, 3e8, 3e9], [2e9, 2e10, 2e11])})
    assert (d.codes["dataset"] == d.levels["dataset"].index("tiny")).sum() == 9 < AUTO_MIN_RUNS
    assert auto_centered(spec, d) == ()


def test_auto_centering_follows_the_input_each_amplitude_depends_on():
    # every group spans two decades of size but only 0.2 decades of tokens: A (whose term lives on
    # params) is pinned down per group; B (tokens) and E (needs both) are not
    narrow_tokens = (list(np.geomspace(5e7, 3e9, 4)), list(np.geomspace(1e10, 1.6e10, 4)))
    spec, d = _grouped({"web": narrow_tokens, "code": narrow_tokens})
    assert auto_centered(spec, d) == ("A",)
    # an explicit list in the spec is kept as is
    explicit = load_spec({**spec.to_dict(), "pooling": {"params": ["E", "A", "B"], "centered": ["E"]}})
    assert resolve_centered(explicit, d).centered == ("E",)


def test_funnel_is_the_centered_level_whose_spread_collapses_where_the_sampler_diverged():
    """Constructed draws: A's τ is small exactly where the sampler diverged (a funnel), E's is not,
    and B is non-centred already; only A is sampled again non-centred."""
    import xarray as xr

    spec, _ = _grouped({"web": WIDE, "code": WIDE, "books": WIDE})
    spec = load_spec({**spec.to_dict(), "pooling": {"params": ["E", "A", "B"], "centered": ["E", "A"]}})
    rng = np.random.default_rng(0)
    shape = (2, 500)
    diverging = np.zeros(shape, bool)
    diverging[:, :25] = True
    a_tau = rng.lognormal(np.log(0.06), 0.5, shape)
    a_tau[diverging] = rng.lognormal(np.log(0.015), 0.3, diverging.sum())  # below FUNNEL_TAU_RATIO of the median
    b_tau = rng.lognormal(np.log(0.2), 0.5, shape)
    b_tau[diverging] = 0.01  # collapsed too, but B is non-centred: no funnel there
    post = xr.Dataset({f"{p}_tau_dataset": (("chain", "draw"), v) for p, v in (("E", rng.lognormal(np.log(0.03), 0.5, shape)), ("A", a_tau), ("B", b_tau))})
    assert np.median(a_tau[diverging]) < FUNNEL_TAU_RATIO * np.median(a_tau)
    assert funnel_parameters(spec, ["dataset"], post, diverging) == ("A",)
    assert funnel_parameters(spec, ["dataset"], post, np.zeros(shape, bool)) == ()  # no divergences: nothing to do
    assert switch_centering(spec, ("A",)).centered == ("E",)
    assert uncenter_after_divergences(spec, ["dataset"], post, diverging) == ("A",)
    b_tau[diverging] = a_tau[diverging] = np.median(a_tau)  # divergences that point at no level: every centred one
    assert funnel_parameters(spec, ["dataset"], post.assign(A_tau_dataset=(("chain", "draw"), a_tau)), diverging) == ()
    assert uncenter_after_divergences(spec, ["dataset"], post.assign(A_tau_dataset=(("chain", "draw"), a_tau)), diverging) == ("E", "A")


# --- compare --lfo -----------------------------------------------------------------------------

SMALL = ["--draws", "300", "--tune", "300", "--chains", "2"]


@pytest.fixture(scope="module")
def law_true_csv(tmp_path_factory):
    frame = simulate_runs("chinchilla", EPOCH_CHINCHILLA, grid_runs(np.geomspace(5e7, 3e9, 6), np.geomspace(1e9, 8e10, 6)), sigma=0.01, seed=3)
    path = tmp_path_factory.mktemp("lfo") / "runs.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_compare_lfo_ranks_a_wrong_form_below_the_true_one(law_true_csv):
    """On Chinchilla-true runs the compute-only law cannot tell N from D: it forecasts the larger runs worse."""
    out = CliRunner().invoke(app, ["compare", str(law_true_csv), "--lfo", "--model", "compute", "--model", "chinchilla", "--format", "json", "--seed", "1", *SMALL])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["chinchilla"]["rank"] == 0 and doc["compute"]["rank"] == 1
    assert doc["compute"]["elpd_diff"] < -5
    assert doc["chinchilla"]["median_abs_log_error"] < doc["compute"]["median_abs_log_error"]
    assert doc["chinchilla"]["n_test"] > 0 and {"crps", "coverage_90", "mean_width_90", "converged"} <= set(doc["chinchilla"])


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--lfo", "--group", "dataset", "--pooling", "levels", "--pooling", "theta"], "theta is not a parameter of the chinchilla form"),
        (["--lfo", "--pooling", "levels", "--pooling", "all"], "give --group COLUMN too"),
        (["--lfo", "--group", "dataset", "--pooling", "all", "--pooling", "all"], "listed twice"),
        (["--lfo", "--group", "dataset", "--pooling", "levels"], "at least two candidates"),
        (["--lfo", "--by-group", "dataset", "--model", "chinchilla", "--model", "compute"], "cannot be combined"),
        (["--train-max-flops", "1e19", "--model", "chinchilla", "--model", "compute"], "add --lfo"),
    ],
)
def test_cli_compare_lfo_bad_flags(law_true_csv, args, match):
    out = CliRunner().invoke(app, ["compare", str(law_true_csv), *args])
    assert out.exit_code in {BayescaleError.exit_code, ModelSpecError.exit_code}, out.output
    assert match in out.output and "Traceback" not in out.output
