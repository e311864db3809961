"""Priors as a spec writes them: ``Prior`` (a PyMC distribution name and its arguments, or
``Fixed`` for a constant), validated against PyMC when it is built, so errors name the spec key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from bayescale.errors import ModelSpecError

#: The pseudo-distribution that pins a parameter to a constant (``{dist = "Fixed", value = 521}``).
FIXED = "Fixed"
#: PyMC distributions that cannot be priors: improper (no draws) or point masses (use ``Fixed``).
IMPROPER = ("Flat", "HalfFlat", "DiracDelta")


@dataclass(frozen=True)
class Prior:
    """A serialisable prior: a PyMC distribution name and its keyword arguments.

    ``{dist = "Fixed", value = v}`` is not sampled: the parameter is the constant ``v`` (the
    second stage of a two-stage fit, where earlier estimates are taken as known).
    """

    dist: str
    kwargs: Mapping[str, float]

    @classmethod
    def from_dict(cls, value: Any, where: str) -> Prior:
        if not isinstance(value, Mapping) or "dist" not in value:
            raise ModelSpecError(f'{where}: a prior is a table like {{dist = "Normal", mu = 0, sigma = 1}}, got {value!r}')
        kwargs = {k: v for k, v in value.items() if k != "dist"}
        for key, number in kwargs.items():
            if isinstance(number, bool) or not isinstance(number, (int, float)):
                raise ModelSpecError(f"{where}: prior argument {key} = {number!r} must be a number")
        if value["dist"] == FIXED and (set(kwargs) != {"value"} or not np.isfinite(float(kwargs["value"]))):
            raise ModelSpecError(f'{where}: a fixed parameter is written {{dist = "Fixed", value = <finite number>}}, got {dict(value)!r}')
        return cls(str(value["dist"]), {k: float(v) for k, v in kwargs.items()})

    @property
    def fixed(self) -> bool:
        return self.dist == FIXED

    @property
    def value(self) -> float:
        """The constant of a fixed parameter."""
        return float(self.kwargs["value"])

    def to_dict(self) -> dict[str, Any]:
        return {"dist": self.dist, **self.kwargs}

    def distribution(self, where: str) -> Any:
        """The unnamed PyMC distribution (``pm.X.dist(**kwargs)``); errors name the spec key."""
        import pymc as pm

        if self.fixed:  # a point mass: draws are the constant itself
            return pm.DiracDelta.dist(self.value)
        cls = getattr(pm, self.dist, None)
        if not (isinstance(cls, type) and issubclass(cls, pm.Distribution)):
            raise ModelSpecError(f"{where}: unknown distribution {self.dist!r} (use a PyMC name such as Normal, LogNormal, HalfNormal, TruncatedNormal, Gamma)")
        if issubclass(cls, pm.Discrete) or self.dist in IMPROPER:
            raise ModelSpecError(
                f"{where}: {self.dist} is not a proper continuous distribution; "
                f'a prior on a continuous parameter needs one (Normal, LogNormal, HalfNormal, TruncatedNormal, Gamma), or {{dist = "Fixed", value = v}} for a constant'
            )
        accepted = _arguments(cls)
        unknown = [k for k in self.kwargs if accepted is not None and k not in accepted]
        if unknown and accepted is not None:
            raise ModelSpecError(f"{where}: {self.dist} has no argument {', '.join(map(repr, unknown))}; it accepts {', '.join(accepted)}")
        try:
            return cast(Any, cls).dist(**self.kwargs)  # PyMC's classes are untyped
        except Exception as exc:
            raise ModelSpecError(f"{where}: {self.dist}({self._args()}) is not valid: {type(exc).__name__}: {str(exc)[:200]}") from None

    def _args(self) -> str:
        return ", ".join(f"{k}={v:g}" for k, v in self.kwargs.items())


def _arguments(cls) -> list[str] | None:
    """Named arguments of ``cls.dist`` (``None`` when it names none, so nothing can be checked)."""
    import inspect

    try:
        parameters = inspect.signature(cls.dist).parameters.values()
    except (TypeError, ValueError):
        return None
    names = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in ("cls", "self")]
    return names or None
