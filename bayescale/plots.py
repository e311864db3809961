"""Figures for notebooks, the README and reports: matplotlib, computed from the public API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from numpy.typing import ArrayLike

    from bayescale.design import NextRuns
    from bayescale.fitted import Fitted


def _figure_of(ax: Axes) -> Figure:
    """The figure holding an axes the caller passed in (typed as a ``Figure``: the plots return it)."""
    return cast("Figure", ax.figure)


#: IsoFLOP lines are found as modes of log10 compute, smoothed with this width (decades): wide
#: enough for digitised points (Chinchilla's scatter ±0.1 decade), narrow enough to split 6e18 from 1e19.
ISOFLOP_BANDWIDTH = 0.06
#: A run belongs to the line whose mode is within this many decades of its compute.
ISOFLOP_REACH = 0.15
#: Planned on lines: 2 to ISOFLOP_MAX_LINES lines of ISOFLOP_MIN_RUNS runs and ISOFLOP_MIN_SIZES sizes
#: or more, holding 80% of the runs.
ISOFLOP_MIN_SIZES = 3
ISOFLOP_MIN_RUNS = 5
#: Lines stand apart: their spread is at most this share of the spacing between neighbouring lines
#: (Chinchilla's digitised lines ~0.2; compute bands that tile scattered runs ~0.29).
ISOFLOP_SPREAD_PER_SPACING = 0.25
ISOFLOP_MAX_LINES = 12
#: Largest median standard deviation of log10 compute on a line: planned lines are tight (digitised
#: Chinchilla points ~0.056), compute bands cut from scattered runs are not (~0.08).
ISOFLOP_SPREAD = 0.065


def isoflop_lines(runs: pd.DataFrame) -> np.ndarray | None:
    """Each run's isoFLOP line (an index; -1 off every line) if the runs were planned on such lines, else None.

    Planned on lines means few distinct compute budgets with several model sizes each, as in an
    isoFLOP study; a grid of sizes × token counts or scattered runs are not.
    """
    log_c = np.log10(runs["flops"].to_numpy(dtype=float))
    step = ISOFLOP_BANDWIDTH / 4
    grid = np.arange(log_c.min() - 3 * ISOFLOP_BANDWIDTH, log_c.max() + 3 * ISOFLOP_BANDWIDTH + step, step)
    density = np.exp(-0.5 * ((grid[:, None] - log_c[None, :]) / ISOFLOP_BANDWIDTH) ** 2).sum(axis=1)
    peaks = grid[1:-1][(density[1:-1] > density[:-2]) & (density[1:-1] >= density[2:])]
    distance = np.abs(log_c[:, None] - peaks[None, :])
    line = np.where(distance.min(axis=1) <= ISOFLOP_REACH, distance.argmin(axis=1), -1)
    frame = pd.DataFrame({"line": line, "size": np.round(np.log10(runs["params"].to_numpy(dtype=float)), 2), "log_c": log_c})
    stats = frame[frame["line"] >= 0].groupby("line").agg(sizes=("size", "nunique"), runs=("size", "size"), spread=("log_c", "std"))
    full = stats.index[(stats["sizes"] >= ISOFLOP_MIN_SIZES) & (stats["runs"] >= ISOFLOP_MIN_RUNS)]
    on_full = np.isin(line, full)
    if not 2 <= len(full) <= ISOFLOP_MAX_LINES or on_full.mean() < 0.8 or not float(stats.loc[full, "spread"].median()) <= ISOFLOP_SPREAD:
        return None
    spacing = float(np.median(np.diff(np.sort(peaks[full]))))  # lines stand apart: narrow for their spacing
    if float(stats.loc[full, "spread"].median()) > ISOFLOP_SPREAD_PER_SPACING * spacing:
        return None
    return np.where(on_full, line, -1)


def plot_isoflop_profiles(fit: Fitted, bins: int = 6, ci: float = 0.9, ax: Axes | None = None, group_values: Mapping[str, Any] | None = None, new_group: bool = False) -> Figure:
    """Observed runs grouped by compute, with the posterior mean curve and ``ci`` band along each isoFLOP.

    Runs planned on isoFLOP lines (``isoflop_lines``) are drawn line by line; other runs are binned
    by log compute into ``bins`` bands. Each curve holds compute at the line's (bin's) median and
    varies the parameter count across its range (tokens = C / 6N). Grouped fits: the curves are for
    ``group_values``/``new_group`` (as in ``forecast``); a seen level shows only its own runs.
    """
    import matplotlib.pyplot as plt

    from bayescale.forecasting import forecast, forecast_table
    from bayescale.groups import resolve_request

    resolved = resolve_request(fit, group_values, new_group)
    runs = fit.runs.data
    for g, (level, is_new) in resolved.items():
        if not is_new:
            runs = runs[runs[g].astype(str) == level]
    if ax is None:
        fig, ax = plt.subplots(figsize=(7.5, 4.8))
    else:
        fig = _figure_of(ax)
    lines = isoflop_lines(runs)
    if lines is not None:
        labels = np.unique(lines[lines >= 0])
        which = np.searchsorted(labels, lines)
        which[lines < 0] = -1
        bins = len(labels)
    else:
        log_c = np.log10(runs["flops"].to_numpy())
        edges = np.quantile(log_c, np.linspace(0, 1, bins + 1))
        which = np.clip(np.searchsorted(edges, log_c, side="right") - 1, 0, bins - 1)
    cmap = plt.get_cmap("viridis")
    for b in range(bins):
        sel = which == b
        if sel.sum() < 2:
            continue
        color = cmap(b / max(bins - 1, 1))
        sub = runs[sel]
        c = float(np.median(sub["flops"]))
        n_grid = np.geomspace(sub["params"].min() / 1.5, sub["params"].max() * 1.5, 60)
        targets = pd.DataFrame({"params": n_grid, "tokens": c / (6.0 * n_grid), "flops": c})
        table = forecast_table(forecast(fit, targets, group_values={g: level for g, (level, _) in resolved.items()}, new_group=new_group), ci)
        ax.fill_between(n_grid, table["mean_lo"], table["mean_hi"], color=color, alpha=0.25, lw=0)
        ax.plot(n_grid, table["mean_median"], color=color, lw=1.5, label=f"C ≈ {c:.1e}")
        ax.scatter(sub["params"], sub["loss"], color=color, s=14, edgecolor="k", linewidth=0.3, zorder=3)
    ax.set_xscale("log")
    ax.set_xlabel("parameters N")
    ax.set_ylabel("final loss")
    ax.set_title(f"{fit.spec.name}: runs and posterior mean with {ci:.0%} band along isoFLOPs")
    ax.legend(fontsize=8, title="FLOPs", title_fontsize=8)
    fig.tight_layout()
    return fig


def plot_observed_vs_predicted(fit: Fitted, ci: float = 0.9, ax: Axes | None = None) -> Figure:
    """Each run's observed loss against its posterior predictive median and ``ci`` interval."""
    import matplotlib.pyplot as plt

    from bayescale.forecasting import forecast, forecast_table

    runs = fit.runs.data
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 5))
    else:
        fig = _figure_of(ax)
    columns = [c for c in runs.columns if c not in ("loss",)]
    table = forecast_table(forecast(fit, runs[columns]), ci)
    ax.errorbar(runs["loss"], table["loss_median"], yerr=[table["loss_median"] - table["loss_lo"], table["loss_hi"] - table["loss_median"]], fmt="o", ms=3, alpha=0.6, lw=0.8)
    lims = [min(runs["loss"].min(), table["loss_lo"].min()), max(runs["loss"].max(), table["loss_hi"].max())]
    ax.plot(lims, lims, "k--", lw=0.8)
    ax.set_xlabel("observed loss")
    ax.set_ylabel(f"posterior predictive (median, {ci:.0%})")
    fig.tight_layout()
    return fig


def plot_frontier(ds: xr.Dataset, ci: float | None = None, reference: pd.DataFrame | None = None, ax: Axes | None = None) -> Figure:
    """The allocation frontier N_opt(C) and D_opt(C) of an ``allocate`` Dataset: medians, ``ci`` bands, robust plans.

    ``reference`` (a frame with ``flops, params, tokens``, e.g. ``reference.hoffmann_table3()``)
    is overlaid as points.
    """
    import matplotlib.pyplot as plt

    from bayescale.allocate import allocation_table

    table = allocation_table(ds, ci)
    ci = float(ds.attrs.get("ci", 0.9)) if ci is None else ci
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4.8))
    else:
        fig = _figure_of(ax)
    for name, color, label in (("params", "C0", "parameters N"), ("tokens", "C1", "tokens D")):
        ax.fill_between(table["flops"], table[f"{name}_lo"], table[f"{name}_hi"], color=color, alpha=0.25, lw=0)
        ax.plot(table["flops"], table[f"{name}_median"], color=color, lw=1.8, label=f"{label}: median, {ci:.0%} band")
        ax.plot(table["flops"], table[f"robust_{name}"], color=color, lw=1, ls="--", label=f"{label}: robust plan")
        if reference is not None:
            ax.scatter(reference["flops"], reference[name], color=color, marker="x", zorder=3, label=f"{label}: reference")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training compute C (FLOPs)")
    ax.set_ylabel("compute-optimal N, D")
    ax.set_title(f"Compute-optimal allocation ({ds.attrs.get('model', ds.attrs.get('law', ''))})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_epoch_value(fit: Fitted, max_epoch: int = 60, ci: float = 0.9, ax: Axes | None = None) -> Figure:
    """Value of the k-th epoch's tokens relative to fresh tokens, from the posterior of ``R_D_star``.

    Under the data-constrained law D′ = U_D·(1 + R*_D·(1 − e^(−R_D/R*_D))), the k-th pass over the
    data adds D′(k−1) − D′(k−2) = U_D·R*_D·(e^(−(k−2)/R*_D) − e^(−(k−1)/R*_D)) effective tokens
    (k ≥ 2; the first epoch is worth 1). The curve is the posterior median and ``ci`` band of
    that ratio; dotted lines mark where a repeated epoch is worth half (k = 1 + R*_D·ln 2 after
    the first).
    """
    import matplotlib.pyplot as plt

    r_star = fit.posterior["R_D_star"].values.reshape(-1)[:, None]
    k = np.arange(1, max_epoch + 1, dtype=float)
    value = np.where(k[None, :] < 2, 1.0, r_star * (np.exp(-(k - 2) / r_star) - np.exp(-(k - 1) / r_star)))
    lo, med, hi = np.quantile(value, [(1 - ci) / 2, 0.5, (1 + ci) / 2], axis=0)
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
    else:
        fig = _figure_of(ax)
    ax.fill_between(k, lo, hi, alpha=0.3, lw=0, label=f"{ci:.0%} posterior band")
    ax.plot(k, med, lw=1.8, label="posterior median")
    ax.axhline(0.5, color="k", ls=":", lw=0.8)
    half = 2 + np.quantile(r_star[:, 0] * np.log(2), [(1 - ci) / 2, 0.5, (1 + ci) / 2])
    for h in half:
        ax.axvline(h, color="k", ls=":", lw=0.8)
    ax.set_xlabel("epoch k")
    ax.set_ylabel("value of the k-th epoch / fresh data")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{fit.spec.name}: worth of the k-th epoch (half value at k ≈ {half[1]:.0f}, {ci:.0%}: {half[0]:.0f}–{half[2]:.0f})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_prob_vs_compute(
    fit: Fitted,
    target_loss: float,
    flops: ArrayLike,
    prob: float | None = None,
    predictive: bool = True,
    unique_tokens: float | None = None,
    ax: Axes | None = None,
    group_values: Mapping[str, Any] | None = None,
    new_group: bool = False,
) -> Figure:
    """P(loss < ``target_loss``) at each budget's robust compute-optimal plan, against compute.

    ``prob`` draws the required probability as a horizontal line; groups as in ``allocate``.
    """
    import matplotlib.pyplot as plt

    from bayescale.allocate import allocate
    from bayescale.decide import prob_below

    ds = allocate(fit, flops, unique_tokens=unique_tokens, group_values=group_values, new_group=new_group)
    p = np.atleast_1d(prob_below(fit, target_loss, ds["robust_params"].values, ds["robust_tokens"].values, unique_tokens, predictive=predictive, group_values=group_values, new_group=new_group))
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 4))
    else:
        fig = _figure_of(ax)
    ax.plot(ds["flops"].values, p, marker="o", ms=3)
    if prob is not None:
        ax.axhline(prob, color="k", ls="--", lw=0.8, label=f"required {prob:g}")
        ax.legend(fontsize=8)
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("training compute C (FLOPs)")
    ax.set_ylabel(f"P(loss < {target_loss:g})")
    ax.set_title("posterior predictive" if predictive else "mean curve")
    fig.tight_layout()
    return fig


def plot_next_runs(fit: Fitted, plan: NextRuns, ax: Axes | None = None) -> Figure:
    """Which runs to train next (``design.next_runs``): the candidates on the (N, D) plane coloured by
    what each alone would remove per FLOP, the picks numbered in order, the fitted runs and the target."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
    else:
        fig = _figure_of(ax)
    pool = plan.candidates
    rate = pool["gain_per_flop"].to_numpy(dtype=float)
    useful = rate > 0
    what = "sd of log loss" if plan.objective == "sd" else "certainty"
    ax.scatter(pool.loc[~useful, "params"], pool.loc[~useful, "tokens"], s=14, c="0.8", label="candidates (no gain)")
    if useful.any():
        points = ax.scatter(pool.loc[useful, "params"], pool.loc[useful, "tokens"], s=18, c=rate[useful], cmap="viridis", norm=LogNorm(), label="candidates")
        fig.colorbar(points, ax=ax, label=f"{what} removed per FLOP (alone)")
    runs = fit.runs.data
    ax.scatter(runs["params"], runs["tokens"], marker="x", s=16, c="k", lw=0.8, label="fitted runs")
    for _, row in pool[pool["pick"] > 0].iterrows():
        ax.scatter(row["params"], row["tokens"], s=110, facecolors="none", edgecolors="tab:red", lw=1.2)
        ax.annotate(str(int(row["pick"])), (row["params"], row["tokens"]), xytext=(5, 4), textcoords="offset points", fontsize=8, color="tab:red")
    if {"params", "tokens"} <= set(plan.target.columns):
        ax.scatter(plan.target["params"], plan.target["tokens"], marker="*", s=180, c="tab:red", label="target")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters N")
    ax.set_ylabel("training tokens D")
    ax.set_title(f"what to train next: sd {plan.sd_now:.3g} now, {plan.sd_expected_after:.3g} expected after {len(plan.selected)} run(s)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def plot_forecast_fan(ds: xr.Dataset, budgets: ArrayLike | None = None, target_loss: float | None = None, ax: Axes | None = None) -> Figure:
    """Loss at the compute-optimal plan versus compute, with 50% and 90% posterior bands (a fan).

    ``ds`` is an ``allocate`` Dataset over a grid of budgets; ``budgets`` are marked. The bands are
    the predictive loss of the run trained at each robust plan (``robust_loss_pred``, what the
    report's headline quotes); a Dataset without it (``allocate_params``) shows the law-only loss
    at each draw's optimum.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4.5))
    else:
        fig = _figure_of(ax)
    flops = ds["flops"].values
    name = "robust_loss_pred" if "robust_loss_pred" in ds else "loss"
    flat = ds[name].transpose("chain", "draw", "budget").values.reshape(-1, ds.sizes["budget"])
    q05, q25, q50, q75, q95 = np.quantile(flat, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
    ax.fill_between(flops, q05, q95, color="C0", alpha=0.2, lw=0, label="90% interval")
    ax.fill_between(flops, q25, q75, color="C0", alpha=0.35, lw=0, label="50% interval")
    ax.plot(flops, q50, color="C0", lw=1.8, label="median")
    for c in np.atleast_1d(budgets if budgets is not None else []):
        ax.axvline(float(c), color="k", lw=0.8, ls=":")
    if target_loss is not None:
        ax.axhline(target_loss, color="C3", lw=1, ls="--", label=f"target {target_loss:g}")
    ax.set_xscale("log")
    ax.set_xlabel("training compute C (FLOPs)")
    ax.set_ylabel("loss at the compute-optimal plan")
    ax.set_title("Forecast fan along the compute-optimal frontier")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_posteriors(fit: Fitted, ci: float = 0.9) -> Figure:
    """Marginal posterior of each law parameter (and sigma), with its median and ``ci`` interval."""
    import matplotlib.pyplot as plt

    names = [*list(fit.spec.law.parameter_names), "sigma"]
    cols = min(4, len(names))
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for ax, name in zip(axes.ravel(), names, strict=False):
        values = fit.posterior[name].values.ravel()
        lo, med, hi = np.quantile(values, [(1 - ci) / 2, 0.5, (1 + ci) / 2])
        ax.hist(values, bins=50, color="C0", alpha=0.7)
        ax.axvline(med, color="k", lw=1)
        ax.axvspan(lo, hi, color="C1", alpha=0.15)
        ax.set_title(f"{name}: {med:.4g} [{lo:.4g}, {hi:.4g}]", fontsize=9)
        ax.set_yticks([])
    for ax in axes.ravel()[len(names) :]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_forecast_bands(curves: Mapping[str, np.ndarray], x: np.ndarray, ci: float = 0.9, truth: np.ndarray | None = None, xlabel: str = "compute (FLOPs)", ax: Axes | None = None) -> Figure:
    """Posterior mean-curve medians and ``ci`` bands of several fits on their own targets.

    ``curves`` maps a label to ``(fit, targets)``: targets are one row per point of ``x``.
    ``truth`` (optional) is drawn as a dashed line, e.g. for synthetic data.
    """
    import matplotlib.pyplot as plt

    from bayescale.forecasting import forecast_table

    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
    else:
        fig = _figure_of(ax)
    for label, (result, targets) in curves.items():
        table = forecast_table(result.forecast(targets), ci)
        ax.fill_between(x, table["mean_lo"], table["mean_hi"], alpha=0.25, lw=0)
        ax.plot(x, table["mean_median"], lw=1.6, label=f"{label} (median, {ci:.0%})")
    if truth is not None:
        ax.plot(x, truth, "k--", lw=1, label="truth")
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
