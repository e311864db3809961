"""Posterior forecasts: evaluate the fitted law on its posterior draws at new targets.

The law's own ``log_loss`` runs on numpy draws (no PyMC recompilation). Targets in a group
seen at fit time use that group's offsets; unseen groups (or targets without the column)
get fresh draws from the population level. Work is chunked over targets to bound memory.
``forecast`` keeps every draw (the joint predictive); ``forecast_summary`` keeps only per-target
quantiles and is built for 10⁵ targets and more (see its docstring).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from bayescale import evaluate
from bayescale.discrepancy import shift_per_draw, target_distance
from bayescale.errors import BayescaleError, ExtrapolationWarning, RunTableError, check_probability, check_seed
from bayescale.laws.ops import NUMPY_FAST
from bayescale.order_stats import NUMBA_MIN_ELEMENTS, row_order_stats
from bayescale.posterior import LevelOffsets, PosteriorView
from bayescale.runs import parse_numeric_column, read_table

if TYPE_CHECKING:
    from bayescale.fitted import Fitted
    from bayescale.groups import Grouped

#: Largest number of (chain × draw × target) values ``forecast`` evaluates at once.
CHUNK_ELEMENTS = 4_000_000
#: Values (draw × target) one thread of ``forecast_summary`` evaluates at once, set by measurement:
#: smaller blocks pay numpy's per-call overhead, larger ones spill their temporaries out of cache.
SUMMARY_BLOCK_ELEMENTS = 262_144
#: Targets outside these ranges are rejected as typos (a unit slip such as 70 for 70B).
SENSIBLE_RANGE = {"params": (1e3, 1e16), "active_params": (1e3, 1e16), "tokens": (1e3, 1e18), "unique_tokens": (1e3, 1e18), "flops": (1e6, 1e35)}
#: Forecasts beyond this multiple of the largest fitted compute carry an ExtrapolationWarning.
EXTRAPOLATION_WARN = 100.0


#: Columns (and draw dimensions) a forecast adds to its targets: a target column by one of these names would be overwritten or duplicated.
OUTPUT_COLUMNS = frozenset({"loss", "loss_pred", "target", "chain", "draw"} | {f"{p}_{s}" for p in ("loss", "mean") for s in ("median", "lo", "hi")})


def target_table(fit: Grouped, targets: Any = None, *, group_values: Mapping[str, Any] | None = None, new_group: bool = False, rename: Mapping[str, str] | None = None, **columns: Any) -> pd.DataFrame:
    """Normalise targets (DataFrame, mapping, CSV path or keyword columns) to a parsed DataFrame.

    Numeric inputs of the law are parsed with units; ``flops`` defaults to 6·N·D and
    ``unique_tokens`` to ``tokens`` (no repetition). Every other column is kept as given.
    ``rename`` maps canonical names to the table's own headers (as ``load_runs(columns=)``).
    On a grouped fit each target's group (its column, or ``group_values`` for all targets) must
    name a seen level (matched ignoring case) unless ``new_group=True``; see ``bayescale.groups``.
    The table then gets the canonical level and a ``new_group`` column.
    """
    from bayescale.groups import check_group_request

    check_group_request(fit, group_values, new_group)
    if targets is None:
        if not columns:
            raise RunTableError("no forecast targets given: pass a table or params=..., tokens=...")
        targets = {k: np.atleast_1d(v).tolist() for k, v in columns.items() if v is not None}
    elif columns:
        raise RunTableError("pass targets either as a table or as keyword columns, not both")
    source = "targets"
    if isinstance(targets, (str, Path)):
        source = str(targets)
        frame = read_table(Path(targets))
        from_file = True
    else:
        try:
            frame = pd.DataFrame(dict(targets) if isinstance(targets, Mapping) else targets).copy()
        except ValueError as exc:
            raise RunTableError(f"targets: cannot build a table: {exc}") from None
        from_file = False
    if rename:
        from bayescale.runs import _apply_column_map

        frame = _apply_column_map(frame, rename, source)
    if len(frame) == 0:
        raise RunTableError(f"{source}: no forecast targets (the table is empty)")
    taken = [c for c in frame.columns if str(c) in OUTPUT_COLUMNS]
    if taken:
        raise RunTableError(f"{source}: column {taken[0]!r} is a column the forecast writes ({', '.join(sorted(OUTPUT_COLUMNS))}); drop or rename it (e.g. when forecasting from a previous forecast)")
    law = fit.spec.law
    out = frame.copy()
    numeric = [c for c in ("params", "tokens", "unique_tokens", "flops", "experts", "active_params") if c in frame.columns]
    for column in numeric:
        out[column] = parse_numeric_column(frame, column, source, from_file)
    for column, (low, high) in SENSIBLE_RANGE.items():
        if column in numeric:
            values = out[column].to_numpy(dtype=float)
            bad = np.flatnonzero((values < low) | (values > high))
            if bad.size:
                raise RunTableError(f"{source}: row {bad[0] + 1}, column {column!r}: {values[bad[0]]:.4g} is outside any sensible range [{low:.0e}, {high:.0e}]; check the units (e.g. 70B, not 70)")
    if "flops" in law.inputs and "flops" not in out.columns and {"params", "tokens"} <= set(out.columns):
        out["flops"] = 6.0 * out["params"] * out["tokens"]
    if "unique_tokens" in law.inputs and "unique_tokens" not in out.columns and "tokens" in out.columns:
        out["unique_tokens"] = out["tokens"]
    missing = [c for c in law.inputs if c not in out.columns]
    if missing:
        raise RunTableError(f"{source}: the {law.name} law needs column(s) {', '.join(missing)} to forecast; the targets have {', '.join(map(str, frame.columns))}")
    if "unique_tokens" in out.columns and "tokens" in out.columns:
        bad = np.flatnonzero(out["tokens"].to_numpy() < out["unique_tokens"].to_numpy() * (1 - 1e-9))
        if bad.size:
            raise RunTableError(f"{source}: row {bad[0] + 1}: tokens < unique_tokens")
    return _target_groups(fit, out.reset_index(drop=True), group_values, new_group, source)


def _target_groups(fit: Grouped, out: pd.DataFrame, group_values: Mapping[str, Any] | None, new_group: bool, source: str) -> pd.DataFrame:
    """Each target's group as the canonical seen level (or a new group's label) plus a ``new_group`` column."""
    from bayescale.groups import resolve_levels

    if not fit.groups:
        return out
    if "new_group" in out.columns:
        raise RunTableError(f"{source}: the targets have a column 'new_group', which the forecast writes; rename it (or use new_group=True / --new-group)")
    for g in fit.groups:  # a target column that differs from a group only in case would be silently ignored
        twins = [c for c in out.columns if str(c) != g and str(c).casefold() == g.casefold()]
        if twins:
            raise RunTableError(f"{source}: target column {twins[0]!r} collides with the fit's group {g!r} (they differ only in case); name it {g!r}")
    for g, value in (group_values or {}).items():
        if g in out.columns:
            raise RunTableError(f"{source}: group {g!r} given both as a target column and as a group value; give it once")
        out[g] = _levels_per_target(g, value, len(out), source)
    new = np.zeros(len(out), dtype=bool)
    for g in fit.groups:
        values = out[g].to_numpy(dtype=object) if g in out.columns else np.full(len(out), None, dtype=object)
        out[g], is_new = resolve_levels(fit, g, values, new_group)
        new |= is_new
    out["new_group"] = new
    return out


def _levels_per_target(column: str, value: Any, n_targets: int, source: str) -> Any:
    """A group value for every target: one level for all, or a list of one level per target."""
    if not np.ndim(value):
        return value
    levels = np.ravel(np.asarray(value, dtype=object))
    if levels.size == 1:
        return levels[0]
    if levels.size != n_targets:
        raise RunTableError(f"{source}: group_values[{column!r}] gives {levels.size} levels for {n_targets} targets; give one level, or one per target")
    return levels


def _group_effects(fit: Fitted, frame: pd.DataFrame, view: PosteriorView, rng: np.random.Generator, stacklevel: int | None = 4) -> tuple[list[LevelOffsets], list[np.ndarray]]:
    """Per group column: the pooled offsets over its seen levels, then fresh population draws
    for unseen ones (``PosteriorView.offsets``), and each target's index into those levels;
    unseen levels warn at ``stacklevel`` (None: the caller asked for a new group and says so itself).

    Offsets stay (chain, draw, levels): targets index them chunk by chunk, never all at once.
    """
    levels = fit.design.levels
    offsets, indices = [], []
    unseen_report = []
    for g in fit.groups:
        values = frame[g].to_numpy(dtype=object) if g in frame.columns else np.full(len(frame), None, dtype=object)
        known = {v: i for i, v in enumerate(levels[g])}
        new_levels = sorted({v for v in values if v not in known}, key=str)
        if new_levels:
            unseen_report.append(f"{g}={', '.join('(none)' if v is None else str(v) for v in new_levels)}")
        lookup = {**known, **{v: len(known) + i for i, v in enumerate(new_levels)}}
        indices.append(np.array([lookup[v] for v in values], dtype=np.int64))
        offsets.append(view.offsets(g, rng, len(new_levels)))
    if unseen_report and stacklevel is not None:
        warnings.warn(
            f"forecast targets in group(s) not seen at fit time ({'; '.join(unseen_report)}): forecasting them from the population level (wider intervals)",
            UserWarning,
            stacklevel=stacklevel,
        )
    return offsets, indices


def _chunks(fit: Fitted, frame: pd.DataFrame, seed: int, stacklevel: int | None):
    """Yield ``(lo, hi, mean, pred)`` over target chunks; each array is (chain, draw, hi - lo)."""
    law = fit.spec.law
    view = PosteriorView.of(fit)
    rng = np.random.default_rng(seed)
    chains, draws = view.shape
    offsets, indices = _group_effects(fit, frame, view, rng, stacklevel)
    sigma = view.sigma()[..., None]
    # the family's parameters as (1, chain, draw): noise is drawn target-major
    noise_values = {k: np.moveaxis(np.broadcast_to(np.asarray(v)[..., None], (chains, draws, 1)), -1, 0) for k, v in view.likelihood_values().items()}
    shift = shift_per_draw(fit)
    dist = target_distance(fit, frame) if shift is not None else None
    logs = view.log_inputs(frame)
    n = len(frame)
    step = max(1, CHUNK_ELEMENTS // (chains * draws))
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        public = view.public(view.z_at(offsets, [index[lo:hi] for index in indices]))
        x = {c: v[lo:hi] for c, v in logs.items()}
        near = None if dist is None or shift is None else dist[lo:hi]  # model discrepancy: zero inside the data's range
        mu = np.broadcast_to(evaluate.log_loss(law, public, x, None if shift is None else shift[..., None], near)[1], (chains, draws, hi - lo))
        # noise is drawn target by target (target-major), so the draws do not depend on chunking
        noise = np.moveaxis(fit.spec.likelihood.unit_noise(rng, noise_values, (hi - lo, chains, draws)), 0, -1)
        yield lo, hi, np.exp(mu), np.exp(mu + sigma * noise)


def forecast(
    fit: Fitted, targets: Any = None, *, seed: int = 0, group_values: Mapping[str, Any] | None = None, new_group: bool = False, rename: Mapping[str, str] | None = None, **columns: Any
) -> xr.Dataset:
    """Loss at each target for every posterior draw: dims ``(chain, draw, target)``.

    ``loss`` is the law's mean curve; ``loss_pred`` adds observation noise (the posterior
    predictive). Both carry the model discrepancy ``τ·d·u`` beyond the runs' range
    (``bayescale.discrepancy``; zero inside it). Target columns are kept as coordinates along
    ``target``. For many targets where only intervals are needed, ``forecast_summary`` keeps
    memory bounded. Grouped fits: ``group_values={"dataset": "web"}`` (or a column) names seen
    levels; ``new_group=True`` allows new, unseen groups (see ``target_table``).
    """
    check_seed(seed)
    frame = target_table(fit, targets, group_values=group_values, new_group=new_group, rename=rename, **columns)
    warn_extrapolation(fit, frame)
    return _forecast_frame(fit, frame, seed, stacklevel=5)


def plan_forecast(fit: Fitted, params: Any, tokens: Any, unique_tokens: Any = None, *, seed: int = 0, group_values: Mapping[str, Any] | None = None, new_group: bool = False) -> xr.Dataset:
    """``forecast`` at plans (N, D[, unique tokens]) chosen by the package (``allocate``, ``decide``):
    the predictive loss of the runs one would train there, with the discrepancy and noise, the
    same numbers ``forecast(fit, params=…, tokens=…, seed=seed)`` gives. The plans skip the range
    checks and warnings meant for typed targets (an allocation may go far beyond the runs).
    ``unique_tokens`` (repeat-aware laws) is capped at the tokens, as the law sees it.
    """
    check_seed(seed)
    law = fit.spec.law
    n, d = np.atleast_1d(np.asarray(params, dtype=float)), np.atleast_1d(np.asarray(tokens, dtype=float))
    frame = pd.DataFrame({"params": n, "tokens": d})
    if "flops" in law.inputs:
        frame["flops"] = 6.0 * frame["params"] * frame["tokens"]
    if "unique_tokens" in law.inputs:
        frame["unique_tokens"] = d if unique_tokens is None else np.minimum(np.broadcast_to(np.asarray(unique_tokens, dtype=float), d.shape), d)
    missing = [c for c in law.inputs if c not in frame.columns]
    if missing:
        raise BayescaleError(f"the {law.name} law needs {', '.join(missing)}; plans give only params and tokens")
    return _forecast_frame(fit, _target_groups(fit, frame, group_values, new_group, "plans"), seed, stacklevel=None)


def _forecast_frame(fit: Fitted, frame: pd.DataFrame, seed: int, stacklevel: int | None) -> xr.Dataset:
    """The forecast Dataset of a parsed target table (see ``forecast``)."""
    post = fit.posterior
    chains, draws, n = post.sizes["chain"], post.sizes["draw"], len(frame)
    mean = np.empty((chains, draws, n))
    pred = np.empty((chains, draws, n))
    for lo, hi, m, p in _chunks(fit, frame, seed, stacklevel):
        mean[..., lo:hi], pred[..., lo:hi] = m, p
    coords = {"chain": post["chain"].values, "draw": post["draw"].values, "target": np.arange(n)}
    coords.update({c: ("target", frame[c].to_numpy()) for c in frame.columns})
    return xr.Dataset(
        {"loss": (("chain", "draw", "target"), mean), "loss_pred": (("chain", "draw", "target"), pred)},
        coords=coords,
        attrs={"model": fit.spec.name, "seed": seed},
    )


def forecast_summary(
    fit: Fitted,
    targets: Any = None,
    *,
    ci: float = 0.9,
    seed: int = 0,
    group_values: Mapping[str, Any] | None = None,
    new_group: bool = False,
    rename: Mapping[str, str] | None = None,
    **columns: Any,
) -> pd.DataFrame:
    """Per-target intervals (the columns of ``forecast_table``) without materialising the draws.

    Built for many targets: the law runs in float32 on cache-sized blocks of targets spread over
    threads, and memory stays bounded by a few blocks. Each target's predictive interval is exact
    for its own marginal, but one noise draw per posterior draw is shared across targets, so
    use ``forecast`` for joint draws (e.g. the difference between two targets). Groups as in ``forecast``.
    """
    check_probability(ci)
    check_seed(seed)
    frame = target_table(fit, targets, group_values=group_values, new_group=new_group, rename=rename, **columns)
    warn_extrapolation(fit, frame)
    qs = np.array([0.5, (1 - ci) / 2, (1 + ci) / 2])
    mean, pred = _marginal_quantiles(fit, frame, qs, seed)
    out = {f"{prefix}_{stat}": values[:, i] for prefix, values in (("loss", pred), ("mean", mean)) for i, stat in enumerate(("median", "lo", "hi"))}
    return pd.concat([frame, pd.DataFrame(out)], axis=1)


def _marginal_quantiles(fit: Fitted, frame: pd.DataFrame, qs: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Quantiles ``qs`` of the mean curve and of the predictive loss per target: two (target, q) arrays."""
    law = fit.spec.law
    view = PosteriorView.of(fit)
    threads = forecast_threads()
    rng = np.random.default_rng(seed)
    chains, draws = view.shape
    n_draws = chains * draws
    offsets, indices = _group_effects(fit, frame, view, rng)
    noise_values = {k: np.broadcast_to(v, (chains, draws)).reshape(n_draws) for k, v in view.likelihood_values().items()}
    noise = (view.sigma().reshape(n_draws) * fit.spec.likelihood.unit_noise(rng, noise_values, (n_draws,))).astype(np.float32)
    logs = view.log_inputs(frame)
    shift = shift_per_draw(fit)
    dist = target_distance(fit, frame).astype(np.float32) if shift is not None else None
    shift = None if shift is None else shift.reshape(1, n_draws).astype(np.float32)
    n = len(frame)
    mean, pred = np.empty((n, len(qs))), np.empty((n, len(qs)))

    def public_values(lo: int, hi: int) -> dict[str, np.ndarray]:
        z = view.z_at(offsets, [index[lo:hi] for index in indices])  # (chain, draw, target) -> (target, draw)
        return {k: np.asarray(v, dtype=np.float32) for k, v in view.public({p: v.reshape(n_draws, -1).T for p, v in z.items()}).items()}

    shared = None if offsets else public_values(0, n)  # without groups every target shares the draws

    def block(lo: int) -> None:
        hi = min(n, lo + step)
        public = shared if shared is not None else public_values(lo, hi)
        x = {c: v[lo:hi, None].astype(np.float32) for c, v in logs.items()}
        with np.errstate(divide="ignore"):  # float32 flushes tiny floors (token_crisis) to 0: log 0 = -inf is meant
            near = None if dist is None else dist[lo:hi, None]  # element by element: independent of block size
            mu = np.broadcast_to(evaluate.log_loss(law, public, x, shift, near, ops=NUMPY_FAST)[1], (hi - lo, n_draws))
        mean[lo:hi] = quantiles_of_exp(mu, None)
        pred[lo:hi] = quantiles_of_exp(mu, noise)

    step = max(1, SUMMARY_BLOCK_ELEMENTS // n_draws)
    quantiles_of_exp = _row_quantiles_of_exp(qs, n_draws, use_numba=n * n_draws >= NUMBA_MIN_ELEMENTS)
    starts = range(0, n, step)
    if len(starts) == 1 or threads == 1:
        for lo in starts:
            block(lo)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(block, starts))
    return mean, pred


def _row_quantiles_of_exp(qs: np.ndarray, n_columns: int, use_numba: bool):
    """A function giving quantiles ``qs`` of ``exp(row + noise)`` per row of ``n_columns`` values,
    interpolated like ``np.quantile``'s default ('linear'); the ranks it needs are found once."""
    pos = qs * (n_columns - 1)
    below = np.floor(pos).astype(np.int64)
    above = np.minimum(below + 1, n_columns - 1)
    ranks, where = np.unique(np.concatenate([below, above]), return_inverse=True)

    def quantiles(log_values: np.ndarray, noise: np.ndarray | None) -> np.ndarray:
        stats = np.exp(row_order_stats(log_values, ranks, noise, force_numba=use_numba).astype(float))
        low, high = stats[:, where[: qs.size]], stats[:, where[qs.size :]]
        return low + (high - low) * (pos - below)

    return quantiles


def forecast_threads() -> int:
    """Threads for bulk forecasts: ``BAYESCALE_NUM_THREADS`` if set, else the cores this process may use."""
    configured = os.environ.get("BAYESCALE_NUM_THREADS", "").strip()
    if configured:
        if not configured.isdigit() or int(configured) < 1:
            raise BayescaleError(f"BAYESCALE_NUM_THREADS={configured!r} must be a positive integer")
        return int(configured)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def extrapolation_factor(fit: Fitted, frame: pd.DataFrame) -> np.ndarray:
    """Compute of each target over the largest fitted compute of its group (all runs when ungrouped).

    Targets are parsed tables (see ``target_table``); a target in a group seen at fit time is
    measured against that group's runs, since each group's law is pinned down by its own data.
    """
    flops = frame["flops"].to_numpy(dtype=float) if "flops" in frame.columns else 6.0 * frame["params"].to_numpy(dtype=float) * frame["tokens"].to_numpy(dtype=float)
    runs = fit.runs.data
    reference = np.full(len(frame), float(runs["flops"].max()))
    for g in fit.groups:
        if g not in frame.columns:
            continue
        group_max = runs.groupby(runs[g].astype(str))["flops"].max()
        values = frame[g].astype(str).to_numpy()
        seen = np.isin(values, group_max.index)
        reference[seen] = np.minimum(reference[seen], group_max.reindex(values[seen]).to_numpy())
    return flops / reference


def warn_extrapolation(fit: Fitted, frame: pd.DataFrame, what: str = "forecast target(s)") -> None:
    """One ``ExtrapolationWarning`` (at the caller's caller) when targets need over ``EXTRAPOLATION_WARN`` times the largest fitted compute."""
    if "flops" not in frame.columns and not {"params", "tokens"} <= set(frame.columns):
        return
    factor = extrapolation_factor(fit, frame)
    far = factor > EXTRAPOLATION_WARN
    if far.any():
        scope = " of its group" if fit.groups else ""
        warnings.warn(
            f"{int(far.sum())} {what} need up to {factor.max():.3g}x the compute of the largest fitted run{scope} "
            f"(warning above {EXTRAPOLATION_WARN:g}x): intervals widen with the model discrepancy but are untested that far out; check with a backtest",
            ExtrapolationWarning,
            stacklevel=3,
        )


def forecast_table(ds: xr.Dataset, ci: float = 0.9) -> pd.DataFrame:
    """Per target: its input columns, then ``loss_median, loss_lo, loss_hi`` (predictive) and ``mean_*`` (mean curve)."""
    check_probability(ci)
    qs = [0.5, (1 - ci) / 2, (1 + ci) / 2]
    columns = [c for c in ds.coords if c not in ("chain", "draw", "target")]
    table = pd.DataFrame({c: ds[c].values for c in columns})
    for name, prefix in (("loss_pred", "loss"), ("loss", "mean")):
        flat = ds[name].transpose("chain", "draw", "target").values.reshape(-1, ds.sizes["target"])
        for stat, values in zip(("median", "lo", "hi"), np.quantile(flat, qs, axis=0), strict=True):
            table[f"{prefix}_{stat}"] = values
    return table
