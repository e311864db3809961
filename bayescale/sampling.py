"""Sampling: the sampler options (``SamplerConfig``), nutpie's compiled-model cache, the samplers
themselves, and the raw trace tidied into a fit's posterior tree.

``fitting.fit`` resolves the options and calls ``sample``; the self-check calls it again on the
same compiled model with other data. ``prepare`` fills the cache without sampling (batch workers).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayescale.errors import BayescaleError, SamplerError
from bayescale.modeldesign import Design
from bayescale.modeldesign import design as make_design
from bayescale.pooling import resolve_centered
from bayescale.posterior import PosteriorView
from bayescale.progress import CALLBACK_MS, DrawsReporter, live_bar, phase
from bayescale.runs import RunTable, load_runs
from bayescale.spec import ModelSpec, load_spec

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
_KEEP_STATS = ("diverging", "depth", "tree_depth", "maxdepth_reached", "reached_max_treedepth", "step_size", "n_steps", "energy", "logp", "lp")
#: On the ``nutpie`` path every gradient is a Python call holding the GIL for its bookkeeping: with
#: fewer runs than this the gradient is cheaper than that overhead and the chains run fastest on
#: one thread (245 runs, 4 × 2000 iterations: 1.5 s on one thread, 1.6–2.0 s on two); from here
#: up the kernel releases the GIL and the chains share the cores (704 runs in 8 groups, 4 × 600
#: iterations: 2.8 s on two threads, 4.1 s on one).
PARALLEL_MIN_RUNS = 400
#: The sampler options a user sets (a manifest's keys, the CLI's flags); the rest come from the machine.
USER_OPTIONS = ("draws", "tune", "chains", "seed", "sampler", "adaptation")


@dataclass(frozen=True)
class SamplerConfig:
    """How to sample: the keyword options of ``fit`` that reach the sampler, in one value.

    Defaults are ``fit``'s; ``cores=None`` and ``adaptation=None`` are resolved by ``fit``
    (``default_cores``; ``low_rank``, or ``diag`` for non-centred pooling).
    """

    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    seed: int = 0
    sampler: str = "nutpie"
    cores: int | None = None
    target_accept: float = 0.9
    adaptation: str | None = None
    progress: bool = False

    def fit_options(self) -> dict[str, Any]:
        """The options as ``fit``'s keyword arguments."""
        return asdict(self)


#: Compiled nutpie models by sampler and structure key (spec, groups, run count): a second fit
#: of new data with the same shape swaps the data in instead of recompiling.
_COMPILED: dict[str, Any] = {}
_COMPILED_MAX = 8


def default_cores(sampler: str, n_runs: int, chains: int) -> int:
    """Sampler threads when the caller names none: the cores this process may use, one per chain,
    except on the ``nutpie`` path for small tables (``PARALLEL_MIN_RUNS``)."""
    if sampler == "nutpie" and n_runs < PARALLEL_MIN_RUNS:
        return 1
    return max(1, min(chains, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def _adaptation(adaptation: str | None, sampler: str, non_centered: bool) -> str | None:
    """The nutpie mass-matrix adaptation to use (``None`` for the other samplers); ``non_centered``:
    the model has a pooled parameter whose group levels are sampled non-centred."""
    if sampler not in SAMPLERS:
        raise SamplerError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if sampler not in NUTPIE_SAMPLERS:
        if adaptation is not None:
            raise SamplerError(f"adaptation={adaptation!r} is a nutpie option; the {sampler} sampler adapts a diagonal mass matrix")
        return None
    if adaptation is None:
        return "diag" if non_centered else "low_rank"
    if adaptation not in ADAPTATIONS:
        raise SamplerError(f"unknown adaptation {adaptation!r}; choose one of {', '.join(ADAPTATIONS)}")
    return adaptation


def sample(spec: ModelSpec, design: Design, prior_draws: dict[str, np.ndarray], config: SamplerConfig, values: dict[str, np.ndarray] | None = None) -> xr.DataTree:
    """Sample the model of ``spec`` on ``design`` as ``config`` says; ``values`` replaces its ``pm.Data`` (the self-check's weights and centres).

    The draws are complete or this raises (``check_complete``); an interrupt propagates as ``KeyboardInterrupt``.
    """
    return check_complete(_run_sampler(spec, design, prior_draws, config, values), config)


def check_complete(raw: xr.DataTree, config: SamplerConfig) -> xr.DataTree:
    """``raw`` if its posterior holds every draw asked for, all finite; else a ``SamplerError``.

    A sampler stopped early (an interrupt PyMC turns into a short trace) or a model whose draws
    are NaN (a spec putting mass where the law is undefined) must never be saved as a fit.
    """
    if "posterior" not in raw.children:
        raise SamplerError(f"the {config.sampler} sampler returned no posterior")
    posterior = raw["posterior"].to_dataset()
    chains, draws = posterior.sizes.get("chain", 0), posterior.sizes.get("draw", 0)
    if (chains, draws) != (config.chains, config.draws):
        raise SamplerError(f"the {config.sampler} sampler returned {chains} chain(s) of {draws} draw(s), not the {config.chains} of {config.draws} asked for (stopped early); nothing was kept")
    for name, var in posterior.data_vars.items():
        if var.dtype.kind in "fc" and not np.all(np.isfinite(var.values)):
            raise SamplerError(f"the {config.sampler} sampler returned NaN or infinite draws of {name!r}: the spec's priors or likelihood put mass where the law is undefined; check their values")
    return raw


def _run_sampler(spec: ModelSpec, design: Design, prior_draws: dict[str, np.ndarray], config: SamplerConfig, values: dict[str, np.ndarray] | None) -> xr.DataTree:
    """The raw draws of the sampler ``config`` names."""
    from bayescale.model import build_model, data_values

    sampler = config.sampler
    values = data_values(design) if values is None else values

    if sampler == "numpyro":
        try:
            import numpyro  # noqa: F401
        except ImportError:
            raise SamplerError("sampler 'numpyro' needs JAX and numpyro: install bayescale[jax] (uv sync --extra jax)") from None
    logger = logging.getLogger("pymc")
    level = logger.level
    if not config.progress:
        logger.setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*object mode.*")
        warnings.filterwarnings("ignore", category=FutureWarning)
        try:
            if sampler in NUTPIE_SAMPLERS:
                return _sample_nutpie(spec, design, prior_draws, config, values)
            import pymc as pm

            model = build_model(spec, design, prior_draws)
            with model:
                pm.set_data({name: value for name, value in values.items() if name in model.named_vars})
            return pm.sample(
                draws=config.draws,
                tune=config.tune,
                chains=config.chains,
                cores=config.cores,
                random_seed=config.seed,
                nuts_sampler=sampler,
                progressbar=config.progress,
                compute_convergence_checks=False,
                model=model,
                nuts={"target_accept": config.target_accept},
            )
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:
            cause = str(exc).split("Stack backtrace:")[0]  # nutpie appends a Rust backtrace of <unknown> frames
            raise SamplerError(f"the {sampler} sampler failed: {type(exc).__name__}: {cause}") from exc
        finally:
            logger.setLevel(level)


def _compiled(spec: ModelSpec, design: Design, prior_draws: dict[str, np.ndarray], sampler: str, values: dict[str, np.ndarray] | None = None, progress: bool = False) -> Any:
    """The nutpie-compiled model of ``design``'s shape with ``values`` (default: ``design``'s data) bound: from the cache, else a fresh compile."""
    from bayescale import compiled as nutpie_models
    from bayescale.model import build_model, data_values, structure_key

    key = f"{sampler}:{structure_key(spec, design)}"
    if key in _COMPILED:
        return nutpie_models.with_data(_COMPILED[key], data_values(design) if values is None else values)
    if progress:
        phase(f"compiling the {spec.name} model for {design.y.size} runs (a few seconds; cached for later fits of this shape)")
    compiled = nutpie_models.compile_model(build_model(spec, design, prior_draws), sampler, release_gil=design.y.size >= PARALLEL_MIN_RUNS)
    if len(_COMPILED) >= _COMPILED_MAX:
        _COMPILED.pop(next(iter(_COMPILED)))
    _COMPILED[key] = compiled
    return compiled if values is None else nutpie_models.with_data(compiled, values)


def _sample_nutpie(spec: ModelSpec, design: Design, prior_draws: dict[str, np.ndarray], config: SamplerConfig, values: dict[str, np.ndarray]) -> xr.DataTree:
    """Sample with nutpie on the cached compiled model; the run's data are kept as ``constant_data``."""
    from bayescale import compiled as nutpie_models

    compiled = _compiled(spec, design, prior_draws, config.sampler, values, config.progress)
    plain = config.progress and not live_bar()  # no terminal: plain lines instead of a bar nobody sees
    if config.progress:
        phase(f"sampling {config.chains} chains × ({config.tune} tuning + {config.draws}) draws")
    tree = nutpie_models.sample(
        compiled,
        _KEEP_STATS,
        draws=config.draws,
        tune=config.tune,
        chains=config.chains,
        cores=config.cores,
        seed=config.seed,
        progress_bar=config.progress and not plain,
        progress_callback=DrawsReporter("sampling") if plain else None,
        progress_rate=CALLBACK_MS if plain else 100,
        target_accept=config.target_accept,
        adaptation=config.adaptation,
    )
    constant = xr.Dataset({k: (("run",) if np.ndim(v) else (), v) for k, v in values.items() if k != "observed_log_loss"}, coords={"run": np.arange(design.y.size)})
    nodes = {name: tree[name].to_dataset() for name in ("posterior", "sample_stats")}
    return xr.DataTree.from_dict({**nodes, "constant_data": constant})


def prepare(runs: RunTable | str | Path | pd.DataFrame, model: str | Path | ModelSpec | Mapping[str, Any] = "chinchilla", group: str | Sequence[str] | None = None, *, sampler: str = "nutpie") -> None:
    """Compile (or load from PyTensor's disk cache) the model a ``fit`` of these arguments needs, without sampling.

    Batch workers call it once before their first job, so that job pays no compile time;
    a later ``fit`` of the same shape only swaps its data in.
    """
    runs = runs if isinstance(runs, RunTable) else load_runs(runs)
    spec = load_spec(model)
    groups = tuple([group] if isinstance(group, str) else (group if group is not None else spec.group))
    if sampler in NUTPIE_SAMPLERS:
        design = make_design(spec, runs, groups)
        spec = resolve_centered(spec, design)  # what fit() samples, so the cache key matches
        _compiled(spec, design, spec.check_priors(0), sampler)


#: Largest posterior a fit may hold (chains × draws × stored values × 8 bytes): a typo such as
#: ``--draws 1000000000`` is refused up front instead of aborting in the sampler.
MAX_POSTERIOR_BYTES = 4 * 2**30
#: Rough cost model of NUTS on this package's laws, measured on a busy 2-core machine (1e5 runs:
#: ~0.2 µs per run per gradient, ~10 gradients per iteration once adapted): used only to warn.
SECONDS_PER_RUN_GRADIENT = 2e-7
GRADIENTS_PER_ITERATION = 10
#: Fits estimated to take longer than this warn up front, with the estimate and what to do.
SLOW_FIT_SECONDS = 600.0


def _check_size(spec: ModelSpec, design: Design, draws: int, chains: int) -> None:
    """Refuse a posterior too large to hold (estimate: stored values per draw × draws × chains)."""
    n_params = len(spec.law.parameter_names)
    per_draw = 2 * n_params + 2 + 8 + sum(len(spec.pooled) * (1 + 2 * len(levels)) for levels in design.levels.values())  # z + public, likelihood parameters, stats, tau/eta/by-level
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


def tidy_tree(raw: xr.DataTree, spec: ModelSpec, design: Design) -> xr.DataTree:
    """Keep the groups a fit needs, add public parameters, drop object-typed sampler stats."""
    posterior = raw["posterior"].to_dataset()
    posterior = posterior.assign(PosteriorView(spec, design, posterior).by_level())
    stats = raw["sample_stats"].to_dataset()
    stats = stats[[v for v in _KEEP_STATS if v in stats]]
    nodes = {"posterior": posterior, "sample_stats": stats, "observed_data": xr.Dataset({"log_loss": ("run", design.y)}, coords={"run": np.arange(design.y.size)})}
    if "constant_data" in raw.children:
        nodes["constant_data"] = raw["constant_data"].to_dataset()
    return xr.DataTree.from_dict({k: _plain(v) for k, v in nodes.items()})


#: Attributes that differ between identical runs; dropped so the same seed gives identical files.
_VOLATILE_ATTRS = ("created_at", "sampling_time", "tuning_steps")


def _plain(ds: xr.Dataset) -> xr.Dataset:
    ds = ds.copy()
    ds.attrs = {k: v for k, v in ds.attrs.items() if isinstance(v, (str, int, float)) and k not in _VOLATILE_ATTRS}
    return ds
