"""The posterior read in the model's own coordinates: one place that knows the variable names and
the pooling formula ``θ_z + θ_tau_g · θ_eta_g[level]``.

``model.py`` names its variables with the helpers here; forecasting, allocation, decisions, LOO
and the stored ``θ_by_g`` read draws through ``PosteriorView``, so the formula is written once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from bayescale.laws.ops import NUMPY
from bayescale.names import stored_name

if TYPE_CHECKING:
    from bayescale.fitted import Fitted
    from bayescale.laws import Law
    from bayescale.modeldesign import Design
    from bayescale.spec import ModelSpec

SAMPLE_DIMS = ("chain", "draw")


def z_name(p: str) -> str:
    """Population value of parameter ``p`` in internal coordinates."""
    return f"{p}_z"


def group_dim(g: str) -> str:
    """The posterior dimension of group column ``g``: its storable name (``names.stored_name``)."""
    return stored_name(g)


def tau_name(p: str, g: str) -> str:
    """Spread of ``p``'s levels over group column ``g`` (internal coordinates)."""
    return f"{p}_tau_{stored_name(g)}"


def eta_name(p: str, g: str) -> str:
    """Standard-normal offsets of ``p``'s levels of ``g`` (a Deterministic when centred)."""
    return f"{p}_eta_{stored_name(g)}"


def level_z_name(p: str, g: str) -> str:
    """Per-level internal value of a centred pooled ``p`` (sampled directly, ``N(θ_z, θ_tau_g)``)."""
    return f"{p}_z_{stored_name(g)}"


def by_level_name(p: str, g: str) -> str:
    """Public draws of ``p`` per level of ``g``, stored post hoc."""
    return f"{p}_by_{stored_name(g)}"


@dataclass(frozen=True)
class LevelOffsets:
    """One group column's pooled offsets: τ (chain, draw, 1) and η (chain, draw, level) over the
    seen levels, then any new levels drawn from the population."""

    group: str
    tau: Mapping[str, np.ndarray]
    eta: Mapping[str, np.ndarray]

    def shift(self, p: str, index: Any) -> np.ndarray:
        """``τ · η[index]`` of parameter ``p``: the internal shift of the levels at ``index``."""
        return self.tau[p] * self.eta[p][..., index]


@dataclass(frozen=True)
class PosteriorView:
    """Parameter draws of a posterior by group level, in internal or public coordinates.

    Arrays are numpy, dims (chain, draw, …); built from a ``Fit`` (``of``) or from the parts a fit
    is made of while it is being built (spec, design, posterior ``Dataset``).
    """

    spec: ModelSpec
    design: Design
    posterior: xr.Dataset

    @classmethod
    def of(cls, fit: Fitted) -> PosteriorView:
        """The view of a fitted posterior."""
        return cls(fit.spec, fit.design, fit.posterior)

    @property
    def law(self) -> Law:
        return self.design.law

    @property
    def shape(self) -> tuple[int, int]:
        """(chains, draws)."""
        return self.posterior.sizes["chain"], self.posterior.sizes["draw"]

    def draws(self, name: str) -> np.ndarray:
        """A scalar variable's draws, (chain, draw)."""
        return self.posterior[name].transpose(*SAMPLE_DIMS).values

    def z(self) -> dict[str, np.ndarray]:
        """Population values of every law parameter in internal coordinates, (chain, draw)."""
        return {p: self.draws(z_name(p)) for p in self.law.parameter_names}

    def offsets(self, g: str, rng: np.random.Generator | None = None, n_new: int = 0) -> LevelOffsets:
        """τ and η of every pooled parameter over ``g``'s seen levels, then ``n_new`` new levels
        with fresh ``N(0, 1)`` offsets from ``rng`` (drawn per parameter, in the spec's order)."""
        chains, draws = self.shape
        taus, etas = {}, {}
        for p in self.spec.pooled:
            eta = self.posterior[eta_name(p, g)].transpose(*SAMPLE_DIMS, group_dim(g)).values
            if rng is not None:
                eta = np.concatenate([eta, rng.standard_normal((chains, draws, n_new))], axis=-1)
            etas[p] = eta
            taus[p] = self.draws(tau_name(p, g))[..., None]
        return LevelOffsets(g, taus, etas)

    def z_at(self, offsets: Sequence[LevelOffsets], index: Sequence[Any]) -> dict[str, np.ndarray]:
        """Internal values at level ``index[i]`` of each ``offsets[i]``: ``z + Σ_g τ_g · η_g[level]``,
        (chain, draw, len(index)) for array indices. Without offsets: the population, (chain, draw, 1)."""
        z = {p: v[..., None] for p, v in self.z().items()}
        for level_offsets, at in zip(offsets, index, strict=True):
            for p in level_offsets.tau:
                z[p] = z[p] + level_offsets.shift(p, at)
        return z

    def z_per_run(self) -> dict[str, np.ndarray]:
        """Internal values at every fitted run's own levels, (chain, draw, run)."""
        groups = self.design.groups
        return self.z_at([self.offsets(g) for g in groups], [self.design.codes[g] for g in groups])

    def z_for_request(self, resolved: Mapping[str, tuple[str, bool]], rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Internal values for one level per group column (``groups.resolve_request``), (chain, draw):
        a seen level's offsets, or a new level's fresh ones from ``rng``."""
        z = self.z()
        for g, (level, is_new) in resolved.items():
            offsets = self.offsets(g, rng, int(is_new))
            at = len(self.design.levels[g]) if is_new else self.design.levels[g].index(level)
            for p in offsets.tau:
                z[p] = z[p] + offsets.tau[p][..., 0] * offsets.eta[p][..., at]
        return z

    def public(self, z: Mapping[str, Any]) -> dict[str, Any]:
        """Public parameter values of internal ``z`` (the law's ``to_public`` at the design's centres)."""
        return self.law.to_public(NUMPY, z, self.design.centres)

    def parameters(self, resolved: Mapping[str, tuple[str, bool]], rng: np.random.Generator | None) -> dict[str, np.ndarray]:
        """Public parameter draws (chain, draw) for one level per group column: the population's
        stored draws without groups, else ``public(z_for_request(...))`` (new levels need ``rng``)."""
        if not resolved:
            return {p: self.draws(p).astype(float) for p in self.law.parameter_names}
        if rng is None:
            raise ValueError("a grouped request needs a generator for its new levels")
        return {k: np.asarray(v, dtype=float) for k, v in self.public(self.z_for_request(resolved, rng)).items()}

    def by_level(self) -> dict[str, xr.DataArray]:
        """Public draws at the population (``E``) and per level of each group column (``E_by_dataset``), as stored in a fit."""
        post = self.posterior
        z_pop = {p: post[z_name(p)] for p in self.law.parameter_names}
        out = dict(self.public(z_pop))
        for g in self.design.groups:
            z = {p: z_pop[p] + (post[tau_name(p, g)] * post[eta_name(p, g)] if p in self.spec.pooled else 0.0) for p in self.law.parameter_names}
            public = self.public(z)
            out.update({by_level_name(p, g): public[p] for p in self.spec.pooled})
        return {k: v.transpose(*SAMPLE_DIMS, ...) for k, v in out.items()}

    def log_inputs(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """``log(column)`` of each law input in ``frame`` (what ``Law.log_loss`` reads)."""
        return self.law.log_inputs(frame)

    def sigma(self) -> np.ndarray:
        """The likelihood's scale per draw, (chain, draw)."""
        return self.draws("sigma")

    def likelihood_values(self) -> dict[str, Any]:
        """The likelihood family's own parameters (``Likelihood.values``): draws (chain, draw) where
        sampled, else the spec's constants."""
        return self.spec.likelihood.posterior_values(self.posterior)


def judged_variables(posterior: xr.Dataset, spec: ModelSpec) -> list[str]:
    """The posterior variables convergence is judged on: all but fixed parameters (constants have no R-hat)."""
    fixed = set(spec.fixed)
    return [str(v) for v in posterior.data_vars if str(v) not in fixed and str(v) not in {z_name(p) for p in fixed}]


def required_variables(spec: ModelSpec, groups: Sequence[str]) -> list[str]:
    """Posterior variables every consumer of a view (forecast, allocate, LOO, summary) reads."""
    names = [*spec.law.parameter_names, *(z_name(p) for p in spec.law.parameter_names), *spec.likelihood.priors()]
    for g in groups:
        names += [name(p, g) for p in spec.pooled for name in (tau_name, eta_name)] + [by_level_name(p, g) for p in spec.pooled]
    return names
