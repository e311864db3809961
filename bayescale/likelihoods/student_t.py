"""Student-t noise on log loss: the robust default (the Bayesian counterpart of the literature's
Huber loss), with degrees of freedom ``nu`` fixed by a number or sampled from a prior."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bayescale.errors import ModelSpecError
from bayescale.likelihoods.base import Likelihood, check_keys, sigma_prior
from bayescale.priors import Prior

DEFAULT_NU = 4.0


#: Degrees of freedom a spec may fix: below 0.1 the density is numerically improper, above 1e6 it is a normal.
NU_RANGE = (0.1, 1e6)


@dataclass(frozen=True)
class StudentT(Likelihood):
    """``log loss ~ StudentT(nu, mu, sigma)``; ``nu`` a number (fixed) or a ``Prior`` (sampled)."""

    family = "studentt"
    keys = ("nu",)

    nu: float | Prior = DEFAULT_NU

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str) -> StudentT:
        check_keys(raw, ("family", "sigma", *cls.keys), source)
        nu_raw = raw.get("nu", DEFAULT_NU)
        if isinstance(nu_raw, Mapping):
            nu: float | Prior = Prior.from_dict(nu_raw, f"{source}: likelihood.nu")
        elif isinstance(nu_raw, (int, float)) and not isinstance(nu_raw, bool) and NU_RANGE[0] <= nu_raw <= NU_RANGE[1]:
            nu = float(nu_raw)
        elif isinstance(nu_raw, (int, float)) and not isinstance(nu_raw, bool):
            raise ModelSpecError(f"{source}: likelihood.nu = {nu_raw!r} must be a number from {NU_RANGE[0]:g} to {NU_RANGE[1]:g} (4 is robust, 1e6 is a normal likelihood)")
        else:
            raise ModelSpecError(f"{source}: likelihood.nu must be a positive number or a prior, got {nu_raw!r}")
        sigma = sigma_prior(raw, source)
        if sigma.fixed or (isinstance(nu, Prior) and nu.fixed):
            raise ModelSpecError(f"{source}: likelihood priors cannot be Fixed (give nu as a number to fix it; sigma is always fitted)")
        return cls(sigma=sigma, nu=nu)

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "nu": self.nu.to_dict() if isinstance(self.nu, Prior) else self.nu, "sigma": self.sigma.to_dict()}

    @property
    def parameters(self) -> tuple[str, ...]:
        return ("nu",)

    def priors(self) -> dict[str, Prior]:
        return {**super().priors(), **({"nu": self.nu} if isinstance(self.nu, Prior) else {})}

    def constants(self) -> dict[str, float]:
        return {} if isinstance(self.nu, Prior) else {"nu": self.nu}

    def _pymc_distribution(self, mu: Any, sigma: Any, values: Mapping[str, Any]) -> Any:
        import pymc as pm

        return pm.StudentT.dist(nu=values["nu"], mu=mu, sigma=sigma)

    def logpdf(self, y: Any, mu: Any, sigma: Any, values: Mapping[str, Any]) -> np.ndarray:
        from scipy import stats

        return stats.t.logpdf(y, values["nu"], loc=mu, scale=sigma)

    def unit_noise(self, rng: np.random.Generator, values: Mapping[str, Any], shape: tuple[int, ...]) -> np.ndarray:
        return rng.standard_t(np.broadcast_to(values["nu"], shape))
