import numpy as np
import pytest

from bayescale.units import format_quantity, parse_quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [("70M", 7e7), ("1.5B", 1.5e9), ("1.4T", 1.4e12), ("5.76e23", 5.76e23), ("12k", 1.2e4), (" 3 G ", 3e9), ("1_000", 1000.0), (42, 42.0), (np.float32(2.5), 2.5)],
)
def test_parse_quantity(text, value):
    assert parse_quantity(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "abc", "1.2X", "B", "1e", "--1", True])
def test_parse_quantity_rejects(text):
    with pytest.raises(ValueError):
        parse_quantity(text)


def test_format_round_trip():
    for value in (7e7, 1.5e9, 1.4e12, 2.0e3):
        assert parse_quantity(format_quantity(value)) == pytest.approx(value, rel=1e-3)
    assert format_quantity(5.76e23) == "5.76e+23"


@pytest.mark.parametrize(("value", "message"), [("0", "--tokens must be a positive, finite number"), ("-1B", "--tokens must be a positive"), ("inf", "--tokens must be"), ("1.2X", "--tokens: ")])
def test_positive_quantity_names_the_input(value, message):
    from bayescale.errors import BayescaleError
    from bayescale.units import positive_quantity

    assert positive_quantity(None, "--tokens") is None
    assert positive_quantity("100B", "--tokens") == pytest.approx(1e11)
    with pytest.raises(BayescaleError, match=message):
        positive_quantity(value, "--tokens")


@pytest.mark.parametrize(
    ("name", "label", "size"),
    [
        ("FLOPs", "FLOPs", 1.0),
        ("GFLOP", "GFLOPs", 1e9),
        ("gigaflops", "GFLOPs", 1e9),
        ("TFLOPs", "TFLOPs", 1e12),
        ("pflops", "PFLOPs", 1e15),
        ("PF-days", "PF-days", 8.64e19),
        ("petaflop/s-days", "PF-days", 8.64e19),
    ],
)
def test_flop_units(name, label, size):
    from bayescale.units import flop_unit

    assert flop_unit(name) == (label, size)


@pytest.mark.parametrize(
    ("header", "unit", "compute"),
    [
        ("total_gflops", "GFLOPs", True),
        ("flops (PF-days)", "PF-days", True),
        ("compute_petaflop_days", "PF-days", True),
        ("throughput/total_gflops", "GFLOPs", False),
        ("gflops_per_sec", "GFLOPs", False),
        ("flops", None, False),
        ("train_flops", None, False),
    ],
)
def test_headers_that_name_a_flop_unit(header, unit, compute):
    from bayescale.units import header_flop_unit, names_compute

    found = header_flop_unit(header)
    assert (found[0] if found else None) == unit
    assert names_compute(header) is compute


def test_cli_refuses_gflops_in_one_line_and_takes_flops_unit(tmp_path):
    from typer.testing import CliRunner

    from bayescale.cli import app
    from bayescale.errors import RunTableError

    runs = tmp_path / "runs.csv"
    runs.write_text("params,tokens,loss,flops\n1e8,2e9,3.2,1.2e9\n4e8,8e9,2.9,1.92e10\n")
    result = CliRunner().invoke(app, ["fit", str(runs), "--model", "chinchilla", "-o", str(tmp_path / "fit.nc")])
    assert result.exit_code == RunTableError.exit_code
    assert result.stderr.count("\n") == 1 and "row 1 (line 2), flops: 1.2e+09 FLOPs is 1e-09 × 6·params·tokens" in result.stderr
    assert "--flops-unit GFLOPs" in result.stderr
    result = CliRunner().invoke(app, ["fit", str(runs), "--model", "chinchilla", "--flops-unit", "GFLOPs", "--where", "params<1e8", "-o", str(tmp_path / "fit.nc")])
    assert result.exit_code == RunTableError.exit_code and "'params<1e8' matches none of the 2 runs" in result.stderr  # the unit was accepted
