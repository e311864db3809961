"""Fit a spec to runs with NUTS and keep the result: posterior, diagnostics, save and load.

A ``Fit`` is immutable: the posterior ``DataTree`` plus everything needed to reproduce and
use it (spec, runs, groups, seed, sampler, versions). Saved fits are netCDF (or zarr) files
written atomically.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
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

from bayescale.errors import ConvergenceWarning, FitFileError, SamplerError, check_probability
from bayescale.laws.ops import NUMPY
from bayescale.model import Design, design
from bayescale.pooling import resolve_centered
from bayescale.runs import RunTable, load_runs
from bayescale.spec import AUTO, ModelSpec, load_spec

FORMAT_VERSION = 1
SAMPLERS = ("nutpie", "pymc", "numpyro")
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
    import arviz as az

    posterior = tree["posterior"].to_dataset()[list(var_names)]
    stats = tree["sample_stats"].to_dataset()
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]

    def extreme(ds: xr.Dataset, fn) -> float:
        values = np.concatenate([np.ravel(v.values) for v in ds.data_vars.values()])
        values = values[np.isfinite(values)]
        return float(fn(values)) if values.size else float("nan")

    rhat_max = extreme(az.rhat(posterior), np.max) if chains > 1 else float("nan")
    ess_bulk = extreme(az.ess(posterior, method="bulk"), np.min)
    ess_tail = extreme(az.ess(posterior, method="tail"), np.min)
    divergences = int(stats["diverging"].sum()) if "diverging" in stats else 0
    depth_var = next((v for v in ("maxdepth_reached", "reached_max_treedepth") if v in stats), None)
    depth_hits = int(stats[depth_var].sum()) if depth_var else 0
    problems = []
    if chains > 1 and not rhat_max <= RHAT_MAX:
        problems.append(f"R-hat {rhat_max:.3f} > {RHAT_MAX}")
    if not ess_bulk >= ESS_MIN:
        problems.append(f"bulk ESS {ess_bulk:.0f} < {ESS_MIN}")
    if not ess_tail >= ESS_MIN:
        problems.append(f"tail ESS {ess_tail:.0f} < {ESS_MIN}")
    if divergences:
        problems.append(f"{divergences} divergent transition(s)")
    if depth_hits > TREEDEPTH_MAX_SHARE * chains * draws:
        problems.append(f"{depth_hits} draw(s) ({depth_hits / (chains * draws):.1%}) hit the maximum tree depth")
    return Diagnostics(rhat_max, ess_bulk, ess_tail, divergences, depth_hits, draws, chains, tuple(problems))


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
        names = list(self.spec.law.parameter_names) + ["sigma"]
        if "nu" in self.posterior:
            names.append("nu")
        names += [f"{p}_by_{g}" for g in self.groups for p in self.spec.pooled]
        return names

    def summary(self, ci: float = 0.9) -> pd.DataFrame:
        """Median, equal-tailed ``ci`` interval, R-hat and ESS of every public parameter."""
        import arviz as az

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
        }

    def forecast(self, targets=None, *, seed: int = 0, **columns) -> xr.Dataset:
        """Posterior forecast of loss at ``targets`` (a table) or keyword columns, see ``forecast.forecast``."""
        from bayescale.forecasting import forecast

        return forecast(self, targets, seed=seed, **columns)

    def allocate(self, flops, unique_tokens=None, ci: float = 0.9, robust_quantile: float | None = None, group_values=None) -> xr.Dataset:
        """Compute-optimal (N, D) per FLOP budget for every draw, plus the robust plan, see ``allocate.allocate``."""
        from bayescale.allocate import allocate

        return allocate(self, flops, unique_tokens=unique_tokens, ci=ci, robust_quantile=robust_quantile, group_values=group_values)

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


#: Compiled nutpie models by structure key (spec, groups, run count): a second fit of new data
#: with the same shape swaps the data in instead of recompiling (Numba compilation is ~10 s).
_COMPILED: dict[str, Any] = {}
_COMPILED_MAX = 8


def _adaptation(adaptation: str | None, sampler: str, non_centred: bool) -> str | None:
    """The nutpie mass-matrix adaptation to use (``None`` for the other samplers); ``non_centred``:
    the model has a pooled parameter whose group levels are sampled non-centred."""
    if sampler not in SAMPLERS:
        raise SamplerError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if sampler != "nutpie":
        if adaptation is not None:
            raise SamplerError(f"adaptation={adaptation!r} is a nutpie option; the {sampler} sampler adapts a diagonal mass matrix")
        return None
    if adaptation is None:
        return "diag" if non_centred else "low_rank"
    if adaptation not in ADAPTATIONS:
        raise SamplerError(f"unknown adaptation {adaptation!r}; choose one of {', '.join(ADAPTATIONS)}")
    return adaptation


def _sample(spec: ModelSpec, d: Design, prior_draws, sampler: str, draws: int, tune: int, chains: int, seed: int, cores: int, progress: bool, target_accept: float, adaptation: str) -> xr.DataTree:
    from bayescale.model import build_model, data_values, structure_key

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
            if sampler == "nutpie":
                return _sample_nutpie(spec, d, prior_draws, structure_key(spec, d), data_values(d), draws, tune, chains, seed, cores, progress, target_accept, adaptation)
            import pymc as pm

            return pm.sample(
                draws=draws,
                tune=tune,
                chains=chains,
                cores=cores,
                random_seed=seed,
                nuts_sampler=sampler,
                progressbar=progress,
                compute_convergence_checks=False,
                model=build_model(spec, d, prior_draws),
                nuts={"target_accept": target_accept},
            )
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - surface sampler failures as one clear error
            raise SamplerError(f"the {sampler} sampler failed: {type(exc).__name__}: {exc}") from exc
        finally:
            logger.setLevel(level)


def _sample_nutpie(spec, d, prior_draws, key, values, draws, tune, chains, seed, cores, progress, target_accept, adaptation) -> xr.DataTree:
    import nutpie

    from bayescale.model import build_model

    if key in _COMPILED:
        compiled = _COMPILED[key]
        known = {var.name for var in compiled.shared_var_keys}  # data the graph does not use is pruned
        compiled = compiled.with_data(**{name: value for name, value in values.items() if name in known})
    else:
        compiled = nutpie.compile_pymc_model(build_model(spec, d, prior_draws))
        if len(_COMPILED) >= _COMPILED_MAX:
            _COMPILED.pop(next(iter(_COMPILED)))
        _COMPILED[key] = compiled
    tree = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, cores=cores, seed=seed, progress_bar=progress, target_accept=target_accept, adaptation=adaptation)
    observed = xr.Dataset({"log_loss": ("run", d.y)}, coords={"run": np.arange(d.y.size)})
    constant = xr.Dataset({k: (("run",) if np.ndim(v) else (), v) for k, v in values.items() if k != "observed_log_loss"}, coords={"run": np.arange(d.y.size)})
    nodes = {name: tree[name].to_dataset() for name in ("posterior", "sample_stats")}
    return xr.DataTree.from_dict({**nodes, "observed_data": observed, "constant_data": constant})


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
) -> Fit:
    """Fit the spec ``model`` to ``runs`` and check convergence (warns ``ConvergenceWarning``).

    ``group`` names grouping column(s) over which the spec's pooled parameters vary
    (partial pooling); default: the spec's own ``pooling.group``. ``adaptation`` picks nutpie's
    mass matrix (``ADAPTATIONS``); default ``low_rank``, ``diag`` when a pooled parameter is
    non-centred. ``info`` records the pooled and centred parameters and the adaptation used.
    """
    runs = runs if isinstance(runs, RunTable) else load_runs(runs)
    spec = load_spec(model)
    groups = tuple([group] if isinstance(group, str) else (group if group is not None else spec.group))
    for name, value, low in (("draws", draws, 1), ("tune", tune, 1), ("chains", chains, 1)):
        if int(value) != value or value < low:
            raise SamplerError(f"{name}={value!r} must be a whole number >= {low}")
    _adaptation(adaptation, sampler, False)  # a bad sampler or adaptation fails before any work
    d = design(spec, runs, groups)
    rule = "auto" if spec.centered == AUTO else "spec"
    spec = resolve_centered(spec, d)  # the fit keeps the resolved spec: exactly what was sampled
    adaptation = _adaptation(adaptation, sampler, bool(groups) and any(p not in spec.centered for p in spec.pooled))
    prior_draws = spec.check_priors(seed)
    cores = cores or max(1, min(chains, os.cpu_count() or 1))
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
    result = Fit(tree=tree, spec=spec, runs=runs, groups=groups, diagnostics=diagnostics, seed=seed, sampler=sampler, info=info)
    if not diagnostics.converged:
        warnings.warn(f"{spec.name} fit on {runs.source}: {diagnostics.message()}", ConvergenceWarning, stacklevel=2)
    return result


def _tidy_tree(raw: xr.DataTree, spec: ModelSpec, d: Design) -> xr.DataTree:
    """Keep the groups a fit needs, add public parameters, drop object-typed sampler stats."""
    posterior = raw["posterior"].to_dataset()
    posterior = posterior.assign(group_level_parameters(spec, d, posterior))
    stats = raw["sample_stats"].to_dataset()
    stats = stats[[v for v in _KEEP_STATS if v in stats]]
    nodes = {"posterior": posterior, "sample_stats": stats}
    for name in ("observed_data", "constant_data"):
        if name in raw.children:
            nodes[name] = raw[name].to_dataset()
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
    """Write ``result`` to ``path`` atomically: a temporary file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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
    zarr = path.suffix == ".zarr"
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)) / path.name
    try:
        if zarr:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree.to_zarr(tmp, mode="w")
        else:
            tree.to_netcdf(tmp, engine="h5netcdf")
        if zarr and path.exists():
            import shutil

            backup = path.with_name(f".{path.name}.old")
            os.replace(path, backup)
            os.replace(tmp, path)
            shutil.rmtree(backup)
        else:
            os.replace(tmp, path)
    finally:
        import shutil

        shutil.rmtree(tmp.parent, ignore_errors=True)
    return path


def load_fit(path: str | Path) -> Fit:
    """Read a fit saved by ``Fit.save``; any unreadable, foreign or incompatible file is a ``FitFileError``."""
    path = Path(path)
    if not path.exists():
        raise FitFileError(f"{path}: no such fit file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if path.suffix == ".zarr":
                tree = xr.open_datatree(path, engine="zarr").load()
            else:
                tree = xr.open_datatree(path, engine="h5netcdf").load()
    except Exception as exc:  # noqa: BLE001 - every read failure is the same user-facing problem
        raise FitFileError(f"{path}: cannot read as a bayescale fit (truncated, corrupted or not netCDF/zarr): {type(exc).__name__}: {exc}") from None
    attrs = tree.attrs
    if "bayescale_format" not in attrs:
        raise FitFileError(f"{path}: not a bayescale fit (no bayescale_format attribute); it may be a plain ArviZ/PyMC file")
    if int(attrs["bayescale_format"]) != FORMAT_VERSION:
        raise FitFileError(f"{path}: fit file format {attrs['bayescale_format']} written by bayescale {attrs.get('bayescale_version')} is not readable by this version (format {FORMAT_VERSION}); refit with this version")
    try:
        spec = ModelSpec.from_dict(json.loads(attrs["spec"]), source=f"{path}:spec")
        groups = tuple(json.loads(attrs["groups"]))
        diagnostics = Diagnostics.from_dict(json.loads(attrs["diagnostics"]))
        runs_ds = tree["runs"].to_dataset()
        frame = pd.DataFrame({k: v.values for k, v in runs_ds.data_vars.items()})
        runs = RunTable(frame, source=runs_ds.attrs.get("source", str(path)), extra_columns=tuple(json.loads(runs_ds.attrs.get("extra_columns", "[]"))))
        for needed in ("posterior", "sample_stats"):
            if needed not in tree.children:
                raise KeyError(needed)
        result = Fit(
            tree=xr.DataTree.from_dict({k: tree[k].to_dataset() for k in tree.children if k != "runs"}),
            spec=spec,
            runs=runs,
            groups=groups,
            diagnostics=diagnostics,
            seed=int(attrs["seed"]),
            sampler=str(attrs["sampler"]),
            info=json.loads(attrs.get("info", "{}")),
        )
        missing = [v for v in spec.law.parameter_names if v not in result.posterior]
        if missing:
            raise KeyError(", ".join(missing))
    except FitFileError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise FitFileError(f"{path}: a bayescale fit file with missing or damaged content ({type(exc).__name__}: {exc})") from None
    if not diagnostics.converged:
        warnings.warn(f"{path}: {diagnostics.message()}", ConvergenceWarning, stacklevel=2)
    return result
