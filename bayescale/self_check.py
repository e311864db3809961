"""The self-check every fit runs: a leave-future-out backtest on its own largest runs.

The runs are split by compute: the top ``HOLDOUT_SHARE`` of the log-compute range is held out
(at least ``MIN_TEST`` runs). The same compiled model is refitted on the rest — held-out runs
get likelihood weight 0 (``run_weight``), so the graph, its shape and nutpie's compiled model
are unchanged — with few draws, and forecasts the held-out runs. The result says how far the
fit's own forecasts held beyond its data (``extrapolation``, ``median_abs_log_error``,
``coverage_90``, ``n_test``), and its residuals update the discrepancy scale τ
(``discrepancy.tau_log_density``). Grouped fits need ``MIN_GROUP_TRAIN`` training runs in every
group: if one compute cutoff for all leaves a group short, each group is split at its own
cutoff; if that fails too the check is skipped and the reason stored.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from bayescale import evaluate
from bayescale.discrepancy import draw_tau, target_distance
from bayescale.documents import SelfCheck
from bayescale.errors import BayescaleError
from bayescale.model import data_values
from bayescale.modeldesign import Design, design
from bayescale.runs import RunTable
from bayescale.spec import Discrepancy

if TYPE_CHECKING:
    from bayescale.fitted import Fitted
    from bayescale.result import Fit
    from bayescale.sampling import SamplerConfig

#: Share of the log-compute range held out (the largest runs).
HOLDOUT_SHARE = 0.27
MIN_TEST = 3
MIN_GROUP_TRAIN = 3
#: Chains of the self-check refit (its draws and tuning steps are the fit option ``self_check_draws``).
CHAINS = 2


class Skip(BayescaleError):
    """The runs cannot support a self-check; the message is the stated reason."""


def split(runs: RunTable, groups: Sequence[str]) -> tuple[np.ndarray, str]:
    """Held-out mask (the largest runs by compute) and how it was chosen; ``Skip`` when impossible."""
    log_c = np.log10(runs.column("flops").astype(float))

    def top(values: np.ndarray) -> np.ndarray:
        lo, hi = values.min(), values.max()
        held = values > hi - HOLDOUT_SHARE * (hi - lo)
        if held.sum() < MIN_TEST and values.size > MIN_TEST:
            held = values >= np.sort(values)[-MIN_TEST]
        return held

    held = top(log_c)
    if not groups:
        return held, "compute"
    keys = runs.data[list(groups)].astype(str).agg("|".join, axis=1).to_numpy()

    sizes = {k: int(np.sum(keys == k)) for k in np.unique(keys)}

    def short(mask: np.ndarray) -> list[str]:
        return [k for k, n in sizes.items() if np.sum((keys == k) & ~mask) < min(MIN_GROUP_TRAIN, n)]

    if not short(held):
        return held, "compute"
    per_group = np.zeros(len(runs), dtype=bool)
    for k in sizes:  # each group's own largest runs, where enough remain to train on
        idx = np.flatnonzero(keys == k)
        own = top(log_c[idx])
        per_group[idx] = own if idx.size - own.sum() >= MIN_GROUP_TRAIN else False
    if per_group.sum() < MIN_TEST:
        raise Skip(f"too few runs per group to hold out at least {MIN_TEST} of the largest and keep {MIN_GROUP_TRAIN} per group to train on")
    return per_group, "compute within each group"


def _subset(runs: RunTable, mask: np.ndarray, label: str) -> RunTable:
    return RunTable(runs.data[mask].reset_index(drop=True), source=f"{runs.source} (self-check {label})", extra_columns=runs.extra_columns)


def run(fit: Fitted, full_design: Design, prior_draws: dict[str, np.ndarray], config: SamplerConfig) -> SelfCheck:
    """Refit ``fit``'s spec on its smaller runs, forecast the largest, and score the forecasts.

    ``config`` is the fit's sampler options with the self-check's draws and tuning steps; the
    refit uses at most ``CHAINS`` chains and reports progress as the fit does.

    Returns the ``SelfCheck`` document (headline, detail, and per held-out run the residuals
    that update τ). Raises ``Skip`` with the reason when the runs cannot support it.
    """
    from bayescale.posterior import judged_variables
    from bayescale.result import Fit, check_convergence
    from bayescale.sampling import sample, tidy_tree

    start = time.perf_counter()
    spec, runs, groups = fit.spec, fit.runs, fit.groups
    held, how = split(runs, groups)
    train, test = _subset(runs, ~held, "train"), _subset(runs, held, "held out")
    try:
        train_design = design(spec, train, groups)
    except BayescaleError as exc:
        raise Skip(f"the smaller runs alone cannot identify the law: {exc}") from None
    if any(train_design.levels[g] != full_design.levels[g] for g in groups):
        raise Skip("a group has no runs below the self-check's compute cutoff")
    values = data_values(full_design)
    values.update({f"centre_{c}": np.asarray(v) for c, v in train_design.centres.items()})  # centres of the training part
    values["run_weight"] = (~held).astype(float)
    chains = min(CHAINS, fit.info.chains or CHAINS)
    config = dataclasses.replace(config, chains=chains, cores=min(config.cores or chains, chains))
    raw = sample(spec, full_design, prior_draws, config, values)
    tree = tidy_tree(raw, spec, train_design)
    plain = dataclasses.replace(spec, discrepancy=Discrepancy(enabled=False, scale=spec.discrepancy.scale))
    trained = Fit(tree=tree, spec=plain, runs=train, groups=groups, diagnostics=check_convergence(tree, judged_variables(tree["posterior"].to_dataset(), spec)), seed=fit.seed, sampler=fit.sampler)
    return dataclasses.replace(score(trained, test), split=how, seconds=time.perf_counter() - start)


def score(trained: Fit, test: RunTable) -> SelfCheck:
    """Forecast ``test`` from ``trained`` (discrepancy at its prior) and build the self-check document."""
    from bayescale.forecasting import extrapolation_factor, target_table
    from bayescale.validate.metrics import coverage

    targets = test.data.drop(columns=["loss"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = trained.forecast(targets, seed=trained.seed)
        frame = target_table(trained, targets)
    samples = np.log(ds["loss_pred"].transpose("chain", "draw", "target").values.reshape(-1, len(test)))
    observed = np.log(test.column("loss").astype(float))
    dist = target_distance(trained, test.data)
    if trained.spec.discrepancy.scale > 0:
        tau, u = draw_tau(trained.spec.discrepancy.scale, (samples.shape[0],), trained.seed)
        shifted = evaluate.with_discrepancy(samples, (tau * u)[:, None], dist[None, :])
    else:  # pragma: no cover - scale is validated > 0
        shifted = samples
    factor = extrapolation_factor(trained, frame)
    covered = coverage(shifted, observed, 0.9)
    return SelfCheck(
        extrapolation=float(factor.max()),
        median_abs_log_error=float(np.median(np.abs(np.median(shifted, axis=0) - observed))),
        coverage_90=covered,
        n_test=len(test),
        coverage_50=coverage(shifted, observed, 0.5),
        n_train=len(trained.runs),
        covered_90=round(covered * len(test)),
        cutoff_flops=float(trained.runs.column("flops").max()),
        converged=bool(trained.converged),
        log_error=tuple((observed - samples.mean(axis=0)).tolist()),
        sd=tuple(samples.std(axis=0).tolist()),
        distance=tuple(dist.tolist()),
    )
