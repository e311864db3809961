"""Speed and memory benchmarks of bayescale (issue: speed). Prints one markdown table.

    uv run python benchmarks/run.py              # everything but the 2,500-run hierarchy
    uv run python benchmarks/run.py --hierarchy  # also the default grouped fits (704 runs / 8 groups, 2,500 / 50)

Each row: what is measured, the measurement, the target (or the anchor it is compared with)
and their ratio. Numbers depend on the machine: the README quotes the latest run and where.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
import tracemalloc
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed_subprocess(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True)
    return time.perf_counter() - start


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


COLD_FIT = """
import warnings; warnings.simplefilter('ignore')
import bayescale
from bayescale.resources import data_path
bayescale.fit(bayescale.load_runs(data_path('chinchilla_figure4_runs.csv')), draws=1000, tune=1000, chains=4, seed=0)
"""
POINT_FIT = """
import warnings; warnings.simplefilter('ignore')
import bayescale
from bayescale.resources import data_path
from bayescale.validate import point_fit
point_fit(bayescale.load_runs(data_path('chinchilla_figure4_runs.csv')), bootstrap=100, seed=0)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hierarchy", action="store_true", help="also the default grouped fits: 704 runs in 8 groups, 2,500 in 50")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rows = []

    t_import = min(timed_subprocess("import bayescale") for _ in range(3))
    rows.append(("`import bayescale`", t_import, 1.5, "target s"))
    t_help = min(timed_subprocess("from bayescale.cli import app; import sys; sys.argv=['bayescale','--help']\ntry:\n    app()\nexcept SystemExit:\n    pass") for _ in range(3))
    rows.append(("`bayescale --help`", t_help, 1.5, "target s"))

    t_point = timed_subprocess(POINT_FIT)
    t_cold = timed_subprocess(COLD_FIT)
    rows.append(("point fit + 100 bootstraps (new process)", t_point, None, "anchor"))
    rows.append(("cold fit, 4×1000 draws, 245 runs (new process)", t_cold, t_point, "vs point fit + bootstrap"))
    rows.append(("cold fit (target)", t_cold, 15.0, "target s"))

    import bayescale
    from bayescale.forecasting import forecast_summary, forecast_threads
    from bayescale.resources import data_path

    runs = bayescale.load_runs(data_path("chinchilla_figure4_runs.csv"))
    bayescale.fit(runs, draws=1000, tune=1000, chains=4, seed=0)
    shifted = runs.data.assign(loss=runs.data["loss"] * 1.001)
    t_warm, warm = timed(lambda: bayescale.fit(shifted, draws=1000, tune=1000, chains=4, seed=1))
    rows.append(("warm fit: same shape, new data, same process", t_warm, 3.0, "target s"))

    n_targets = 100_000
    targets = {"params": np.geomspace(1e8, 1e12, n_targets), "tokens": np.geomspace(2e9, 2e13, n_targets)}
    draws = warm.posterior.sizes["chain"] * warm.posterior.sizes["draw"]
    full_mb = 2 * 8 * n_targets * draws / 1e6
    t_summary, _ = timed(lambda: forecast_summary(warm, **targets))
    tracemalloc.start()  # a second run for memory: tracing every allocation triples its time
    forecast_summary(warm, **targets)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rows.append((f"forecast_summary (API and CLI), {n_targets:,} targets × {draws} draws, {forecast_threads()} threads", t_summary, 5.0, "target s"))
    rows.append(("  its peak traced memory (MB); all draws kept", peak / 1e6, full_mb, "draws MB"))
    tracemalloc.start()
    t_forecast, ds = timed(lambda: warm.forecast(**targets))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del ds
    rows.append((f"forecast keeping all draws (joint), {n_targets:,} targets", t_forecast, t_summary, "vs forecast_summary"))
    rows.append(("  its peak traced memory (MB); all draws kept", peak / 1e6, full_mb, "draws MB"))

    budgets = np.geomspace(1e20, 1e26, 100)
    t_alloc, _ = timed(lambda: warm.allocate(budgets))
    rows.append(("allocate 100 budgets × 4000 draws", t_alloc, 1.0, "target s"))

    if args.hierarchy:
        # the default grouped fit (levels per group, exponents shared, auto-centred), cold in a new
        # process, on the designs of benchmarks/pooling_bench.py: groups differing in E, A, B
        # (exponents shared, or differing a little: "-exp"); CPU seconds do not depend on the load
        from pooling_bench import TARGET_SECONDS, cold_fit

        for name in ("700x8", "700x8-exp", "2500x50"):
            r = cold_fit(name)
            verdict = f"R-hat {r['rhat']:.3f} (≤ 1.01), min ESS {r['ess']:.0f} (≥ 400), {r['div']} divergences: {'converged' if r['converged'] else 'NOT converged'}"
            rows.append(
                (f"hierarchical default fit, {r['runs']} runs in {name.split('x')[1].split('-')[0]} groups, cold ({verdict}; load {r['load']:.1f})", r["seconds"], TARGET_SECONDS[name], "target s")
            )
            rows.append(("  its CPU seconds / 2 (wall on 2 idle cores if the 4 chains share them)", r["cpu"] / 2, TARGET_SECONDS[name], "target s"))

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}\n")
    print("| measurement | value | target / anchor | ratio |")
    print("|---|---|---|---|")
    for name, value, ref, kind in rows:
        ratio = f"{value / ref:.2f}" if ref else ""
        ref_text = f"{ref:.3g} ({kind})" if ref else kind
        print(f"| {name} | {value:.3g} | {ref_text} | {ratio} |")


if __name__ == "__main__":
    main()
