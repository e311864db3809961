"""Backtests that return per-run predictions, and the literature's point fit per group."""

import numpy as np
import pytest

from bayescale import RunTableError, load_runs
from bayescale.simulate import EPOCH_CHINCHILLA, grid_runs, simulate_groups
from bayescale.validate import backtest


@pytest.fixture(scope="module")
def grouped_runs():
    design = grid_runs(np.geomspace(2e7, 1e9, 5), np.geomspace(4e8, 4e10, 5))
    truths = {"a": EPOCH_CHINCHILLA, "b": {**EPOCH_CHINCHILLA, "E": 2.1}}
    return load_runs(simulate_groups("chinchilla", truths, design, column="recipe", sigma=0.005, seed=3))


@pytest.mark.slow  # two point fits with bootstrap: minutes on a busy 2-core machine
def test_point_backtest_per_group_recovers_each_level(grouped_runs):
    result = backtest(grouped_runs, "chinchilla", 1e19, method="point", group="recipe", bootstrap=5, predictions=True)
    table = result["predictions"]
    assert len(table) == result["n_test"] and set(table["recipe"]) == {"a", "b"}
    # each level's own law: forecasts land within a few noise scales of the truth, not between the levels
    assert result["median_abs_log_error"] < 0.02
    np.testing.assert_allclose(table["abs_log_error"], np.abs(table["predicted_log_loss"] - table["log_loss"]))
    assert (table["lo_90"] <= table["hi_90"]).all() and table["extrapolation"].gt(1).all()
    assert table["inside_90"].mean() == pytest.approx(result["coverage_90"])


def test_point_backtest_group_without_training_runs_is_clear_error(grouped_runs):
    data = grouped_runs.data.copy()
    data.loc[data["flops"] > 1e19, "recipe"] = "new"
    with pytest.raises(RunTableError, match=r"'new'.*none to train on"):
        backtest(load_runs(data), "chinchilla", 1e19, method="point", group="recipe", bootstrap=2)
