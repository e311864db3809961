"""Named priors: ``prior = "literature"`` in a spec (``--prior literature`` on ``bayescale fit``).

A named prior replaces the law's default priors of Chinchilla's exponents ``alpha`` and ``beta``,
the likelihood's noise scale ``sigma`` and the discrepancy scale τ (``[discrepancy] scale``);
the spec's own entries for those keys still win. ``default`` is the law's own defaults;
``literature`` is the posterior predictive of a study-level hierarchy fitted across the public
run tables bayescale ships, stored in ``literature_prior.json`` next to this module and rebuilt
by ``benchmarks/literature_prior.py`` (which lists the studies and the build's date and version).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from bayescale.errors import ModelSpecError
from bayescale.priors import Prior

#: The prior a spec gets when it names none: the law's own defaults.
DEFAULT = "default"
LITERATURE = "literature"
NAMES = (DEFAULT, LITERATURE)
#: The law parameters a named prior sets (when the law has them all).
EXPONENTS = ("alpha", "beta")
#: Where the literature prior's document lives (inside the package, so a wheel carries it).
LITERATURE_FILE = Path(__file__).resolve().parent / "literature_prior.json"


@dataclass(frozen=True)
class NamedPrior:
    """The priors a named prior sets: per exponent, the likelihood's ``sigma`` and the discrepancy scale.

    ``None`` everywhere is the ``default`` prior: the law's and likelihood's own defaults.
    """

    name: str
    exponents: Mapping[str, Mapping[str, float | str]] | None = None
    sigma: Mapping[str, float | str] | None = None
    discrepancy_scale: float | None = None


def check_name(name: Any, where: str) -> str:
    """``name`` if it is a known named prior, else a ``ModelSpecError`` naming ``where`` and the choices."""
    if not isinstance(name, str) or name not in NAMES:
        hint = " (per-parameter priors go under [priors])" if isinstance(name, Mapping) else ""
        raise ModelSpecError(f"{where}: unknown prior {name!r}; known priors: {', '.join(NAMES)}{hint}")
    return name


def named_prior(name: str, where: str = "prior") -> NamedPrior:
    """The named prior ``name`` (``default`` or ``literature``)."""
    if check_name(name, where) == DEFAULT:
        return NamedPrior(DEFAULT)
    doc = literature_document()
    return NamedPrior(LITERATURE, exponents=doc["priors"]["exponents"], sigma=doc["priors"]["sigma"], discrepancy_scale=float(doc["priors"]["discrepancy_scale"]))


@cache
def literature_document(path: Path = LITERATURE_FILE) -> dict[str, Any]:
    """The literature prior's stored document (studies, population summaries, priors, build date), checked."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelSpecError(f"{path}: the literature prior cannot be read ({exc}); rebuild it with benchmarks/literature_prior.py") from None
    try:
        priors = doc["priors"]
        for name in EXPONENTS:
            Prior.from_dict(priors["exponents"][name], f"{path}: priors.exponents.{name}")
        Prior.from_dict(priors["sigma"], f"{path}: priors.sigma")
        if not float(priors["discrepancy_scale"]) > 0:
            raise ValueError("discrepancy_scale must be positive")
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelSpecError(f"{path}: not a literature prior document ({type(exc).__name__}: {exc})") from None
    return dict(doc)


def apply(raw: Mapping[str, Any], parameter_names: tuple[str, ...], form: str, source: str) -> dict[str, Any]:
    """The spec dict ``raw`` with its named prior (``raw["prior"]``) filled in under the keys it leaves unset.

    The spec's own ``priors.alpha``/``beta``, ``likelihood.sigma`` and ``discrepancy.scale`` win.
    """
    name = check_name(raw.get("prior", DEFAULT), f"{source}: prior")
    prior = named_prior(name, f"{source}: prior")
    if prior.exponents is None:
        return dict(raw)
    missing = [p for p in EXPONENTS if p not in parameter_names]
    if missing:
        raise ModelSpecError(
            f"{source}: prior = {name!r} sets Chinchilla's exponents alpha and beta, which the {form} form does not have "
            f"(its parameters are {', '.join(parameter_names)}); use a Chinchilla-family form or the default prior"
        )
    out = dict(raw)
    given = raw.get("priors", {})
    if isinstance(given, Mapping):  # anything else is refused, naming the key, by the spec's own check
        out["priors"] = {**{p: dict(prior.exponents[p]) for p in EXPONENTS}, **given}
    likelihood = raw.get("likelihood", {})
    if isinstance(likelihood, Mapping) and "sigma" not in likelihood and prior.sigma is not None:
        out["likelihood"] = {**likelihood, "sigma": dict(prior.sigma)}
    discrepancy = raw.get("discrepancy", {})
    if isinstance(discrepancy, Mapping) and "scale" not in discrepancy:
        out["discrepancy"] = {**discrepancy, "scale": prior.discrepancy_scale}
    return out


def without_named_keys(raw: Mapping[str, Any]) -> dict[str, Any]:
    """``raw`` (a resolved spec's dict) without the entries a named prior sets, so another named prior can fill them."""
    out = dict(raw)
    out["priors"] = {k: v for k, v in raw.get("priors", {}).items() if k not in EXPONENTS}
    out["likelihood"] = {k: v for k, v in raw.get("likelihood", {}).items() if k != "sigma"}
    out["discrepancy"] = {k: v for k, v in raw.get("discrepancy", {}).items() if k != "scale"}
    return out
