"""What the self-check costs: fit time with and without it, and its refit reusing the compiled
model versus compiling a separate one. Prints a markdown table.

    uv run python benchmarks/self_check_cost.py
"""

from __future__ import annotations

import platform
import time
import warnings

from bayescale import fit, load_runs, sampling, self_check
from bayescale.resources import data_path
from bayescale.simulate import EPOCH_CHINCHILLA, simulate_runs

CASES = {
    "Chinchilla, 240 runs, 4 × 1000": ("chinchilla", {"draws": 1000, "tune": 1000, "chains": 4}),
    "synthetic, 240 runs, 2 × 300 (test-sized)": ("synthetic", {"draws": 300, "tune": 300, "chains": 2}),
}


def main() -> None:
    runs = load_runs(data_path("chinchilla_figure4_runs.csv"), drop_highest_loss=5)
    tables = {"chinchilla": runs, "synthetic": load_runs(simulate_runs("chinchilla", EPOCH_CHINCHILLA, runs.data[["params", "tokens"]], seed=1))}
    lines = ["| case | fit without self-check (s) | fit with self-check (s) | self-check, cached model (s) | self-check, separate compile (s) |", "|---|---|---|---|---|"]
    for name, (table, kwargs) in CASES.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit(tables[table], seed=1, self_check=False, **kwargs)  # compile once, outside the timings
            t0 = time.perf_counter()
            plain = fit(tables[table], seed=0, self_check=False, **kwargs)
            t1 = time.perf_counter()
            checked = fit(tables[table], seed=0, **kwargs)
            t2 = time.perf_counter()
            sampling._COMPILED.clear()
            t3 = time.perf_counter()
            config = sampling.SamplerConfig(draws=min(400, kwargs["draws"]), tune=min(400, kwargs["tune"]), chains=plain.info.chains, seed=0, cores=2, adaptation=plain.info.adaptation)
            self_check.run(plain, plain.design, plain.spec.check_priors(0), config)
            t4 = time.perf_counter()
        lines.append(f"| {name} | {t1 - t0:.1f} | {t2 - t1:.1f} | {checked.self_check.seconds:.1f} | {t4 - t3:.1f} |")
        print(lines[-1], flush=True)
    print("\n".join(lines))
    print(f"\n{platform.machine()}, Python {platform.python_version()}, shared 2-core machine (other jobs running).")


if __name__ == "__main__":
    main()
