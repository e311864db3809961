"""The typed documents a fit carries: its convergence ``Diagnostics``, how it was sampled
(``FitInfo``, with ``Uncentering`` when a funnel made ``fit`` sample again) and its own
leave-future-out ``SelfCheck``.

Each is a frozen dataclass with ``to_dict``/``from_dict``: the dict is what the fit file and the
CLI's JSON hold, so the JSON field names users read are written here once. ``from_dict`` reads
every fit file written since format 2 (keys a file lacks stay ``None``; unknown keys are ignored).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Diagnostics:
    """Convergence checks of one fit; ``converged`` is False if any check failed."""

    rhat_max: float
    ess_bulk_min: float
    ess_tail_min: float
    divergences: int
    treedepth_hits: int
    draws: int
    chains: int
    problems: tuple[str, ...] = ()

    @property
    def converged(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "rhat_max": self.rhat_max,
            "ess_bulk_min": self.ess_bulk_min,
            "ess_tail_min": self.ess_tail_min,
            "divergences": self.divergences,
            "treedepth_hits": self.treedepth_hits,
            "draws": self.draws,
            "chains": self.chains,
            "converged": self.converged,
            "problems": list(self.problems),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Diagnostics:
        return cls(
            rhat_max=float(raw["rhat_max"]),
            ess_bulk_min=float(raw["ess_bulk_min"]),
            ess_tail_min=float(raw["ess_tail_min"]),
            divergences=int(raw["divergences"]),
            treedepth_hits=int(raw["treedepth_hits"]),
            draws=int(raw["draws"]),
            chains=int(raw["chains"]),
            problems=tuple(raw.get("problems", ())),
        )

    def message(self) -> str:
        """One plain sentence: converged, or what failed and what to do."""
        if self.converged:
            return f"converged (R-hat max {self.rhat_max:.3f}, min bulk ESS {self.ess_bulk_min:.0f}, {self.divergences} divergences)"
        return "NOT CONVERGED: " + "; ".join(self.problems) + ". Do not trust these numbers: run more tune/draws, check the data for outliers, or simplify the model (fewer pooled parameters)."


def _optional(raw: Mapping[str, Any], key: str, kind: type) -> Any:
    """``raw[key]`` as ``kind`` (int, float, str or bool), or ``None`` when absent or null."""
    value = raw.get(key)
    return None if value is None else kind(value)


def _numbers(raw: Mapping[str, Any], key: str) -> tuple[float, ...] | None:
    value = raw.get(key)
    return None if value is None else tuple(float(v) for v in value)


def _names(raw: Mapping[str, Any], key: str) -> tuple[str, ...] | None:
    value = raw.get(key)
    return None if value is None else tuple(str(v) for v in value)


def _without_none(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if v is not None}


@dataclass(frozen=True)
class Uncentering:
    """A second sampling run of an auto-centred fit whose first run diverged in a funnel: the
    levels sampled again non-centred and the first run's divergences (JSON key ``recentred``)."""

    params: tuple[str, ...]
    divergences: int

    def to_dict(self) -> dict[str, Any]:
        return {"params": list(self.params), "divergences": self.divergences}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Uncentering:
        return cls(tuple(str(p) for p in raw["params"]), int(raw["divergences"]))


@dataclass(frozen=True)
class FitInfo:
    """``Fit.info``: sampler settings, what was pooled and centred (and by which rule), timing and
    the command line that asked for the fit. ``None``: not recorded (a hand-built fit, an older file)."""

    seconds: float | None = None
    draws: int | None = None
    tune: int | None = None
    chains: int | None = None
    target_accept: float | None = None
    adaptation: str | None = None
    pooled: tuple[str, ...] | None = None
    centered: tuple[str, ...] | None = None
    #: The rule that chose ``centered``: ``"auto"`` (``pooling.auto_centered``) or ``"spec"``.
    centering: str | None = None
    created: str | None = None
    command: str | None = None
    #: Set when ``fit`` sampled again with auto-centred levels non-centred (JSON key ``recentred``).
    uncentered: Uncentering | None = None
    #: Which rows ``load_runs`` kept and by which filters (``RunTable.selection``): ``read``, ``steps``.
    selection: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object stored as the fit file's ``info`` attribute (unrecorded fields left out)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "uncentered"}
        out["pooled"] = None if self.pooled is None else list(self.pooled)
        out["centered"] = None if self.centered is None else list(self.centered)
        out["recentred"] = None if self.uncentered is None else self.uncentered.to_dict()
        out["selection"] = None if not self.selection else dict(self.selection)
        return _without_none(out)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> FitInfo:
        return cls(
            seconds=_optional(raw, "seconds", float),
            draws=_optional(raw, "draws", int),
            tune=_optional(raw, "tune", int),
            chains=_optional(raw, "chains", int),
            target_accept=_optional(raw, "target_accept", float),
            adaptation=_optional(raw, "adaptation", str),
            pooled=_names(raw, "pooled"),
            centered=_names(raw, "centered"),
            centering=_optional(raw, "centering", str),
            created=_optional(raw, "created", str),
            command=_optional(raw, "command", str),
            uncentered=None if raw.get("recentred") is None else Uncentering.from_dict(raw["recentred"]),
            selection=dict(raw["selection"]) if isinstance(raw.get("selection"), Mapping) else None,
        )


@dataclass(frozen=True)
class SelfCheck:
    """The fit's own leave-future-out check (``bayescale.self_check``), or why it was skipped.

    The headline (``SUMMARY_KEYS``) says how far the fit's forecasts held beyond its data; per
    held-out run, ``log_error`` (observed minus predictive mean of log loss, without discrepancy),
    ``sd`` (predictive sd) and ``distance`` (decades beyond the training part) update τ.
    """

    extrapolation: float | None = None
    median_abs_log_error: float | None = None
    coverage_90: float | None = None
    n_test: int | None = None
    coverage_50: float | None = None
    n_train: int | None = None
    covered_90: int | None = None
    cutoff_flops: float | None = None
    #: Whether the self-check's own refit converged.
    converged: bool | None = None
    log_error: tuple[float, ...] | None = None
    sd: tuple[float, ...] | None = None
    distance: tuple[float, ...] | None = None
    #: How the held-out runs were chosen: ``"compute"`` or ``"compute within each group"``.
    split: str | None = None
    seconds: float | None = None
    #: Why the check could not run (then the headline is ``None``).
    skipped: str | None = None

    #: The headline keys, present (``null`` when skipped) in every stored document.
    SUMMARY_KEYS = ("extrapolation", "median_abs_log_error", "coverage_90", "n_test")

    @classmethod
    def skip(cls, reason: str) -> SelfCheck:
        """The document of a self-check that could not run."""
        return cls(skipped=reason)

    @property
    def ran(self) -> bool:
        return not self.skipped

    def residuals(self) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
        """(log error, sd, distance) of the held-out runs: the evidence τ is updated with (empty when skipped)."""
        if not self.ran:
            return (), (), ()
        return self.log_error or (), self.sd or (), self.distance or ()

    def held_out_covered(self) -> int:
        """Held-out runs inside their 90% interval (from the coverage in files that predate the count)."""
        if self.covered_90 is not None:
            return self.covered_90
        return round((self.coverage_90 or 0.0) * (self.n_test or 0))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object stored as the fit file's ``self_check`` attribute."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("log_error", "sd", "distance"):
            out[key] = None if out[key] is None else list(out[key])
        return {k: v for k, v in out.items() if k in self.SUMMARY_KEYS or v is not None}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> SelfCheck:
        return cls(
            extrapolation=_optional(raw, "extrapolation", float),
            median_abs_log_error=_optional(raw, "median_abs_log_error", float),
            coverage_90=_optional(raw, "coverage_90", float),
            n_test=_optional(raw, "n_test", int),
            coverage_50=_optional(raw, "coverage_50", float),
            n_train=_optional(raw, "n_train", int),
            covered_90=_optional(raw, "covered_90", int),
            cutoff_flops=_optional(raw, "cutoff_flops", float),
            converged=_optional(raw, "converged", bool),
            log_error=_numbers(raw, "log_error"),
            sd=_numbers(raw, "sd"),
            distance=_numbers(raw, "distance"),
            split=_optional(raw, "split", str),
            seconds=_optional(raw, "seconds", float),
            skipped=_optional(raw, "skipped", str),
        )


#: A self-check fails when its 90% intervals covered less than this share of the held-out runs…
FAILED_COVERAGE = 0.7
#: …and so few covered runs are unlikely (binomial tail below this) if the intervals were right,
#: so that 2 of 3 (a 27% chance for honest intervals) is not called a failure.
FAILED_TAIL = 0.05


def sentence(check: SelfCheck | None) -> str:
    """One line for budget owners: how far this fit's own forecasts held beyond its data."""
    if check is None:
        return "no self-check in this fit (run without it, or fitted by an older version): its forecasts beyond the data are unchecked"
    if not check.ran:
        return f"self-check skipped: {check.skipped}"
    return (
        f"this fit's own forecasts up to {check.extrapolation:.3g}x beyond its data covered {check.held_out_covered()}/{check.n_test} at 90% "
        f"(median error {100 * (check.median_abs_log_error or 0.0):.2g}% of the loss)"
    )


def _binomial_tail(covered: int, n: int, p: float) -> float:
    """P(at most ``covered`` of ``n`` runs inside their intervals when each is with probability ``p``)."""
    return sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(covered + 1))


def failure(check: SelfCheck | None) -> str | None:
    """The warning every output carries when the fit's own forecasts failed its self-check, else None.

    Failed: the 90% intervals covered under ``FAILED_COVERAGE`` of the held-out runs and that few
    is unlikely (``FAILED_TAIL``) for honest intervals, as in 34 of 91.
    """
    if check is None or not check.ran or not check.n_test:
        return None
    n, covered = int(check.n_test), int(check.held_out_covered())
    if covered / n >= FAILED_COVERAGE or _binomial_tail(covered, n, 0.9) >= FAILED_TAIL:
        return None
    return f"forecasts beyond the data failed their own check: {covered}/{n} at 90% (intervals too narrow or the law wrong beyond the data; see the self-check)"
