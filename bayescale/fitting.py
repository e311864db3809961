"""Fit a spec to runs with NUTS and keep the result: posterior, diagnostics, save and load.

A ``Fit`` is immutable: the posterior ``DataTree`` plus everything needed to reproduce and
use it (spec, runs, groups, seed, sampler, versions). Saved fits are netCDF (or zarr) files
written atomically.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayescale.errors import BayescaleError, ConvergenceWarning, FitFileError, RunTableError, SamplerError, check_count, check_probability, check_seed
from bayescale.laws.ops import NUMPY
from bayescale.model import Design, design
from bayescale.pooling import resolve_centered
from bayescale.runs import RunTable, check_magnitudes, load_runs
from bayescale.spec import AUTO, ModelSpec, Prior, load_spec

#: Version 2 adds the ``content_hash`` attribute (checked at load).
FORMAT_VERSION = 2
#: A load refuses a file whose variables declare more than this many bytes (checked before reading).
MAX_LOAD_BYTES = 2**30
#: ``nutpie`` runs nutpie on PyTensor's disk-cached Numba kernels (compiles in ~2 s in a new
#: process); ``nutpie-cfunc`` is nutpie's own compile path (no Python call per gradient, but
#: ~10 s of Numba compilation in every process), see ``compiled``.
SAMPLERS = ("nutpie", "nutpie-cfunc", "pymc", "numpyro")
NUTPIE_SAMPLERS = ("nutpie", "nutpie-cfunc")
#: nutpie mass-matrix adaptations. ``low_rank`` learns the correlations of the Chinchilla
#: constants (measured on the 245 Chinchilla runs: 6 leapfrog steps a draw instead of 48,
#: 1.5 s instead of 7.2 s, bulk ESS 3700 instead of 880) and of centred group levels (704 runs
#: in 8 groups, E/A/B centred: half the time of ``diag``, min ESS 1774 instead of 427) but mixes
#: worse in non-centred hierarchies, so the default is ``diag`` only when a pooled parameter is
#: sampled non-centred.
ADAPTATIONS = ("diag", "low_rank")
RHAT_MAX = 1.01
ESS_MIN = 400
#: Tree-depth saturation counts as a problem when more than this share of draws hit the cap:
#: occasional hits cost only efficiency, systematic ones mean the sampler cannot traverse.
TREEDEPTH_MAX_SHARE = 0.01
SAMPLE_DIMS = ("chain", "draw")
_KEEP_STATS = ("diverging", "depth", "tree_depth", "maxdepth_reached", "reached_max_treedepth", "step_size", "n_steps", "energy", "logp", "lp")


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bayescale")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


@dataclass(frozen=True)
class Diagnostics:
    """Convergence checks of one fit; ``converged`` is False if any check failed."""

    rhat_max: float
    ess_bulk_min: float
    ess_tail_min: float
    divergences: int
    treedepth_hits: int
    draws: int
    chains: int
    problems: tuple[str, ...] = ()

    @property
    def converged(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "rhat_max": self.rhat_max,
            "ess_bulk_min": self.ess_bulk_min,
            "ess_tail_min": self.ess_tail_min,
            "divergences": self.divergences,
            "treedepth_hits": self.treedepth_hits,
            "draws": self.draws,
            "chains": self.chains,
            "converged": self.converged,
            "problems": list(self.problems),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Diagnostics:
        return cls(
            rhat_max=float(raw["rhat_max"]),
            ess_bulk_min=float(raw["ess_bulk_min"]),
            ess_tail_min=float(raw["ess_tail_min"]),
            divergences=int(raw["divergences"]),
            treedepth_hits=int(raw["treedepth_hits"]),
            draws=int(raw["draws"]),
            chains=int(raw["chains"]),
            problems=tuple(raw.get("problems", ())),
        )

    def message(self) -> str:
        """One plain sentence: converged, or what failed and what to do."""
        if self.converged:
            return f"converged (R-hat max {self.rhat_max:.3f}, min bulk ESS {self.ess_bulk_min:.0f}, {self.divergences} divergences)"
        return "NOT CONVERGED: " + "; ".join(self.problems) + ". Do not trust these numbers: run more tune/draws, check the data for outliers, or simplify the model (fewer pooled parameters)."


def check_convergence(tree: xr.DataTree, var_names: Sequence[str]) -> Diagnostics:
    """R-hat, bulk/tail ESS over ``var_names``; divergences and tree-depth hits from sample stats."""
    import arviz_stats as az

    posterior = tree["posterior"].to_dataset()[list(var_names)]
    stats = tree["sample_stats"].to_dataset()
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]

    def extreme(ds: xr.Dataset, fn) -> float:
        values = np.concatenate([np.ravel(v.values) for v in ds.data_vars.values()])
        values = values[np.isfinite(values)]
        return float(fn(values)) if values.size else float("nan")

    rhat = az.rhat(posterior) if chains > 1 else None
    bulk, tail = az.ess(posterior, method="bulk"), az.ess(posterior, method="tail")
    rhat_max = extreme(rhat, np.max) if rhat is not None else float("nan")
    ess_bulk = extreme(bulk, np.min)
    ess_tail = extreme(tail, np.min)
    divergences = int(stats["diverging"].sum()) if "diverging" in stats else 0
    depth_var = next((v for v in ("maxdepth_reached", "reached_max_treedepth") if v in stats), None)
    depth_hits = int(stats[depth_var].sum()) if depth_var else 0
    problems = []
    if rhat is not None and not rhat_max <= RHAT_MAX:
        problems.append(f"R-hat {rhat_max:.3f} > {RHAT_MAX} ({_at_fault(rhat, lambda v: v > RHAT_MAX, '.3f', largest_first=True)})")
    if not ess_bulk >= ESS_MIN:
        problems.append(f"bulk ESS {ess_bulk:.0f} < {ESS_MIN} ({_at_fault(bulk, lambda v: v < ESS_MIN, '.0f')})")
    if not ess_tail >= ESS_MIN:
        problems.append(f"tail ESS {ess_tail:.0f} < {ESS_MIN} ({_at_fault(tail, lambda v: v < ESS_MIN, '.0f')})")
    if divergences:
        problems.append(f"{divergences} divergent transition(s)")
    if depth_hits > TREEDEPTH_MAX_SHARE * chains * draws:
        problems.append(f"{depth_hits} draw(s) ({depth_hits / (chains * draws):.1%}) hit the maximum tree depth")
    return Diagnostics(rhat_max, ess_bulk, ess_tail, divergences, depth_hits, draws, chains, tuple(problems))


def _at_fault(stat: xr.Dataset, bad, fmt: str, largest_first: bool = False, limit: int = 4) -> str:
    """The variables (with their level, e.g. ``B_eta_dataset[web]``) whose statistic fails ``bad``, worst first."""
    found = []
    for name, da in stat.data_vars.items():
        values = np.atleast_1d(da.values)
        labels = [name] if da.ndim == 0 else [f"{name}[{', '.join(str(da[d].values[i]) for d, i in zip(da.dims, idx, strict=True))}]" for idx in np.ndindex(da.shape)]
        for label, value in zip(labels, values.ravel(), strict=True):
            if np.isfinite(value) and bad(value):
                found.append((-value if largest_first else value, label, value))
    found.sort()
    shown = ", ".join(f"{label} {value:{fmt}}" for _, label, value in found[:limit])
    more = f" and {len(found) - limit} more" if len(found) > limit else ""
    return f"at fault: {shown}{more}"


@dataclass(frozen=True)
class Fit:
    """A fitted scaling law: the posterior plus all that is needed to use and reproduce it."""

    tree: xr.DataTree
    spec: ModelSpec
    runs: RunTable
    groups: tuple[str, ...]
    diagnostics: Diagnostics
    seed: int
    sampler: str
    info: Mapping[str, Any] = field(default_factory=dict)
    #: The fit's own leave-future-out backtest (``bayescale.self_check``); None if not run.
    self_check: Mapping[str, Any] | None = None

    def __repr__(self) -> str:
        """A few lines: law, runs, groups, convergence and parameter medians (not the whole posterior)."""
        post = self.posterior
        medians = ", ".join(f"{p}={float(post[p].median()):.4g}" for p in (*self.spec.law.parameter_names, "sigma") if p in post)
        groups = "; ".join(f"{g}: {self.runs.data[g].nunique()} levels" for g in self.groups) or "none"
        draws = f"{self.diagnostics.chains}×{self.diagnostics.draws} draws"
        status = "converged" if self.converged else f"NOT CONVERGED ({'; '.join(self.diagnostics.problems)})"
        return (
            f"<Fit {self.spec.name} ({self.spec.form}) of {len(self.runs)} runs from {Path(self.runs.source).name}; groups: {groups}; "
            f"{draws}, {self.sampler}, seed {self.seed}; {status}\n  medians: {medians}>"
        )

    @cached_property
    def design(self) -> Design:
        """The model's inputs for these runs (log inputs, centres, group codes), computed once per fit."""
        return design(self.spec, self.runs, self.groups)

    @property
    def posterior(self) -> xr.Dataset:
        """The posterior draws (internal coordinates and public parameters), dims (chain, draw, …)."""
        return self.tree["posterior"].to_dataset()

    @property
    def converged(self) -> bool:
        return self.diagnostics.converged

    @property
    def parameter_names(self) -> list[str]:
        """Public parameter names in the posterior: the law's, then ``sigma`` (and ``nu``), then group-level."""
        names = [*list(self.spec.law.parameter_names), "sigma"]
        if "nu" in self.posterior:
            names.append("nu")
        names += [f"{p}_by_{g}" for g in self.groups for p in self.spec.pooled]
        return names

    def summary(self, ci: float = 0.9) -> pd.DataFrame:
        """Median, equal-tailed ``ci`` interval, R-hat and ESS of every public parameter."""
        import arviz_stats as az

        check_probability(ci)
        post = self.posterior[self.parameter_names]
        free = post[[n for n in post.data_vars if n not in self.spec.fixed]]  # constants have no R-hat/ESS
        rhat = az.rhat(free) if post.sizes["chain"] > 1 else None
        ess_bulk, ess_tail = az.ess(free, method="bulk"), az.ess(free, method="tail")

        def stat(ds, name, sel) -> float:
            return float(ds[name].sel(sel)) if ds is not None and name in ds else float("nan")

        rows = []
        for name, da in post.data_vars.items():
            extra_dims = [d for d in da.dims if d not in SAMPLE_DIMS]
            labels = [(None, da)] if not extra_dims else [(lvl, da.sel({extra_dims[0]: lvl})) for lvl in da[extra_dims[0]].values]
            for level, sub in labels:
                values = sub.values.reshape(-1)
                key = name if level is None else f"{name.split('_by_')[0]}[{extra_dims[0]}={level}]"
                sel = {} if level is None else {extra_dims[0]: level}
                rows.append(
                    {
                        "parameter": key,
                        "median": float(np.median(values)),
                        "lo": float(np.quantile(values, (1 - ci) / 2)),
                        "hi": float(np.quantile(values, (1 + ci) / 2)),
                        "rhat": stat(rhat, name, sel),
                        "ess_bulk": stat(ess_bulk, name, sel),
                        "ess_tail": stat(ess_tail, name, sel),
                    }
                )
        return pd.DataFrame(rows).set_index("parameter")

    def summary_dict(self, ci: float = 0.9) -> dict[str, Any]:
        """The ``bayescale summary --format json`` document."""
        table = self.summary(ci)
        return {
            "model": self.spec.name,
            "form": self.spec.form,
            "ci": ci,
            "n_runs": len(self.runs),
            "groups": list(self.groups),
            "parameters": {k: {c: _finite_or_none(row[c]) for c in ("median", "lo", "hi", "rhat", "ess_bulk", "ess_tail")} for k, row in table.iterrows()},
            "fixed": dict(self.spec.fixed),
            "diagnostics": {k: _finite_or_none(v) if isinstance(v, float) else v for k, v in self.diagnostics.to_dict().items()},
            "converged": self.converged,
            "self_check": self.self_check_summary(),
            "discrepancy": self.discrepancy_summary(ci),
        }

    def self_check_summary(self) -> dict[str, Any] | None:
        """The self-check's headline numbers (``SUMMARY_KEYS`` plus coverage_50, n_train, split, skipped); None if not run."""
        if self.self_check is None:
            return None
        keep = ("extrapolation", "median_abs_log_error", "coverage_90", "n_test", "coverage_50", "n_train", "cutoff_flops", "split", "skipped")
        return {k: self.self_check[k] for k in keep if k in self.self_check}

    def discrepancy_summary(self, ci: float = 0.9) -> dict[str, Any]:
        """Whether forecasts carry the extrapolation discrepancy, its prior scale and τ's posterior median and interval."""
        out: dict[str, Any] = {"enabled": self.spec.discrepancy.enabled, "scale": self.spec.discrepancy.scale}
        if self.spec.discrepancy.enabled and "discrepancy_tau" in self.posterior:
            tau = self.posterior["discrepancy_tau"].values.reshape(-1)
            out.update(tau_median=float(np.median(tau)), tau_lo=float(np.quantile(tau, (1 - ci) / 2)), tau_hi=float(np.quantile(tau, (1 + ci) / 2)))
        else:
            out["enabled"] = False
        return out

    def forecast(self, targets=None, *, seed: int = 0, group_values=None, new_group: bool = False, **columns) -> xr.Dataset:
        """Posterior forecast of loss at ``targets`` (a table) or keyword columns, see ``forecasting.forecast``."""
        from bayescale.forecasting import forecast

        return forecast(self, targets, seed=seed, group_values=group_values, new_group=new_group, **columns)

    def allocate(self, flops, unique_tokens=None, ci: float = 0.9, robust_quantile: float | None = None, group_values=None, new_group: bool = False, seed: int = 0) -> xr.Dataset:
        """Compute-optimal (N, D) per FLOP budget for every draw, plus the robust plan, see ``allocate.allocate``."""
        from bayescale.allocate import allocate

        return allocate(self, flops, unique_tokens=unique_tokens, ci=ci, robust_quantile=robust_quantile, group_values=group_values, new_group=new_group, seed=seed)

    def save(self, path: str | Path) -> Path:
        """Write the fit atomically to ``path`` (``.nc`` netCDF, ``.zarr`` zarr store)."""
        return save_fit(self, path)


def _finite_or_none(value: float) -> float | None:
    """JSON has no NaN: undefined statistics (R-hat of one chain, of a fixed constant) become null."""
    return float(value) if np.isfinite(value) else None


def group_level_parameters(spec: ModelSpec, d: Design, posterior: xr.Dataset) -> dict[str, xr.DataArray]:
    """Public parameter draws: population level (``E``) and per group level (``E_by_dataset``)."""
    law = d.law
    z_pop = {p: posterior[f"{p}_z"] for p in law.parameter_names}
    out = dict(law.to_public(NUMPY, z_pop, d.centres))
    for g in d.groups:
        z = {p: z_pop[p] + (posterior[f"{p}_tau_{g}"] * posterior[f"{p}_eta_{g}"] if p in spec.pooled else 0.0) for p in law.parameter_names}
        public = law.to_public(NUMPY, z, d.centres)
        out.update({f"{p}_by_{g}": public[p] for p in spec.pooled})
    return {k: v.transpose("chain", "draw", ...) for k, v in out.items()}


#: Compiled nutpie models by sampler and structure key (spec, groups, run count): a second fit
#: of new data with the same shape swaps the data in instead of recompiling.
_COMPILED: dict[str, Any] = {}
_COMPILED_MAX = 8


def _adaptation(adaptation: str | None, sampler: str, non_centred: bool) -> str | None:
    """The nutpie mass-matrix adaptation to use (``None`` for the other samplers); ``non_centred``:
    the model has a pooled parameter whose group levels are sampled non-centred."""
    if sampler not in SAMPLERS:
        raise SamplerError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if sampler not in NUTPIE_SAMPLERS:
        if adaptation is not None:
            raise SamplerError(f"adaptation={adaptation!r} is a nutpie option; the {sampler} sampler adapts a diagonal mass matrix")
        return None
    if adaptation is None:
        return "diag" if non_centred else "low_rank"
    if adaptation not in ADAPTATIONS:
        raise SamplerError(f"unknown adaptation {adaptation!r}; choose one of {', '.join(ADAPTATIONS)}")
    return adaptation


def _sample(
    spec: ModelSpec,
    d: Design,
    prior_draws,
    sampler: str,
    draws: int,
    tune: int,
    chains: int,
    seed: int,
    cores: int,
    progress: bool,
    target_accept: float,
    adaptation: str,
    values: dict[str, np.ndarray] | None = None,
) -> xr.DataTree:
    """Sample the model of ``spec`` on ``d``; ``values`` replaces its ``pm.Data`` (the self-check's weights and centres)."""
    from bayescale.model import build_model, data_values

    values = data_values(d) if values is None else values

    if sampler == "numpyro":
        try:
            import numpyro  # noqa: F401
        except ImportError:
            raise SamplerError("sampler 'numpyro' needs JAX and numpyro: install bayescale[jax] (uv sync --extra jax)") from None
    logger = logging.getLogger("pymc")
    level = logger.level
    if not progress:
        logger.setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*object mode.*")
        warnings.filterwarnings("ignore", category=FutureWarning)
        try:
            if sampler in NUTPIE_SAMPLERS:
                return _sample_nutpie(spec, d, prior_draws, sampler, values, draws, tune, chains, seed, cores, progress, target_accept, adaptation)
            import pymc as pm

            model = build_model(spec, d, prior_draws)
            with model:
                pm.set_data({name: value for name, value in values.items() if name in model.named_vars})
            return pm.sample(
                draws=draws,
                tune=tune,
                chains=chains,
                cores=cores,
                random_seed=seed,
                nuts_sampler=sampler,
                progressbar=progress,
                compute_convergence_checks=False,
                model=model,
                nuts={"target_accept": target_accept},
            )
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:
            raise SamplerError(f"the {sampler} sampler failed: {type(exc).__name__}: {exc}") from exc
        finally:
            logger.setLevel(level)


def _compiled(spec: ModelSpec, d: Design, prior_draws, sampler: str, values: dict[str, np.ndarray] | None = None):
    """The nutpie-compiled model of ``d``'s shape with ``values`` (default: ``d``'s data) bound: from the cache, else a fresh compile."""
    from bayescale import compiled as nutpie_models
    from bayescale.model import build_model, data_values, structure_key

    key = f"{sampler}:{structure_key(spec, d)}"
    if key in _COMPILED:
        return nutpie_models.with_data(_COMPILED[key], data_values(d) if values is None else values)
    compiled = nutpie_models.compile_model(build_model(spec, d, prior_draws), sampler)
    if len(_COMPILED) >= _COMPILED_MAX:
        _COMPILED.pop(next(iter(_COMPILED)))
    _COMPILED[key] = compiled
    return compiled if values is None else nutpie_models.with_data(compiled, values)


def _sample_nutpie(spec, d, prior_draws, sampler, values, draws, tune, chains, seed, cores, progress, target_accept, adaptation) -> xr.DataTree:
    from bayescale import compiled as nutpie_models

    compiled = _compiled(spec, d, prior_draws, sampler, values)
    tree = nutpie_models.sample(compiled, _KEEP_STATS, draws=draws, tune=tune, chains=chains, cores=cores, seed=seed, progress_bar=progress, target_accept=target_accept, adaptation=adaptation)
    constant = xr.Dataset({k: (("run",) if np.ndim(v) else (), v) for k, v in values.items() if k != "observed_log_loss"}, coords={"run": np.arange(d.y.size)})
    nodes = {name: tree[name].to_dataset() for name in ("posterior", "sample_stats")}
    return xr.DataTree.from_dict({**nodes, "constant_data": constant})


def fit(
    runs: RunTable | str | Path | pd.DataFrame,
    model: str | Path | ModelSpec | Mapping[str, Any] = "chinchilla",
    group: str | Sequence[str] | None = None,
    *,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    seed: int = 0,
    sampler: str = "nutpie",
    cores: int | None = None,
    target_accept: float = 0.9,
    adaptation: str | None = None,
    progress: bool = False,
    strict: bool = False,
    command: str | None = None,
    self_check: bool = True,
    self_check_draws: int = 400,
) -> Fit:
    """Fit the spec ``model`` to ``runs`` and check convergence (warns ``ConvergenceWarning``).

    ``group`` names grouping column(s) over which the spec's pooled parameters vary
    (partial pooling); default: the spec's own ``pooling.group``. ``adaptation`` picks nutpie's
    mass matrix (``ADAPTATIONS``); default ``low_rank``, ``diag`` when a pooled parameter is
    non-centred. ``info`` records the pooled and centred parameters and the adaptation used.
    ``strict=True`` refuses implausible magnitudes in the runs (``runs.check_magnitudes``,
    e.g. tokens in billions without a unit) instead of warning. ``command`` is the command line
    that asked for this fit (the CLI passes it); it is kept in ``info`` too, so a report can show
    how to reproduce the fit.
    ``self_check`` refits on the smaller runs (2 chains × ``self_check_draws`` draws and tuning
    steps, at most the fit's own; same compiled model) and forecasts the largest
    (``bayescale.self_check``); its residuals update the discrepancy scale τ, which otherwise
    stays at its prior.
    """
    seed = check_seed(seed)
    draws, tune, chains = check_count(draws, "draws"), check_count(tune, "tune"), check_count(chains, "chains")
    self_check_draws = check_count(self_check_draws, "self_check_draws")
    if isinstance(runs, RunTable):
        problems = check_magnitudes(runs.column("params").astype(float), runs.column("tokens").astype(float), runs.source) if strict else []
        if problems:
            raise RunTableError(problems[0] + "; strict mode refuses suspicious magnitudes")
    else:
        runs = load_runs(runs, strict=strict)
    spec = load_spec(model)
    groups = tuple([group] if isinstance(group, str) else (group if group is not None else spec.group))
    _adaptation(adaptation, sampler, False)  # a bad sampler or adaptation fails before any work
    d = design(spec, runs, groups)
    _check_size(spec, d, draws, chains)
    rule = "auto" if spec.centered == AUTO else "spec"
    spec = resolve_centered(spec, d)  # the fit keeps the resolved spec: exactly what was sampled
    adaptation = _adaptation(adaptation, sampler, bool(groups) and any(p not in spec.centered for p in spec.pooled))
    cores = cores or max(1, min(chains, os.cpu_count() or 1))
    _warn_if_slow(len(runs), draws, tune, chains, cores)
    prior_draws = spec.check_priors(0)  # initial values must not depend on the seed: a cached model serves every seed
    start = time.perf_counter()
    raw = _sample(spec, d, prior_draws, sampler, draws, tune, chains, seed, cores, progress, target_accept, adaptation)
    seconds = time.perf_counter() - start
    tree = _tidy_tree(raw, spec, d)
    internal = [v for v in tree["posterior"].data_vars if v.removesuffix("_z") not in spec.fixed]  # constants have no R-hat
    diagnostics = check_convergence(tree, internal)
    info = {
        "seconds": seconds,
        "draws": draws,
        "tune": tune,
        "chains": chains,
        "target_accept": target_accept,
        "adaptation": adaptation,
        "pooled": list(spec.pooled) if groups else [],
        "centered": list(spec.centered),
        "centering": rule,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if command:
        info["command"] = command
    result = Fit(tree=tree, spec=spec, runs=runs, groups=groups, diagnostics=diagnostics, seed=seed, sampler=sampler, info=info)
    check = _self_check(result, d, prior_draws, min(self_check_draws, draws), min(self_check_draws, tune), cores, target_accept) if self_check else None
    result = with_discrepancy(result, check)
    if not diagnostics.converged:
        warnings.warn(f"{spec.name} fit on {runs.source}: {diagnostics.message()}", ConvergenceWarning, stacklevel=2)
    return result


def prepare(runs: RunTable | str | Path | pd.DataFrame, model: str | Path | ModelSpec | Mapping[str, Any] = "chinchilla", group: str | Sequence[str] | None = None, *, sampler: str = "nutpie") -> None:
    """Compile (or load from PyTensor's disk cache) the model a ``fit`` of these arguments needs, without sampling.

    Batch workers call it once before their first job, so that job pays no compile time;
    a later ``fit`` of the same shape only swaps its data in.
    """
    runs = runs if isinstance(runs, RunTable) else load_runs(runs)
    spec = load_spec(model)
    groups = tuple([group] if isinstance(group, str) else (group if group is not None else spec.group))
    if sampler in NUTPIE_SAMPLERS:
        d = design(spec, runs, groups)
        spec = resolve_centered(spec, d)  # what fit() samples, so the cache key matches
        _compiled(spec, d, spec.check_priors(0), sampler)


#: Largest posterior a fit may hold (chains × draws × stored values × 8 bytes): a typo such as
#: ``--draws 1000000000`` is refused up front instead of aborting in the sampler.
MAX_POSTERIOR_BYTES = 4 * 2**30
#: Rough cost model of NUTS on this package's laws, measured on a busy 2-core machine (1e5 runs:
#: ~0.2 µs per run per gradient, ~10 gradients per iteration once adapted): used only to warn.
SECONDS_PER_RUN_GRADIENT = 2e-7
GRADIENTS_PER_ITERATION = 10
#: Fits estimated to take longer than this warn up front, with the estimate and what to do.
SLOW_FIT_SECONDS = 600.0


def _check_size(spec: ModelSpec, d: Design, draws: int, chains: int) -> None:
    """Refuse a posterior too large to hold (estimate: stored values per draw × draws × chains)."""
    n_params = len(spec.law.parameter_names)
    per_draw = 2 * n_params + 2 + 8 + sum(len(spec.pooled) * (1 + 2 * len(levels)) for levels in d.levels.values())  # z + public, sigma/nu, stats, tau/eta/by-level
    size = chains * draws * per_draw * 8
    if size > MAX_POSTERIOR_BYTES:
        raise BayescaleError(
            f"draws={draws} × chains={chains} would hold about {size / 2**30:.3g} GiB of posterior draws (limit {MAX_POSTERIOR_BYTES / 2**30:g} GiB): "
            "1000-4000 draws a chain give stable intervals; lower --draws or --chains"
        )


def _warn_if_slow(n_runs: int, draws: int, tune: int, chains: int, cores: int) -> None:
    """Warn before a fit expected to run for many minutes (every gradient evaluation touches every run)."""
    seconds = (draws + tune) * GRADIENTS_PER_ITERATION * n_runs * SECONDS_PER_RUN_GRADIENT * -(-chains // max(1, cores))
    if seconds > SLOW_FIT_SECONDS:
        estimate = f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"
        warnings.warn(
            f"{n_runs:,} runs: this fit may take roughly {estimate} (order of magnitude; each gradient evaluation touches every run). "
            "For a first look use fewer draws and tuning steps (e.g. --draws 300 --tune 300), fewer chains, or a random subset or per-size averages of the runs",
            UserWarning,
            stacklevel=3,
        )


def _self_check(result: Fit, d: Design, prior_draws, draws: int, tune: int, cores: int, target_accept: float) -> dict[str, Any]:
    from bayescale import self_check

    try:
        return self_check.run(result, d, prior_draws, draws, tune, cores, target_accept)
    except self_check.Skip as exc:
        return self_check.skipped(str(exc))


def with_discrepancy(result: Fit, check: Mapping[str, Any] | None) -> Fit:
    """``result`` with its self-check stored and, if the spec enables the discrepancy, exact draws
    of τ (prior updated by the self-check's residuals) and u added to the posterior."""
    from dataclasses import replace

    from bayescale.discrepancy import draw_tau

    post = result.posterior.drop_vars(["discrepancy_tau", "discrepancy_u"], errors="ignore")
    if result.spec.discrepancy.enabled:
        evidence = check if check and not check.get("skipped") else {}
        residuals = [evidence.get(k, ()) for k in ("log_error", "sd", "distance")]
        tau, u = draw_tau(result.spec.discrepancy.scale, (post.sizes["chain"], post.sizes["draw"]), result.seed, *residuals)
        post = post.assign(discrepancy_tau=(SAMPLE_DIMS, tau), discrepancy_u=(SAMPLE_DIMS, u))
    nodes = {k: result.tree[k].to_dataset() for k in result.tree.children}
    nodes["posterior"] = post
    return replace(result, tree=xr.DataTree.from_dict(nodes), self_check=None if check is None else dict(check))


def _tidy_tree(raw: xr.DataTree, spec: ModelSpec, d: Design) -> xr.DataTree:
    """Keep the groups a fit needs, add public parameters, drop object-typed sampler stats."""
    posterior = raw["posterior"].to_dataset()
    posterior = posterior.assign(group_level_parameters(spec, d, posterior))
    stats = raw["sample_stats"].to_dataset()
    stats = stats[[v for v in _KEEP_STATS if v in stats]]
    nodes = {"posterior": posterior, "sample_stats": stats, "observed_data": xr.Dataset({"log_loss": ("run", d.y)}, coords={"run": np.arange(d.y.size)})}
    if "constant_data" in raw.children:
        nodes["constant_data"] = raw["constant_data"].to_dataset()
    return xr.DataTree.from_dict({k: _plain(v) for k, v in nodes.items()})


#: Attributes that differ between identical runs; dropped so the same seed gives identical files.
_VOLATILE_ATTRS = ("created_at", "sampling_time", "tuning_steps")


def _plain(ds: xr.Dataset) -> xr.Dataset:
    ds = ds.copy()
    ds.attrs = {k: v for k, v in ds.attrs.items() if isinstance(v, (str, int, float)) and k not in _VOLATILE_ATTRS}
    return ds


def _runs_dataset(runs: RunTable) -> xr.Dataset:
    data = {}
    for column in runs.data.columns:
        values = runs.data[column].to_numpy()
        if values.dtype.kind not in "fiu":
            values = values.astype(str).astype(object)
        data[column] = ("run", values)
    return xr.Dataset(data, attrs={"source": runs.source, "extra_columns": json.dumps(list(runs.extra_columns))})


def save_fit(result: Fit, path: str | Path) -> Path:
    """Write ``result`` to ``path`` atomically (``paths.write_atomic``), with a content hash.

    The path is checked first (``paths.check_output_path``); missing parent folders are
    created. Nothing but this call's own temporary (and stale ones of a killed save) is removed.
    """
    from bayescale.paths import make_parents, write_atomic

    path = make_parents(path)
    tree = result.tree.copy()
    tree["runs"] = xr.DataTree(_runs_dataset(result.runs))
    tree.attrs = {
        "bayescale_format": FORMAT_VERSION,
        "bayescale_version": package_version(),
        "spec": result.spec.to_json(),
        "groups": json.dumps(list(result.groups)),
        "diagnostics": json.dumps(result.diagnostics.to_dict()),
        "seed": int(result.seed),
        "sampler": result.sampler,
        "info": json.dumps(dict(result.info)),
        "data_hash": result.runs.content_hash(),
    }
    if result.self_check is not None:
        tree.attrs["self_check"] = json.dumps(dict(result.self_check))
    tree.attrs["content_hash"] = content_hash(tree)

    def write(tmp: Path) -> None:
        if path.suffix == ".zarr":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree.to_zarr(tmp, mode="w-")
        else:
            tree.to_netcdf(tmp, engine="h5netcdf")

    return write_atomic(path, write, "fit")


def content_hash(tree: xr.DataTree) -> str:
    """SHA-256 of every node's variables (names, shapes, values as float64 or text) and the root attributes.

    Written at save and checked at load, so an edited posterior, diagnostics or spec is found.
    """
    import hashlib

    digest = hashlib.sha256()
    attrs = {k: (int(v) if isinstance(v, np.integer) else v) for k, v in tree.attrs.items() if k != "content_hash"}
    digest.update(json.dumps(attrs, sort_keys=True, default=str).encode())
    for node in sorted(tree.children):
        ds = tree[node].to_dataset()
        digest.update(json.dumps([node, {k: str(v) for k, v in sorted(ds.attrs.items())}]).encode())
        for name in sorted(ds.variables):
            values = np.asarray(ds[name].values)
            digest.update(json.dumps([str(name), list(ds[name].dims), list(values.shape)]).encode())
            if values.dtype.kind in "fiub":
                digest.update(np.ascontiguousarray(values, dtype="<f8").tobytes())
            else:
                digest.update(json.dumps([str(v) for v in values.ravel()]).encode())
    return digest.hexdigest()


def _short(value: Any, limit: int = 40) -> str:
    """``repr`` of a file's value cut to ``limit`` characters: a message stays one readable line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _open_bounded(path: Path, max_bytes: int) -> xr.DataTree:
    """Open ``path`` lazily, refuse it if its variables declare more than ``max_bytes``, then read it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree = xr.open_datatree(path, engine="zarr" if path.is_dir() else "h5netcdf")
        try:
            declared = sum(int(var.size) * var.dtype.itemsize for node in tree.subtree for var in node.dataset.variables.values())
            if declared > max_bytes:
                raise FitFileError(f"{path}: declares {declared / 2**30:.3g} GiB of data, more than a fit may hold ({max_bytes / 2**30:.3g} GiB); refusing to read it")
            return tree.load()
        finally:
            tree.close()


def _required_variables(spec: ModelSpec, groups: tuple[str, ...]) -> list[str]:
    """Posterior variables every consumer (forecast, allocate, LOO, summary) reads."""
    names = [*spec.law.parameter_names, *(f"{p}_z" for p in spec.law.parameter_names), "sigma"]
    names += ["nu"] if isinstance(spec.likelihood.nu, Prior) else []
    for g in groups:
        names += [f"{p}_{kind}_{g}" for p in spec.pooled for kind in ("tau", "eta")] + [f"{p}_by_{g}" for p in spec.pooled]
    return names


def _check_loaded(path: Path, tree: xr.DataTree, spec: ModelSpec, groups: tuple[str, ...], frame: pd.DataFrame) -> None:
    """Raise ``FitFileError`` unless the posterior and runs hold what the rest of the package reads."""
    for needed in ("posterior", "sample_stats", "runs"):
        if needed not in tree.children:
            raise FitFileError(f"{path}: the fit file has no {needed} group")
    for column in ("params", "tokens", "loss", "flops", "unique_tokens", "epochs", "experts", "active_params", "arch", *groups):
        if column not in frame.columns:
            raise FitFileError(f"{path}: runs/{column} is missing" + (" (a grouping column of the fit)" if column in groups else ""))
        if column not in ("arch", *groups):
            values = frame[column].to_numpy()
            if values.dtype.kind not in "fiu" or not np.all(np.isfinite(values) & (values > 0)):
                raise FitFileError(f"{path}: runs/{column} holds non-numeric, non-finite or non-positive values")
    posterior = tree["posterior"].to_dataset()
    for name in _required_variables(spec, groups):
        if name not in posterior:
            raise FitFileError(f"{path}: posterior variable {name!r} is missing")
    for name, var in posterior.data_vars.items():
        if var.dims[:2] != SAMPLE_DIMS or var.dtype.kind not in "fiu":
            raise FitFileError(f"{path}: posterior variable {name!r} has dims {var.dims} / dtype {var.dtype}, expected numeric (chain, draw, ...)")
        if not np.all(np.isfinite(var.values)):
            raise FitFileError(f"{path}: posterior variable {name!r} holds NaN or infinite draws")
    levels = {g: sorted(set(frame[g].astype(str))) for g in groups}
    for g in groups:
        if g not in posterior.coords or sorted(map(str, posterior[g].values)) != levels[g]:
            raise FitFileError(f"{path}: posterior levels of group {g!r} do not match the runs' levels")


def load_fit(path: str | Path, *, max_bytes: int = MAX_LOAD_BYTES) -> Fit:
    """Read and check a fit saved by ``Fit.save``: any unreadable, foreign, edited or incompatible file is a ``FitFileError``.

    The file's declared size is bounded by ``max_bytes`` before anything is read; the content
    hash written at save must match, and the posterior and runs must hold what forecasts read.
    """
    path = Path(path)
    if not path.exists():
        raise FitFileError(f"{path}: no such fit file")
    if not (path.is_file() or (path.is_dir() and path.suffix == ".zarr")):
        raise FitFileError(f"{path}: not a fit file (a folder or a device); a fit is a .nc file or a .zarr folder")
    try:
        tree = _open_bounded(path, max_bytes)
    except FitFileError:
        raise
    except Exception as exc:
        raise FitFileError(f"{path}: cannot read as a bayescale fit (truncated, corrupted or not netCDF/zarr): {type(exc).__name__}: {str(exc)[:200]}") from None
    attrs = tree.attrs
    if "bayescale_format" not in attrs:
        raise FitFileError(f"{path}: not a bayescale fit (no bayescale_format attribute); it may be a plain ArviZ/PyMC file")
    version = attrs["bayescale_format"]
    if isinstance(version, (bool, np.bool_)) or not isinstance(version, (int, np.integer)):
        raise FitFileError(f"{path}: bayescale_format must be an integer, got {_short(version)}")
    if int(version) != FORMAT_VERSION:
        raise FitFileError(
            f"{path}: fit file format {int(version)} written by bayescale {_short(attrs.get('bayescale_version'))} is not readable by this version (format {FORMAT_VERSION}); refit with this version"
        )
    stored_hash = attrs.get("content_hash")
    if not isinstance(stored_hash, str) or stored_hash != content_hash(tree):  # an array attribute must not reach ``!=``
        raise FitFileError(f"{path}: the content hash does not match: the file was edited or corrupted after it was saved; refit")
    try:
        spec = ModelSpec.from_dict(json.loads(attrs["spec"]), source=f"{path}:spec")
        groups = json.loads(attrs["groups"])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise FitFileError(f"{path}: groups must be a list of column names, got {_short(groups)}")
        groups = tuple(groups)
        diagnostics = Diagnostics.from_dict(json.loads(attrs["diagnostics"]))
        runs_ds = tree["runs"].to_dataset() if "runs" in tree.children else xr.Dataset()
        frame = pd.DataFrame({k: v.values for k, v in runs_ds.data_vars.items()})
        _check_loaded(path, tree, spec, groups, frame)
        runs = RunTable(frame, source=str(runs_ds.attrs.get("source", path)), extra_columns=tuple(json.loads(runs_ds.attrs.get("extra_columns", "[]"))))
        info = json.loads(attrs.get("info", "{}"))
        if not isinstance(info, dict):
            raise FitFileError(f"{path}: info must be a JSON object, got {_short(info)}")
        seed = attrs["seed"]
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
            raise FitFileError(f"{path}: seed must be an integer, got {_short(seed)}")
        result = Fit(
            tree=xr.DataTree.from_dict({k: tree[k].to_dataset() for k in tree.children if k != "runs"}),
            spec=spec,
            runs=runs,
            groups=groups,
            diagnostics=diagnostics,
            seed=int(seed),
            sampler=str(attrs["sampler"]),
            info=info,
            self_check=json.loads(attrs["self_check"]) if "self_check" in attrs else None,
        )
    except FitFileError:
        raise
    except Exception as exc:
        raise FitFileError(f"{path}: a bayescale fit file with missing or damaged content ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not diagnostics.converged:
        warnings.warn(f"{path}: {diagnostics.message()}", ConvergenceWarning, stacklevel=2)
    return result
