"""Property-based: arbitrary tables through load_runs and the CLI give a valid table or a bayescale error."""

import string

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bayescale import BayescaleError, load_runs
from bayescale.cli import app

cell = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.text(alphabet=string.printable, max_size=8),
    st.sampled_from(["70M", "1.5B", "1.4T", "5e23", "-1", "0", "nan", "", "1e400", "dense", "moe"]),
)
column_names = st.sampled_from(["params", "tokens", "loss", "flops", "unique_tokens", "arch", "experts", "active_params", "dataset", "Model Size"])


@st.composite
def tables(draw):
    columns = draw(st.lists(column_names, min_size=0, max_size=6, unique=True))
    rows = draw(st.integers(min_value=0, max_value=6))
    return pd.DataFrame({c: [draw(cell) for _ in range(rows)] for c in columns})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_load_runs_valid_or_bayescale_error(frame):
    try:
        table = load_runs(frame)
    except BayescaleError:
        return
    data = table.data
    for column in ("params", "tokens", "loss", "flops", "unique_tokens", "epochs"):
        values = data[column].to_numpy(dtype=float)
        assert np.all(np.isfinite(values)) and np.all(values > 0)
    assert np.all(data["tokens"] >= data["unique_tokens"] * (1 - 1e-9))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(tables())
def test_cli_fit_never_crashes_on_bad_tables(tmp_path_factory, frame):
    path = tmp_path_factory.mktemp("prop") / "runs.csv"
    frame.to_csv(path, index=False)
    try:
        load_runs(path)
    except BayescaleError:
        result = CliRunner().invoke(app, ["fit", str(path), "-q", "-o", str(path.with_suffix(".nc"))])
        assert result.exit_code in (2, 3, 4, 5, 6), result.output
        assert "Traceback" not in result.output and "error:" in result.stderr
