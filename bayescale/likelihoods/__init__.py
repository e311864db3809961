"""The likelihood families, one module each, registered here by the ``family`` a spec names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bayescale.errors import ModelSpecError
from bayescale.likelihoods.base import DEFAULT_SIGMA_PRIOR, Likelihood
from bayescale.likelihoods.normal import Normal
from bayescale.likelihoods.student_t import StudentT

FAMILIES: dict[str, type[Likelihood]] = {family.family: family for family in (StudentT, Normal)}
DEFAULT_FAMILY = StudentT.family


def likelihood_from_dict(raw: Mapping[str, Any], source: str) -> Likelihood:
    """The ``[likelihood]`` table of a spec (default: Student-t), validated by its family."""
    family = raw.get("family", DEFAULT_FAMILY)
    if not isinstance(family, str) or family not in FAMILIES:
        raise ModelSpecError(f"{source}: likelihood.family {family!r} is not one of {', '.join(FAMILIES)}")
    return FAMILIES[family].from_dict(raw, source)


__all__ = ["DEFAULT_FAMILY", "DEFAULT_SIGMA_PRIOR", "FAMILIES", "Likelihood", "Normal", "StudentT", "likelihood_from_dict"]
