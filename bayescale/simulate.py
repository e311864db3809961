"""Synthetic run tables drawn from a known law: the ground truth for recovery tests and SBC."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from bayescale.laws import get_law

#: Epoch AI's refit of Chinchilla (Besiroglu et al. 2024), a realistic default truth.
EPOCH_CHINCHILLA = {"E": 1.82, "A": 482.0, "B": 2085.0, "alpha": 0.348, "beta": 0.366}


def grid_runs(params: Sequence[float] | np.ndarray, tokens: Sequence[float] | np.ndarray) -> pd.DataFrame:
    """Every (params, tokens) combination, a full factorial design."""
    n, d = np.meshgrid(np.asarray(params, float), np.asarray(tokens, float), indexing="ij")
    return pd.DataFrame({"params": n.ravel(), "tokens": d.ravel()})


def simulate_runs(
    form: str,
    truth: Mapping[str, float],
    design: pd.DataFrame,
    sigma: float = 0.01,
    seed: int = 0,
) -> pd.DataFrame:
    """``design`` plus a ``loss`` column: the law at ``truth`` times log-normal noise of scale ``sigma``."""
    law = get_law(form)
    frame = design.copy()
    inputs = {c: frame[c].to_numpy(float) for c in frame.columns if c in law.inputs or c in law.covariates}
    if "flops" in law.inputs and "flops" not in inputs:
        inputs["flops"] = 6.0 * frame["params"].to_numpy(float) * frame["tokens"].to_numpy(float)
    if "unique_tokens" in law.inputs and "unique_tokens" not in inputs:
        inputs["unique_tokens"] = frame["tokens"].to_numpy(float)
    mean = law.loss(truth, inputs)
    rng = np.random.default_rng(seed)
    frame["loss"] = mean * np.exp(sigma * rng.standard_normal(len(frame)))
    return frame


def simulate_groups(
    form: str,
    truths: Mapping[str, Mapping[str, float]],
    design: pd.DataFrame,
    column: str = "group",
    sigma: float = 0.01,
    seed: int = 0,
) -> pd.DataFrame:
    """One block of runs per group value, each from its own truth, stacked with a ``column`` label."""
    frames = []
    for i, (name, truth) in enumerate(truths.items()):
        block = simulate_runs(form, truth, design, sigma=sigma, seed=seed + i)
        block[column] = name
        frames.append(block)
    return pd.concat(frames, ignore_index=True)


def group_truths(
    n_groups: int,
    base: Mapping[str, float] = EPOCH_CHINCHILLA,
    level_spread: Mapping[str, float] | None = None,
    shape_spread: Mapping[str, float] | None = None,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Per-group Chinchilla truths ``g00, g01, …``: each constant is ``base`` times ``exp(spread · z)``.

    Default: levels differ (E by ~8%, A and B by ~30%) and exponents are shared; give
    ``shape_spread`` (e.g. ``{"alpha": 0.03, "beta": 0.03}``, additive) for exponents that differ a little.
    """
    levels = {"E": 0.08, "A": 0.3, "B": 0.3} if level_spread is None else dict(level_spread)
    shapes = dict(shape_spread or {})
    rng = np.random.default_rng(seed)
    truths = {}
    for g in range(n_groups):
        truth = dict(base)
        for name, spread in levels.items():
            truth[name] = float(base[name] * np.exp(spread * rng.standard_normal()))
        for name, spread in shapes.items():
            truth[name] = float(base[name] + spread * rng.standard_normal())
        truths[f"g{g:02d}"] = truth
    return truths
