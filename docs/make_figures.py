"""Regenerate the README's figures from the embedded data: `uv run python docs/make_figures.py`."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import bayescale
from bayescale.plots import plot_isoflop_profiles, plot_observed_vs_predicted
from bayescale.resources import data_path

OUT = Path(__file__).parent / "figures"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    runs = bayescale.load_runs(data_path("chinchilla_figure4_runs.csv"), drop_highest_loss=5)
    result = bayescale.fit(runs, "chinchilla", seed=0)
    plot_isoflop_profiles(result).savefig(OUT / "chinchilla_isoflops.png", dpi=110)
    plot_observed_vs_predicted(result).savefig(OUT / "chinchilla_observed_vs_predicted.png", dpi=110)
    print(f"wrote figures to {OUT}")


if __name__ == "__main__":
    main()
