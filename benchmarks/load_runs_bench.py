"""Time and peak memory of ``load_runs`` on large W&B-like CSVs (issues 31, 32: a 100 MiB table took ~240 s).

    uv run python benchmarks/load_runs_bench.py                 # 100k and 1M rows (≈ 10 and 100 MiB)
    uv run python benchmarks/load_runs_bench.py --rows 200000   # one size

Each size is generated once (seeded) in a temporary folder and loaded in a fresh process, so the
peak resident memory (``ru_maxrss``) is the load's own. Prints one markdown table: rows, MiB, seconds, peak MiB.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

CHILD = """
import resource, sys, time, warnings
warnings.simplefilter("ignore")
import bayescale
start = time.perf_counter()
table = bayescale.load_runs(sys.argv[1], where=["params<=1e10"])
seconds = time.perf_counter() - start
print(len(table), seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def make_table(rows: int, path: Path, seed: int = 0) -> None:
    """A run table like a W&B export: run name, dataset, the required columns, flops, learning rate and a step."""
    rng = np.random.default_rng(seed)
    params = np.round(10 ** rng.uniform(7, 10, rows))
    tokens = np.round(params * 10 ** rng.uniform(0, 2, rows))
    frame = pd.DataFrame(
        {
            "run/name": [f"run-{i:07d}" for i in range(rows)],
            "dataset": rng.choice(["web", "code", "books"], rows),
            "params": params,
            "tokens": tokens,
            "flops": 6 * params * tokens,
            "loss": 1.7 + 400 / params**0.34 + 410 / tokens**0.28 + rng.normal(0, 0.01, rows),
            "lr": rng.choice(["1e-3", "3e-4", "1e-4"], rows),
            "step": rng.integers(1000, 100000, rows),
        }
    )
    frame.to_csv(path, index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="*", default=[100_000, 1_000_000])
    args = parser.parse_args()
    print("| rows | MiB | seconds | peak MiB |\n|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        for rows in args.rows:
            path = Path(folder) / f"runs_{rows}.csv"
            make_table(rows, path)
            out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True).stdout.split()
            print(f"| {rows:,} | {path.stat().st_size / 2**20:.0f} | {float(out[1]):.2f} | {float(out[2]):.0f} |", flush=True)


if __name__ == "__main__":
    main()
