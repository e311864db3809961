"""Parse and format quantities with SI-style suffixes: "70M", "1.5B", "1.4T", "5.76e23"."""

from __future__ import annotations

import math
import re

SUFFIXES = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12, "P": 1e15}
#: Commas allowed only as thousands separators: "1,000,000" or "1,234.5", never "5,00558" or "6,8B".
_GROUPED = re.compile(r"^\s*[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?(?:[eE][+-]?\d+)?\s*[kKMBGTP]?\s*$")
_NUMBER = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([kKMBGTP]?)\s*$")


def parse_quantity(value: object) -> float:
    """Return ``value`` as a float, accepting numbers and strings like ``"70B"`` or ``"1_000"``.

    Raises ``ValueError`` (callers wrap it with the column and row) when it cannot be read.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is a boolean, not a quantity")
    if isinstance(value, (int, float)):
        return float(value)
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars
        return float(value.item())
    text = str(value).replace("_", "")
    if "," in text:
        if not _GROUPED.match(text):
            raise ValueError(f"cannot read {value!r} as a number: a comma is only a thousands separator (1,000,000); write decimals with a point (5.00558, 6.8B)")
        text = text.replace(",", "")
    if text.strip().lower().lstrip("+-") in ("inf", "infinity"):
        return float(text.strip())  # callers reject non-finite values with their own message
    match = _NUMBER.match(text)
    if match is None:
        raise ValueError(f"cannot read {value!r} as a number (expected e.g. 7e10, 70B, 1.4T)")
    return float(match.group(1)) * SUFFIXES[match.group(2)]


def positive_quantity(value: object, label: str) -> float | None:
    """``parse_quantity`` for an optional input that must be positive and finite; errors name ``label``."""
    from bayescale.errors import BayescaleError

    if value is None:
        return None
    try:
        number = parse_quantity(value)
    except ValueError as exc:
        raise BayescaleError(f"{label}: {exc}") from None
    if not (number > 0 and math.isfinite(number)):
        raise BayescaleError(f"{label} must be a positive, finite number (got {value!r})")
    return number


def format_quantity(value: float, digits: int = 3) -> str:
    """Format a positive count compactly: 7e10 → "70B", 1.4e12 → "1.4T", 5.76e23 → "5.76e+23"."""
    if not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if 1.0 <= magnitude / scale < 1000.0:
            return f"{value / scale:.{digits}g}{suffix}"
    return f"{value:.{digits}g}"


#: FLOP units a flops column may be written in, by their squeezed lower-case name (``FLOP_UNIT_NAMES``).
FLOP_UNITS = {"FLOPs": 1.0, "GFLOPs": 1e9, "TFLOPs": 1e12, "PFLOPs": 1e15, "EFLOPs": 1e18, "PF-days": 1e15 * 86400}
FLOP_UNIT_NAMES = {
    **dict.fromkeys(("flop", "flops"), "FLOPs"),
    **dict.fromkeys(("gflop", "gflops", "gigaflop", "gigaflops"), "GFLOPs"),
    **dict.fromkeys(("tflop", "tflops", "teraflop", "teraflops"), "TFLOPs"),
    **dict.fromkeys(("pflop", "pflops", "petaflop", "petaflops"), "PFLOPs"),
    **dict.fromkeys(("eflop", "eflops", "exaflop", "exaflops"), "EFLOPs"),
    **dict.fromkeys(("pfday", "pfdays", "pflopday", "pflopdays", "pflopsday", "pflopsdays", "petaflopday", "petaflopdays", "petaflopsday", "petaflopsdays"), "PF-days"),
}
#: A unit inside a header (``total_gflops``, ``flops (PF-days)``, ``compute_petaflop_days``); the longest spelling first.
_HEADER_UNIT = re.compile(r"(?<![a-z])(p(?:eta)?f(?:lops?)?(?:/s)?[\s_-]?days?|(?:g|t|p|e|giga|tera|peta|exa)flops?)(?![a-z])")
#: What may surround the unit in a header that names the compute itself (not, say, a throughput).
_COMPUTE_WORDS = frozenset({"", "total", "train", "training", "compute", "flop", "flops", "in"})


def flop_unit(name: str) -> tuple[str, float]:
    """A FLOP unit's canonical label and its size in FLOPs (``"GFLOP"`` → ``("GFLOPs", 1e9)``); ``ValueError`` lists the units."""
    squeezed = re.sub(r"[\s_/-]", "", str(name).lower())
    label = FLOP_UNIT_NAMES.get(squeezed)
    if label is None:
        raise ValueError(f"unknown FLOP unit {name!r}; use one of {', '.join(FLOP_UNITS)}")
    return label, FLOP_UNITS[label]


def header_flop_unit(header: str) -> tuple[str, float] | None:
    """The FLOP unit a column header names (``total_gflops`` → GFLOPs), or None when it names none or plain FLOPs."""
    match = _HEADER_UNIT.search(str(header).lower())
    if match is None:
        return None
    label, factor = flop_unit(match.group(1))
    return None if factor == 1.0 else (label, factor)


def names_compute(header: str) -> bool:
    """Whether a header with a FLOP unit names the training compute itself (``total_gflops``, ``flops (PF-days)``), not e.g. a throughput."""
    text = str(header).lower()
    match = _HEADER_UNIT.search(text)
    if match is None:
        return False
    rest = re.split(r"[\s_\-()\[\]/:,]+", text[: match.start()] + " " + text[match.end() :])
    return all(word in _COMPUTE_WORDS for word in rest)
