"""Batch speed-up: the same N jobs on a LocalCluster of 1 and of 2 workers (prints a table).

    uv run python benchmarks/batch_bench.py [--jobs 6] [--draws 500]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bayescale.batch import run_batch
from bayescale.simulate import EPOCH_CHINCHILLA, grid_runs, simulate_runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=6)
    parser.add_argument("--draws", type=int, default=500)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bayescale-batch-bench-"))
    design = grid_runs(np.geomspace(2e7, 1e10, 6), np.geomspace(5e8, 2e11, 6))
    frames = []
    for j in range(args.jobs):
        frame = simulate_runs("chinchilla", dict(EPOCH_CHINCHILLA, E=1.6 + 0.05 * j), design, sigma=0.01, seed=j)
        frame["config"] = f"c{j}"
        frames.append(frame)
    import pandas as pd

    pd.concat(frames).to_csv(folder / "runs.csv", index=False)
    (folder / "manifest.toml").write_text(
        f'[defaults]\ndraws = {args.draws}\ntune = {args.draws}\nchains = 2\nseed = 0\n\n[[job]]\nname = "sweep"\nruns = "runs.csv"\nsplit_by = "config"\n'
    )
    times = {}
    for workers in (1, 2):
        start = time.perf_counter()
        summary = run_batch(folder / "manifest.toml", folder / f"results-{workers}", workers=workers)
        times[workers] = time.perf_counter() - start
        assert (summary["status"] == "ok").all(), summary[["job", "status", "error"]]
    print(f"| jobs | draws | 1 worker (s) | 2 workers (s) | speed-up |\n|---|---|---|---|---|\n| {args.jobs} | {args.draws} | {times[1]:.1f} | {times[2]:.1f} | {times[1] / times[2]:.2f}x |")


if __name__ == "__main__":
    main()
