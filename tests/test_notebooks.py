"""Every notebook in notebooks/ runs top to bottom (few draws): a broken notebook fails CI."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
#: Draws per chain the notebooks use under test (they read BAYESCALE_NOTEBOOK_DRAWS).
TEST_DRAWS = "300"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch):
    monkeypatch.setenv("BAYESCALE_NOTEBOOK_DRAWS", TEST_DRAWS)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    assert os.environ.get("BAYESCALE_NOTEBOOK_DRAWS") == TEST_DRAWS
