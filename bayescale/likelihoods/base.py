"""The interface every likelihood family implements: the observation model of log loss around the
law's mean curve, with a scale ``sigma`` (always fitted) and the family's own parameters.

A family declares its parameters and their priors (``priors``, ``constants``), its log density for
PyMC (``pymc_log_density``: the model weights and sums it) and for numpy (``logpdf``: LOO and
held-out scores), and its noise draws for predictive forecasts (``unit_noise``). Consumers pass the
family's own parameter values around as a mapping (``values``), so they never name them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from bayescale.errors import ModelSpecError
from bayescale.priors import Prior

#: The default prior of the scale ``sigma`` (log loss).
DEFAULT_SIGMA_PRIOR = {"dist": "HalfNormal", "sigma": 0.05}


def default_sigma() -> Prior:
    return Prior.from_dict(DEFAULT_SIGMA_PRIOR, "likelihood.sigma")


@dataclass(frozen=True)
class Likelihood(ABC):
    """One family's observation model of log loss; ``from_dict``/``to_dict`` are its ``[likelihood]`` table."""

    #: The ``family`` a spec names.
    family: ClassVar[str]
    #: Keys of the ``[likelihood]`` table besides ``family`` and ``sigma``.
    keys: ClassVar[tuple[str, ...]] = ()

    sigma: Prior = field(default_factory=default_sigma)

    @classmethod
    @abstractmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str) -> Likelihood:
        """The family's ``[likelihood]`` table, validated; errors name the spec key."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The ``[likelihood]`` table (``family`` first), which ``from_dict`` reads back."""

    @property
    def parameters(self) -> tuple[str, ...]:
        """The family's own parameters besides ``sigma`` (sampled or constant)."""
        return ()

    def priors(self) -> dict[str, Prior]:
        """The sampled parameters' priors by name, ``sigma`` first (spec keys ``likelihood.<name>``); all are positive."""
        return {"sigma": self.sigma}

    def constants(self) -> dict[str, float]:
        """The family's parameters the spec fixes to a number."""
        return {}

    def values(self, sampled: Mapping[str, Any]) -> dict[str, Any]:
        """The family's parameters (``parameters``): ``sampled[name]`` (draws) where sampled, else the constant."""
        constants = self.constants()
        return {name: sampled[name] if name in self.priors() else constants[name] for name in self.parameters}

    def posterior_values(self, posterior: Any) -> dict[str, Any]:
        """``values`` read from a posterior ``Dataset``: sampled parameters as (chain, draw) arrays."""
        return self.values({name: posterior[name].transpose("chain", "draw").values for name in self.parameters if name in self.priors()})

    def pymc_log_density(self, mu: Any, observed: Any) -> Any:
        """Creates the random variables of ``priors`` (in that order, named as there) and returns
        each observed log loss's log density around ``mu`` (a PyTensor tensor)."""
        import pymc as pm

        variables = {name: _named_rv(name, prior, f"likelihood.{name}") for name, prior in self.priors().items()}
        sigma = variables.pop("sigma")
        return pm.logp(self._pymc_distribution(mu, sigma, self.values(variables)), observed)

    @abstractmethod
    def _pymc_distribution(self, mu: Any, sigma: Any, values: Mapping[str, Any]) -> Any:
        """The unnamed PyMC distribution of log loss around ``mu``."""

    @abstractmethod
    def logpdf(self, y: Any, mu: Any, sigma: Any, values: Mapping[str, Any]) -> np.ndarray:
        """Log density of observed log loss ``y`` around ``mu`` (numpy/scipy; arguments broadcast)."""

    @abstractmethod
    def unit_noise(self, rng: np.random.Generator, values: Mapping[str, Any], shape: tuple[int, ...]) -> np.ndarray:
        """Observation noise at unit scale, of ``shape`` (``values`` broadcast to it)."""


def _named_rv(name: str, prior: Prior, where: str) -> Any:
    prior.distribution(where)  # validates the name and arguments
    import pymc as pm

    return getattr(pm, prior.dist)(name, **prior.kwargs)


def check_keys(raw: Mapping[str, Any], allowed: tuple[str, ...], source: str) -> None:
    """``ModelSpecError`` naming any key of the ``[likelihood]`` table outside ``allowed``."""
    unknown = set(raw) - set(allowed)
    if unknown:
        raise ModelSpecError(f"{source}: unknown likelihood key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(allowed))}")


def sigma_prior(raw: Mapping[str, Any], source: str) -> Prior:
    """The ``sigma`` prior of a ``[likelihood]`` table (default ``DEFAULT_SIGMA_PRIOR``)."""
    return Prior.from_dict(raw.get("sigma", DEFAULT_SIGMA_PRIOR), f"{source}: likelihood.sigma")
