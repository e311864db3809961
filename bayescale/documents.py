"""The typed documents a fit carries: its convergence ``Diagnostics``, how it was sampled
(``FitInfo``, with ``Uncentering`` when a first run that did not converge made ``fit`` sample
again) and its own
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

    def message(self, info: FitInfo | None = None) -> str:
        """One plain sentence: converged, or what failed, what the fit tried on this table (from
        ``info``) and the options it did not try. Nothing untried, more tuning or draws included,
        is offered as a fix: on a funnel more draws only diverge more."""
        if self.converged:
            return f"converged (R-hat max {self.rhat_max:.3f}, min bulk ESS {self.ess_bulk_min:.0f}, {self.divergences} divergences)"
        text = "NOT CONVERGED: " + "; ".join(self.problems) + ". Do not trust these numbers."
        tried = info.uncentered if info is not None else None
        if tried is not None:
            text += f" Tried: {tried.sentence()}."
        if info is None or not info.pooled:
            return text + " Untried options: look for outlying runs, or fit a simpler law."
        if tried is None:
            options = [
                'the other centring of the group levels (the spec\'s pooling.centered = "auto" tries both, then every level non-centred)'
                if info.centering == "spec"
                else "the other centring of the group levels"
            ]
        else:
            options = [] if tried.tried_all_non_centred(info.centered or ()) else ["every group level non-centred (the spec's pooling.centered = false)"]
        options += ["fit without --group (one law for every group)", "pool fewer parameters (the spec's [pooling] params; bayescale compare --group COLUMN --pooling ... ranks the choices)"]
        return text + " Untried options: " + "; ".join(options) + "."


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
class Attempt:
    """One sampling run of a fit that sampled more than once: its centred pooled levels and its verdict."""

    centered: tuple[str, ...]
    converged: bool
    divergences: int
    rhat_max: float
    problems: tuple[str, ...] = ()

    @classmethod
    def of(cls, centered: tuple[str, ...], diagnostics: Diagnostics) -> Attempt:
        return cls(centered, diagnostics.converged, diagnostics.divergences, diagnostics.rhat_max, diagnostics.problems)

    def verdict(self) -> str:
        """A few words: converged, or its divergences and largest R-hat."""
        return "converged" if self.converged else f"{self.divergences} divergences, R-hat {self.rhat_max:.3f}"

    def to_dict(self) -> dict[str, Any]:
        return {"centered": list(self.centered), "converged": self.converged, "divergences": self.divergences, "rhat_max": self.rhat_max, "problems": list(self.problems)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Attempt:
        return cls(tuple(str(p) for p in raw["centered"]), bool(raw["converged"]), int(raw["divergences"]), float(raw["rhat_max"]), tuple(str(p) for p in raw.get("problems", ())))


@dataclass(frozen=True)
class Uncentering:
    """Further sampling runs of an auto-centred grouped fit whose first run did not converge: the
    other parametrisation of its pooled levels, then (if that failed too and was not it) every
    pooled level non-centred (JSON key ``recentred``).

    ``params``: the levels whose centring the later runs switched; ``divergences``: the first
    run's. Fits since issue 31 also record ``attempts`` (every run in order) and ``kept`` (the index
    of the run the fit holds: a converged run beats one that is not, then fewer divergences, then
    the smaller largest R-hat); older files say only that ``params`` were sampled again non-centred.
    """

    params: tuple[str, ...]
    divergences: int
    attempts: tuple[Attempt, ...] | None = None
    kept: int | None = None

    def sentence(self) -> str:
        """One line for people: what the later runs switched, how each run did, which one the fit holds."""
        if not self.attempts or self.kept is None:
            return f"{', '.join(self.params)} sampled again non-centred after {self.divergences} divergences in a funnel"
        labels = [_centring(a.centered, self.params) for a in self.attempts]
        runs = "; ".join(f"{label}: {a.verdict()}" for label, a in zip(labels, self.attempts, strict=True))
        outcome = "" if any(a.converged for a in self.attempts) else ("neither" if len(labels) == 2 else "none") + " converged; "
        order = " and ".join(labels) if len(labels) == 2 else ", then ".join(labels)
        return f"{order} group levels for {', '.join(self.params)} ({runs}); {outcome}kept the {labels[self.kept]} run"

    def tried_all_non_centred(self, kept_centered: tuple[str, ...]) -> bool:
        """Whether some run had every pooled level non-centred (older files without ``attempts``:
        whether the run kept, centred as ``kept_centered``, was)."""
        return any(not a.centered for a in self.attempts) if self.attempts else not kept_centered

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"params": list(self.params), "divergences": self.divergences}
        if self.attempts is not None:
            out["attempts"] = [a.to_dict() for a in self.attempts]
            out["kept"] = self.kept
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Uncentering:
        attempts = raw.get("attempts")
        return cls(
            tuple(str(p) for p in raw["params"]),
            int(raw["divergences"]),
            None if attempts is None else tuple(Attempt.from_dict(a) for a in attempts),
            _optional(raw, "kept", int),
        )


def _centring(centered: tuple[str, ...], switched: tuple[str, ...]) -> str:
    """How a run sampled the switched levels: ``centred``, ``non-centred`` or a mix (``E centred``)."""
    inside = [p for p in switched if p in centered]
    if len(inside) == len(switched):
        return "centred"
    return f"{', '.join(inside)} centred" if inside else "non-centred"


@dataclass(frozen=True)
class Candidate:
    """One candidate of the model choice and its held-out scores (``None``: not scored, see ``skipped``)."""

    model: str
    #: What varies by group (``pooling.pooling_choice``: ``levels``, ``all``); ``None`` on an ungrouped table.
    pooling: str | None = None
    #: Mean log predictive density of the held-out runs' log loss (higher is better): what the choice ranks by.
    score: float | None = None
    #: Standard error of the summed score difference to the best candidate (0 for the best).
    se: float | None = None
    crps: float | None = None
    median_abs_log_error: float | None = None
    #: Free coordinates of its mode fit (law parameters, group offsets, σ): the tie-break prefers fewer.
    parameters: int | None = None
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "pooling": self.pooling, **_without_none({f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("model", "pooling")})}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Candidate:
        return cls(
            model=str(raw["model"]),
            pooling=_optional(raw, "pooling", str),
            score=_optional(raw, "score", float),
            se=_optional(raw, "se", float),
            crps=_optional(raw, "crps", float),
            median_abs_log_error=_optional(raw, "median_abs_log_error", float),
            parameters=_optional(raw, "parameters", int),
            skipped=_optional(raw, "skipped", str),
        )


@dataclass(frozen=True)
class ModelChoice:
    """How ``fit`` chose its law form (and pooling): candidates scored by an inner leave-future-out
    on the self-check's split, or ``made=False`` when the caller forced the spec (``reason`` says why)."""

    chosen: str
    pooling: str | None = None
    made: bool = True
    candidates: tuple[Candidate, ...] = ()
    reason: str | None = None
    n_train: int | None = None
    n_test: int | None = None
    seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["candidates"] = [c.to_dict() for c in self.candidates]
        return {k: v for k, v in out.items() if v is not None or k in ("chosen", "pooling", "made", "candidates")}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ModelChoice:
        return cls(
            chosen=str(raw["chosen"]),
            pooling=_optional(raw, "pooling", str),
            made=bool(raw.get("made", True)),
            candidates=tuple(Candidate.from_dict(c) for c in raw.get("candidates", ()) if isinstance(c, Mapping)),
            reason=_optional(raw, "reason", str),
            n_train=_optional(raw, "n_train", int),
            n_test=_optional(raw, "n_test", int),
            seconds=_optional(raw, "seconds", float),
        )

    def sentence(self) -> str:
        """One line: what was chosen and why (or that the caller chose)."""
        chosen = self.chosen + (f" (pooling {self.pooling})" if self.pooling else "")
        if not self.made:
            return f"model {chosen}: {self.reason or 'given by the caller'}, no choice made"
        scored = [c for c in self.candidates if c.score is not None]
        if not scored:
            return f"model {chosen}: {self.reason or 'no candidate could be scored'}"
        ranks = ", ".join(f"{c.model}{'/' + c.pooling if c.pooling else ''} {c.score:.3f}" for c in scored)
        return f"model {chosen} chosen by forecasting its own {self.n_test} largest runs (held-out log density per run: {ranks})" + (f"; {self.reason}" if self.reason else "")


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
    #: Set when ``fit`` sampled again with the other parametrisation of auto-centred levels (JSON key ``recentred``).
    uncentered: Uncentering | None = None
    #: Which rows ``load_runs`` kept and by which filters (``RunTable.selection``): ``read``, ``steps``.
    selection: Mapping[str, Any] | None = None
    #: How the law form (and pooling) was chosen (``bayescale.model_choice``); JSON key ``model_choice``.
    model_choice: ModelChoice | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object stored as the fit file's ``info`` attribute (unrecorded fields left out)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("uncentered", "model_choice")}
        out["pooled"] = None if self.pooled is None else list(self.pooled)
        out["centered"] = None if self.centered is None else list(self.centered)
        out["recentred"] = None if self.uncentered is None else self.uncentered.to_dict()
        out["selection"] = None if not self.selection else dict(self.selection)
        out["model_choice"] = None if self.model_choice is None else self.model_choice.to_dict()
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
            model_choice=ModelChoice.from_dict(raw["model_choice"]) if isinstance(raw.get("model_choice"), Mapping) else None,
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
