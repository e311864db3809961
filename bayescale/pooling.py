"""Which parameters vary by group, and whether their group levels are sampled centred.

The default (a spec without ``pooling.params``) lets the law's *level* parameters vary by group
(``Parameter.kind == "level"``: irreducible loss, amplitudes, critical scales) and shares its
*shape* parameters (exponents, decay rates): each group's own compute range is short, so a
per-group exponent wanders along the E–A–α ridge and extrapolates badly, while levels are what
datasets and recipes really change. ``pooling_choice`` turns the CLI's ``--pooling`` values into
parameter lists; ``auto_centered`` is the rule behind ``pooling.centered = "auto"``, and
``uncenter_after_divergences`` its check after sampling: a centred level whose spread τ is small
where the sampler diverged is in a funnel, and ``fit`` samples it again non-centred (every
centred level when the divergent draws point at none). A first run that did not converge for
another reason is sampled again with every pooled level switched (``other_centering``), and a second that did not either once more with every
pooled level non-centred (``last_centering``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import xarray as xr

from bayescale.errors import ModelSpecError
from bayescale.modeldesign import MIN_DISTINCT, Design
from bayescale.posterior import tau_name
from bayescale.spec import AUTO, ModelSpec

#: Named ``--pooling`` choices: the law's levels, every free parameter, or none (all shared).
POOLING_CHOICES = ("levels", "all", "none")
#: A group pins its own level of a parameter down (so that level is sampled centred) when it has
#: at least this many runs ...
AUTO_MIN_RUNS = 10
#: ... and, on every input the parameter's term depends on, at least ``MIN_DISTINCT`` distinct
#: values spanning at least this many decades.
AUTO_MIN_DECADES = 0.5
#: A centred parameter is in a funnel when the median of its τ over the divergent draws is below
#: this share of its median over all draws (divergences where the groups' spread collapses).
FUNNEL_TAU_RATIO = 0.5
#: Inputs that may legitimately be constant within a group (all-fresh data, all-dense runs).
_MAY_BE_CONSTANT = ("unique_tokens", "experts")


def pooling_choice(spec: ModelSpec, choice: str) -> tuple[str, ...]:
    """The parameters ``choice`` lets vary by group: ``levels``, ``all``, ``none`` or ``E,A,B``."""
    law = spec.law
    free = [p for p in law.parameter_names if p not in spec.fixed]
    text = str(choice).strip()
    if text == "levels":
        return tuple(p for p in law.level_names if p in free)
    if text == "all":
        return tuple(free)
    if text == "none":
        return ()
    names = [n.strip() for n in text.split(",")]
    if not text or any(not n for n in names):
        raise ModelSpecError(f"--pooling {choice!r}: give {', '.join(POOLING_CHOICES)} or a comma list of {law.name} parameters ({', '.join(law.parameter_names)})")
    unknown = [n for n in names if n not in law.parameter_names]
    if unknown:
        raise ModelSpecError(
            f"--pooling {choice!r}: {', '.join(unknown)} is not a parameter of the {law.name} form; give {', '.join(POOLING_CHOICES)} or a comma list of {', '.join(law.parameter_names)}"
        )
    fixed = [n for n in names if n in spec.fixed]
    if fixed:
        raise ModelSpecError(f"--pooling {choice!r}: {', '.join(fixed)} is fixed by the {spec.name} spec's prior; a constant cannot vary by group")
    if len(set(names)) != len(names):
        raise ModelSpecError(f"--pooling {choice!r}: a parameter is listed twice")
    return tuple(names)


def with_pooling(spec: ModelSpec, choice: str) -> ModelSpec:
    """``spec`` with the parameters of ``choice`` pooled (centring ``"auto"``, the spec's scales kept)."""
    raw = spec.to_dict()
    raw["pooling"] = {**raw["pooling"], "params": list(pooling_choice(spec, choice)), "centered": AUTO}
    return ModelSpec.from_dict(raw, source=f"{spec.name} with --pooling {choice}")


def _identifies(design: Design, rows: np.ndarray, columns: Sequence[str]) -> bool:
    """Whether the runs ``rows`` pin down a level whose term depends on ``columns`` (the rule above)."""
    if rows.sum() < AUTO_MIN_RUNS:
        return False
    for column in columns:
        values = design.x[column][rows]
        if np.unique(values).size < MIN_DISTINCT or (values.max() - values.min()) / np.log(10) < AUTO_MIN_DECADES:
            return False
    return True


def auto_centered(spec: ModelSpec, design: Design) -> tuple[str, ...]:
    """The pooled parameters to sample centred: those every group's own runs pin down.

    A pooled parameter is centred when, for every group column and every level of it, the
    level's runs number at least ``AUTO_MIN_RUNS`` and cover at least ``MIN_DISTINCT`` distinct
    values spanning ``AUTO_MIN_DECADES`` decades of each input its term depends on (an amplitude
    declared with ``centre=(exponent, input)``: that input; any other parameter: every input of
    the law). Then the likelihood, not the between-group prior, fixes each level, which is when a
    centred hierarchy samples well; otherwise the funnel of a weakly identified level calls for
    the non-centred form.
    """
    law = design.law
    centered = []
    for name in spec.pooled:
        q = law.parameter(name)
        columns = (q.centre[1],) if q.centre else tuple(c for c in law.inputs if c not in _MAY_BE_CONSTANT)
        columns = tuple(c for c in columns if c not in _MAY_BE_CONSTANT)
        if all(_identifies(design, design.codes[g] == i, columns) for g in design.groups for i in range(len(design.levels[g]))):
            centered.append(name)
    return tuple(centered)


def resolve_centered(spec: ModelSpec, design: Design) -> ModelSpec:
    """``spec`` with ``centered = "auto"`` replaced by the rule's choice on design ``design``."""
    if spec.centered != AUTO:
        return spec
    return dataclasses.replace(spec, centered=auto_centered(spec, design) if design.groups else ())


def funnel_parameters(spec: ModelSpec, groups: Sequence[str], posterior: xr.Dataset, diverging: np.ndarray) -> tuple[str, ...]:
    """The centred pooled parameters whose τ collapses where the sampler diverged (``FUNNEL_TAU_RATIO``).

    That is the funnel of a centred hierarchy: the groups' data do not pin the levels down as
    tightly as ``auto_centered`` judged from the design (the levels barely differ), so the
    non-centred form samples them without divergences. ``diverging``: the sampler's flags, dims
    (chain, draw) as the posterior's.
    """
    diverging = np.asarray(diverging, dtype=bool)
    if not diverging.any():
        return ()
    found = []
    for name in (p for p in spec.pooled if p in spec.centered):
        taus = [posterior[tau_name(name, g)].transpose("chain", "draw").values for g in groups]
        if any(np.median(tau[diverging]) < FUNNEL_TAU_RATIO * np.median(tau) for tau in taus):
            found.append(name)
    return tuple(found)


def uncenter_after_divergences(spec: ModelSpec, groups: Sequence[str], posterior: xr.Dataset, diverging: np.ndarray) -> tuple[str, ...]:
    """The auto-centred levels to sample again non-centred after a run with divergences: those in
    a funnel (``funnel_parameters``) or, when the divergent draws point at none, every centred
    level (with few groups the population value and τ can trap a centred hierarchy too)."""
    return funnel_parameters(spec, groups, posterior, diverging) or tuple(p for p in spec.pooled if p in spec.centered)


def other_centering(spec: ModelSpec, design_groups: Sequence[str], posterior: xr.Dataset, diverging: np.ndarray) -> tuple[str, ...]:
    """The pooled levels whose centring a second run switches after a first that did not converge:
    the funnel's levels when it diverged there (``uncenter_after_divergences``), else every pooled
    level (centred ones non-centred and non-centred ones centred)."""
    if diverging.any() and (funnel := uncenter_after_divergences(spec, design_groups, posterior, diverging)):
        return funnel
    return tuple(spec.pooled)


def switch_centering(spec: ModelSpec, names: Sequence[str]) -> ModelSpec:
    """``spec`` (centring resolved) with the levels ``names`` in the other parametrisation."""
    kept = [p for p in spec.centered if p not in names]
    return dataclasses.replace(spec, centered=tuple(kept + [p for p in spec.pooled if p in names and p not in spec.centered]))


def last_centering(spec: ModelSpec, tried: Sequence[ModelSpec]) -> ModelSpec | None:
    """``spec`` with every pooled level non-centred, the last try after centrings ``tried`` did not
    converge (on small grouped tables it samples where both auto and other centrings fail), or
    ``None`` when one of them already was."""
    if any(not t.centered for t in tried):
        return None
    return dataclasses.replace(spec, centered=())
