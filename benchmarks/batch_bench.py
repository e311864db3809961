"""Batch speed-up: the same N jobs on a LocalCluster of 1 and of 2 workers (prints a table).

    uv run python benchmarks/batch_bench.py [--jobs 6] [--draws 500] [--kinds pooled hierarchical]

Two kinds of job: ``pooled`` (one Chinchilla law per table, seconds to sample) and
``hierarchical`` (three datasets per table, partially pooled, sampling dominates). Each worker
process compiles a model once (Numba, ~13 s) and reuses it for later jobs of the same shape, so
the speed-up from more workers shows where sampling, not compilation, dominates. The last
column is Amdahl's bound for 2 workers when each worker pays the slowest (first) job's fixed
cost once and splits the rest: (F + n·t) / (F + n·t/2) with F the slowest job, t the median.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bayescale.batch import run_batch
from bayescale.simulate import EPOCH_CHINCHILLA, grid_runs, simulate_runs


def write_jobs(folder: Path, kind: str, jobs: int, draws: int) -> Path:
    """A run table with one ``config`` per job and a manifest that splits it."""
    design = grid_runs(np.geomspace(2e7, 1e10, 6), np.geomspace(5e8, 2e11, 6))
    datasets = ("a", "b", "c") if kind == "hierarchical" else ("a",)
    frames = []
    for j in range(jobs):
        for k, name in enumerate(datasets):
            frame = simulate_runs("chinchilla", dict(EPOCH_CHINCHILLA, E=1.6 + 0.05 * j + 0.1 * k), design, sigma=0.01, seed=100 * j + k)
            frames.append(frame.assign(config=f"c{j}", dataset=name))
    pd.concat(frames).to_csv(folder / f"{kind}.csv", index=False)
    group = 'group = "dataset"\n' if kind == "hierarchical" else ""
    manifest = folder / f"{kind}.toml"
    manifest.write_text(f'[defaults]\ndraws = {draws}\ntune = {draws}\nchains = 2\nseed = 0\n{group}\n[[job]]\nname = "sweep"\nruns = "{kind}.csv"\nsplit_by = "config"\n')
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=6)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--kinds", nargs="+", choices=("pooled", "hierarchical"), default=["pooled", "hierarchical"])
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bayescale-batch-bench-"))
    print("| jobs | kind | draws | 1 worker (s) | 2 workers (s) | speed-up | slowest job, 1 worker (s) | median job, 1 worker (s) | Amdahl bound |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind in args.kinds:
        manifest = write_jobs(folder, kind, args.jobs, args.draws)
        times, summaries = {}, {}
        for workers in (1, 2):
            start = time.perf_counter()
            summaries[workers] = run_batch(manifest, folder / f"results-{kind}-{workers}", workers=workers)
            times[workers] = time.perf_counter() - start
            assert (summaries[workers]["status"] == "ok").all(), summaries[workers][["job", "status", "error"]]
        seconds = summaries[1]["seconds"]
        fixed, rest = seconds.max(), seconds.median() * (args.jobs - 1)
        print(
            f"| {args.jobs} | {kind} | {args.draws} | {times[1]:.1f} | {times[2]:.1f} | {times[1] / times[2]:.2f}x "
            f"| {fixed:.1f} | {seconds.median():.1f} | {(fixed + rest) / (fixed + rest / 2):.2f}x |"
        )


if __name__ == "__main__":
    main()
