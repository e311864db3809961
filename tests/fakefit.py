"""A hand-built ``Fit`` whose posterior holds given draws: exact checks without sampling."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from bayescale.fitting import Diagnostics, Fit
from bayescale.runs import load_runs
from bayescale.simulate import grid_runs, simulate_runs
from bayescale.spec import load_spec


def fake_fit(
    truth: Mapping[str, float],
    form: str = "chinchilla",
    chains: int = 2,
    draws: int = 50,
    spread: float = 0.0,
    sigma: float = 1e-6,
    seed: int = 0,
    design: pd.DataFrame | None = None,
    spec: str | None = None,
) -> Fit:
    """Posterior draws at ``truth`` (times log-normal ``spread``), observation ``sigma`` constant.

    ``design`` (default: a 4 × 4 grid of params × tokens) holds the runs' inputs; ``spec`` names a
    shipped spec of law ``form`` (default: the spec named like the form).
    """
    from bayescale.modeldesign import design as make_design

    rng = np.random.default_rng(seed)
    shape = (chains, draws)
    design = grid_runs(np.geomspace(5e7, 3e9, 4), np.geomspace(1e9, 8e10, 4)) if design is None else design
    runs = load_runs(simulate_runs(form, truth, design, seed=seed))
    fit_spec = load_spec(spec or form)
    data = {k: (("chain", "draw"), v * np.exp(spread * rng.standard_normal(shape))) for k, v in truth.items()}
    if set(fit_spec.law.parameter_names) <= set(truth):  # internal coordinates too, so forecasts work as on a real fit
        internal = fit_spec.law.to_internal({k: v for k, (_, v) in data.items()}, make_design(fit_spec, runs, ()).centres)
        data.update({f"{p}_z": (("chain", "draw"), np.asarray(internal[p], dtype=float)) for p in fit_spec.law.parameter_names})
    data["sigma"] = (("chain", "draw"), np.full(shape, sigma))
    post = xr.Dataset(data, coords={"chain": np.arange(chains), "draw": np.arange(draws)})
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros(shape, dtype=bool))}, coords=post.coords)
    tree = xr.DataTree.from_dict({"posterior": post, "sample_stats": stats})
    diagnostics = Diagnostics(1.0, 1000.0, 1000.0, 0, 0, draws, chains)
    return Fit(tree=tree, spec=fit_spec, runs=runs, groups=(), diagnostics=diagnostics, seed=seed, sampler="nutpie")


def fake_grouped_fit(population: Mapping[str, float], levels: Mapping[str, Mapping[str, float]], column: str = "dataset", chains: int = 1, draws: int = 10) -> Fit:
    """Constant draws whose group ``column`` levels sit exactly at ``levels`` (internal coordinates: z + tau·eta)."""
    from bayescale.modeldesign import design
    from bayescale.posterior import PosteriorView
    from bayescale.simulate import simulate_groups

    base = load_spec("chinchilla").to_dict()
    spec = load_spec({**base, "pooling": {**base["pooling"], "params": ["E", "A", "B", "alpha", "beta"]}})  # levels may differ in every constant
    runs = load_runs(simulate_groups("chinchilla", levels, grid_runs(np.geomspace(5e7, 3e9, 3), np.geomspace(1e9, 8e10, 3)), column=column))
    d = design(spec, runs, (column,))
    law = spec.law
    z_pop = law.to_internal(population, d.centres)
    shape = (chains, draws)
    names = d.levels[column]
    data = {p: (("chain", "draw"), np.full(shape, v)) for p, v in population.items()}
    data.update({f"{p}_z": (("chain", "draw"), np.full(shape, z_pop[p])) for p in law.parameter_names})
    data["sigma"] = (("chain", "draw"), np.full(shape, 1e-6))
    for p in spec.pooled:
        eta = np.array([law.to_internal(levels[name], d.centres)[p] - z_pop[p] for name in names])
        data[f"{p}_tau_{column}"] = (("chain", "draw"), np.ones(shape))
        data[f"{p}_eta_{column}"] = (("chain", "draw", column), np.broadcast_to(eta, (*shape, len(names))).copy())
    post = xr.Dataset(data, coords={"chain": np.arange(chains), "draw": np.arange(draws), column: names})
    post = post.assign(PosteriorView(spec, d, post).by_level())  # E_by_dataset etc., as a real fit stores them
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros(shape, dtype=bool))}, coords={"chain": np.arange(chains), "draw": np.arange(draws)})
    tree = xr.DataTree.from_dict({"posterior": post, "sample_stats": stats})
    return Fit(tree=tree, spec=spec, runs=runs, groups=(column,), diagnostics=Diagnostics(1.0, 1000.0, 1000.0, 0, 0, draws, chains), seed=0, sampler="nutpie")
