"""Group targeting: which group of a grouped fit a forecast, allocation or decision is for.

A request names a level per group column, matched exactly and then ignoring case (as
``--where`` does), or asks for a new, unseen group with ``new_group=True`` (fresh offsets from
the population spread, per draw). Anything else is an error listing the levels, so a typo can
never silently become a much wider population forecast. ``forecast``, ``forecast_summary``,
``allocate`` and ``decide`` all resolve their ``group_values``/``new_group`` here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypedDict

import numpy as np

from bayescale.errors import BayescaleError

if TYPE_CHECKING:
    from bayescale.fitted import Fitted
    from bayescale.runs import RunTable
    from bayescale.spec import ModelSpec


class Grouped(Protocol):
    """What targeting reads from a fit (a ``Fit`` or a ``validate.point.PointFit``): spec, runs and grouping columns."""

    @property
    def spec(self) -> ModelSpec: ...

    @property
    def runs(self) -> RunTable: ...

    @property
    def groups(self) -> tuple[str, ...]: ...


class GroupTarget(TypedDict):
    """Which group a request is for, as the keyword arguments ``allocate``, ``decide``, ``prob_below`` and the plots share."""

    group_values: Mapping[str, Any] | None
    new_group: bool


class SeededGroupTarget(GroupTarget):
    """A ``GroupTarget`` plus the seed of a new group's fresh offsets."""

    seed: int


#: Label of a new group the request did not name (e.g. ``--new-group`` without ``--group-value``).
NEW_GROUP = "(new)"


def group_levels(fit: Grouped, column: str) -> list[str]:
    """The levels of ``column`` seen at fit time, sorted as in the model's design."""
    return sorted(set(fit.runs.data[column].astype(str)))


def _levels_text(levels: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(levels[:limit])
    return shown + (f", … ({len(levels)} in all)" if len(levels) > limit else "")


def check_group_request(fit: Grouped, group_values: Mapping[str, Any] | None, new_group: bool) -> None:
    """Reject group requests a fit cannot honour: any on a fit without groups, or unknown columns."""
    names = list(group_values or {})
    if not fit.groups:
        if names:
            raise BayescaleError(f"this fit has no groups, so a group value ({', '.join(f'{n}=…' for n in names)}) does not apply: drop it (--group-value)")
        if new_group:
            raise BayescaleError("this fit has no groups, so new_group (--new-group) does not apply: drop it")
        return
    unknown = [n for n in names if n not in fit.groups]
    if unknown:
        raise BayescaleError(f"group column(s) {', '.join(map(repr, unknown))} not in this fit; its groups: {', '.join(fit.groups)}")


def resolve_levels(fit: Grouped, column: str, values: Sequence[Any] | np.ndarray, new_group: bool) -> tuple[np.ndarray, np.ndarray]:
    """Each requested value of ``column`` as the seen level it names, and a mask of new groups.

    A value matches a level exactly, else ignoring case (an ambiguous match is an error). An
    unseen value keeps its name and a missing one (None, NaN, empty) becomes ``NEW_GROUP``;
    both need ``new_group=True``, otherwise the error lists the levels.
    """
    levels = group_levels(fit, column)
    exact = set(levels)
    folded: dict[str, list[str]] = {}
    for level in levels:
        folded.setdefault(level.casefold(), []).append(level)
    out = np.empty(len(values), dtype=object)
    new = np.zeros(len(values), dtype=bool)
    cache: dict[Any, tuple[str, bool]] = {}
    for i, value in enumerate(values):
        missing = value is None or (isinstance(value, float) and np.isnan(value)) or not str(value).strip()
        key = None if missing else str(value).strip()
        if key not in cache:
            if key is None:
                cache[key] = (NEW_GROUP, True)
            elif key in exact:
                cache[key] = (key, False)
            elif len(folded.get(key.casefold(), [])) == 1:
                cache[key] = (folded[key.casefold()][0], False)
            elif key.casefold() in folded:
                raise BayescaleError(f"{column}={key!r} matches several levels ignoring case ({', '.join(folded[key.casefold()])}): give one exactly")
            else:
                cache[key] = (key, True)
            if cache[key][1] and not new_group:
                if key is None:
                    raise BayescaleError(
                        f"this fit is grouped by {column!r} (levels: {_levels_text(levels)}): name a level ({column}=LEVEL, "
                        f"--group-value {column}=LEVEL), or ask for a new, unseen {column} with new_group=True (--new-group)"
                    )
                raise BayescaleError(
                    f"{column}={key!r} is not a level seen at fit time (levels: {_levels_text(levels)}; matched ignoring case); "
                    f"for a new, unseen {column} forecast from the population spread, pass new_group=True (--new-group)"
                )
        out[i], new[i] = cache[key]
    return out, new


def resolve_request(fit: Fitted, group_values: Mapping[str, Any] | None, new_group: bool) -> dict[str, tuple[str, bool]]:
    """Per group column of ``fit``, for a single-target request: the level (or new group's label) and whether it is new."""
    check_group_request(fit, group_values, new_group)
    out: dict[str, tuple[str, bool]] = {}
    for g in fit.groups:
        value = (group_values or {}).get(g)
        if value is not None and not isinstance(value, str) and np.ndim(value) > 0:
            items = list(np.ravel(np.asarray(value, dtype=object)))
            if len(items) != 1:
                raise BayescaleError(f"group value {g}={value!r}: give one level")
            value = items[0]
        (level,), (is_new,) = resolve_levels(fit, g, [value], new_group)
        out[g] = (str(level), bool(is_new))
    return out


def seen_levels(resolved: Mapping[str, tuple[str, bool]]) -> dict[str, str]:
    """The fitted levels of a resolved request (``resolve_request``), as spelt in the runs, leaving out new groups."""
    return {g: level for g, (level, is_new) in resolved.items() if not is_new}


def describe(fit: Fitted, resolved: Mapping[str, tuple[str, bool]]) -> str:
    """A phrase saying which group a plan or forecast is for (empty for a fit without groups)."""
    parts = []
    for g, (level, is_new) in resolved.items():
        if is_new:
            name = "" if level == NEW_GROUP else f" ({g}={level})"
            parts.append(f"a new, unseen {g}{name}: population level, drawn from the spread of the {len(group_levels(fit, g))} fitted {g} groups (wider than a seen one)")
        else:
            parts.append(f"{g}={level}, a group seen at fit time")
    return "; ".join(parts)


def every_level(fit: Grouped) -> list[tuple[str, dict[str, str], bool]]:
    """(label, group_values, new_group) for each seen combination of levels, then a new, unseen group:
    what a grouped fit answers when a request names no level (every level is answered)."""
    combos = fit.runs.data[list(fit.groups)].astype(str).drop_duplicates().sort_values(list(fit.groups))
    seen = [(", ".join(f"{g}={v}" for g, v in row.items()), {str(g): str(v) for g, v in row.items()}, False) for _, row in combos.iterrows()]
    return [*seen, (f"a new, unseen {' × '.join(fit.groups)}", {}, True)]


def requests_or_every_level(fit: Grouped, group_values: Mapping[str, Any] | None, new_group: bool) -> list[tuple[str, dict[str, Any], bool]]:
    """(label, group_values, new_group) to answer: the request as given, or, on a grouped fit naming no
    level, ``every_level``; what ``allocate``/``decide`` on the CLI and the per-level figures answer."""
    if not fit.groups or group_values or new_group:
        return [("", dict(group_values or {}), new_group)]
    return [(label, dict(values), new) for label, values, new in every_level(fit)]


def request_doc(fit: Fitted, group_values: Mapping[str, Any] | None, new_group: bool) -> dict[str, Any]:
    """The fields saying which group an answer is for: ``group`` (level per column), ``new_group``,
    ``group_description``; empty for a fit without groups. The CLI's JSON and the report use them."""
    resolved = resolve_request(fit, group_values, new_group)
    if not resolved:
        return {}
    return {"group": {g: level for g, (level, _) in resolved.items()}, "new_group": any(new for _, new in resolved.values()), "group_description": describe(fit, resolved)}
