"""Model discrepancy that grows with extrapolation: how far a target lies beyond the runs, and
the per-draw shift ``δ = τ · d(x) · u`` of log loss that widens forecasts out there.

A scaling law fitted on small runs is a model; further out its error is systematic, not noise.
``d(x)`` is the Euclidean excess, in decades, of the target beyond the training runs' range in
each direction the law's inputs define — log₁₀ N, log₁₀ D, log₁₀ (D/N), log₁₀ C (compute-only
laws: C alone) — so ``d = 0`` inside the data and forecasts there are exactly as sharp as
without the term. ``u ~ N(0, 1)`` is one draw per posterior draw, shared by every target (the
misspecification is one curve, not independent noise), and ``τ ≥ 0`` (log loss per decade)
has a ``HalfNormal(scale)`` prior from the spec's ``[discrepancy]`` table.

τ never enters the training runs' likelihood (they all lie at ``d = 0``), so its posterior is
its prior updated only by the fit's self-check: the held-out largest runs' residuals
``r_j ~ N(0, s_j² + τ² d_j²)`` (``tau_posterior``). It is drawn exactly on a grid by inverse
CDF, seeded from the fit's seed, not by NUTS.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from bayescale.fitted import Fitted

#: Direction names: log₁₀ of parameters, tokens, tokens per parameter and compute.
DIRECTIONS = ("params", "tokens", "tokens_per_param", "flops")
#: Grid points of τ's posterior; its upper end is this many prior scales (HalfNormal mass beyond
#: 10σ: 1e-23) or, if the residuals call for more, 3× the largest |r_j| / d_j.
TAU_GRID_POINTS = 4001
TAU_GRID_SCALES = 10.0
#: Salt mixed into the fit's seed so τ and u do not reuse the sampler's random stream.
SEED_SALT = 0x7A0


def directions(inputs: tuple[str, ...]) -> tuple[str, ...]:
    """The directions a law with these inputs defines: all four with a size and tokens, size alone
    for a law without tokens (``routed``: one training length), else compute only."""
    sized = bool({"params", "active_params"} & set(inputs))
    if "tokens" in inputs and sized:
        return DIRECTIONS
    return ("params",) if sized else ("flops",)


def coordinates(inputs: tuple[str, ...], columns: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """log₁₀ coordinates per direction from natural-scale columns (``params``/``active_params``,
    ``tokens``, ``flops``). Compute is 6·N·D when the law takes N and D (targets and runs alike)."""
    dirs = directions(inputs)
    if dirs == ("flops",):
        return {"flops": np.log10(np.asarray(columns["flops"], dtype=float))}
    size = columns["active_params"] if "active_params" in inputs else columns["params"]
    decades_n = np.log10(np.asarray(size, dtype=float))
    if dirs == ("params",):
        return {"params": decades_n}
    decades_d = np.log10(np.asarray(columns["tokens"], dtype=float))
    return {"params": decades_n, "tokens": decades_d, "tokens_per_param": decades_d - decades_n, "flops": np.log10(6.0) + decades_n + decades_d}


def ranges(coords: Mapping[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    """(min, max) of each direction over a set of runs."""
    return {k: (float(np.min(v)), float(np.max(v))) for k, v in coords.items()}


def distance(coords: Mapping[str, Any], bounds: Mapping[str, tuple[float, float]]) -> np.ndarray:
    """d(x) = sqrt(Σ_k e_k²), e_k = max(0, x_k − max_k) + max(0, min_k − x_k), in decades; 0 inside the range."""
    total = 0.0
    for k, (lo, hi) in bounds.items():
        x = np.asarray(coords[k], dtype=float)
        excess = np.maximum(0.0, x - hi) + np.maximum(0.0, lo - x)
        total = total + excess * excess
    return np.sqrt(total)


def group_bounds(fit: Fitted, group_values: Mapping[str, Any] | None = None) -> dict[str, tuple[float, float]]:
    """Ranges of the runs in the seen group levels ``group_values`` names (all runs when none match)."""
    runs = fit.runs.data
    mask = np.ones(len(runs), dtype=bool)
    for g, value in (group_values or {}).items():
        if g in runs.columns:
            match = runs[g].astype(str).str.strip().to_numpy() == str(np.atleast_1d(value)[0]).strip()
            if (mask & match).any():
                mask &= match
    return ranges(coordinates(fit.spec.law.inputs, runs[mask]))


def target_distance(fit: Fitted, frame: pd.DataFrame) -> np.ndarray:
    """d(x) of each target (a parsed target table) beyond the runs of its own group if seen, else all runs."""
    inputs = fit.spec.law.inputs
    coords = coordinates(inputs, frame)
    groups = [g for g in fit.groups if g in frame.columns]
    if not groups:
        return distance(coords, group_bounds(fit))
    keys = frame[groups].astype(str).apply(lambda col: col.str.strip())
    out = np.empty(len(frame))
    for key, index in keys.groupby(groups, sort=False).indices.items():
        combo = key if isinstance(key, tuple) else (key,)
        bounds = group_bounds(fit, dict(zip(groups, combo, strict=True)))
        out[index] = distance({k: v[index] for k, v in coords.items()}, bounds)
    return out


def shift_per_draw(fit: Fitted) -> np.ndarray | None:
    """τ·u per posterior draw, dims (chain, draw); ``None`` when the fit has no discrepancy."""
    post = fit.posterior
    if not fit.spec.discrepancy.enabled or "discrepancy_tau" not in post:
        return None
    return (post["discrepancy_tau"] * post["discrepancy_u"]).transpose("chain", "draw").values


# --------------------------------------------------------------------------- τ: prior, self-check update, exact draws


def tau_grid(scale: float, residuals: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """The grid on which τ's density is evaluated, wide enough for the prior and the residuals."""
    far = dist > 0
    needed = 3.0 * float(np.max(np.abs(residuals[far]) / dist[far])) if far.any() else 0.0
    return np.linspace(0.0, max(TAU_GRID_SCALES * scale, needed), TAU_GRID_POINTS)


def tau_log_density(scale: float, residuals: Any = (), sd: Any = (), dist: Any = (), temper: float = 1.0, shared: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(grid, unnormalised log density) of τ: HalfNormal(scale) times the held-out residuals'
    likelihood raised to ``temper``.

    ``shared=False``: Π_j N(r_j; 0, s_j² + τ² d_j²), the held-out runs independent given τ —
    they are not (one misspecified curve bends them together), so this overstates the evidence
    by up to the number of runs; ``temper`` < 1 discounts it. ``shared=True``: the model's own
    form, r = τ·u·d + e with one u for all runs, r ~ N(0, diag(s²) + τ² d dᵀ) (determinant lemma
    and Sherman–Morrison, exact): the runs then say about as much as one draw of u.
    """
    r, s, dist = (np.asarray(a, dtype=float).reshape(-1) for a in (residuals, sd, dist))
    grid = tau_grid(scale, r, dist)
    log_p = -0.5 * (grid / scale) ** 2
    if r.size and shared:
        a, b = np.sum(dist * dist / s**2), np.sum(dist * r / s**2)
        q = 1.0 + grid**2 * a
        log_p = log_p + temper * (-0.5 * np.log(q) + 0.5 * grid**2 * b**2 / q)
    elif r.size:
        var = s[None, :] ** 2 + (grid[:, None] * dist[None, :]) ** 2
        log_p = log_p + temper * np.sum(-0.5 * (np.log(var) + r[None, :] ** 2 / var), axis=1)
    return grid, log_p


def draw_tau(scale: float, shape: tuple[int, ...], seed: int, residuals: Any = (), sd: Any = (), dist: Any = (), temper: float = 1.0, shared: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Exact draws of (τ, u) of the given shape: τ by inverse CDF on the grid, u standard normal.

    Seeded from ``seed`` (the fit's), so a refit or a saved fit reproduces them exactly.
    """
    rng = np.random.default_rng([SEED_SALT, int(seed)])
    uniform = rng.uniform(size=shape)
    u = rng.standard_normal(shape)
    grid, log_p = tau_log_density(scale, residuals, sd, dist, temper, shared)
    density = np.exp(log_p - log_p.max())
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(grid))])
    cdf /= cdf[-1]
    return np.interp(uniform, cdf, grid), u
