"""The public run tables shipped in data/ load with load_runs and have their documented shape."""

import numpy as np
import pytest

from bayescale import load_runs
from bayescale.resources import data_path

# file -> (rows, group column or None, groups): the counts data/README.md documents
TABLES = {
    "gemstones_runs.csv": (619, "recipe", {"cooldown": 199, "constant_lr": 220, "constant_lr_half": 200}),
    "llama3_isoflop_runs.csv": (133, "compute_budget", None),
    "cerebras_gpt_runs.csv": (7, None, None),
    "scalebench_moe_runs.csv": (221, "split", {"train": 193, "test": 28}),
    "scalebench_data_constrained_runs.csv": (182, "split", {"train": 161, "test": 21}),
}


@pytest.mark.parametrize("name", sorted(TABLES))
def test_public_table_loads_with_documented_rows(name):
    rows, group, groups = TABLES[name]
    runs = load_runs(data_path(name))
    assert len(runs) == rows
    assert "run" in runs.extra_columns and runs.data["run"].is_unique
    flops = runs.column("flops").astype(float)
    np.testing.assert_allclose(flops, 6 * runs.column("params").astype(float) * runs.column("tokens").astype(float), rtol=1e-3)
    assert np.all(runs.column("loss").astype(float) > 0)
    if groups:
        assert runs.data[group].value_counts().to_dict() == groups
