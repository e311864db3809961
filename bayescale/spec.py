"""Model specs: which law, which priors, which parameters vary by group, which likelihood.

Specs are TOML files in ``models/`` that users copy and edit; ``load_spec`` reads a shipped
name or a path, validates every key against the law before anything is sampled, and
``ModelSpec.to_dict`` is what a saved fit stores.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bayescale import literature
from bayescale.errors import ModelSpecError
from bayescale.laws import LAWS, Law, get_law
from bayescale.likelihoods import Likelihood, likelihood_from_dict
from bayescale.priors import Prior
from bayescale.resources import models_dir
from bayescale.spec_ranges import check_ranges

TOP_LEVEL_KEYS = {"name", "form", "description", "prior", "priors", "likelihood", "pooling", "discrepancy"}
POOLING_KEYS = {"params", "group", "scale", "centered"}
DEFAULT_POOL_SCALE = 0.2
#: ``pooling.centered = "auto"`` (the default): each pooled parameter is centred or not by the
#: rule in ``bayescale.pooling.auto_centered``, from how well each group's own runs pin it down.
AUTO = "auto"
DISCREPANCY_KEYS = {"enabled", "scale"}
#: HalfNormal prior scale of the discrepancy τ, in log loss per decade beyond the runs
#: (chosen from the leave-future-out backtests in benchmarks/discrepancy_scales.py).
DEFAULT_DISCREPANCY_SCALE = 0.02


@dataclass(frozen=True)
class Discrepancy:
    """The ``[discrepancy]`` table: model error of log loss ``τ·d·u`` growing with the distance
    ``d`` (decades) beyond the runs, τ ~ HalfNormal(``scale``); see ``bayescale.discrepancy``."""

    enabled: bool = True
    scale: float = DEFAULT_DISCREPANCY_SCALE

    @classmethod
    def from_dict(cls, raw: Any, source: str) -> Discrepancy:
        if not isinstance(raw, Mapping):
            raise ModelSpecError(f"{source}: [discrepancy] is a table like {{enabled = true, scale = 0.02}}, got {raw!r}")
        unknown = set(raw) - DISCREPANCY_KEYS
        if unknown:
            raise ModelSpecError(f"{source}: unknown discrepancy key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(DISCREPANCY_KEYS))}")
        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ModelSpecError(f"{source}: discrepancy.enabled must be true or false, got {enabled!r}")
        scale = raw.get("scale", DEFAULT_DISCREPANCY_SCALE)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (np.isfinite(scale) and scale > 0):
            raise ModelSpecError(f"{source}: discrepancy.scale = {scale!r} must be a positive number (log loss per decade, e.g. 0.02)")
        return cls(enabled=enabled, scale=float(scale))

    def to_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "scale": self.scale}


@dataclass(frozen=True)
class ModelSpec:
    """A validated model spec. Build with ``load_spec`` or ``ModelSpec.from_dict``."""

    name: str
    form: str
    priors: Mapping[str, Prior]
    likelihood: Likelihood
    pooled: tuple[str, ...]
    pool_scale: Mapping[str, float]
    group: tuple[str, ...] = ()
    #: Pooled parameters whose group levels are sampled centred (level ~ N(population, tau))
    #: instead of non-centred: better when every group's own data pin its level down. ``"auto"``
    #: leaves the choice to ``pooling.auto_centered`` at fit time (the fit stores the resolved list).
    centered: tuple[str, ...] | str = AUTO
    discrepancy: Discrepancy = field(default_factory=Discrepancy)
    description: str = ""
    #: The named prior (``bayescale.literature``) under the spec's own priors: ``default`` or ``literature``.
    prior: str = literature.DEFAULT

    @property
    def law(self) -> Law:
        return get_law(self.form)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str = "<spec>") -> ModelSpec:
        """Validate the structure of a spec dict (TOML-shaped) against its law."""
        if not isinstance(raw, Mapping):
            raise ModelSpecError(f"{source}: a spec is a table of keys ({', '.join(sorted(TOP_LEVEL_KEYS))}), got {type(raw).__name__}")
        if raw.get("options") == {}:  # fit files written before 0.2 store an (always empty) options table
            raw = {k: v for k, v in raw.items() if k != "options"}
        unknown = set(raw) - TOP_LEVEL_KEYS
        if unknown:
            raise ModelSpecError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(TOP_LEVEL_KEYS))}")
        form = raw.get("form")
        if not isinstance(form, str) or form not in LAWS:
            raise ModelSpecError(f"{source}: unknown form {form!r}; known forms: {', '.join(sorted(LAWS))}")
        law = get_law(form)
        prior = literature.check_name(raw.get("prior", literature.DEFAULT), f"{source}: prior")
        raw = literature.apply(raw, law.parameter_names, form, source)  # the named prior under the spec's own entries
        priors = _priors(raw, law, source)
        likelihood = likelihood_from_dict(_mapping(raw.get("likelihood", {}), f"{source}: likelihood", 'a table like [likelihood] family = "studentt"'), source)
        pooled, scale, centered, group = _pooling(raw, law, priors, source)
        spec = cls(
            name=str(raw.get("name", form)),
            form=form,
            priors=priors,
            likelihood=likelihood,
            pooled=pooled,
            pool_scale=scale,
            group=group,
            centered=centered,
            discrepancy=Discrepancy.from_dict(raw.get("discrepancy", {}), source),
            description=str(raw.get("description", law.description)),
            prior=prior,
        )
        check_ranges(spec.prior_items(), spec.pool_scale, spec.discrepancy.scale, source)  # every value finite and samplable, named in the error
        return spec

    def to_dict(self) -> dict[str, Any]:
        named = {} if self.prior == literature.DEFAULT else {"prior": self.prior}  # specs without one serialise as before
        return {
            "name": self.name,
            "form": self.form,
            "description": self.description,
            **named,
            "priors": {k: v.to_dict() for k, v in self.priors.items()},
            "likelihood": self.likelihood.to_dict(),
            "pooling": {"params": list(self.pooled), "group": list(self.group), "scale": dict(self.pool_scale), "centered": self.centered if self.centered == AUTO else list(self.centered)},
            "discrepancy": self.discrepancy.to_dict(),
        }

    def to_toml(self) -> str:
        """The spec as a TOML file ``load_spec`` reads back, every prior written out (the law's defaults included)."""
        raw = self.to_dict()
        lines = [f"{key} = {_toml_value(raw[key])}" for key in ("name", "form", "description", "prior") if key in raw]
        for table in ("priors", "likelihood", "pooling", "discrepancy"):
            lines += ["", f"[{table}]", *(f"{key} = {_toml_value(value)}" for key, value in raw[table].items())]
        return "\n".join(lines) + "\n"

    def with_prior(self, name: str) -> ModelSpec:
        """This spec under the named prior ``name`` (``--prior``): it replaces the exponents', ``sigma``'s and
        the discrepancy scale's priors, whatever the spec said; every other prior is kept."""
        raw = literature.without_named_keys(self.to_dict())
        raw["prior"] = literature.check_name(name, "--prior")
        return ModelSpec.from_dict(raw, source=f"{self.name} with prior {name!r}")

    @property
    def fixed(self) -> dict[str, float]:
        """Parameters pinned to a constant by a ``Fixed`` prior, with their values."""
        return {name: prior.value for name, prior in self.priors.items() if prior.fixed}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def prior_items(self) -> list[tuple[str, Prior]]:
        """Every prior of the spec with the spec key that names it (parameters, then likelihood)."""
        items = [(f"priors.{name}", prior) for name, prior in self.priors.items()]
        items += [(f"likelihood.{name}", prior) for name, prior in self.likelihood.priors().items()]
        return items

    def draw_priors(self, size: int, seed: int = 0) -> dict[str, np.ndarray]:
        """``size`` draws from every prior (keyed like ``prior_items``), in one compiled call;
        the same spec, size and seed give the same (read-only) draws, so a warm refit reuses them."""
        key = (self.to_json(), size, seed)
        if key not in _PRIOR_DRAWS:
            if len(_PRIOR_DRAWS) >= 32:
                _PRIOR_DRAWS.pop(next(iter(_PRIOR_DRAWS)))
            _PRIOR_DRAWS[key] = self._draw_priors(size, seed)
        return dict(_PRIOR_DRAWS[key])

    def _draw_priors(self, size: int, seed: int) -> dict[str, np.ndarray]:
        import pymc as pm

        items = self.prior_items()
        dists = [prior.distribution(f"{self.name}: {key}") for key, prior in items]
        try:
            draws = pm.draw(dists, draws=size, random_seed=seed, mode="FAST_COMPILE")
        except Exception as exc:
            raise ModelSpecError(f"{self.name}: cannot draw from the priors: {exc}") from None
        out = {}
        for (key, prior), drawn in zip(items, draws, strict=True):
            values = np.asarray(drawn, dtype=float)
            if not np.all(np.isfinite(values)):
                raise ModelSpecError(f"{self.name}: {key}: {prior.dist}({prior._args()}) is not a proper distribution (draws are NaN or infinite)")
            if not prior.fixed and np.ptp(values) == 0:
                raise ModelSpecError(
                    f"{self.name}: {key}: {prior.dist}({prior._args()}) is degenerate (every draw is {values[0]:g}); "
                    f'give it a positive spread, or write {{dist = "Fixed", value = {values[0]:g}}} to fix the parameter'
                )
            values.flags.writeable = False
            out[key] = values
        return out

    def check_priors(self, seed: int = 0) -> dict[str, np.ndarray]:
        """Raise ``ModelSpecError`` unless every prior builds, draws and fits its parameter's support.

        Returns 256 prior draws per key, which the model uses for initial values.
        """
        draws = self.draw_priors(256, seed)
        for p in self.law.parameters:
            values = draws[f"priors.{p.name}"]
            if p.positive and np.any(values <= 0):
                raise ModelSpecError(
                    f"{self.name}: priors.{p.name}: {p.name} must be positive but its prior {self.priors[p.name].dist} "
                    f"puts mass at <= 0; use a positive distribution (LogNormal, HalfNormal, Gamma, TruncatedNormal with lower=0)"
                )
        for key in (f"likelihood.{name}" for name in self.likelihood.priors()):  # scales and degrees of freedom
            if np.any(draws[key] <= 0):
                raise ModelSpecError(f"{self.name}: {key} must be positive; use a positive distribution such as HalfNormal")
        return draws


#: ``ModelSpec.draw_priors`` results by (spec JSON, size, seed), at most 32.
_PRIOR_DRAWS: dict[tuple[str, int, int], dict[str, np.ndarray]] = {}


def _priors(raw: Mapping[str, Any], law: Law, source: str) -> dict[str, Prior]:
    """A prior per law parameter: the spec's own, else the law's default; priors for unknown parameters are errors."""
    names = law.parameter_names
    given = _mapping(raw.get("priors", {}), f"{source}: priors", 'a table of priors like [priors.E] dist = "LogNormal" ...')
    unknown = set(given) - set(names)
    if unknown:
        raise ModelSpecError(f"{source}: priors for parameter(s) {', '.join(sorted(unknown))} that the {law.name} form does not have; its parameters are {', '.join(names)}")
    return {p.name: Prior.from_dict(given.get(p.name, p.prior), f"{source}: priors.{p.name}") for p in law.parameters}


def _pooling(raw: Mapping[str, Any], law: Law, priors: Mapping[str, Prior], source: str) -> tuple[tuple[str, ...], dict[str, float], tuple[str, ...] | str, tuple[str, ...]]:
    """The ``[pooling]`` table checked against the law and priors: pooled parameters, their scales, the centred ones (or ``AUTO``) and the group columns."""
    form, names = law.name, law.parameter_names
    pooling = _mapping(raw.get("pooling", {}), f"{source}: pooling", 'a table like [pooling] params = ["E"]')
    unknown = set(pooling) - POOLING_KEYS
    if unknown:
        raise ModelSpecError(f"{source}: unknown pooling key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(POOLING_KEYS))}")
    fixed = [p for p in names if priors[p].fixed]
    pooled = tuple(_names(pooling.get("params", [p for p in law.level_names if p not in fixed]), f"{source}: pooling.params", "parameter"))
    foreign = [p for p in pooled if p not in names]
    if foreign:
        raise ModelSpecError(f"{source}: pooling.params names {', '.join(foreign)}, not parameters of {form} ({', '.join(names)})")
    constant = [p for p in pooled if p in fixed]
    if constant:
        raise ModelSpecError(f"{source}: pooling.params names {', '.join(constant)}, fixed by its prior; a constant cannot vary by group")
    if len(fixed) == len(names):
        raise ModelSpecError(f"{source}: every parameter of {form} is fixed; leave at least one free to fit")
    scale = _pool_scales(pooling, names, pooled, form, source)
    centered = pooling.get("centered", AUTO)
    centered = list(pooled) if centered is True else ([] if centered is False else centered)
    if centered != AUTO and (isinstance(centered, str) or not isinstance(centered, list)):
        raise ModelSpecError(f'{source}: pooling.centered must be "auto", a list of pooled parameters or true/false, not {centered!r}')
    not_pooled = [] if centered == AUTO else [p for p in centered if not isinstance(p, str) or p not in pooled]
    if not_pooled:
        raise ModelSpecError(f"{source}: pooling.centered names {', '.join(map(str, not_pooled))}, not pooled ({', '.join(pooled) or 'none'})")
    group = _names(pooling.get("group", []), f"{source}: pooling.group", "column")
    return pooled, scale, AUTO if centered == AUTO else tuple(centered), tuple(group)


def _pool_scales(pooling: Mapping[str, Any], names: Sequence[str], pooled: Sequence[str], form: str, source: str) -> dict[str, float]:
    """``pooling.scale`` per pooled parameter (``DEFAULT_POOL_SCALE`` when not given), plus any given for unpooled ones."""
    scale_raw = _mapping(pooling.get("scale", {}), f"{source}: pooling.scale", "a table of positive numbers like {E = 0.1}")
    for p, value in scale_raw.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ModelSpecError(f"{source}: pooling.scale.{p} = {value!r} must be a positive number")
    foreign = [p for p in scale_raw if p not in names]
    if foreign:
        raise ModelSpecError(f"{source}: pooling.scale names {', '.join(foreign)}, not parameters of {form}")
    # scales of parameters the spec does not pool are kept: a --pooling choice may pool them
    scale = {p: float(scale_raw.get(p, DEFAULT_POOL_SCALE)) for p in (*pooled, *(q for q in names if q in scale_raw and q not in pooled))}
    for p, s in scale.items():
        if not s > 0:
            raise ModelSpecError(f"{source}: pooling.scale.{p} = {s:g} must be > 0")
    return scale


def _mapping(value: Any, where: str, example: str) -> dict[str, Any]:
    """A TOML table, or ``ModelSpecError`` naming the key."""
    if not isinstance(value, Mapping):
        raise ModelSpecError(f"{where} must be {example}, got {value!r}")
    return dict(value)


def _names(value: Any, where: str, what: str) -> list[str]:
    """A name or a list of names (``pooling.params``, ``pooling.group``), or ``ModelSpecError``."""
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ModelSpecError(f"{where} must be a {what} name or a list of {what} names, got {value!r}")
    return values


def shipped_specs() -> list[str]:
    """Names of the specs shipped in ``models/``."""
    return sorted(p.stem for p in models_dir().glob("*.toml"))


def load_spec(model: str | Path | ModelSpec | Mapping[str, Any] = "chinchilla") -> ModelSpec:
    """A shipped spec by name (``"chinchilla"``), a TOML path, a dict, or a ``ModelSpec`` as is."""
    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, Mapping):
        return ModelSpec.from_dict(model)
    path = Path(model)
    if path.suffix != ".toml" and not path.exists():
        path = models_dir() / f"{model}.toml"
        if not path.exists():
            raise ModelSpecError(f"unknown model {str(model)!r}: not a shipped spec ({', '.join(shipped_specs())}) nor a .toml file")
    if not path.is_file():
        raise ModelSpecError(f"{path}: no such model spec file")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))  # a BOM (some editors save one) is not TOML
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ModelSpecError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise ModelSpecError(f"{path}: not valid TOML: arrays or tables nested too deeply for a spec") from None
    except OSError as exc:
        raise ModelSpecError(f"{path}: cannot read the spec file: {exc.strerror}") from None
    return ModelSpec.from_dict(raw, source=str(path))


def _toml_value(value: Any) -> str:
    """One TOML value: strings, numbers, booleans, arrays and inline tables (all a spec holds)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        # a JSON string is a TOML basic string; non-ASCII kept as is (JSON's surrogate pairs are not TOML), DEL escaped as TOML asks
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, int) or np.isfinite(value) else ("nan" if np.isnan(value) else ("inf" if value > 0 else "-inf"))
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return "[" + ", ".join(_toml_value(v) for v in value) + "]"
