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
