"""Batch manifests: the TOML schema of jobs, its parsing and checks, and the resolved ``Job``.

A manifest has ``[defaults]`` and ``[[job]]`` tables; ``read_manifest`` type-checks every key
(a ``ManifestError`` naming the job and key), expands ``split_by`` jobs into one job per value
and refuses job names whose folders would collide, all before anything runs.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
import unicodedata
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bayescale.errors import BayescaleError, ManifestError

MANIFEST_KEYS = {"defaults", "job"}
JOB_KEYS = {
    "name",
    "runs",
    "model",
    "group",
    "group_values",
    "new_group",
    "forecast",
    "allocate",
    "split_by",
    "columns",
    "drop_highest_loss",
    "max_epochs",
    "where",
    "draws",
    "tune",
    "chains",
    "seed",
    "sampler",
    "adaptation",
}


@dataclass(frozen=True)
class Job:
    """One fit-and-forecast job, fully resolved (defaults applied, split values fixed)."""

    name: str
    runs: str
    model: str = "chinchilla"
    group: tuple[str, ...] = ()
    #: On grouped jobs: the level forecasts and allocations are for (``{dataset = "web"}``) ...
    group_values: Mapping[str, str] = field(default_factory=dict)
    #: ... or a new, unseen group (population level); see ``bayescale.groups``.
    new_group: bool = False
    forecast: tuple[Mapping[str, Any], ...] = ()
    allocate: tuple[float, ...] = ()
    split_by: str | None = None
    split_value: str | None = None
    columns: Mapping[str, str] = field(default_factory=dict)
    drop_highest_loss: int = 0
    max_epochs: float | None = None
    where: Mapping[str, str] = field(default_factory=dict)
    #: The sampler options the manifest sets (``sampling.USER_OPTIONS``); the rest are ``SamplerConfig``'s defaults.
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def folder_name(self) -> str:
        """The job's folder under ``jobs/``: letters (any script, NFC), digits, ``.``, ``_``, ``-``; anything else becomes ``_``."""
        return re.sub(r"[^\w.-]+", "_", unicodedata.normalize("NFC", self.name.replace("/", "__")))

    def load(self):
        """The job's validated run table (the split slice, if any)."""
        from bayescale.runs import RunTable, load_runs

        table = load_runs(self.runs, columns=self.columns or None, drop_highest_loss=self.drop_highest_loss, max_epochs=self.max_epochs, where=self.where or None)
        if self.split_by is None:
            return table
        table.require_columns([self.split_by], "split_by")
        subset = table.data[table.data[self.split_by].astype(str) == self.split_value].reset_index(drop=True)
        return RunTable(subset, source=f"{table.source}[{self.split_by}={self.split_value}]", extra_columns=table.extra_columns)

    def key(self, runs_hash: str, spec_json: str) -> str:
        """Content key of the job: data, spec and every option that changes results."""
        payload = json.dumps(
            {
                "runs": runs_hash,
                "spec": spec_json,
                "group": self.group,
                "group_values": dict(self.group_values),
                "new_group": self.new_group,
                "forecast": [dict(f) for f in self.forecast],
                "allocate": list(self.allocate),
                "options": dict(self.options),
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(payload.encode()).hexdigest()


def _where(path: Path, number: int | None, key: str) -> str:
    return f"{path}: " + (f"job {number}: " if number else "") + key


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ManifestError(f"{where} must be a string, got {value!r}")
    return value


def _texts(value: Any, where: str) -> tuple[str, ...]:
    """A string or a list of strings (``group``)."""
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ManifestError(f"{where} must be a column name or a list of them, got {value!r}")
    return tuple(values)


def _table(value: Any, where: str, scalar: tuple[type, ...] = (str,)) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(v, scalar) for v in value.values()):
        kinds = " or ".join(t.__name__ for t in scalar)
        raise ManifestError(f'{where} must be a table of {kinds} values like {{ key = "value" }}, got {value!r}')
    return dict(value)


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ManifestError(f"{where} must be true or false, got {value!r}")
    return value


def _number(value: Any, where: str, whole: bool = False, low: float = 0.0) -> float:
    from bayescale.units import parse_quantity

    number = float("nan")
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        with suppress(ValueError):
            number = parse_quantity(value)
    if not (number >= low and number < float("inf")) or (whole and number != int(number)):
        kind = "a whole number" if whole else "a number"
        raise ManifestError(f"{where} must be {kind} >= {low:g}, got {value!r}")
    return number


def _job_fields(merged: Mapping[str, Any], path: Path, number: int) -> dict[str, Any]:
    """Type-check every key of one job (defaults merged in); errors name the job and the key."""

    def w(key: str) -> str:
        return _where(path, number, key)

    forecast = merged.get("forecast", [])
    if not isinstance(forecast, list) or not all(isinstance(t, Mapping) for t in forecast):
        raise ManifestError(f'{w("forecast")} must be a list of tables like [{{ params = "7B", tokens = "140B" }}], got {forecast!r}')
    forecast = [_table(t, w(f"forecast[{i}]"), (str, int, float)) for i, t in enumerate(forecast)]
    allocate = merged.get("allocate", [])
    if not isinstance(allocate, list):
        raise ManifestError(f"{w('allocate')} must be a list of FLOP budgets like [1e22, 1e23], got {allocate!r}")
    max_epochs = merged.get("max_epochs")
    split = merged.get("split_by")
    return {
        "name": _text(merged["name"], w("name")),
        "runs": _text(merged["runs"], w("runs")),
        "model": _text(merged.get("model", "chinchilla"), w("model")),
        "group": _texts(merged.get("group", []), w("group")),
        "group_values": _table(merged.get("group_values", {}), w("group_values")),
        "new_group": _flag(merged.get("new_group", False), w("new_group")),
        "forecast": tuple(forecast),
        "allocate": tuple(_number(b, w(f"allocate[{i}]"), low=1.0) for i, b in enumerate(allocate)),
        "columns": _table(merged.get("columns", {}), w("columns")),
        "drop_highest_loss": int(_number(merged.get("drop_highest_loss", 0), w("drop_highest_loss"), whole=True)),
        "max_epochs": None if max_epochs is None else _number(max_epochs, w("max_epochs"), low=1.0),
        "where": {str(k): str(v) for k, v in _table(merged.get("where", {}), w("where"), (str, int, float, bool)).items()},
        "split_by": None if split is None else _text(split, w("split_by")),
        "options": _sampler_options(merged, w),
    }


def _sampler_options(merged: Mapping[str, Any], w: Callable[[str], str]) -> dict[str, Any]:
    """The ``SamplerConfig`` options a job sets (``sampling.USER_OPTIONS``), type-checked; unset ones keep ``fit``'s defaults."""
    from bayescale.sampling import USER_OPTIONS

    options: dict[str, Any] = {}
    for key in USER_OPTIONS:
        if key in merged:
            value = merged[key]
            if key in ("sampler", "adaptation"):
                options[key] = _text(value, w(key))
            else:
                options[key] = int(_number(value, w(key), whole=True, low=0 if key == "seed" else 1))
    return options


def read_manifest(path: str | Path) -> list[Job]:
    """Parse and type-check a manifest, expand ``split_by`` jobs into one job per value (named ``name/value``).

    Every key is checked (``ManifestError`` naming the job and key), and job names must map
    to distinct folders: collisions are refused before anything runs.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest file")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))  # a BOM (some editors save one) is not TOML
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise ManifestError(f"{path}: not valid TOML: arrays or tables nested too deeply for a manifest") from None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the manifest: {exc.strerror}") from None
    unknown = set(raw) - MANIFEST_KEYS
    if unknown:
        raise ManifestError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; a manifest has [defaults] and [[job]] tables")
    defaults = raw.get("defaults", {})
    if not isinstance(defaults, Mapping):
        raise ManifestError(f"{path}: defaults must be a table ([defaults]), got {defaults!r}")
    bad = set(defaults) - JOB_KEYS
    if bad:
        raise ManifestError(f"{path}: unknown [defaults] key(s) {', '.join(sorted(bad))}; allowed: {', '.join(sorted(JOB_KEYS))}")
    entries = raw.get("job", [])
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise ManifestError(f"{path}: job must be a list of [[job]] tables, got {entries!r}")
    if not entries:
        raise ManifestError(f"{path}: no [[job]] entries")
    jobs: list[Job] = []
    for number, entry in enumerate(entries, start=1):
        merged = {**defaults, **entry}
        bad = set(merged) - JOB_KEYS
        if bad:
            raise ManifestError(f"{path}: job {number}: unknown key(s) {', '.join(sorted(bad))}; allowed: {', '.join(sorted(JOB_KEYS))}")
        if "name" not in entry or "runs" not in merged:
            raise ManifestError(f"{path}: job {number}: every job needs a name and runs")
        fields = _job_fields(merged, path, number)
        check_job_name(fields["name"], f"{path}: job {number}: name")
        runs = Path(fields["runs"])
        if not runs.is_absolute():
            runs = (path.parent / runs) if (path.parent / runs).exists() else runs
        split = fields.pop("split_by")
        base = Job(**{**fields, "runs": str(runs)})
        if split is None:
            jobs.append(base)
            continue
        try:
            table = base.load()
        except BayescaleError as exc:
            # the table is unreadable: keep one job so the failure is recorded in the summary
            jobs.append(Job(**{**base.__dict__, "split_by": split, "split_value": f"<{type(exc).__name__}>"}))
            continue
        if split not in table.data.columns:
            raise ManifestError(f"{path}: job {number}: split_by = {split!r}: {table.source} has no such column; it has {', '.join(map(repr, table.data.columns))}")
        jobs.extend(Job(**{**base.__dict__, "name": f"{base.name}/{value}", "split_by": split, "split_value": value}) for value in sorted(set(table.data[split].astype(str))))
    _check_folders(jobs, path)
    return jobs


def check_job_name(name: str, where: str) -> None:
    """Refuse names that are empty, ``.``/``..`` or only separators: their folder would be no job's own."""
    if name.strip(" /") in ("", ".", "..") or len(name.encode()) > 200:
        raise ManifestError(f"{where} {name!r} cannot name a job folder; use a short name of letters, digits, '.', '_' or '-'")


def _check_folders(jobs: list[Job], path: Path) -> None:
    """Job names must be unique and their folders distinct (also on case-insensitive file systems)."""
    seen: dict[str, str] = {}
    for job in jobs:
        folder = job.folder_name
        if folder in ("", ".", ".."):
            raise ManifestError(f"{path}: job {job.name!r} cannot name a job folder ({folder!r})")
        other = seen.get(folder.casefold())
        if other is not None:
            same = "is repeated" if other == job.name else f"and job {other!r} would both write to jobs/{folder}/"
            raise ManifestError(f"{path}: job {job.name!r} {same}; job names (and split_by values) must differ in more than case or punctuation")
        seen[folder.casefold()] = job.name
