"""CLI bounds and output hygiene (issue 32): bad option values give one line and exit 2, output stays strict and safe."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bayescale.cli import app
from bayescale.resources import data_path

CHINCHILLA = str(data_path("chinchilla_figure4_runs.csv"))


def invoke(args: list[str]):
    return CliRunner().invoke(app, args)


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--sweep", "-1"], "--sweep"),
        (["--sweep", "1000"], "--sweep"),
        (["--method", "point", "--bootstrap", "100000000"], "--bootstrap"),
        (["--method", "point", "--bootstrap", "0"], "--bootstrap"),
    ],
)
def test_backtest_loop_sizes_are_bounded(args, flag):
    result = invoke(["backtest", CHINCHILLA, *args])
    assert result.exit_code == 2
    assert flag in result.output and "Traceback" not in result.output


def test_point_backtest_needs_two_resamples():
    from bayescale.errors import BayescaleError
    from bayescale.validate import backtest

    with pytest.raises(BayescaleError, match="at least 2 bootstrap"):
        backtest(CHINCHILLA, "chinchilla", 1e20, method="point", bootstrap=0)
