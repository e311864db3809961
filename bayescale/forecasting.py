"""Posterior forecasts: evaluate the fitted law on its posterior draws at new targets.

The law's own ``log_loss`` runs on numpy draws (no PyMC recompilation). Targets in a group
seen at fit time use that group's offsets; unseen groups (or targets without the column)
get fresh draws from the population level. Work is chunked over targets to bound memory.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from bayescale.errors import ExtrapolationWarning, RunTableError
from bayescale.laws.ops import NUMPY
from bayescale.runs import parse_numeric_column, read_table

if TYPE_CHECKING:
    from bayescale.fitting import Fit

#: Largest number of (chain × draw × target) values evaluated at once.
CHUNK_ELEMENTS = 4_000_000
#: Targets outside these ranges are rejected as typos (a unit slip such as 70 for 70B).
SENSIBLE_RANGE = {"params": (1e3, 1e16), "active_params": (1e3, 1e16), "tokens": (1e3, 1e18), "unique_tokens": (1e3, 1e18), "flops": (1e6, 1e35)}
#: Forecasts beyond this multiple of the largest fitted compute carry an ExtrapolationWarning.
EXTRAPOLATION_WARN = 100.0


def target_table(fit: Fit, targets: Any = None, **columns: Any) -> pd.DataFrame:
    """Normalise targets (DataFrame, mapping, CSV path or keyword columns) to a parsed DataFrame.

    Numeric inputs of the law are parsed with units; ``flops`` defaults to 6·N·D and
    ``unique_tokens`` to ``tokens`` (no repetition). Every other column is kept as given.
    """
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
    if len(frame) == 0:
        raise RunTableError(f"{source}: no forecast targets (the table is empty)")
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
                raise RunTableError(
                    f"{source}: row {bad[0] + 1}, column {column!r}: {values[bad[0]]:.4g} is outside any sensible range "
                    f"[{low:.0e}, {high:.0e}]; check the units (e.g. 70B, not 70)"
                )
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
    for g in fit.groups:
        if g in out.columns:
            out[g] = out[g].astype(str).str.strip()
    return out.reset_index(drop=True)


def _group_offsets(fit: Fit, frame: pd.DataFrame, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per parameter, the (chain, draw, target) offset in internal coordinates from group effects."""
    post = fit.posterior
    chains, draws = post.sizes["chain"], post.sizes["draw"]
    levels = fit.design.levels
    offsets: dict[str, np.ndarray] = {}
    unseen_report = []
    for g in fit.groups:
        values = frame[g].to_numpy(dtype=object) if g in frame.columns else np.full(len(frame), None, dtype=object)
        known = {v: i for i, v in enumerate(levels[g])}
        new_levels = sorted({v for v in values if v not in known}, key=str)
        if new_levels:
            unseen_report.append(f"{g}={', '.join('(none)' if v is None else str(v) for v in new_levels)}")
        new_index = {v: i for i, v in enumerate(new_levels)}
        fresh = {p: rng.standard_normal((chains, draws, len(new_levels))) for p in fit.spec.pooled}
        for p in fit.spec.pooled:
            eta = post[f"{p}_eta_{g}"].transpose("chain", "draw", g).values
            tau = post[f"{p}_tau_{g}"].values[..., None]
            cols = np.empty((chains, draws, len(frame)))
            seen = np.array([v in known for v in values], dtype=bool)
            if seen.any():
                cols[..., seen] = eta[..., [known[v] for v in values[seen]]]
            if (~seen).any():
                cols[..., ~seen] = fresh[p][..., [new_index[v] for v in values[~seen]]]
            offsets[p] = offsets.get(p, 0.0) + tau * cols
    if unseen_report:
        warnings.warn(
            f"forecast targets in group(s) not seen at fit time ({'; '.join(unseen_report)}): forecasting them from the population level (wider intervals)",
            UserWarning,
            stacklevel=3,
        )
    return offsets


def forecast(fit: Fit, targets: Any = None, *, seed: int = 0, **columns: Any) -> xr.Dataset:
    """Loss at each target for every posterior draw: dims ``(chain, draw, target)``.

    ``loss`` is the law's mean curve; ``loss_pred`` adds observation noise (the posterior
    predictive). Target columns are kept as coordinates along ``target``.
    """
    frame = target_table(fit, targets, **columns)
    law = fit.spec.law
    post = fit.posterior
    d = fit.design
    rng = np.random.default_rng(seed)
    _warn_extrapolation(fit, frame)
    chains, draws = post.sizes["chain"], post.sizes["draw"]
    offsets = _group_offsets(fit, frame, rng)
    z_pop = {p: post[f"{p}_z"].transpose("chain", "draw").values[..., None] for p in law.parameter_names}
    sigma = post["sigma"].transpose("chain", "draw").values[..., None]
    nu = post["nu"].transpose("chain", "draw").values[..., None] if "nu" in post else fit.spec.likelihood.nu
    n = len(frame)
    mean = np.empty((chains, draws, n))
    pred = np.empty((chains, draws, n))
    step = max(1, CHUNK_ELEMENTS // (chains * draws))
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        z = {p: z_pop[p] + (offsets[p][..., lo:hi] if p in offsets else 0.0) for p in law.parameter_names}
        public = law.to_public(NUMPY, z, d.centres)
        x = {c: np.log(frame[c].to_numpy(dtype=float)[lo:hi]) for c in law.inputs}
        x.update({c: frame[c].to_numpy(dtype=float)[lo:hi] for c in law.covariates if c in frame.columns})
        mu = np.broadcast_to(law.log_loss(NUMPY, public, x), (chains, draws, hi - lo))
        if fit.spec.likelihood.family == "studentt":
            noise = rng.standard_t(np.broadcast_to(nu, (chains, draws, hi - lo)))
        else:
            noise = rng.standard_normal((chains, draws, hi - lo))
        mean[..., lo:hi] = np.exp(mu)
        pred[..., lo:hi] = np.exp(mu + sigma * noise)
    coords = {"chain": post["chain"].values, "draw": post["draw"].values, "target": np.arange(n)}
    coords.update({c: ("target", frame[c].to_numpy()) for c in frame.columns})
    return xr.Dataset(
        {"loss": (("chain", "draw", "target"), mean), "loss_pred": (("chain", "draw", "target"), pred)},
        coords=coords,
        attrs={"model": fit.spec.name, "seed": seed},
    )


def extrapolation_factor(fit: Fit, frame: pd.DataFrame) -> np.ndarray:
    """Compute of each target over the largest fitted run's compute (targets are parsed tables)."""
    if "flops" in frame.columns:
        flops = frame["flops"].to_numpy(dtype=float)
    else:
        flops = 6.0 * frame["params"].to_numpy(dtype=float) * frame["tokens"].to_numpy(dtype=float)
    return flops / float(fit.runs.column("flops").max())


def _warn_extrapolation(fit: Fit, frame: pd.DataFrame) -> None:
    if "flops" not in frame.columns and not {"params", "tokens"} <= set(frame.columns):
        return
    factor = extrapolation_factor(fit, frame)
    far = factor > EXTRAPOLATION_WARN
    if far.any():
        warnings.warn(
            f"{int(far.sum())} forecast target(s) need up to {factor.max():.3g}x the compute of the largest fitted run "
            f"(warning above {EXTRAPOLATION_WARN:g}x): intervals assume the law holds that far out; check with a backtest",
            ExtrapolationWarning,
            stacklevel=3,
        )


def forecast_table(ds: xr.Dataset, ci: float = 0.9) -> pd.DataFrame:
    """Per target: its input columns, then ``loss_median, loss_lo, loss_hi`` (predictive) and ``mean_*`` (mean curve)."""
    lo_q, hi_q = (1 - ci) / 2, (1 + ci) / 2
    columns = [c for c in ds.coords if c not in ("chain", "draw", "target")]
    table = pd.DataFrame({c: ds[c].values for c in columns})
    for name, prefix in (("loss_pred", "loss"), ("loss", "mean")):
        flat = ds[name].stack(sample=("chain", "draw")).transpose("target", "sample").values
        table[f"{prefix}_median"] = np.median(flat, axis=1)
        table[f"{prefix}_lo"] = np.quantile(flat, lo_q, axis=1)
        table[f"{prefix}_hi"] = np.quantile(flat, hi_q, axis=1)
    return table
