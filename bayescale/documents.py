"""The typed documents a fit carries: its convergence ``Diagnostics``.

Each is a frozen dataclass with ``to_dict``/``from_dict``: the dict is what the fit file and the
CLI's JSON hold, so the JSON field names users read are written in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
