"""Write data/synthetic_moe_runs.csv and data/synthetic_moe_truth.json (seeded, reproducible).

A small set of dense runs plus cheaper MoE proxy runs, drawn from the ``moe`` law
(N_eff = N_active·(1 + c·log E) inside Chinchilla) with architecture-level E and B and shared
exponents and c, times log-normal noise. Run from the repository root:

    uv run python scripts/make_synthetic_moe.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from bayescale.simulate import grid_runs, simulate_runs

SEED = 20260
SIGMA = 0.01
#: Shared constants; E and B per architecture (the hierarchical level of models/moe.toml).
SHARED = {"A": 480.0, "alpha": 0.34, "beta": 0.36, "c": 0.4}
BY_ARCH = {"dense": {"E": 1.80, "B": 2000.0}, "moe": {"E": 1.84, "B": 2200.0}}
#: Share of a dense model's parameters that sit in the expert (FFN) layers.
FFN_SHARE = 0.6


ROOT = Path(__file__).resolve().parents[1]


def main(root: Path = ROOT) -> None:
    dense = grid_runs(np.geomspace(2e7, 4e8, 4), np.geomspace(5e8, 1e10, 4))
    dense = dense.rename(columns={"params": "active_params"})
    dense["experts"] = 1
    moe = []
    for experts in (2, 4, 8, 16, 32):
        block = grid_runs(np.geomspace(2e7, 1e9, 4), np.geomspace(1e9, 4e10, 3)).rename(columns={"params": "active_params"})
        block["experts"] = experts
        moe.append(block)
    moe = pd.concat(moe, ignore_index=True)
    frames = []
    for i, (arch, design) in enumerate((("dense", dense), ("moe", moe))):
        truth = {**SHARED, **BY_ARCH[arch]}
        block = simulate_runs("moe", truth, design, sigma=SIGMA, seed=SEED + i)
        block["arch"] = arch
        block["params"] = block["active_params"] * (1.0 + FFN_SHARE * (block["experts"] - 1))
        frames.append(block)
    runs = pd.concat(frames, ignore_index=True)[["params", "active_params", "experts", "arch", "tokens", "loss"]]
    runs["loss"] = runs["loss"].round(6)
    out = root / "data"
    runs.to_csv(out / "synthetic_moe_runs.csv", index=False, float_format="%.6g")
    truth = {
        "form": "moe",
        "seed": SEED,
        "sigma": SIGMA,
        "shared": SHARED,
        "by_arch": BY_ARCH,
        "ffn_share": FFN_SHARE,
        "note": "loss = L(N_eff, D)·exp(sigma·z), N_eff = active_params·(1 + c·log experts); params = active·(1 + ffn_share·(experts-1))",
    }
    (out / "synthetic_moe_truth.json").write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {len(runs)} runs ({(runs['arch'] == 'dense').sum()} dense, {(runs['arch'] == 'moe').sum()} MoE)")


if __name__ == "__main__":
    main()
