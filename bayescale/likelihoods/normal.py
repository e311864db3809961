"""Normal noise on log loss: the log-normal observation model, light-tailed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bayescale.errors import ModelSpecError
from bayescale.likelihoods.base import Likelihood, check_keys, sigma_prior

#: A key specs and fit files written before the likelihood registry carried for every family;
#: the normal family has no such parameter, so it is accepted and dropped.
_LEGACY_KEYS = ("nu",)


@dataclass(frozen=True)
class Normal(Likelihood):
    """``log loss ~ Normal(mu, sigma)``."""

    family = "normal"

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str) -> Normal:
        check_keys(raw, ("family", "sigma", *_LEGACY_KEYS), source)
        sigma = sigma_prior(raw, source)
        if sigma.fixed:
            raise ModelSpecError(f"{source}: likelihood priors cannot be Fixed (sigma is always fitted)")
        return cls(sigma=sigma)

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "sigma": self.sigma.to_dict()}

    def _pymc_distribution(self, mu: Any, sigma: Any, values: Mapping[str, Any]) -> Any:
        import pymc as pm

        return pm.Normal.dist(mu=mu, sigma=sigma)

    def logpdf(self, y: Any, mu: Any, sigma: Any, values: Mapping[str, Any]) -> np.ndarray:
        from scipy import stats

        return stats.norm.logpdf(y, loc=mu, scale=sigma)

    def unit_noise(self, rng: np.random.Generator, values: Mapping[str, Any], shape: tuple[int, ...]) -> np.ndarray:
        return rng.standard_normal(shape)
