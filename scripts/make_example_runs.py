"""Write data/example_grouped_runs.csv and data/example_targets.csv (synthetic, seeded, reproducible).

The README's quickstarts run on these files as printed. Three datasets share the Chinchilla
exponents and differ in irreducible loss E and the amplitudes A, B (the situation partial
pooling is for); each has 36 runs on a 6 × 6 grid of sizes and token counts, times log-normal
noise. The size column is called ``Model Size``, as in many training logs, so the quickstarts
show ``--column params="Model Size"``. Run from the repository root:

    uv run python scripts/make_example_runs.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bayescale.simulate import grid_runs, simulate_groups

ROOT = Path(__file__).resolve().parents[1]
SEED = 2024
SIGMA = 0.01
#: The truth per dataset (shared exponents), recorded in data/README.md.
TRUTHS = {
    "web": {"E": 1.75, "A": 400.0, "B": 1800.0, "alpha": 0.35, "beta": 0.36},
    "code": {"E": 1.55, "A": 520.0, "B": 2300.0, "alpha": 0.35, "beta": 0.36},
    "books": {"E": 1.95, "A": 460.0, "B": 2000.0, "alpha": 0.35, "beta": 0.36},
}
#: Forecast targets: bigger models than any run, for datasets seen at fit time.
TARGETS = pd.DataFrame(
    {
        "name": ["1B web", "7B web", "7B code", "70B code"],
        "dataset": ["web", "web", "code", "code"],
        "params": ["1B", "7B", "7B", "70B"],
        "tokens": ["20B", "140B", "140B", "1.4T"],
    }
)


def main(root: Path = ROOT) -> None:
    design = grid_runs(np.geomspace(2e7, 1e9, 6), np.geomspace(4e8, 4e10, 6))
    frame = simulate_groups("chinchilla", TRUTHS, design, column="dataset", sigma=SIGMA, seed=SEED)
    frame = frame[["dataset", "params", "tokens", "loss"]].rename(columns={"params": "Model Size"})
    frame["loss"] = frame["loss"].round(5)
    frame.to_csv(root / "data" / "example_grouped_runs.csv", index=False, float_format="%.6g")
    TARGETS.to_csv(root / "data" / "example_targets.csv", index=False)
    print(f"wrote {len(frame)} runs in {frame['dataset'].nunique()} datasets and {len(TARGETS)} targets to {root / 'data'}")


if __name__ == "__main__":
    main()
