"""Build the PyMC model of a spec on a design (``design.Design``): inputs, centres and weights as
``pm.Data``, the law's parameters in internal coordinates, and group pooling.

Free variables, per law parameter ``θ`` (see ``laws.base`` for the internal coordinates):

* ``θ_z``: the population value in internal coordinates (flat, with the spec's prior on the
  public value added as a potential with its log-Jacobian, so priors are on ``θ`` itself);
* per group column ``g`` when ``θ`` is pooled: ``θ_tau_g`` (HalfNormal spread) and either
  ``θ_eta_g`` (standard-normal offsets, dims ``g``: non-centred) or, when the spec's resolved
  centring lists ``θ``, ``θ_z_g ~ N(θ_z, θ_tau_g)`` with ``θ_eta_g`` kept as a Deterministic.

The names come from ``bayescale.posterior``, whose ``PosteriorView`` reads them back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from bayescale.modeldesign import Design
from bayescale.names import stored_name
from bayescale.posterior import eta_name, group_dim, level_z_name, tau_name, z_name
from bayescale.spec import AUTO, ModelSpec

if TYPE_CHECKING:
    import pymc as pm


#: Typical log inputs at which initial values are placed. Initial values must not depend on the
#: data: a compiled model is reused for new data of the same shape, and the same seed must give
#: the same posterior whether or not the model came from the cache.
REFERENCE_LOG_INPUTS = {"params": np.log(1e9), "active_params": np.log(1e9), "tokens": np.log(2e10), "unique_tokens": np.log(2e10), "flops": np.log(1.2e20)}


def initial_internal(spec: ModelSpec, design: Design, prior_draws: dict[str, np.ndarray]) -> dict[str, float]:
    """Prior medians mapped to internal coordinates at reference inputs: every chain's starting point."""
    medians = {p.name: float(np.median(prior_draws[f"priors.{p.name}"])) for p in design.law.parameters}
    reference = {c: float(REFERENCE_LOG_INPUTS.get(c, 0.0)) for c in design.centres}
    return {k: float(v) for k, v in design.law.to_internal(medians, reference).items()}


def index_name(g: str) -> str:
    """The ``pm.Data`` of each run's level of group column ``g`` (a storable name: ``names.stored_name``)."""
    return f"{stored_name(g)}_index"


def data_values(design: Design) -> dict[str, np.ndarray]:
    """Values of every ``pm.Data`` of the model, by name: what changes between same-shaped fits."""
    values = {f"log_{c}": v for c, v in design.x.items()}
    values.update({f"centre_{c}": np.asarray(v) for c, v in design.centres.items()})
    values.update({index_name(g): design.codes[g] for g in design.groups})
    values["observed_log_loss"] = design.y
    values["run_weight"] = np.ones(design.y.size)
    return values


def structure_key(spec: ModelSpec, design: Design) -> str:
    """What a compiled model depends on besides data: spec, group levels and the number of runs."""
    import hashlib
    import json

    graph_spec = {k: v for k, v in spec.to_dict().items() if k != "discrepancy"}  # forecast-time only
    payload = json.dumps({"spec": graph_spec, "levels": design.levels, "n": int(design.y.size), "inputs": sorted(design.x)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def build_model(spec: ModelSpec, design: Design, prior_draws: dict[str, np.ndarray]) -> pm.Model:
    """The ``pm.Model`` of ``spec`` on design ``design`` (inputs as ``pm.Data``, dims ``run`` and groups).

    ``spec``'s centring must be resolved (``pooling.resolve_centered``): the caller decides what is
    sampled, and the fit stores that same resolved spec.
    """
    import pymc as pm
    import pytensor.tensor as pt

    from bayescale.laws.ops import pytensor_ops

    if spec.centered == AUTO:
        raise ValueError(f"{spec.name}: build_model needs a resolved centring; call pooling.resolve_centered(spec, design) first")
    ops = pytensor_ops()
    law = design.law
    coords = {"run": np.arange(design.y.size), **{group_dim(g): design.levels[g] for g in design.groups}}
    init = initial_internal(spec, design, prior_draws)
    with pm.Model(coords=coords) as model:
        x = {c: pm.Data(f"log_{c}", v, dims="run") for c, v in design.x.items()}
        # centres are data too, so a compiled model can be reused on new runs of the same shape
        centres = {c: pm.Data(f"centre_{c}", v) for c, v in design.centres.items()}
        observed = pm.Data("observed_log_loss", design.y, dims="run")
        # 1 for every run in a fit; the self-check sets held-out runs to 0 in the same compiled model
        weight = pm.Data("run_weight", np.ones(design.y.size), dims="run")
        index = {g: pm.Data(index_name(g), design.codes[g], dims="run") for g in design.groups}
        z_pop: dict[str, Any] = {}
        public_pop: dict[str, Any] = {}
        for p in law.parameters:  # a fixed parameter's coordinate is a function of free exponents
            if p.name in spec.fixed:
                value = law.internal_value(ops, p.name, pt.as_tensor_variable(spec.fixed[p.name]), public_pop, centres)
                z_pop[p.name] = pm.Deterministic(z_name(p.name), value)
            else:
                z_pop[p.name] = pm.Flat(z_name(p.name), initval=init[p.name])
            public_pop[p.name] = law.public_value(ops, p.name, z_pop[p.name], public_pop, centres)
        z_run = {}
        for p in law.parameters:
            z = z_pop[p.name]
            if p.name in spec.pooled:
                for g in design.groups:
                    tau = pm.HalfNormal(tau_name(p.name, g), sigma=spec.pool_scale[p.name])
                    if p.name in spec.centered:  # eta kept as a Deterministic: consumers see one form
                        offset = pm.Normal(level_z_name(p.name, g), mu=z_pop[p.name], sigma=tau, dims=group_dim(g)) - z_pop[p.name]
                        pm.Deterministic(eta_name(p.name, g), offset / tau, dims=group_dim(g))
                        z = z + offset[index[g]]
                    else:
                        eta = pm.Normal(eta_name(p.name, g), 0.0, 1.0, dims=group_dim(g))
                        z = z + tau * eta[index[g]]
            z_run[p.name] = z
        log_prior = 0.0
        for p in (q for q in law.parameters if q.name not in spec.fixed):
            log_prior = log_prior + pm.logp(spec.priors[p.name].distribution(f"priors.{p.name}"), public_pop[p.name])
            if p.positive:  # Jacobian of θ = exp(t); the centring shift has unit Jacobian
                log_prior = log_prior + pt.log(public_pop[p.name])
        pm.Potential("prior", log_prior)
        mu = law.log_loss(ops, law.to_public(ops, z_run, centres), x)
        pm.Potential("log_likelihood", pt.sum(weight * spec.likelihood.pymc_log_density(mu, observed)))
    return model
