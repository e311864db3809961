"""Speed and memory benchmarks of bayescale (issues: speed, 18). Prints one markdown table.

    uv run python benchmarks/run.py              # everything but the 2,500-run hierarchy
    uv run python benchmarks/run.py --hierarchy  # also the default grouped fits (704 runs / 8 groups, 2,500 / 50)
    uv run python benchmarks/run.py --joint      # also the joint forecast keeping all draws

Each row: what is measured, the measurement, the target (or the anchor it is compared with)
and their ratio. Numbers depend on the machine: the README quotes the latest run and where.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed_subprocess(code: str, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True, env={**os.environ, **(env or {})})
    return time.perf_counter() - start


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


#: A cold fit in a new process, timed in three parts: imports, compile (or load from
#: PyTensor's disk cache), sampling + diagnostics; prints them as JSON and saves the fit.
COLD_FIT = """
import json, sys, time, warnings; warnings.simplefilter('ignore')
t0 = time.perf_counter()
import arviz_stats, pymc
import bayescale
from bayescale import compiled, fitting
from bayescale.resources import data_path
compiled.import_nutpie()
t1 = time.perf_counter()
runs = bayescale.load_runs(data_path('chinchilla_figure4_runs.csv'))
fitting.prepare(runs, sampler=SAMPLER)
t2 = time.perf_counter()
fit = bayescale.fit(runs, draws=1000, tune=1000, chains=4, seed=0, sampler=SAMPLER)
t3 = time.perf_counter()
fit.save(sys.argv[1])
print(json.dumps({'imports': t1 - t0, 'compile': t2 - t1, 'sampling': t3 - t2, 'converged': fit.converged}))
"""
POINT_FIT = """
import warnings; warnings.simplefilter('ignore')
import bayescale
from bayescale.resources import data_path
from bayescale.validate import point_fit
point_fit(bayescale.load_runs(data_path('chinchilla_figure4_runs.csv')), bootstrap=100, seed=0)
"""
#: The point fit's algorithm is sequential: pinned to one BLAS thread it is fastest (unpinned,
#: the default thread pool makes it take minutes on a shared machine).
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def load() -> str:
    """The 1-minute load average: timings on a shared machine are only comparable within one run."""
    return f"{os.getloadavg()[0]:.1f}"


def cold_fit(sampler: str, path: str) -> tuple[float, dict]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", COLD_FIT.replace("SAMPLER", repr(sampler)), path], check=True, cwd=ROOT, capture_output=True, text=True)
    return time.perf_counter() - start, json.loads(done.stdout.strip().splitlines()[-1])


def startup_rows(fit_path: str) -> list[tuple]:
    """What a new process pays: imports, --help, the cold fit (both nutpie paths, split) and summary of its file."""
    rows = []
    t_import = min(timed_subprocess("import bayescale") for _ in range(3))
    rows.append(("`import bayescale`", t_import, 0.5, "target s", load()))
    t_help = min(timed_subprocess("from bayescale.cli import app; import sys; sys.argv=['bayescale','--help']\ntry:\n    app()\nexcept SystemExit:\n    pass") for _ in range(3))
    rows.append(("`bayescale --help`", t_help, 1.0, "target s", load()))

    t_point = timed_subprocess(POINT_FIT, ONE_THREAD)
    rows.append(("point fit + 100 bootstraps (new process, 1 BLAS thread)", t_point, None, "anchor", load()))
    for sampler in ("nutpie", "nutpie-cfunc"):
        t_cold, split = cold_fit(sampler, fit_path)
        rows.append((f"cold fit, 4×1000 draws, 245 runs (new process), sampler {sampler}", t_cold, t_point, "vs point fit + bootstrap", load()))
        rows.extend((f"  {part}" + (" (+ diagnostics)" if part == "sampling" else ""), split[part], t_cold, "share of the cold fit", load()) for part in ("imports", "compile", "sampling"))
    t_summary_cli = min(timed_subprocess(f"from bayescale.cli import app; import sys; sys.argv=['bayescale','summary',{fit_path!r}]\ntry:\n    app()\nexcept SystemExit:\n    pass") for _ in range(2))
    rows.append(("`bayescale summary FIT` (new process)", t_summary_cli, 3.0, "target s", load()))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hierarchy", action="store_true", help="also the default grouped fits: 704 runs in 8 groups, 2,500 in 50")
    parser.add_argument("--joint", action="store_true", help="also time the joint forecast keeping all draws (~1 min, 6.6 GB)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    folder = tempfile.mkdtemp(prefix="bayescale-bench-")
    fit_path = os.path.join(folder, "fit.nc")

    rows = startup_rows(fit_path)

    import bayescale
    from bayescale.forecasting import forecast_summary, forecast_threads
    from bayescale.resources import data_path

    runs = bayescale.load_runs(data_path("chinchilla_figure4_runs.csv"))
    bayescale.fit(runs, draws=1000, tune=1000, chains=4, seed=0)
    shifted = runs.data.assign(loss=runs.data["loss"] * 1.001)
    t_warm, warm = timed(lambda: bayescale.fit(shifted, draws=1000, tune=1000, chains=4, seed=1))
    rows.append(("warm fit: same shape, new data, same process", t_warm, 1.5, "target s", load()))

    n_targets = 100_000
    targets = {"params": np.geomspace(1e8, 1e12, n_targets), "tokens": np.geomspace(2e9, 2e13, n_targets)}
    draws = warm.posterior.sizes["chain"] * warm.posterior.sizes["draw"]
    full_mb = 2 * 8 * n_targets * draws / 1e6
    t_summary, _ = timed(lambda: forecast_summary(warm, **targets))
    rows.append((f"forecast_summary (API and CLI), {n_targets:,} targets × {draws} draws, {forecast_threads()} threads", t_summary, 5.0, "target s", load()))
    tracemalloc.start()  # a second run for memory: tracing every allocation triples its time
    forecast_summary(warm, **targets)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rows.append(("  its peak traced memory (MB); all draws kept", peak / 1e6, full_mb, "draws MB", load()))
    if args.joint:
        tracemalloc.start()
        t_forecast, ds = timed(lambda: warm.forecast(**targets))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del ds
        rows.append((f"forecast keeping all draws (joint), {n_targets:,} targets", t_forecast, t_summary, "vs forecast_summary", load()))
        rows.append(("  its peak traced memory (MB); all draws kept", peak / 1e6, full_mb, "draws MB", load()))

    budgets = np.geomspace(1e20, 1e26, 100)
    t_alloc, _ = timed(lambda: warm.allocate(budgets))
    rows.append(("allocate 100 budgets × 4000 draws", t_alloc, 0.3, "target s", load()))

    from bayescale.design import next_runs  # issue 29: no refit per candidate; both greedy passes of a budget

    rng = np.random.default_rng(0)
    pool = {"params": 10 ** rng.uniform(7.5, 10.5, 1000)}
    pool["tokens"] = pool["params"] * 10 ** rng.uniform(0.3, 2.5, 1000)
    t_next, _ = timed(lambda: next_runs(warm, pool, {"params": 7e10, "tokens": 1.4e12}, budget_flops=1e22))
    rows.append((f"next_runs: 1,000 candidates × {draws} draws, a budget (both greedy passes)", t_next, 5.0, "target s", load()))

    if args.hierarchy:
        # the default grouped fit (levels per group, exponents shared, auto-centred), cold in a new
        # process, on the designs of benchmarks/pooling_bench.py: groups differing in E, A, B
        # (exponents shared, or differing a little: "-exp"); CPU seconds do not depend on the load
        from pooling_bench import TARGET_SECONDS, cold_fit

        for name in ("700x8", "700x8-exp", "2500x50"):
            r = cold_fit(name)
            verdict = f"R-hat {r['rhat']:.3f} (≤ 1.01), min ESS {r['ess']:.0f} (≥ 400), {r['div']} divergences: {'converged' if r['converged'] else 'NOT converged'}"
            groups = name.split("x")[1].split("-")[0]
            rows.append((f"hierarchical default fit, {r['runs']} runs in {groups} groups, cold ({verdict}; load {r['load']:.1f})", r["seconds"], TARGET_SECONDS[name], "target s", load()))
            rows.append(("  its CPU seconds / 2 (wall on 2 idle cores if the 4 chains share them)", r["cpu"] / 2, TARGET_SECONDS[name], "target s", load()))

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; load = 1-minute load average after each row\n")
    print("| measurement | value (s) | target / anchor | ratio | load |")
    print("|---|---|---|---|---|")
    for name, value, ref, kind, at in rows:
        ratio = f"{value / ref:.2f}" if ref else ""
        ref_text = f"{ref:.3g} ({kind})" if ref else kind
        print(f"| {name} | {value:.3g} | {ref_text} | {ratio} | {at} |")


if __name__ == "__main__":
    main()
