"""Build the PyMC model of a spec on a run table: centred inputs, non-centred group pooling.

Free variables, per law parameter ``θ`` (see ``laws.base`` for the internal coordinates):

* ``θ_z``: the population value in internal coordinates (flat, with the spec's prior on the
  public value added as a potential with its log-Jacobian, so priors are on ``θ`` itself);
* per group column ``g`` when ``θ`` is pooled: ``θ_tau_g`` (HalfNormal spread) and
  ``θ_eta_g`` (standard-normal offsets, dims ``g``) — a non-centred hierarchy.

The names come from ``bayescale.posterior``, whose ``PosteriorView`` reads them back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bayescale.errors import RunTableError
from bayescale.laws import Law
from bayescale.runs import RunTable
from bayescale.spec import ModelSpec, Prior

if TYPE_CHECKING:
    import pymc as pm

#: Fewest distinct values of each law input needed to identify a power law with an offset.
MIN_DISTINCT = 3


@dataclass(frozen=True)
class Design:
    """What the model needs from the runs: log inputs, centres, observed log loss, group codes."""

    law: Law
    x: dict[str, np.ndarray]
    y: np.ndarray
    centres: dict[str, float]
    groups: tuple[str, ...]
    levels: dict[str, list[str]]
    codes: dict[str, np.ndarray]


def design(spec: ModelSpec, runs: RunTable, groups: Sequence[str] = ()) -> Design:
    """Check the runs can identify the spec's law and compute the model's inputs."""
    law = spec.law
    groups = tuple(groups)
    if len(set(groups)) != len(groups):
        raise RunTableError(f"{runs.source}: a grouping column is listed twice: {', '.join(groups)}")
    reserved = [g for g in groups if g in ("params", "tokens", "loss", "flops", "unique_tokens", "epochs", "experts", "active_params")]
    if reserved:
        raise RunTableError(f"{runs.source}: cannot group by the numeric column(s) {', '.join(reserved)}")
    runs.require_group_columns(groups)
    n_params = len(law.parameters)
    needed = n_params + 2
    if len(runs) < needed:
        raise RunTableError(
            f"{runs.source}: {len(runs)} run(s) cannot identify the {law.name} law's {n_params} parameters; "
            f"at least {needed} runs are needed (more, spread over sizes and token counts, for useful intervals)"
        )
    for column in law.inputs:
        if column in ("unique_tokens", "experts"):  # all-fresh data / all-dense runs are valid inputs
            continue
        distinct = np.unique(runs.column(column)).size
        if distinct < MIN_DISTINCT:
            raise RunTableError(
                f"{runs.source}: column {column!r} has only {distinct} distinct value(s); the {law.name} law needs "
                f"runs at {MIN_DISTINCT} or more different {column} values to separate the power law from its offset"
            )
    x = law.log_inputs(runs.data)
    centres = {c: float(np.mean(x[c])) for c in law.inputs}
    levels, codes = {}, {}
    for g in groups:
        values = runs.data[g].astype(str).to_numpy()
        levels[g] = sorted(set(values))
        lookup = {v: i for i, v in enumerate(levels[g])}
        codes[g] = np.array([lookup[v] for v in values], dtype=np.int64)
    return Design(law, x, np.log(runs.column("loss").astype(float)), centres, groups, levels, codes)


def _named_rv(name: str, prior: Prior, where: str):
    prior.distribution(where)  # validates the name and arguments
    import pymc as pm

    return getattr(pm, prior.dist)(name, **prior.kwargs)


#: Typical log inputs at which initial values are placed. Initial values must not depend on the
#: data: a compiled model is reused for new data of the same shape, and the same seed must give
#: the same posterior whether or not the model came from the cache.
REFERENCE_LOG_INPUTS = {"params": np.log(1e9), "active_params": np.log(1e9), "tokens": np.log(2e10), "unique_tokens": np.log(2e10), "flops": np.log(1.2e20)}


def initial_internal(spec: ModelSpec, d: Design, prior_draws: dict[str, np.ndarray]) -> dict[str, float]:
    """Prior medians mapped to internal coordinates at reference inputs: every chain's starting point."""
    medians = {p.name: float(np.median(prior_draws[f"priors.{p.name}"])) for p in d.law.parameters}
    reference = {c: float(REFERENCE_LOG_INPUTS.get(c, 0.0)) for c in d.centres}
    return {k: float(v) for k, v in d.law.to_internal(medians, reference).items()}


def data_values(d: Design) -> dict[str, np.ndarray]:
    """Values of every ``pm.Data`` of the model, by name: what changes between same-shaped fits."""
    values = {f"log_{c}": v for c, v in d.x.items()}
    values.update({f"centre_{c}": np.asarray(v) for c, v in d.centres.items()})
    values.update({f"{g}_index": d.codes[g] for g in d.groups})
    values["observed_log_loss"] = d.y
    values["run_weight"] = np.ones(d.y.size)
    return values


def structure_key(spec: ModelSpec, d: Design) -> str:
    """What a compiled model depends on besides data: spec, group levels and the number of runs."""
    import hashlib
    import json

    graph_spec = {k: v for k, v in spec.to_dict().items() if k != "discrepancy"}  # forecast-time only
    payload = json.dumps({"spec": graph_spec, "levels": d.levels, "n": int(d.y.size), "inputs": sorted(d.x)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def build_model(spec: ModelSpec, d: Design, prior_draws: dict[str, np.ndarray]) -> pm.Model:
    """The ``pm.Model`` of ``spec`` on design ``d`` (inputs as ``pm.Data``, dims ``run`` and groups)."""
    import pymc as pm
    import pytensor.tensor as pt

    from bayescale.laws.ops import pytensor_ops
    from bayescale.pooling import resolve_centered
    from bayescale.posterior import eta_name, level_z_name, tau_name, z_name

    ops = pytensor_ops()
    law = d.law
    spec = resolve_centered(spec, d)
    coords = {"run": np.arange(d.y.size), **{g: d.levels[g] for g in d.groups}}
    init = initial_internal(spec, d, prior_draws)
    with pm.Model(coords=coords) as model:
        x = {c: pm.Data(f"log_{c}", v, dims="run") for c, v in d.x.items()}
        # centres are data too, so a compiled model can be reused on new runs of the same shape
        centres = {c: pm.Data(f"centre_{c}", v) for c, v in d.centres.items()}
        observed = pm.Data("observed_log_loss", d.y, dims="run")
        # 1 for every run in a fit; the self-check sets held-out runs to 0 in the same compiled model
        weight = pm.Data("run_weight", np.ones(d.y.size), dims="run")
        index = {g: pm.Data(f"{g}_index", d.codes[g], dims="run") for g in d.groups}
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
                for g in d.groups:
                    tau = pm.HalfNormal(tau_name(p.name, g), sigma=spec.pool_scale[p.name])
                    if p.name in spec.centered:  # eta kept as a Deterministic: consumers see one form
                        offset = pm.Normal(level_z_name(p.name, g), mu=z_pop[p.name], sigma=tau, dims=g) - z_pop[p.name]
                        pm.Deterministic(eta_name(p.name, g), offset / tau, dims=g)
                        z = z + offset[index[g]]
                    else:
                        eta = pm.Normal(eta_name(p.name, g), 0.0, 1.0, dims=g)
                        z = z + tau * eta[index[g]]
            z_run[p.name] = z
        log_prior = 0.0
        for p in (q for q in law.parameters if q.name not in spec.fixed):
            log_prior = log_prior + pm.logp(spec.priors[p.name].distribution(f"priors.{p.name}"), public_pop[p.name])
            if p.positive:  # Jacobian of θ = exp(t); the centring shift has unit Jacobian
                log_prior = log_prior + pt.log(public_pop[p.name])
        pm.Potential("prior", log_prior)
        sigma = _named_rv("sigma", spec.likelihood.sigma, "likelihood.sigma")
        mu = law.log_loss(ops, law.to_public(ops, z_run, centres), x)
        nu = spec.likelihood.nu
        nu = _named_rv("nu", nu, "likelihood.nu") if spec.likelihood.robust and isinstance(nu, Prior) else nu
        pm.Potential("log_likelihood", pt.sum(weight * spec.likelihood.log_density(mu, sigma, observed, nu)))
    return model
