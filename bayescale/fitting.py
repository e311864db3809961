"""Fit a spec to runs with NUTS: ``fit`` checks its inputs, samples (``sampling``), judges
convergence and runs the self-check; the result is a ``Fit`` (``result``), saved and loaded by
``fitfile``.

``Fit``, ``save_fit``, ``load_fit`` and the names tests and scripts use are re-exported here, so
``bayescale.fitting`` stays the one import for fitting.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayescale.documents import Attempt, Diagnostics, FitInfo, ModelChoice, SelfCheck, Uncentering
from bayescale.errors import BayescaleError, ConvergenceWarning, RunTableError, SamplerError, check_count, check_seed
from bayescale.fitfile import MAX_LOAD_BYTES, load_fit
from bayescale.fitformat import FORMAT_VERSION, check_storable, content_hash, package_version, save_fit
from bayescale.modeldesign import Design
from bayescale.modeldesign import design as make_design
from bayescale.pooling import last_centering, other_centering, resolve_centered, switch_centering
from bayescale.posterior import SAMPLE_DIMS, judged_variables
from bayescale.progress import phase, show_progress
from bayescale.result import Fit, check_convergence
from bayescale.runs import RunTable, check_magnitudes, load_runs
from bayescale.sampling import ADAPTATIONS, NUTPIE_SAMPLERS, SAMPLERS, SamplerConfig, _adaptation, _check_size, _warn_if_slow, default_cores, prepare, sample, tidy_tree
from bayescale.spec import AUTO, ModelSpec, load_spec

__all__ = [
    "ADAPTATIONS",
    "FORMAT_VERSION",
    "MAX_LOAD_BYTES",
    "NUTPIE_SAMPLERS",
    "SAMPLERS",
    "SAMPLE_DIMS",
    "Diagnostics",
    "Fit",
    "SamplerConfig",
    "SamplerError",
    "check_convergence",
    "content_hash",
    "fit",
    "load_fit",
    "package_version",
    "prepare",
    "save_fit",
    "with_discrepancy",
]

#: Fewest draws per chain a fit takes: R-hat and ESS are undefined below this.
MIN_DRAWS = 4


def fit(
    runs: RunTable | str | Path | pd.DataFrame,
    model: str | Path | ModelSpec | Mapping[str, Any] | None = None,
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
    progress: bool | None = None,
    strict: bool = False,
    command: str | None = None,
    self_check: bool = True,
    self_check_draws: int = 400,
    prior: str | None = None,
) -> Fit:
    """Fit the spec ``model`` to ``runs`` and check convergence (warns ``ConvergenceWarning``).

    ``model=None`` (the default) chooses the law form, and on grouped tables the pooling, by
    forecasting: each candidate (``model_choice.candidate_specs``) is fitted at its posterior mode
    on the runs the self-check trains on and scored on the largest runs it holds out
    (``bayescale.model_choice``); ``info.model_choice`` records the scores and the choice. A given
    ``model`` (a shipped name, a path, a spec) is fitted as it is, recorded as no choice made.
    ``prior`` names a prior set (``"literature"``; ``ModelSpec.with_prior``) for that spec or every candidate.

    ``group`` names grouping column(s) over which the spec's pooled parameters vary
    (partial pooling); default: the spec's own ``pooling.group``. ``adaptation`` picks nutpie's
    mass matrix (``ADAPTATIONS``); default ``low_rank``, ``diag`` when a pooled parameter is
    non-centred. ``info`` records the pooled and centred parameters and the adaptation used.
    ``strict=True`` refuses implausible magnitudes in the runs (``runs.check_magnitudes``,
    e.g. tokens in billions without a unit) instead of warning. ``command`` is the command line
    that asked for this fit (the CLI passes it); it is kept in ``info`` too, so a report can show
    how to reproduce the fit.
    ``progress`` prints the fit's phases and sampling progress on stderr; default: on in a notebook
    (a Jupyter/IPython kernel), off in scripts and tests (``progress.show_progress``).
    ``self_check`` refits on the smaller runs (2 chains × ``self_check_draws`` draws and tuning
    steps, at most the fit's own; same compiled model) and forecasts the largest
    (``bayescale.self_check``); its residuals update the discrepancy scale τ, which otherwise
    stays at its prior.
    """
    seed = check_seed(seed)
    draws, tune, chains = check_count(draws, "draws"), check_count(tune, "tune"), check_count(chains, "chains")
    self_check_draws = check_count(self_check_draws, "self_check_draws")
    if draws < MIN_DRAWS:
        raise BayescaleError(f"draws={draws}: convergence (R-hat, ESS) cannot be judged on fewer than {MIN_DRAWS} draws per chain; use 1000 (or 200 for a first look)")
    runs, spec, groups = _inputs(runs, model, group, strict)
    _adaptation(adaptation, sampler, False)  # a bad sampler or adaptation fails before any work
    if model is None:  # what fails for the simplest candidate fails before the choice's work, as a given model's would
        from bayescale.model_choice import candidate_specs

        simplest = candidate_specs(runs, groups, prior)[0][0]  # not always Chinchilla: 5 compute-only runs take the compute law
        simplest_design = make_design(simplest, runs, groups)  # groups and the table checked first, as for a given model
        check_storable(runs, simplest, groups)
        _check_size(simplest, simplest_design, draws, chains)
    spec, choice = _choice(runs, model, spec, groups, seed, show_progress(progress), prior)
    design = make_design(spec, runs, groups)
    check_storable(runs, spec, groups)  # a table no fit file can hold fails now, not after sampling
    _check_size(spec, design, draws, chains)
    rule = "auto" if spec.centered == AUTO else "spec"
    spec = resolve_centered(spec, design)  # the fit keeps the resolved spec: exactly what was sampled
    cores = cores or default_cores(sampler, len(runs), chains)
    _warn_if_slow(len(runs), draws, tune, chains, cores)
    config = SamplerConfig(draws=draws, tune=tune, chains=chains, seed=seed, sampler=sampler, cores=cores, target_accept=target_accept, adaptation=adaptation, progress=show_progress(progress))
    prior_draws = spec.check_priors(0)  # initial values must not depend on the seed: a cached model serves every seed
    start = time.perf_counter()
    spec, tree, diagnostics, config, uncentered = _sample_uncentering(spec, design, prior_draws, config, adaptation, auto=rule == "auto")
    info = replace(_info(config, spec, groups, rule, time.perf_counter() - start, command, uncentered, runs.selection), model_choice=choice)
    result = Fit(tree=tree, spec=spec, runs=runs, groups=groups, diagnostics=diagnostics, seed=seed, sampler=sampler, info=info)
    check = _self_check(result, design, prior_draws, replace(config, draws=min(self_check_draws, draws), tune=min(self_check_draws, tune))) if self_check else None
    result = with_discrepancy(result, check).with_parameter_diagnostics()
    if not diagnostics.converged:
        warnings.warn(f"{spec.name} fit on {runs.source}: {diagnostics.message(info)}", ConvergenceWarning, stacklevel=2)
    return result


def _sample_uncentering(
    spec: ModelSpec, design: Design, prior_draws: dict[str, np.ndarray], config: SamplerConfig, adaptation: str | None, auto: bool
) -> tuple[ModelSpec, xr.DataTree, Diagnostics, SamplerConfig, Uncentering | None]:
    """Sample; if an auto-centred grouped fit did not converge, sample once more with the other
    parametrisation of its pooled levels (``pooling.other_centering``: the funnel's levels after
    divergences there, else all) and, if that fails too, once more with every pooled level
    non-centred (``pooling.last_centering``; small grouped tables, issue 26) when not tried yet.
    Keeps the best run (``_better``). Returns the run kept and, if it sampled again, every run's verdict."""
    first = (spec, *_sample_judged(spec, design, prior_draws, config, adaptation))
    diagnostics, tree = first[2], first[1]
    if not auto or diagnostics.converged or not design.groups or not spec.pooled:
        return (*first, None)
    switched = other_centering(spec, design.groups, tree["posterior"].to_dataset(), tree["sample_stats"].to_dataset()["diverging"].values)
    other = switch_centering(spec, switched)
    if config.progress:
        phase(f"not converged ({'; '.join(diagnostics.problems)}): sampling again with {', '.join(switched)} in the other centring")
    runs = [first, (other, *_sample_judged(other, design, prior_draws, config, adaptation))]
    last = None if runs[1][2].converged else last_centering(spec, (spec, other))
    if last is not None:
        if config.progress:
            phase(f"not converged either ({'; '.join(runs[1][2].problems)}): sampling again with every pooled level non-centred")
        runs.append((last, *_sample_judged(last, design, prior_draws, config, adaptation)))
    kept = 0
    for i in range(1, len(runs)):
        kept = i if _better(runs[i][2], runs[kept][2]) else kept
    attempts = tuple(Attempt.of(tuple(run[0].centered), run[2]) for run in runs)
    levels = tuple(p for p in spec.pooled if p in switched or any(p in a.centered for a in attempts))
    return (*runs[kept], Uncentering(levels if len(runs) > 2 else tuple(switched), diagnostics.divergences, attempts, kept))


def _better(second: Diagnostics, first: Diagnostics) -> bool:
    """Whether run ``second`` beats run ``first``: converged beats not, then fewer divergences, then the smaller largest R-hat (a tie keeps the first)."""

    def score(d: Diagnostics) -> tuple[bool, int, float]:
        return (not d.converged, d.divergences, d.rhat_max if np.isfinite(d.rhat_max) else np.inf)

    return score(second) < score(first)


def _sample_judged(spec: ModelSpec, design: Design, prior_draws: dict[str, np.ndarray], config: SamplerConfig, adaptation: str | None) -> tuple[xr.DataTree, Diagnostics, SamplerConfig]:
    """Sample ``spec`` (nutpie's mass matrix from ``adaptation`` or the centring) and judge convergence."""
    non_centered = bool(design.groups) and any(p not in spec.centered for p in spec.pooled)
    config = replace(config, adaptation=_adaptation(adaptation, config.sampler, non_centered))
    tree = tidy_tree(sample(spec, design, prior_draws, config), spec, design)
    return tree, check_convergence(tree, judged_variables(tree["posterior"].to_dataset(), spec)), config


def _choice(runs: RunTable, model: object, spec: ModelSpec, groups: tuple[str, ...], seed: int, progress: bool, prior: str | None) -> tuple[ModelSpec, ModelChoice]:
    """The spec to sample and how it was chosen: by forecasting (``model_choice.choose``) when no ``model`` was given;
    ``prior`` names a prior set (``ModelSpec.with_prior``) for the given spec or every candidate."""
    from bayescale import model_choice

    if model is not None:
        spec = spec if prior is None else spec.with_prior(prior)
        return spec, model_choice.forced(spec, "given by the caller")
    if progress:
        phase("choosing the law form by forecasting the largest runs from the rest (mode fits, no sampling)")
    return model_choice.choose(runs, groups, seed, prior)


def _inputs(
    runs: RunTable | str | Path | pd.DataFrame, model: str | Path | ModelSpec | Mapping[str, Any] | None, group: str | Sequence[str] | None, strict: bool
) -> tuple[RunTable, ModelSpec, tuple[str, ...]]:
    """The validated runs (a given ``RunTable`` is re-checked only for ``strict``), the spec, and the group columns (default: the spec's)."""
    if isinstance(runs, RunTable):
        problems = check_magnitudes(runs.column("params").astype(float), runs.column("tokens").astype(float), runs.source) if strict else []
        if problems:
            raise RunTableError(problems[0] + "; strict mode refuses suspicious magnitudes")
    else:
        runs = load_runs(runs, strict=strict)
    spec = load_spec("chinchilla" if model is None else model)
    groups = tuple([group] if isinstance(group, str) else (group if group is not None else spec.group))
    return runs, spec, groups


def _info(
    config: SamplerConfig, spec: ModelSpec, groups: tuple[str, ...], rule: str, seconds: float, command: str | None, uncentered: Uncentering | None, selection: Mapping[str, Any] | None
) -> FitInfo:
    """``Fit.info``: sampler settings, what was pooled and centred (and by which rule), timing, the command line and the row selection."""
    return FitInfo(
        seconds=seconds,
        draws=config.draws,
        tune=config.tune,
        chains=config.chains,
        target_accept=config.target_accept,
        adaptation=config.adaptation,
        pooled=tuple(spec.pooled) if groups else (),
        centered=tuple(spec.centered),
        centering=rule,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        command=command or None,
        uncentered=uncentered,
        selection=dict(selection) if selection else None,
    )


def _self_check(result: Fit, design: Design, prior_draws: dict[str, np.ndarray], config: SamplerConfig) -> SelfCheck:
    """The fit's own leave-future-out check (``self_check.run``), or the reason it was skipped."""
    from bayescale import self_check
    from bayescale.progress import phase

    if config.progress:
        phase(f"self-check: refitting on the smaller runs ({config.draws} draws per chain) to forecast the largest")
    try:
        return self_check.run(result, design, prior_draws, config)
    except self_check.Skip as exc:
        return SelfCheck.skip(str(exc))


def with_discrepancy(result: Fit, check: SelfCheck | None) -> Fit:
    """``result`` with its self-check stored and, if the spec enables the discrepancy, exact draws
    of τ (prior updated by the self-check's residuals) and u added to the posterior."""
    from bayescale.discrepancy import draw_tau

    post = result.posterior.drop_vars(["discrepancy_tau", "discrepancy_u"], errors="ignore")
    if result.spec.discrepancy.enabled:
        residuals = check.residuals() if check is not None else ((), (), ())
        tau, u = draw_tau(result.spec.discrepancy.scale, (post.sizes["chain"], post.sizes["draw"]), result.seed, *residuals)
        post = post.assign(discrepancy_tau=(SAMPLE_DIMS, tau), discrepancy_u=(SAMPLE_DIMS, u))
    return replace(result.with_posterior(post), self_check=check)
