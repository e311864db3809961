"""Run tables: read, validate and canonicalise logs of finished training runs.

A ``RunTable`` is the only input a fit accepts. Every rule a table breaks raises a
``RunTableError`` naming the source, the row, the column and the value.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayescale.errors import DataWarning, RunTableError
from bayescale.tables import MAX_TABLE_BYTES, _decode_bytes, _row_label, parse_numeric_column, read_table

__all__ = ["MAX_TABLE_BYTES", "RunTable", "check_loss", "check_magnitudes", "load_runs", "parse_numeric_column", "read_table"]

#: Row conditions ``load_runs`` takes: condition strings or a ``{column: value}`` mapping (``bayescale.where``).
Where = Mapping[str, Any] | Sequence[str] | str | None
REQUIRED = ("params", "tokens", "loss")
NUMERIC = ("params", "tokens", "loss", "flops", "unique_tokens", "experts", "active_params")
ARCHS = ("dense", "moe")
#: Allowed disagreement between a logged ``flops`` column and 6·N·D before warning.
FLOPS_TOLERANCE = 2.0


@dataclass(frozen=True)
class RunTable:
    """A validated run table: canonical numeric columns plus any grouping columns.

    Columns always present: ``params, tokens, loss, flops, unique_tokens, epochs, arch,
    experts, active_params``; every other column of the source is kept as a string column
    usable for grouping.
    """

    data: pd.DataFrame
    source: str = "<DataFrame>"
    extra_columns: tuple[str, ...] = field(default=())
    #: How ``load_runs`` selected the rows (``where.describe`` says it in a line); empty when every row was kept.
    selection: Mapping[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.data)

    def column(self, name: str) -> np.ndarray:
        """Values of one column as a numpy array."""
        return self.data[name].to_numpy()

    def content_hash(self) -> str:
        """SHA-256 of the canonical table: the same runs give the same hash whatever the file."""
        payload = self.data.to_csv(index=False).encode()
        return hashlib.sha256(payload).hexdigest()

    def require_group_columns(self, columns: Sequence[str]) -> None:
        """Raise a ``RunTableError`` if a grouping column is absent or has blank cells (a level no command could name)."""
        self.require_columns(columns, "grouping")
        for column in columns:
            blank = np.flatnonzero(self.data[column].astype(str).str.strip().to_numpy() == "")
            if blank.size:
                rows = ", ".join(str(i + 1) for i in blank[:5]) + (f" and {blank.size - 5} more" if blank.size > 5 else "")
                raise RunTableError(
                    f"{self.source}: grouping column {column!r} is blank in {blank.size} run(s) (row(s) {rows} of the fitted table); fill in the level or drop those runs (--where '{column}!=')"
                )

    def require_columns(self, columns: Sequence[str], purpose: str) -> None:
        """Raise a ``RunTableError`` if any of ``columns`` is absent (e.g. a grouping column)."""
        missing = [c for c in columns if c not in self.data.columns]
        if missing:
            raise RunTableError(f"{self.source}: column(s) {', '.join(map(repr, missing))} needed for {purpose} not found; the table has {', '.join(map(repr, self.data.columns))}")


def _apply_column_map(frame: pd.DataFrame, columns: Mapping[str, str] | None, source: str) -> pd.DataFrame:
    frame = frame.rename(columns=lambda c: str(c).replace("\ufeff", "").strip())
    repeated = frame.columns[frame.columns.duplicated()]
    if len(repeated):
        raise RunTableError(f"{source}: column {repeated[0]!r} appears more than once")
    frame = _decode_bytes(frame, source)
    if not columns:
        return frame
    for canonical, foreign in columns.items():
        if foreign not in frame.columns:
            raise RunTableError(f"{source}: column mapping {canonical}={foreign!r}: no column {foreign!r}; the table has {', '.join(map(repr, frame.columns))}")
        if canonical in frame.columns and canonical != foreign:
            raise RunTableError(f"{source}: column mapping {canonical}={foreign!r} would duplicate the existing column {canonical!r}")
    return frame.rename(columns={foreign: canonical for canonical, foreign in columns.items()})


def load_runs(
    source: str | Path | pd.DataFrame,
    columns: Mapping[str, str] | None = None,
    drop_highest_loss: int = 0,
    max_epochs: float | None = None,
    where: Where = None,
    strict: bool = False,
    flops_unit: str | None = None,
) -> RunTable:
    """Read and validate a run table from a CSV/TSV/Parquet path or a DataFrame.

    ``columns`` maps canonical names to the table's own headers, e.g.
    ``{"params": "Model Size"}``. ``drop_highest_loss=k`` removes the k runs with the
    highest loss (Besiroglu et al. 2024 dropped 5 from the Chinchilla points as outliers).
    ``max_epochs=k`` keeps only runs with at most k epochs (tokens / unique_tokens), e.g. to
    leave out extreme-repetition runs whose loss diverges, which the data-constrained law
    cannot express. ``where`` keeps the runs that match conditions (``bayescale.where``): strings
    like ``"params<=1e9"``, ``"arch=dense,moe"`` (operators ``= != < <= > >=``) or a mapping
    ``{"published_fit": "true"}`` (equality); numeric columns compare as numbers, text ignoring
    case; several ``=`` on one column mean OR. The filters apply in one order: ``where``, then
    ``drop_highest_loss``, then ``max_epochs``; ``RunTable.selection`` records what each kept.

    ``flops_unit`` names the unit of a logged flops column (``"GFLOPs"``, ``"PF-days"``, see
    ``units.FLOP_UNITS``); without it a header naming a unit (``total_gflops``, ``flops (PF-days)``;
    such a header is read as the flops column when there is no ``flops``) is converted with a
    ``DataWarning``, and a flops column 10× or more off 6·N·D (6·N_active·D for MoE runs) is refused.

    Implausible magnitudes (``check_magnitudes``: tokens in billions without a unit, flops
    that disagree with 6·N·D, ...) warn with ``DataWarning``; ``strict=True`` makes them errors.
    """
    frame, name, from_file = _read_source(source)
    frame = _apply_column_map(frame, columns, name)
    _check_required(frame, name)
    frame, flops_header = _flops_column(frame, columns, name)
    canonical = {c: parse_numeric_column(frame, c, name, from_file) for c in REQUIRED}
    n, d = canonical["params"], canonical["tokens"]
    check_loss(canonical["loss"], name, from_file)
    problems = check_magnitudes(n, d, name, from_file)
    arch = _parse_arch(frame, name, from_file)
    experts = parse_numeric_column(frame, "experts", name, from_file) if "experts" in frame.columns else np.ones(len(frame))
    active = parse_numeric_column(frame, "active_params", name, from_file) if "active_params" in frame.columns else n.copy()
    _check_moe(arch, experts, active, n, name, from_file)
    flops = _flops(frame, n, d, active, name, from_file, problems, _flops_factor(flops_unit, flops_header, name))
    if strict and problems:
        raise RunTableError(problems[0] + (f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else "") + "; strict mode refuses suspicious magnitudes")
    for message in problems:
        warnings.warn(message, DataWarning, stacklevel=2)
    unique = _unique_tokens(frame, d, name, from_file)
    data = pd.DataFrame(
        {
            "params": n,
            "tokens": d,
            "loss": canonical["loss"],
            "flops": flops,
            "unique_tokens": unique,
            "epochs": d / unique,
            "arch": arch,
            "experts": experts,
            "active_params": active,
        }
    )
    reserved = set(data.columns) | {"epochs"}
    extra = [c for c in frame.columns if c not in reserved]
    for column in extra:
        data[column] = frame[column].astype(str).str.strip().to_numpy()
    data, selection = _select_rows(data, name, drop_highest_loss, max_epochs, where)
    _check_loss_spread(data["loss"].to_numpy(), name, bool(selection))
    return RunTable(data=data.reset_index(drop=True), source=name, extra_columns=tuple(extra), selection=selection)


def _read_source(source: str | Path | pd.DataFrame) -> tuple[pd.DataFrame, str, bool]:
    """The raw table, the name errors use, and whether it came from a file (rows are then numbered as lines)."""
    if isinstance(source, pd.DataFrame):
        if isinstance(source.columns, pd.MultiIndex):
            example = ", ".join(map(repr, list(source.columns)[:3]))
            raise RunTableError(
                f"<DataFrame>: the columns are a {source.columns.nlevels}-level MultiIndex ({example}, ...); flatten them first, e.g. df.columns = ['_'.join(map(str, c)) for c in df.columns]"
            )
        return source.copy(), "<DataFrame>", False
    if isinstance(source, (str, Path)):
        path = Path(source)
        return read_table(path), str(path), True
    raise RunTableError(f"cannot read a run table from a {type(source).__name__}; pass a path or a pandas DataFrame")


def _check_required(frame: pd.DataFrame, name: str) -> None:
    """Refuse an empty table or one without the ``REQUIRED`` columns, saying how to rename headers."""
    if len(frame) == 0:
        raise RunTableError(f"{name}: the table has no rows (need runs with params, tokens, loss)")
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise RunTableError(
            f"{name}: missing required column(s) {', '.join(map(repr, missing))}; the table has "
            f"{', '.join(map(repr, frame.columns))}. Rename with columns={{'params': 'Your Header'}} "
            f"or --column params='Your Header'"
        )


def _flops_column(frame: pd.DataFrame, columns: Mapping[str, str] | None, name: str) -> tuple[pd.DataFrame, str | None]:
    """The table with its flops column (a lone unit-named compute header such as ``total_gflops`` becomes ``flops``), and that column's own header."""
    from bayescale.units import names_compute

    if "flops" in frame.columns:
        return frame, (columns or {}).get("flops", "flops")
    candidates = [c for c in frame.columns if names_compute(c)]
    if len(candidates) != 1:
        return frame, None
    return frame.rename(columns={candidates[0]: "flops"}), candidates[0]


def _flops_factor(flops_unit: str | None, header: str | None, name: str) -> tuple[float, str]:
    """FLOPs per unit of the flops column, and how the unit was known (for messages): the given unit, else the header's."""
    from bayescale.units import flop_unit, header_flop_unit

    if flops_unit is not None:
        try:
            label, factor = flop_unit(flops_unit)
        except ValueError as exc:
            raise RunTableError(f"--flops-unit: {exc}") from None
        return factor, f"flops in {label} (as given)"
    unit = header_flop_unit(header) if header is not None else None
    if unit is None:
        return 1.0, "flops" if header in (None, "flops") else f"flops (column {header!r})"
    label, factor = unit
    warnings.warn(
        f"{name}: column {header!r} is in {label} (its name says so): converted to FLOPs (× {factor:g}) as the flops column; pass --flops-unit (flops_unit=) to say otherwise",
        DataWarning,
        stacklevel=3,
    )
    return factor, f"column {header!r} in {label}"


#: A logged flops column this many times off 6·N·D (either way) is refused: a unit mistake, not a rounding.
FLOPS_REFUSE = 10.0


def _flops(frame: pd.DataFrame, n: np.ndarray, d: np.ndarray, active: np.ndarray, name: str, from_file: bool, problems: list[str], unit: tuple[float, str]) -> np.ndarray:
    """The logged flops in FLOPs (refused 10× or more off 6·N·D, added to ``problems`` beyond ``FLOPS_TOLERANCE``), else 6·N·D.

    A run agrees if its flops match 6·N·D or, for MoE runs, 6·N_active·D.
    """
    with np.errstate(over="ignore"):
        six_nd = 6.0 * n * d
    if "flops" not in frame.columns:
        bad = np.flatnonzero(~np.isfinite(six_nd))
        if bad.size:
            first = bad[0]
            raise RunTableError(f"{name}: {_row_label(name, first, from_file)}: flops = 6·params·tokens = 6·{n[first]:.3g}·{d[first]:.3g} overflows; params or tokens is implausibly large")
        return six_nd
    factor, known = unit
    with np.errstate(over="ignore"):
        flops = parse_numeric_column(frame, "flops", name, from_file) * factor
        ratio = flops / six_nd
        ratio_active = flops / (6.0 * active * d)
    off = np.minimum(np.abs(np.log10(ratio)), np.abs(np.log10(ratio_active)))
    refused = np.flatnonzero(~(off < np.log10(FLOPS_REFUSE)))
    if refused.size:
        first = refused[0]
        raise RunTableError(
            f"{name}: {_row_label(name, first, from_file)}, {known}: {flops[first]:.3g} FLOPs is {ratio[first]:.3g} × 6·params·tokens = {six_nd[first]:.3g} "
            f"({refused.size} of {len(flops)} runs are {FLOPS_REFUSE:g}× or more off); {_unit_hint(ratio)}"
        )
    bad = np.flatnonzero(off > np.log10(FLOPS_TOLERANCE))
    if bad.size:
        first = bad[0]
        problems.append(
            f"{name}: {bad.size} run(s) have flops inconsistent with 6·params·tokens by more than "
            f"a factor {FLOPS_TOLERANCE:g} (first: {_row_label(name, first, from_file)}, "
            f"flops={flops[first]:.3g} vs 6ND={six_nd[first]:.3g}); the logged flops are kept"
        )
    return flops


def _unit_hint(ratio: np.ndarray) -> str:
    """The FLOP unit that would explain a flops column's typical ratio to 6·N·D, as advice."""
    from bayescale.units import FLOP_UNITS

    with np.errstate(divide="ignore", invalid="ignore"):
        typical = float(np.nanmedian(np.log10(ratio)))
    for label, size in FLOP_UNITS.items():
        if np.isfinite(typical) and size > 1 and abs(typical + np.log10(size)) < 0.5:
            return f"the column looks like {label}: pass --flops-unit {label} (API: flops_unit={label!r}), or drop the column to use 6·N·D"
    return "no FLOP unit explains it: check the column (is it the training compute?), or drop it to use 6·N·D"


def _unique_tokens(frame: pd.DataFrame, d: np.ndarray, name: str, from_file: bool) -> np.ndarray:
    """The ``unique_tokens`` column (never more than the tokens seen), else tokens / an ``epochs`` column, else every token is unique."""
    epochs = parse_numeric_column(frame, "epochs", name, from_file) if "epochs" in frame.columns else None
    if "unique_tokens" not in frame.columns:
        if epochs is None:
            return d.copy()
        bad = np.flatnonzero(epochs < 1 - 1e-9)
        if bad.size:
            raise RunTableError(f"{name}: {_row_label(name, bad[0], from_file)}, column 'epochs': {epochs[bad[0]]:.4g} is below 1; a run sees each unique token at least once")
        return d / epochs
    unique = parse_numeric_column(frame, "unique_tokens", name, from_file)
    bad = np.flatnonzero(d < unique * (1 - 1e-9))
    if bad.size:
        first = bad[0]
        raise RunTableError(
            f"{name}: {_row_label(name, first, from_file)}, column 'tokens': tokens={d[first]:.4g} is less than "
            f"unique_tokens={unique[first]:.4g}; a run cannot see fewer tokens than it has unique ones"
        )
    if epochs is not None:
        bad = np.flatnonzero(~np.isclose(epochs, d / unique, rtol=1e-3))
        if bad.size:
            first = bad[0]
            raise RunTableError(
                f"{name}: {_row_label(name, first, from_file)}, column 'epochs': {epochs[first]:.4g} disagrees with tokens / unique_tokens = {d[first] / unique[first]:.4g}; drop one of the columns"
            )
    return unique


#: Plausible per-token cross-entropy (nats): beyond it a "loss" is almost always another column (a percentage, an accuracy in %, a perplexity, a count).
LOSS_RANGE = (0.01, 20.0)


def check_loss(loss: np.ndarray, name: str = "<table>", from_file: bool = False) -> None:
    """Refuse losses outside ``LOSS_RANGE``, naming the first such row, its value and what the column may be instead."""
    low, high = LOSS_RANGE
    bad = np.flatnonzero((loss < low) | (loss > high))
    if not bad.size:
        return
    first = bad[0]
    top = float(np.max(loss))
    hint = "a percentage or an accuracy in % mapped as loss?" if top <= 100 else "a count, a perplexity or a value with a unit suffix mapped as loss?"
    raise RunTableError(
        f"{name}: {_row_label(name, first, from_file)}, column 'loss': {loss[first]:.4g} is outside the plausible {low:g}..{high:g} nats of a "
        f"cross-entropy loss ({bad.size} of {len(loss)} runs; the column ranges {np.min(loss):.4g}..{top:.4g}): {hint}"
    )


def _check_loss_spread(loss: np.ndarray, name: str, selected: bool) -> None:
    """Refuse a loss column with no spread: no law can be fitted to runs that all reach one loss."""
    if len(loss) >= 2 and np.ptp(loss) == 0:
        after = " after the row filters" if selected else ""
        raise RunTableError(f"{name}: column 'loss': all {len(loss)} runs{after} have the same loss {loss[0]:.6g}; a fit needs losses that vary (is the right column mapped as loss?)")


def _select_rows(data: pd.DataFrame, name: str, drop_highest_loss: int, max_epochs: float | None, where: Where) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Row selection after validation, in this order: keep ``where`` matches, drop the highest-loss runs, cap the epochs.

    Returns the kept rows and the record of it (``read``, then one step per filter with the runs it kept).
    """
    from bayescale.where import select

    read = len(data)
    data, steps = select(data, where, name)
    if drop_highest_loss:
        if not 0 <= drop_highest_loss < len(data) - 1:
            raise RunTableError(f"{name}: cannot drop the {drop_highest_loss} highest-loss runs of {len(data)}" + (f" (left by --where of {read})" if steps else ""))
        keep = data["loss"].rank(method="first", ascending=False) > drop_highest_loss
        data = data[keep.to_numpy()]
        steps.append({"filter": "drop_highest_loss", "value": drop_highest_loss, "kept": len(data)})
    if max_epochs is not None:
        kept = data["epochs"].to_numpy() <= max_epochs * (1 + 1e-9)
        if kept.sum() < 1:
            raise RunTableError(f"{name}: no run has at most {max_epochs:g} epochs (of the {len(data)} runs left by the earlier filters; fewest epochs {data['epochs'].min():.4g})")
        data = data[kept]
        steps.append({"filter": "max_epochs", "value": max_epochs, "kept": len(data)})
    return data, ({"read": read, "steps": steps} if steps else {})


#: Plausible ranges for a language-model run table (checked on every run; beyond them a value is
#: almost always a unit mistake, e.g. tokens written in billions without a "B").
PARAMS_RANGE = (1e3, 1e14)
TOKENS_RANGE = (1e6, 1e17)
TOKENS_PER_PARAM_RANGE = (1e-2, 1e6)


def check_magnitudes(n: np.ndarray, d: np.ndarray, name: str = "<table>", from_file: bool = False) -> list[str]:
    """Messages for parameters, tokens and tokens per parameter outside plausible ranges (empty: all plausible)."""
    out = []
    with np.errstate(over="ignore", divide="ignore"):
        ratio = d / n
    for column, values, (low, high), hint in (
        ("params", n, PARAMS_RANGE, "parameters given in millions or billions without a unit (write 70M, 1.5B)?"),
        ("tokens", d, TOKENS_RANGE, "tokens given in millions or billions without a unit (write 20B, 1.4T)?"),
        ("tokens/params", ratio, TOKENS_PER_PARAM_RANGE, "are params and tokens in the same units?"),
    ):
        bad = np.flatnonzero((values < low) | (values > high))
        if bad.size:
            first = bad[0]
            out.append(
                f"{name}: {bad.size} run(s) have {column} outside the plausible range {low:.0e}..{high:.0e} "
                f"(first: {_row_label(name, first, from_file)}, {column}={values[first]:.4g}; range of the column "
                f"{np.min(values):.4g}..{np.max(values):.4g}): {hint}"
            )
    return out


def _parse_arch(frame: pd.DataFrame, name: str, from_file: bool) -> np.ndarray:
    if "arch" not in frame.columns:
        return np.full(len(frame), "dense", dtype=object)
    values = frame["arch"].astype(str).str.strip().str.lower().to_numpy(dtype=object)
    bad = np.flatnonzero(~np.isin(values, np.asarray(ARCHS, dtype=object)))
    if bad.size:
        raise RunTableError(f"{name}: {_row_label(name, bad[0], from_file)}, column 'arch': {values[bad[0]]!r} is not one of {', '.join(ARCHS)}")
    return values


def _check_moe(arch: np.ndarray, experts: np.ndarray, active: np.ndarray, n: np.ndarray, name: str, from_file: bool) -> None:
    """Refuse MoE columns that contradict each other (vectorised; the first bad run is named)."""
    dense = arch == "dense"
    for column, bad, what in (
        ("active_params", active > n * (1 + 1e-9), lambda i: f"{active[i]:.4g} exceeds params={n[i]:.4g}"),
        ("experts", experts != np.round(experts), lambda i: f"{experts[i]:g} is not a whole number of experts"),
        ("experts", dense & (experts != 1), lambda i: f"a dense run has 1 expert, got {experts[i]:g} (set arch=moe)"),
        ("experts", ~dense & (experts < 2), lambda i: f"an MoE run needs at least 2 experts, got {experts[i]:g}"),
    ):
        rows = np.flatnonzero(bad)
        if rows.size:
            raise RunTableError(f"{name}: {_row_label(name, rows[0], from_file)}, column {column!r}: {what(rows[0])}")
