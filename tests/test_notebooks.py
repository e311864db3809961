"""Every notebook in notebooks/ runs top to bottom with few draws, shows its figures, and reaches
the conclusion its text states (a check cell appended to a copy, run in the same kernel)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

NOTEBOOK_DIR = Path(__file__).parents[1] / "notebooks"
#: Draws per chain the notebooks use under test (they read BAYESCALE_NOTEBOOK_DRAWS).
TEST_DRAWS = "300"
#: What each notebook claims, checked on its own variables after it ran.
CLAIMS = {
    "quickstart": (
        "row = bayescale.forecast_table(ds, ci=0.9).iloc[0]\n"
        "assert 1.9 < row['loss_median'] < 2.05 and row['loss_lo'] < row['loss_median'] < row['loss_hi'], row\n"
        "assert reloaded.summary().equals(fit.summary())"
    ),
    "budget_decision": (
        "assert table['params_median'].is_monotonic_increasing and table['tokens_median'].is_monotonic_increasing\n"
        "assert 1e21 < decision.flops < 1e26 and decision.prob >= 0.75, decision\n"
        "assert 0.0 <= comparison['prob_a_better'] <= 1.0\n"
        "assert plan.sd_expected_after < plan.sd_now and 0 < plan.selected['cost'].sum() <= 5e22"
    ),
    "repeated_data": (
        "row = two_stage.summary().loc['R_D_star']\n"
        "assert row['lo'] <= 15.4 <= row['hi'], row  # the published value is inside the two-stage interval\n"
        "assert len(published.data) == 182 and len(all_runs.data) == 296"
    ),
    "moe_proxies": (
        "assert b.mean_lo <= true_loss[-1] <= b.mean_hi, (b, true_loss[-1])  # the MoE-informed forecast covers the truth\n"
        "assert b.mean_hi - b.mean_lo < a.mean_hi - a.mean_lo  # and is narrower than dense runs alone"
    ),
}
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def test_every_notebook_has_a_claim_and_a_generator():
    """A new notebook must come with a check here and be written by scripts/make_notebooks.py."""
    assert {p.stem for p in NOTEBOOKS} == set(CLAIMS)
    script = (NOTEBOOK_DIR.parent / "scripts" / "make_notebooks.py").read_text()
    for path in NOTEBOOKS:
        assert f'"{path.name}"' in script, path.name


def test_committed_notebooks_are_executed_with_figures():
    """The notebooks in the repository carry their outputs, figures included, and no errors."""
    for path in NOTEBOOKS:
        outputs = [o for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code" for o in c.get("outputs", [])]
        assert not [o for o in outputs if o.output_type == "error"], path.name
        assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name}: no figure stored"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_reaches_its_conclusion(path, monkeypatch):
    monkeypatch.setenv("BAYESCALE_NOTEBOOK_DRAWS", TEST_DRAWS)
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend: figures become outputs
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.append(new_code_cell(CLAIMS[path.stem]))
    NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()  # raises on any error
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    figures = sum("image/png" in o.get("data", {}) for o in outputs)
    assert figures >= 1, f"{path.name} showed no figure"
