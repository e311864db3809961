"""A small complete ``Fit`` built by hand (every variable a saved fit carries), for file tests without sampling."""

from __future__ import annotations

import numpy as np
import xarray as xr

from bayescale.fitting import Fit
from bayescale.modeldesign import design

from .fakefit import fake_fit

TRUTH = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def complete_fake_fit(draws: int = 20) -> Fit:
    """``fake_fit`` plus the internal ``*_z`` coordinates and ``nu``-free Student-t spec it implies."""
    base = fake_fit(TRUTH, spread=0.01, draws=draws)
    d = design(base.spec, base.runs)
    post = base.posterior
    internal = base.spec.law.to_internal({p: post[p] for p in base.spec.law.parameter_names}, d.centres)
    post = post.assign({f"{p}_z": v for p, v in internal.items()})
    tree = xr.DataTree.from_dict({"posterior": post, "sample_stats": base.tree["sample_stats"].to_dataset()})
    return Fit(tree=tree, spec=base.spec, runs=base.runs, groups=(), diagnostics=base.diagnostics, seed=0, sampler="nutpie")


def finite(values) -> bool:
    return bool(np.all(np.isfinite(values)))
