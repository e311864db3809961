"""Grouped fits: speed and convergence of the default pooling, and which pooling forecasts best.

Designs (synthetic, from ``bayescale.simulate``): groups that differ in E, A and B with shared
exponents, and one whose exponents also differ a little. Two parts:

    uv run python benchmarks/pooling_bench.py speed   # cold fits (new process), time + convergence
    uv run python benchmarks/pooling_bench.py lfo     # leave-future-out: old vs new default vs all pooled

Each prints a markdown table (``--out`` writes it too) with the target beside each figure and
the load average seen, because the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
#: The issue's targets: cold fit seconds on 2 cores for each design.
TARGET_SECONDS = {"700x8": 60.0, "700x8-exp": 60.0, "2500x50": 90.0}
FIT = {"draws": 1000, "tune": 1000, "chains": 4}
#: Pooling structures compared: the old default (everything varies, non-centred), the new default,
#: and the new default with the exponents pooled too (centring by the same auto rule).
VARIANTS = {
    "old (all, non-centred)": {"params": ["E", "A", "B", "alpha", "beta"], "centered": False},
    "new (levels, auto)": None,
    "exponents too (all, auto)": {"params": ["E", "A", "B", "alpha", "beta"], "centered": "auto"},
}


def design(name: str) -> pd.DataFrame:
    """The synthetic grouped run tables of the issue: ~700 runs in 8 groups, 2,500 in 50."""
    from bayescale.simulate import grid_runs, group_truths, simulate_groups

    if name in ("700x8", "700x8-exp"):
        shapes = {"alpha": 0.03, "beta": 0.03} if name.endswith("exp") else None
        truths = group_truths(8, shape_spread=shapes, seed=1)
        grid = grid_runs(np.geomspace(2e7, 3e9, 11), np.geomspace(4e8, 1.2e11, 8))
        return simulate_groups("chinchilla", truths, grid, sigma=0.01, seed=5)
    if name == "gemstones":  # real: McLeish et al. (2025), 619 runs in 3 training recipes (from the bench branch)
        from bayescale.resources import data_path

        frame = pd.read_csv(data_path("gemstones_runs.csv"))
        return frame[["params", "tokens", "flops", "loss"]].assign(group=frame["recipe"])
    if name == "2500x50":
        truths = group_truths(50, seed=2)
        grid = grid_runs(np.geomspace(3e7, 5e9, 10), np.geomspace(1e9, 2e11, 5))
        return simulate_groups("chinchilla", truths, grid, sigma=0.01, seed=7)
    raise SystemExit(f"unknown design {name!r}; known: {', '.join(TARGET_SECONDS)}")


def spec_variant(variant: str):
    from bayescale.spec import load_spec

    pooling = VARIANTS[variant]
    if pooling is None:
        return load_spec("chinchilla")
    raw = load_spec("chinchilla").to_dict()
    raw["pooling"] = {**raw["pooling"], **pooling}
    return raw


def _child(name: str, variant: str, adaptation: str | None) -> None:
    """One cold fit in this (new) process; prints a JSON line."""
    start = time.perf_counter()
    warnings.simplefilter("ignore")
    import bayescale

    frame = design(name)
    t_import = time.perf_counter() - start
    result = bayescale.fit(frame, spec_variant(variant), group="group", seed=0, adaptation=adaptation, **FIT)
    d = result.diagnostics
    stats = result.tree["sample_stats"].to_dataset()
    steps = float(stats["n_steps"].mean()) if "n_steps" in stats else float("nan")
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - start,
                "import": t_import,
                "sample": result.info.seconds,
                "runs": len(frame),
                "rhat": d.rhat_max,
                "ess": min(d.ess_bulk_min, d.ess_tail_min),
                "div": d.divergences,
                "converged": result.converged,
                "centered": list(result.info.centered or ()),
                "adaptation": result.info.adaptation,
                "steps": steps,
            }
        )
    )


def cold_fit(name: str, variant: str = "new (levels, auto)", adaptation: str | None = None) -> dict:
    """A cold fit of design ``name`` in a new process: wall seconds, convergence, load average."""
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    args = [sys.executable, __file__, "child", name, variant, adaptation or ""]
    out = subprocess.run(args, check=True, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row["load"] = (load + os.getloadavg()[0]) / 2
    # CPU seconds do not depend on how busy the shared machine is; on 2 idle cores wall ≈ CPU / 2
    row["cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return row


def fmt_fit(row: dict, target: float | None) -> str:
    ok = "converged" if row["converged"] else "NOT converged"
    goal = f"target {target:.0f}" if target else "no target"
    return (
        f"{row['seconds']:.0f} s | {row['cpu']:.0f} s → {row['cpu'] / 2:.0f} s ({goal}) | {row['rhat']:.3f} (≤ 1.01) | {row['ess']:.0f} (≥ 400) | {row['div']} (0) | {ok} | "
        f"{row['adaptation']} | {row['steps']:.0f} | {','.join(row['centered']) or '-'} | {row['load']:.1f}"
    )


def speed(args) -> list[str]:
    lines = [
        "| design | pooling | adaptation asked | cold wall (busy) | CPU → 2 idle cores | R-hat max | min ESS | divergences | verdict | adaptation | leapfrog steps/draw | centred | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in args.designs:
        for variant in args.variants:
            for adaptation in args.adaptations:
                row = cold_fit(name, variant, adaptation or None)
                line = f"| {name} ({row['runs']} runs) | {variant} | {adaptation or 'default'} | " + fmt_fit(row, TARGET_SECONDS.get(name)) + " |"  # the real gemstones table has no speed target
                print(line, flush=True)
                lines.append(line)
    return lines


def lfo(args) -> list[str]:
    from bayescale.validate.backtest import backtest

    lines = [
        "| design | pooling | cutoff (flops) | n train / test | median abs log error | coverage 90 | mean 90% width | CRPS | seconds | converged | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in args.designs:
        frame = design(name)
        flops = frame["flops"] if "flops" in frame else 6 * frame["params"] * frame["tokens"]
        cutoff = float(np.quantile(flops, args.quantile))
        for variant in args.variants:
            load = os.getloadavg()[0]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = backtest(frame, spec_variant(variant), cutoff, group="group", seed=0, draws=args.draws, tune=args.tune, chains=4)
            line = (
                f"| {name} | {variant} | {cutoff:.2g} | {r['n_train']} / {r['n_test']} | {r['median_abs_log_error']:.4f} | {r['coverage_90']:.2f} | "
                f"{r['mean_width_90']:.4f} | {r['crps']:.4f} | {r['seconds']:.0f} | {r['converged']} | {(load + os.getloadavg()[0]) / 2:.1f} |"
            )
            print(line, flush=True)
            lines.append(line)
    return lines


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        _child(sys.argv[2], sys.argv[3], sys.argv[4] or None)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("speed", "lfo"))
    parser.add_argument("--designs", nargs="+", default=list(TARGET_SECONDS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--adaptations", nargs="+", default=[""], help="nutpie adaptations to try ('' = the default)")
    parser.add_argument("--quantile", type=float, default=0.7, help="lfo: train on runs up to this flops quantile")
    parser.add_argument("--draws", type=int, default=1000, help="lfo: draws (and --tune) per chain, 4 chains")
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--header", action=argparse.BooleanOptionalAction, default=True, help="print the table header")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    lines = speed(args) if args.part == "speed" else lfo(args)
    lines = lines if args.header else lines[2:]
    text = "\n".join(lines) + f"\n\n{os.cpu_count()} cores; load average is the machine's 1-minute load during each fit (shared machine)."
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
