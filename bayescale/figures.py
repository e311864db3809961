"""One figure of a fit, by kind, for a slide or a paper: the same code the report draws with.

``figure(fit, kind)`` returns a matplotlib ``Figure``; ``save_figure`` writes it as PNG, SVG or
PDF (chosen by the file's suffix) through the atomic writer. A grouped fit asked for no level
gets one panel per seen level and one for a new, unseen group, so every level is answered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bayescale.errors import BayescaleError

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from bayescale.fitted import Fitted
    from bayescale.groups import GroupTarget

#: What ``figure`` draws: runs against predictions, isoFLOP profiles, the loss fan along the
#: compute-optimal frontier, the frontier itself, and the parameters' marginal posteriors.
KINDS = ("fit", "isoflop", "forecast", "allocation", "posteriors")
#: Kinds drawn for one group level at a time (a panel per level on a grouped fit).
PER_LEVEL = ("isoflop", "forecast", "allocation")
#: Formats ``save_figure`` writes, by file suffix.
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
#: Points of the compute grid the frontier and fan are drawn on.
GRID_POINTS = 40


def budgets_or_default(fit: Fitted, flops: Sequence[float] | np.ndarray | None) -> np.ndarray:
    """The budgets asked for, else 100× the largest run's compute (the report's default)."""
    if flops is not None and len(flops):
        return np.asarray(flops, dtype=float)
    return np.asarray([float(fit.runs.data["flops"].max()) * 100.0])


def compute_grid(fit: Fitted, budgets: np.ndarray) -> np.ndarray:
    """Log-spaced compute from the smallest run to 10× past the largest budget or run."""
    flops = fit.runs.data["flops"]
    return np.geomspace(float(flops.min()), max(float(budgets.max()), float(flops.max())) * 10, GRID_POINTS)


def frontier(fit: Fitted, budgets: np.ndarray, unique_tokens: float | None = None, group_values: Mapping[str, Any] | None = None, new_group: bool = False) -> xr.Dataset:
    """``allocate`` over ``compute_grid``: what the frontier and fan figures draw."""
    from bayescale.allocate import allocate

    return allocate(fit, compute_grid(fit, budgets), unique_tokens=unique_tokens, group_values=group_values, new_group=new_group)


def draw(
    fit: Fitted,
    kind: str,
    ax: Axes,
    *,
    ci: float = 0.9,
    flops: Sequence[float] | np.ndarray | None = None,
    target_loss: float | None = None,
    unique_tokens: float | None = None,
    group_values: Mapping[str, Any] | None = None,
    new_group: bool = False,
) -> None:
    """Draw one ``kind`` for one group request on ``ax`` (``posteriors`` draws its own grid: use ``figure``)."""
    from bayescale.allocate import parameter_draws
    from bayescale.plots import plot_forecast_fan, plot_frontier, plot_isoflop_profiles, plot_observed_vs_predicted
    from bayescale.reference import hoffmann_applies, hoffmann_table3

    groups: GroupTarget = {"group_values": group_values, "new_group": new_group}
    budgets = budgets_or_default(fit, flops)
    if kind == "fit":
        plot_observed_vs_predicted(fit, ci=ci, ax=ax)
    elif kind == "isoflop":
        plot_isoflop_profiles(fit, ci=ci, ax=ax, **groups)
    elif kind == "forecast":
        plot_forecast_fan(frontier(fit, budgets, unique_tokens, **groups), budgets, target_loss, ax=ax)
    elif kind == "allocation":
        reference = hoffmann_table3() if hoffmann_applies(fit, parameter_draws(fit, **groups)) else None
        plot_frontier(frontier(fit, budgets, unique_tokens, **groups), ci, reference=reference, ax=ax)
    else:
        raise BayescaleError(f"unknown figure kind {kind!r}; kinds: {', '.join(KINDS)}")


def figure(
    fit: Fitted,
    kind: str = "fit",
    *,
    ci: float = 0.9,
    flops: Sequence[float] | np.ndarray | None = None,
    target_loss: float | None = None,
    unique_tokens: float | None = None,
    group_values: Mapping[str, Any] | None = None,
    new_group: bool = False,
) -> Figure:
    """One figure of ``kind`` (see ``KINDS``); a grouped fit asked for no level gets a panel per level and a new group.

    ``flops`` are the budgets marked on the forecast fan (default 100× the largest run);
    ``target_loss`` draws a target line there.
    """
    import matplotlib.pyplot as plt

    from bayescale.errors import check_probability
    from bayescale.plots import plot_posteriors

    if kind not in KINDS:
        raise BayescaleError(f"unknown figure kind {kind!r}; kinds: {', '.join(KINDS)}")
    check_probability(ci, "ci")
    if kind == "posteriors":
        return plot_posteriors(fit, ci)
    from bayescale.groups import requests_or_every_level

    panels = requests_or_every_level(fit, group_values, new_group) if kind in PER_LEVEL else [("", dict(group_values or {}), new_group)]
    cols = min(len(panels), 2)
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(7.5 * cols, 4.8 * rows), squeeze=False)
    for ax, (title, values, new) in zip(axes.ravel(), panels, strict=False):
        draw(fit, kind, ax, ci=ci, flops=flops, target_loss=target_loss, unique_tokens=unique_tokens, group_values=values or None, new_group=new)
        if title:
            ax.set_title(f"{title}: {ax.get_title()}", fontsize=9)
    for ax in axes.ravel()[len(panels) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 150) -> Path:
    """Write ``fig`` to ``path`` as PNG, SVG or PDF (by suffix), atomically; the figure is closed after."""
    import matplotlib.pyplot as plt

    from bayescale.paths import write_atomic

    target = Path(path)
    fmt = FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise BayescaleError(f"cannot tell the figure format from {str(path)!r}: end the file name in {', '.join(FORMATS)}")
    try:
        return write_atomic(target, lambda tmp: fig.savefig(tmp, format=fmt, dpi=dpi))
    finally:
        plt.close(fig)
