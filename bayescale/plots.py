"""Figures for notebooks, the README and reports: matplotlib, computed from the public API."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from bayescale.fitting import Fit


def isoflop_profiles(fit: Fit, bins: int = 6, ci: float = 0.9, ax=None) -> Figure:
    """Observed runs grouped by compute, with the posterior mean curve and ``ci`` band along each isoFLOP.

    Runs are binned by log compute; each bin's curve holds compute at the bin's median and
    varies the parameter count across the bin's range (tokens = C / 6N).
    """
    import matplotlib.pyplot as plt

    from bayescale.forecasting import forecast_table

    runs = fit.runs.data
    if ax is None:
        fig, ax = plt.subplots(figsize=(7.5, 4.8))
    else:
        fig = ax.figure
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
        table = forecast_table(fit.forecast(targets), ci)
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


def observed_vs_predicted(fit: Fit, ci: float = 0.9, ax=None) -> Figure:
    """Each run's observed loss against its posterior predictive median and ``ci`` interval."""
    import matplotlib.pyplot as plt

    from bayescale.forecasting import forecast_table

    runs = fit.runs.data
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 5))
    else:
        fig = ax.figure
    columns = [c for c in runs.columns if c not in ("loss",)]
    table = forecast_table(fit.forecast(runs[columns]), ci)
    ax.errorbar(runs["loss"], table["loss_median"], yerr=[table["loss_median"] - table["loss_lo"], table["loss_hi"] - table["loss_median"]], fmt="o", ms=3, alpha=0.6, lw=0.8)
    lims = [min(runs["loss"].min(), table["loss_lo"].min()), max(runs["loss"].max(), table["loss_hi"].max())]
    ax.plot(lims, lims, "k--", lw=0.8)
    ax.set_xlabel("observed loss")
    ax.set_ylabel(f"posterior predictive (median, {ci:.0%})")
    fig.tight_layout()
    return fig


def epoch_value(fit: Fit, max_epoch: int = 60, ci: float = 0.9, ax=None) -> Figure:
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
        fig = ax.figure
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


def forecast_bands(curves: dict, x: np.ndarray, ci: float = 0.9, truth: np.ndarray | None = None, xlabel: str = "compute (FLOPs)", ax=None) -> Figure:
    """Posterior mean-curve medians and ``ci`` bands of several fits on their own targets.

    ``curves`` maps a label to ``(fit, targets)``: targets are one row per point of ``x``.
    ``truth`` (optional) is drawn as a dashed line, e.g. for synthetic data.
    """
    import matplotlib.pyplot as plt

    from bayescale.forecasting import forecast_table

    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
    else:
        fig = ax.figure
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
