"""Row filters: ``--where`` conditions parsed (never evaluated) and applied to a run table.

A condition is ``COLUMN OP VALUE`` with ``OP`` one of ``=, !=, <, <=, >, >=``. ``=`` and ``!=``
take comma lists (``arch=dense,moe``), and several ``=`` conditions on one column mean OR.
Numeric columns compare as numbers (``=`` within a relative ``REL_TOL``, so a value copied from
a printed table matches), text columns as text ignoring case and surrounding spaces.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bayescale.errors import RunTableError
from bayescale.units import parse_quantity

#: Operators, longest first so ``<=`` is never read as ``<`` followed by a value ``=…``.
OPERATORS = ("<=", ">=", "!=", "=", "<", ">")
#: Relative tolerance of numeric ``=``: a 6-significant-digit print (``2.45106e+08``) still matches.
REL_TOL = 1e-5
#: Canonical columns of a ``RunTable`` that are numbers (every other column is text).
NUMERIC_COLUMNS = frozenset({"params", "tokens", "loss", "flops", "unique_tokens", "epochs", "experts", "active_params"})


@dataclass(frozen=True)
class Condition:
    """One parsed condition: ``column``, ``op`` and the values as the user wrote them."""

    column: str
    op: str
    values: tuple[str, ...]

    def text(self) -> str:
        """The condition as one would type it: ``params<=1e9``, ``arch=dense,moe``."""
        return f"{self.column}{self.op}{','.join(self.values)}"


def _split(text: str, columns: Sequence[str]) -> tuple[str, str, str]:
    """``text`` as (column, op, value): the first operator whose left side names a column, else the first operator."""
    candidates = []
    position = 0
    while position < len(text):
        op = next((o for o in OPERATORS if text.startswith(o, position)), None)
        if op is None:
            position += 1
            continue
        candidates.append((text[:position].strip(), op, text[position + len(op) :].strip()))
        position += len(op)
    if not candidates or not candidates[0][0]:
        raise RunTableError(f"--where {text!r}: expected COLUMN OP VALUE with OP one of {', '.join(OPERATORS)}, e.g. --where 'params<=1e9' or --where arch=dense,moe")
    known = {c.lower() for c in columns}
    chosen = next((c for c in candidates if c[0].lower() in known), candidates[0])
    column, op, value = chosen
    return column, op, value.strip().strip("'\"")


def parse_conditions(where: Mapping[str, Any] | Sequence[str] | str | None, columns: Sequence[str] = ()) -> list[Condition]:
    """Conditions from ``"params<=1e9"`` strings (one or a list) or a ``{column: value}`` mapping (``=``; a list value is OR)."""
    if where is None:
        return []
    if isinstance(where, str):
        where = [where]
    out = []
    if isinstance(where, Mapping):
        for column, value in where.items():
            items = value if isinstance(value, (list, tuple)) else [value]
            out.append(Condition(str(column).strip(), "=", tuple(_as_text(v) for v in items)))
        return out
    for item in where:
        column, op, value = _split(str(item), columns)
        out.append(Condition(column, op, (value,)))
    return out


def _as_text(value: object) -> str:
    """A mapping value as text: booleans as ``true``/``false`` (a TOML ``where = { published_fit = true }``)."""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value).strip()


def resolve_column(column: str, columns: Sequence[str], source: str, rule: str) -> str:
    """The table's column named ``column`` (exactly, else ignoring case), or an error listing close names."""
    if column in columns:
        return column
    folded = [c for c in columns if c.lower() == column.lower()]
    if len(folded) == 1:
        return folded[0]
    close = difflib.get_close_matches(column, list(columns), n=3, cutoff=0.6) or difflib.get_close_matches(column.lower(), [c.lower() for c in columns], n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
    raise RunTableError(f"{source}: --where {rule!r}: cannot select rows by column {column!r}: no such column{hint} (the table has {', '.join(map(repr, columns))})")


def _numbers(values: pd.Series) -> np.ndarray | None:
    """The column as floats if every cell reads as a number, else None (a text column)."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=float)
    numbers = pd.to_numeric(values.astype(str).str.strip(), errors="coerce").to_numpy(dtype=float)
    return None if np.isnan(numbers).any() else numbers


def _targets(condition: Condition, numeric: bool, present: set[str], source: str) -> list[Any]:
    """The values a condition compares with: numbers on a numeric column, lower-cased text otherwise.

    One ``=``/``!=`` value with commas is a list (``arch=dense,moe``) unless the whole text is a
    value of the column (a level with a comma) or one number (``1,000,000``).
    """
    items = list(condition.values)
    if condition.op in ("=", "!=") and len(items) == 1 and "," in items[0]:
        whole = _number_or_none(items[0]) is not None if numeric else items[0].strip().lower() in present
        items = items if whole else [v.strip() for v in items[0].split(",") if v.strip()]
    if condition.op not in ("=", "!=") and (len(items) != 1 or ("," in items[0] and _number_or_none(items[0]) is None)):
        raise RunTableError(f"{source}: --where {condition.text()!r}: {condition.op} takes one value, not a list")
    if not numeric:
        return [v.strip().lower() for v in items]
    out = []
    for item in items:
        number = _number_or_none(item)
        if number is None:
            raise RunTableError(f"{source}: --where {condition.text()!r}: column {condition.column!r} holds numbers and {item!r} is not one (e.g. 1e9, 70B)")
        out.append(number)
    return out


def _number_or_none(text: str) -> float | None:
    try:
        number = parse_quantity(text)
    except ValueError:
        return None
    return number if not math.isnan(number) else None


def _compare(condition: Condition, values: pd.Series, source: str) -> np.ndarray:
    """The rows ``condition`` keeps."""
    numbers = _numbers(values)
    if condition.op in ("<", "<=", ">", ">=") and numbers is None:
        raise RunTableError(f"{source}: --where {condition.text()!r}: column {condition.column!r} is text, and {condition.op} compares numbers; use = or != (lists allowed: a,b)")
    if numbers is None:
        text = values.astype(str).str.strip().str.lower().to_numpy(dtype=object)
        equal = np.isin(text, np.asarray(_targets(condition, False, set(text), source), dtype=object))
        return equal if condition.op == "=" else ~equal
    targets = _targets(condition, True, set(), source)
    equal = np.zeros(len(numbers), dtype=np.bool_)
    for target in targets:
        equal |= np.isclose(numbers, target, rtol=REL_TOL, atol=0.0)
    if condition.op in ("=", "!="):
        return equal if condition.op == "=" else ~equal
    (target,) = targets
    strictly = {"<": numbers < target, "<=": numbers < target, ">": numbers > target, ">=": numbers > target}[condition.op]
    return (strictly & ~equal) if condition.op in ("<", ">") else (strictly | equal)


def select(data: pd.DataFrame, where: Mapping[str, Any] | Sequence[str] | str | None, source: str) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Keep the rows every condition keeps (``=`` on one column: any of its values); also each condition's step record."""
    columns = [str(c) for c in data.columns]
    conditions = parse_conditions(where, columns)
    if not conditions:
        return data, []
    merged: dict[tuple[str, str], list[Condition]] = {}
    for given in conditions:
        column = resolve_column(given.column, columns, source, given.text())
        key = (column, given.op) if given.op == "=" else (column, f"{given.op}#{len(merged)}")
        merged.setdefault(key, []).append(Condition(column, given.op, given.values))
    keep = np.ones(len(data), dtype=bool)
    steps = []
    for group in merged.values():
        matches = np.zeros(len(data), dtype=bool)
        for condition in group:
            matches |= _compare(condition, data[condition.column], source)
        rule = " or ".join(c.text() for c in group)
        if not matches.any():
            raise RunTableError(f"{source}: --where {rule!r} matches none of the {len(data)} runs ({_present(data[group[0].column])})")
        keep &= matches
        steps.append({"filter": "where", "rule": rule, "matched": int(matches.sum()), "kept": int(keep.sum())})
    if not keep.any():
        counts = "; ".join(f"{s['rule']} matches {s['matched']}" for s in steps)
        raise RunTableError(f"{source}: no run matches every --where condition together ({counts}, of {len(data)} runs)")
    return data[keep], steps


def _present(values: pd.Series) -> str:
    """What a column holds, for an error: its range if numeric, else up to ten of its values."""
    numbers = _numbers(values)
    if numbers is not None:
        return f"column {values.name!r} ranges {np.min(numbers):.6g}..{np.max(numbers):.6g}"
    seen = sorted(set(values.astype(str)))
    more = f" and {len(seen) - 10} more" if len(seen) > 10 else ""
    return f"values present: {', '.join(seen[:10])}{more}"


def describe(steps: Iterable[Mapping[str, Any]], read: int) -> str:
    """One line saying how many runs each filter kept: ``273 runs read; where params<=1e9: 120; drop 5 highest-loss: 115``."""
    parts = [f"{read} runs read"]
    for step in steps:
        label = {"where": f"where {step.get('rule')}", "drop_highest_loss": f"drop {step.get('value')} highest-loss", "max_epochs": f"max {step.get('value')} epochs"}.get(
            str(step.get("filter")), str(step.get("filter"))
        )
        parts.append(f"{label}: {step.get('kept')} kept")
    return "; ".join(parts)
