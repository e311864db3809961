"""Time ``allocate_params`` on 100 budgets × 4000 draws (4 chains × 1000) for each law path.

Prints target, measured (best of ``REPEATS`` after a warm-up) and their ratio. Not a test: timings
depend on the machine; run ``uv run python benchmarks/allocate_bench.py``.
"""

from __future__ import annotations

import time

import numpy as np

from bayescale.allocate import allocate_params
from bayescale.laws import get_law
from bayescale.simulate import EPOCH_CHINCHILLA

REPEATS = 3
SHAPE = (4, 1000)
BUDGETS = np.geomspace(1e19, 1e26, 100)


def draws(truth: dict[str, float], rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {k: v * np.exp(0.03 * rng.standard_normal(SHAPE)) for k, v in truth.items()}


def best_time(fn) -> float:
    fn()  # warm-up (imports, caches)
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    rng = np.random.default_rng(0)
    chin = draws(EPOCH_CHINCHILLA, rng)
    dc = dict(chin, **draws({"R_D_star": 15.4, "R_N_star": 5.3}, rng))
    kaplan = draws({"alpha_N": 0.076, "alpha_D": 0.095, "N_c": 8.8e13, "D_c": 5.4e13}, rng)
    cases = [
        ("chinchilla, closed form + robust mean", 0.5, lambda: allocate_params(get_law("chinchilla"), chin, BUDGETS)),
        ("chinchilla, robust 0.9-quantile", 1.0, lambda: allocate_params(get_law("chinchilla"), chin, BUDGETS, robust_quantile=0.9)),
        ("chinchilla, forced numeric search", 1.0, lambda: allocate_params(get_law("chinchilla"), chin, BUDGETS, method="numeric")),
        ("kaplan, numeric search", 1.0, lambda: allocate_params(get_law("kaplan"), kaplan, BUDGETS)),
        ("data_constrained, unique_tokens=100B", 2.0, lambda: allocate_params(get_law("data_constrained"), dc, BUDGETS, unique_tokens=1e11)),
    ]
    print(f"allocate: {len(BUDGETS)} budgets x {SHAPE[0] * SHAPE[1]} draws, best of {REPEATS}\n")
    print("| case | target (s) | measured (s) | ratio |")
    print("|---|---|---|---|")
    for name, target, fn in cases:
        measured = best_time(fn)
        print(f"| {name} | {target:.2f} | {measured:.3f} | {measured / target:.2f} |")


if __name__ == "__main__":
    main()
