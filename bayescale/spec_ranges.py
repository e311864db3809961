"""The values a spec may hold: every number finite and in a range the model can sample, checked
when a spec is loaded so a bad value is one line naming its key, never a sampler crash or a fit of
NaNs (a pooling scale of ``inf``, a LogNormal prior at ``mu = 700``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from bayescale.errors import ModelSpecError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from bayescale.priors import Prior
#: HalfNormal scale of the spread between groups (log units): (0, 100].
POOL_SCALE_MAX = 100.0
#: HalfNormal scale of the discrepancy τ (log loss per decade beyond the runs): (0, 1].
DISCREPANCY_SCALE_MAX = 1.0
#: A LogNormal prior's ``mu`` (log of the parameter's median): exp(±100) spans every sane constant.
LOG_MU_MAX = 100.0


def check_ranges(priors: Iterable[tuple[str, Prior]], pool_scale: Mapping[str, float], discrepancy_scale: float, source: str) -> None:
    """Raise ``ModelSpecError`` naming the first key whose value is non-finite or out of its range
    (a likelihood checks its own family's constants when it is read)."""
    for key, prior in priors:
        _check_prior(prior, f"{source}: {key}")
    for p, value in pool_scale.items():
        if not (math.isfinite(value) and 0 < value <= POOL_SCALE_MAX):
            raise ModelSpecError(f"{source}: pooling.scale.{p} = {value!r} must be in (0, {POOL_SCALE_MAX:g}] (log units; 0.1 is about a 10% spread)")
    scale = discrepancy_scale
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
