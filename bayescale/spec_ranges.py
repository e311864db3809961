"""The values a spec may hold: every number finite and in a range the model can sample, checked
when a spec is loaded so a bad value is one line naming its key, never a sampler crash or a fit of
NaNs (a Student-t ``nu = inf``, a pooling scale of ``inf``, a LogNormal prior at ``mu = 700``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from bayescale.errors import ModelSpecError

if TYPE_CHECKING:
    from bayescale.spec import ModelSpec, Prior

#: Student-t degrees of freedom: below 0.1 the density is numerically improper, above 1e6 it is a normal.
NU_RANGE = (0.1, 1e6)
#: HalfNormal scale of the spread between groups (log units): (0, 100].
POOL_SCALE_MAX = 100.0
#: HalfNormal scale of the discrepancy τ (log loss per decade beyond the runs): (0, 1].
DISCREPANCY_SCALE_MAX = 1.0
#: A LogNormal prior's ``mu`` (log of the parameter's median): exp(±100) spans every sane constant.
LOG_MU_MAX = 100.0


def check_ranges(spec: ModelSpec, source: str) -> None:
    """Raise ``ModelSpecError`` naming the first key whose value is non-finite or out of its range."""
    for key, prior in spec.prior_items():
        _check_prior(prior, f"{source}: {key}")
    nu = spec.likelihood.nu
    if isinstance(nu, (int, float)) and not NU_RANGE[0] <= nu <= NU_RANGE[1]:
        raise ModelSpecError(f"{source}: likelihood.nu = {nu!r} must be a number from {NU_RANGE[0]:g} to {NU_RANGE[1]:g} (4 is robust, 1e6 is a normal likelihood)")
    for p, value in spec.pool_scale.items():
        if not (math.isfinite(value) and 0 < value <= POOL_SCALE_MAX):
            raise ModelSpecError(f"{source}: pooling.scale.{p} = {value!r} must be in (0, {POOL_SCALE_MAX:g}] (log units; 0.1 is about a 10% spread)")
    scale = spec.discrepancy.scale
    if not (math.isfinite(scale) and 0 < scale <= DISCREPANCY_SCALE_MAX):
        raise ModelSpecError(f"{source}: discrepancy.scale = {scale!r} must be in (0, {DISCREPANCY_SCALE_MAX:g}] (log loss per decade, e.g. 0.02)")


def _check_prior(prior: Prior, where: str) -> None:
    """Finite arguments, a LogNormal's ``mu`` in range (signs and supports are ``ModelSpec.check_priors``'s)."""
    for name, value in prior.kwargs.items():
        if not math.isfinite(value):
            raise ModelSpecError(f"{where}: prior argument {name} = {value!r} must be a finite number")
    mu = prior.kwargs.get("mu")
    if prior.dist == "LogNormal" and mu is not None and abs(mu) > LOG_MU_MAX:
        raise ModelSpecError(f"{where}: LogNormal mu = {mu!r} must be within ±{LOG_MU_MAX:g} (it is the log of the median)")
