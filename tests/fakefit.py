"""A hand-built ``Fit`` whose posterior holds given draws: exact checks without sampling."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr

from bayescale.fit import Diagnostics, Fit
from bayescale.runs import load_runs
from bayescale.simulate import grid_runs, simulate_runs
from bayescale.spec import load_spec


def fake_fit(truth: Mapping[str, float], form: str = "chinchilla", chains: int = 2, draws: int = 50, spread: float = 0.0, sigma: float = 1e-6, seed: int = 0) -> Fit:
    """Posterior draws at ``truth`` (times log-normal ``spread``), observation ``sigma`` constant."""
    rng = np.random.default_rng(seed)
    shape = (chains, draws)
    data = {k: (("chain", "draw"), v * np.exp(spread * rng.standard_normal(shape))) for k, v in truth.items()}
    data["sigma"] = (("chain", "draw"), np.full(shape, sigma))
    post = xr.Dataset(data, coords={"chain": np.arange(chains), "draw": np.arange(draws)})
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros(shape, dtype=bool))}, coords=post.coords)
    tree = xr.DataTree.from_dict({"posterior": post, "sample_stats": stats})
    runs = load_runs(simulate_runs(form, truth, grid_runs(np.geomspace(5e7, 3e9, 4), np.geomspace(1e9, 8e10, 4)), seed=seed))
    diagnostics = Diagnostics(1.0, 1000.0, 1000.0, 0, 0, draws, chains)
    return Fit(tree=tree, spec=load_spec(form), runs=runs, groups=(), diagnostics=diagnostics, seed=seed, sampler="nutpie")
