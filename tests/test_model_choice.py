"""The model choice: candidates scored by forecasting the self-check's held-out runs from mode fits."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from bayescale import ConvergenceWarning, fit, load_fit
from bayescale.documents import Candidate, FitInfo, ModelChoice
from bayescale.model_choice import candidate_specs, choose
from bayescale.runs import load_runs
from bayescale.simulate import EPOCH_CHINCHILLA, grid_runs, simulate_groups, simulate_runs

#: A 7 x 7 grid of sizes and token counts: the self-check holds out its 10 largest-compute runs.
DESIGN = grid_runs(np.geomspace(2e7, 3e9, 7), np.geomspace(2e9, 2e11, 7))
#: Farseer-style truth with a size-dependent data exponent (δ = 0: the ``farseer_exponent`` spec).
DRIFTING = {**EPOCH_CHINCHILLA, "gamma": 0.12, "delta": 0.0}


@pytest.mark.parametrize(("form", "truth", "expected"), [("chinchilla", EPOCH_CHINCHILLA, "chinchilla"), ("farseer", DRIFTING, "farseer_exponent")])
@pytest.mark.parametrize("seed", [0, 1])
def test_choice_picks_the_true_form(form, truth, expected, seed):
    runs = load_runs(simulate_runs(form, truth, DESIGN, sigma=0.01, seed=seed))
    spec, choice = choose(runs, seed=0)
    assert (spec.name, choice.chosen, choice.made) == (expected, expected, True)
    assert choice.n_test == 10 and choice.n_train == len(runs) - 10
    scores = {c.model: c.score for c in choice.candidates}
    assert set(scores) == {"chinchilla", "farseer_exponent"} and all(np.isfinite(v) for v in scores.values())
    if expected == "farseer_exponent":  # a real drift is not a near-tie: the drifting form forecasts far better
        assert scores["farseer_exponent"] - scores["chinchilla"] > 0.5


def test_candidates_follow_the_table():
    fresh = load_runs(simulate_runs("chinchilla", EPOCH_CHINCHILLA, DESIGN, seed=0))
    assert [(s.name, p) for s, p in candidate_specs(fresh, ())] == [("chinchilla", None), ("farseer_exponent", None)]
    repeated = fresh.data[["params", "tokens", "loss"]].assign(unique_tokens=fresh.data["tokens"] / np.where(np.arange(len(fresh)) % 2, 4.0, 1.0))
    names = [s.name for s, _ in candidate_specs(load_runs(repeated), ())]
    assert names == ["chinchilla", "farseer_exponent", "data_constrained"]
    grouped = load_runs(simulate_groups("chinchilla", {"a": EPOCH_CHINCHILLA, "b": EPOCH_CHINCHILLA}, DESIGN))
    pairs = [(s.name, p, tuple(s.pooled)) for s, p in candidate_specs(grouped, ("group",))]
    assert pairs[:2] == [("chinchilla", "levels", ("E", "A", "B")), ("chinchilla", "all", ("E", "alpha", "beta", "A", "B"))]
    assert [p for _, p, _ in pairs] == ["levels", "all", "levels", "all"]


def test_grouped_choice_scores_poolings():
    truths = {"a": EPOCH_CHINCHILLA, "b": {**EPOCH_CHINCHILLA, "E": 1.6, "A": 400.0}, "c": {**EPOCH_CHINCHILLA, "E": 2.0, "B": 2500.0}}
    runs = load_runs(simulate_groups("chinchilla", truths, DESIGN, column="data", seed=1))
    spec, choice = choose(runs, ("data",), seed=0)
    assert len(choice.candidates) == 4 and all(c.pooling in ("levels", "all") for c in choice.candidates)
    assert all(c.score is not None or c.skipped for c in choice.candidates)
    assert spec.name == choice.chosen == "chinchilla"  # the truth: Chinchilla, levels per group
    assert tuple(spec.pooled) == (("E", "A", "B") if choice.pooling == "levels" else spec.law.parameter_names)


def test_choice_round_trips_and_old_files_load():
    choice = ModelChoice(
        chosen="farseer_exponent",
        candidates=(Candidate("chinchilla", None, 2.5, 1.2, 0.003, 0.004, 6), Candidate("farseer_exponent", None, 3.1, 0.0, 0.002, 0.003, 7)),
        n_train=39,
        n_test=10,
        seconds=1.5,
    )
    info = FitInfo(draws=10, model_choice=choice)
    raw = json.loads(json.dumps(info.to_dict()))
    assert raw["model_choice"]["chosen"] == "farseer_exponent" and raw["model_choice"]["candidates"][0]["model"] == "chinchilla"
    assert FitInfo.from_dict(raw) == info
    assert FitInfo.from_dict({"draws": 10}).model_choice is None  # a file written before the choice existed
    assert "chosen by forecasting its own 10 largest runs" in choice.sentence()
    assert "no choice made" in ModelChoice(chosen="chinchilla", made=False, reason="given by the caller").sentence()


def test_a_given_model_records_that_no_choice_was_made(synthetic_fit, saved_fit_path):
    choice = synthetic_fit.info.model_choice
    assert choice is not None and not choice.made and choice.chosen == "chinchilla"
    assert synthetic_fit.summary_dict()["model_choice"]["made"] is False
    assert load_fit(saved_fit_path).info.model_choice == ModelChoice(chosen="chinchilla", made=False, reason="given by the caller")


def test_default_fit_chooses_and_stores_the_choice(synthetic_frame, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = fit(synthetic_frame, draws=100, tune=100, chains=2, seed=2, self_check=False)
        loaded = load_fit(result.save(tmp_path / "chosen.nc"))
    choice = result.info.model_choice
    assert choice is not None and choice.made and choice.chosen == result.spec.name == "chinchilla"
    assert [c.model for c in choice.candidates] == ["chinchilla", "farseer_exponent"]
    document = result.summary_dict()["model_choice"]
    assert document["chosen"] == "chinchilla" and len(document["candidates"]) == 2
    assert loaded.info.model_choice == choice
