"""Simulation-based calibration (Talts et al. 2018) of a spec's prior, likelihood and sampler.

Each simulation draws parameters from the spec's priors, simulates runs from the law with the
spec's own noise model, fits them, and records the rank of the true value among the (thinned)
posterior draws. If inference is calibrated the ranks are uniform on ``0..L``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bayescale.errors import BayescaleError


def default_design() -> pd.DataFrame:
    from bayescale.simulate import grid_runs

    return grid_runs(np.geomspace(5e7, 3e9, 6), np.geomspace(1e9, 8e10, 6))


@dataclass(frozen=True)
class SBCResult:
    """Ranks (one row a simulation, one column a parameter), ``n_ranks`` = L + 1 possible values."""

    ranks: pd.DataFrame
    n_ranks: int
    truths: pd.DataFrame
    converged: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    def uniformity(self, bins: int | None = None) -> pd.DataFrame:
        """Chi-square test of rank uniformity per parameter (p-value; small means miscalibrated)."""
        from scipy import stats

        n = len(self.ranks)
        bins = bins or int(max(2, min(20, n // 5, self.n_ranks)))
        edges = np.linspace(0, self.n_ranks, bins + 1)
        rows = []
        for name in self.ranks.columns:
            counts, _ = np.histogram(self.ranks[name].to_numpy(), bins=edges)
            expected = np.diff(edges) / self.n_ranks * n
            chi2, p = stats.chisquare(counts, expected)
            rows.append({"parameter": name, "chi2": float(chi2), "p_value": float(p), "bins": bins, "n_sims": n})
        return pd.DataFrame(rows).set_index("parameter")

    def plot(self, bins: int | None = None):
        """Rank histograms with the 99% band of a uniform histogram: a matplotlib Figure."""
        import matplotlib.pyplot as plt
        from scipy import stats

        n = len(self.ranks)
        bins = bins or int(max(2, min(20, n // 5, self.n_ranks)))
        cols = self.ranks.columns
        fig, axes = plt.subplots(1, len(cols), figsize=(2.6 * len(cols), 2.4), squeeze=False)
        lo, hi = stats.binom.ppf([0.005, 0.995], n, 1 / bins)
        for ax, name in zip(axes[0], cols, strict=True):
            ax.axhspan(lo, hi, color="0.85")
            ax.hist(self.ranks[name], bins=np.linspace(0, self.n_ranks, bins + 1), color="C0", edgecolor="white")
            ax.set_title(name)
            ax.set_yticks([])
        fig.suptitle(f"SBC rank histograms ({n} simulations)")
        fig.tight_layout()
        return fig


def sbc(
    model: Any = "chinchilla",
    n_sims: int = 100,
    design: pd.DataFrame | None = None,
    draws: int = 500,
    tune: int = 500,
    chains: int = 2,
    seed: int = 0,
    thin: int = 1,
    **fit_kwargs: Any,
) -> SBCResult:
    """Run ``n_sims`` simulate-and-fit rounds of ``model`` on ``design`` (params × tokens table)."""
    from bayescale.fitting import fit
    from bayescale.simulate import simulate_runs
    from bayescale.spec import load_spec

    spec = load_spec(model)
    if int(n_sims) != n_sims or n_sims < 1:
        raise BayescaleError(f"n_sims={n_sims!r} must be a whole number >= 1")
    design = default_design() if design is None else design
    law = spec.law
    prior = spec.draw_priors(int(n_sims), seed)
    rng = np.random.default_rng(seed)
    names = [*list(law.parameter_names), "sigma"]
    rows, truths, converged = [], [], []
    n_ranks = 0
    for i in range(int(n_sims)):
        truth: dict[str, float] = {p: float(prior[f"priors.{p}"][i]) for p in law.parameter_names}
        sigma = float(prior["likelihood.sigma"][i])
        noise_values = spec.likelihood.values({name: float(prior[f"likelihood.{name}"][i]) for name in spec.likelihood.priors()})
        frame = simulate_runs(spec.form, truth, design, sigma=0.0, seed=seed + i)
        noise = spec.likelihood.unit_noise(rng, noise_values, (len(frame),))
        frame["loss"] = frame["loss"] * np.exp(sigma * noise)
        truth["sigma"] = sigma
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = fit(frame, spec, [], draws=draws, tune=tune, chains=chains, seed=seed + 1000 + i, **fit_kwargs)
        post = result.posterior
        ranks = {}
        for name in names:
            values = post[name].transpose("chain", "draw").values[:, ::thin].reshape(-1)
            ranks[name] = int(np.sum(values < truth[name]))
            n_ranks = values.size + 1
        rows.append(ranks)
        truths.append(truth)
        converged.append(result.converged)
    return SBCResult(pd.DataFrame(rows, columns=names), n_ranks, pd.DataFrame(truths, columns=names), np.array(converged))
