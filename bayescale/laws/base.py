"""What a scaling law is to bayescale: named parameters, needed inputs, one log-loss function.

Parameters are sampled in an internal, well-conditioned coordinate system:

* positive parameters are sampled as their logarithm;
* an amplitude paired with an exponent (``A`` with ``alpha`` in ``A/N^alpha``) is sampled as
  ``log A - alpha * mean(log N)``: the log of its term at the data's centre, which the data
  pin down nearly independently of the exponent.

``to_public``/``to_internal`` convert between the two; both run on numpy and pytensor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from bayescale.laws.ops import NUMPY


@dataclass(frozen=True)
class Parameter:
    """One named constant of a law.

    ``centre=(exponent, input)`` shifts the internal coordinate by ``exponent * mean(log input)``
    (``exponent=None`` means a unit slope), which removes the amplitude–exponent correlation.
    ``kind`` says what the constant does to the curve: a ``"level"`` (irreducible loss, an
    amplitude, a critical scale) sets how high it sits and differs between datasets and recipes,
    so it varies by group by default; a ``"shape"`` constant (an exponent, a decay rate) sets how
    it bends, which each group's short compute range pins down poorly, so it is shared by default.
    """

    name: str
    doc: str
    prior: Mapping[str, Any]
    positive: bool = True
    centre: tuple[str | None, str] | None = None
    kind: Literal["level", "shape"] = "level"


class Law:
    """Base class of every functional form; subclasses set the class attributes and ``log_loss``."""

    name: ClassVar[str]
    description: ClassVar[str]
    parameters: ClassVar[tuple[Parameter, ...]]
    #: Run-table columns the law reads; ``log_loss`` receives ``x[col] = log(column)``.
    inputs: ClassVar[tuple[str, ...]]
    #: Extra covariates the law may read when a spec names them (e.g. dropout), raw values.
    covariates: ClassVar[tuple[str, ...]] = ()
    #: The parameter that is the loss at infinite scale (a target below it is unreachable), if any.
    irreducible: ClassVar[str | None] = None
    #: Inputs the runs may hold at one value, each with what that leaves to the priors ("": nothing,
    #: e.g. all-fresh data or all-dense runs). Every other input needs several values to be identified.
    may_be_constant: ClassVar[Mapping[str, str]] = {"unique_tokens": "", "experts": ""}

    def optimal_log_params(self, p: Mapping[str, Any], log_c6: Any, log_u: Any = None) -> np.ndarray | None:
        """Closed-form compute-optimal log N for budgets ``6·exp(log_c6)`` where the law has one, else ``None``."""
        return None

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    @property
    def level_names(self) -> tuple[str, ...]:
        """The level parameters (``kind="level"``): what varies by group by default."""
        return tuple(p.name for p in self.parameters if p.kind == "level")

    def parameter(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    def log_loss(self, ops: Any, p: Mapping[str, Any], x: Mapping[str, Any]) -> Any:
        """log L for public parameter values ``p`` and log-inputs ``x`` (broadcasting)."""
        raise NotImplementedError

    def to_public(self, ops: Any, z: Mapping[str, Any], centres: Mapping[str, float]) -> dict[str, Any]:
        """Internal (sampler) coordinates → public parameter values."""
        public: dict[str, Any] = {}
        for p in self.parameters:
            public[p.name] = self.public_value(ops, p.name, z[p.name], public, centres)
        return public

    def public_value(self, ops: Any, name: str, z: Any, public: Mapping[str, Any], centres: Mapping[str, Any]) -> Any:
        """The public value of parameter ``name`` at internal coordinate ``z``; ``public`` holds its exponent."""
        q = self.parameter(name)
        t = z + self._shift(q, public, centres)
        return ops.exp(t) if q.positive else t

    def to_internal(self, p: Mapping[str, Any], centres: Mapping[str, float]) -> dict[str, Any]:
        """Public values → internal coordinates (numpy); the inverse of ``to_public``."""
        return {q.name: self.internal_value(NUMPY, q.name, p[q.name], p, centres) for q in self.parameters}

    def internal_value(self, ops: Any, name: str, value: Any, public: Mapping[str, Any], centres: Mapping[str, Any]) -> Any:
        """The internal coordinate of parameter ``name`` at public ``value``; ``public`` holds its exponent."""
        q = self.parameter(name)
        t = ops.log(value) if q.positive else value
        return t - self._shift(q, public, centres)

    @staticmethod
    def _shift(q: Parameter, public: Mapping[str, Any], centres: Mapping[str, Any]) -> Any:
        """``exponent * centre`` for a centred amplitude, else 0."""
        if q.centre is None:
            return 0.0
        exponent, column = q.centre
        slope = public[exponent] if exponent is not None else 1.0
        return slope * centres[column]

    def log_inputs(self, columns: Any) -> dict[str, np.ndarray]:
        """What ``log_loss`` reads from raw columns (a DataFrame or mapping): log inputs, raw covariates present."""
        x = {c: np.log(np.asarray(columns[c], dtype=float)) for c in self.inputs}
        x.update({c: np.asarray(columns[c], dtype=float) for c in self.covariates if c in columns})
        return x

    def loss(self, p: Mapping[str, Any], inputs: Mapping[str, Any]) -> np.ndarray:
        """Loss (not log) on numpy values: ``inputs`` holds raw columns, not logs."""
        return np.exp(self.log_loss(NUMPY, p, self.log_inputs(inputs)))
