"""Full-size simulation-based calibration of a shipped spec (slow: one NUTS fit per simulation).

    uv run python benchmarks/sbc.py --model chinchilla --sims 200 --draws 500 --out benchmarks/results/sbc_chinchilla

Writes the rank table (CSV), the chi-square uniformity table (markdown) and rank histograms (PNG).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from bayescale.validate import sbc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="chinchilla")
    parser.add_argument("--sims", type=int, default=200)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=500)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--thin", type=int, default=5, help="keep every k-th draw (reduces rank autocorrelation)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/sbc"))
    args = parser.parse_args()
    start = time.perf_counter()
    result = sbc(args.model, n_sims=args.sims, draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed, thin=args.thin)
    seconds = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    result.ranks.assign(converged=result.converged).to_csv(args.out / "ranks.csv", index=False)
    table = result.uniformity()
    text = (
        f"# SBC of {args.model}: {args.sims} simulations, {result.n_ranks - 1} thinned draws each "
        f"({int(result.converged.sum())} fits converged), {seconds:.0f} s\n\n{table.to_string(float_format=lambda v: f'{v:.3g}')}\n"
    )
    (args.out / "uniformity.md").write_text(text)
    result.plot().savefig(args.out / "ranks.png", dpi=110)
    print(text)


if __name__ == "__main__":
    main()
