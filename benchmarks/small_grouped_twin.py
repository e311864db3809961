"""Convergence of the default fit on a small grouped over-training table (issue 26 item 4).

A constructed twin of a blind table that ended NOT CONVERGED: 3 groups (datasets), 4–6 model
sizes each up to ~400M parameters, 5–10 token budgets per size from 5 to 500 tokens per
parameter (heavy over-training), Chinchilla-true with levels differing by group and shared
exponents (``simulate.group_truths``). The default fit (``bayescale.fit(runs, group="data")``,
model chosen by forecasting) is judged by bayescale's checks (R-hat ≤ 1.01, bulk and tail ESS ≥
400, no divergences) and forecasts 9 runs at 1.4B–6.9B parameters (20 tokens/param), scored
like the forecast benchmark. Writes ``benchmarks/results/small_grouped_twin.md`` (one row per
seed; appended rows of earlier invocations are kept).

    uv run python benchmarks/small_grouped_twin.py --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import bayescale
from bayescale.runs import load_runs
from bayescale.simulate import group_truths, simulate_runs
from bayescale.validate.metrics import coverage, median_abs_error

RESULTS = Path(__file__).parent / "results" / "small_grouped_twin.md"
#: Sizes per group (4, 5, 6) up to ~412M, and token budgets per size (5 to 10) in tokens per parameter.
SIZES = {"g00": np.geomspace(2e7, 4.12e8, 6), "g01": np.geomspace(3e7, 3.5e8, 5), "g02": np.geomspace(5e7, 4.0e8, 4)}
#: The held-out forecasts: 1.4B, 2.8B and 6.9B parameters at 20 tokens per parameter, every group.
TARGET_SIZES = (1.4e9, 2.8e9, 6.9e9)
SIGMA = 0.01


def twin(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training table (~95 runs) and the 9 held-out larger runs, Chinchilla-true per group."""
    rng = np.random.default_rng(seed)
    truths = group_truths(3, seed=seed)
    train, test = [], []
    for i, (name, sizes) in enumerate(SIZES.items()):
        rows = []
        for n in sizes:
            k = int(rng.integers(5, 9))  # 5 to 8 budgets: about 95 runs in all, like the blind table
            rows += [(n, n * r) for r in np.geomspace(5, 500, k)]
        design = pd.DataFrame(rows, columns=["params", "tokens"])
        train.append(simulate_runs("chinchilla", truths[name], design, sigma=SIGMA, seed=seed * 10 + i).assign(data=name))
        big = pd.DataFrame({"params": TARGET_SIZES, "tokens": [20 * n for n in TARGET_SIZES]})
        test.append(simulate_runs("chinchilla", truths[name], big, sigma=SIGMA, seed=seed * 10 + i + 5).assign(data=name))
    return pd.concat(train, ignore_index=True), pd.concat(test, ignore_index=True)


def run(seed: int, model: str | None) -> dict[str, object]:
    frame, held = twin(seed)
    runs = load_runs(frame)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = bayescale.fit(runs, model, group="data", seed=seed)
        ds = fitted.forecast(held.drop(columns=["loss"]), seed=seed)
    seconds = time.perf_counter() - start
    samples = np.log(ds["loss_pred"].stack(sample=("chain", "draw")).transpose("sample", "target").values)
    observed = np.log(held["loss"].to_numpy())
    d = fitted.diagnostics
    choice = fitted.info.model_choice
    chosen = "given" if choice is None or not choice.made else f"{choice.chosen}/{choice.pooling}"
    return {
        "seed": seed,
        "model": model or "default (chosen)",
        "chosen": chosen,
        "runs": len(runs),
        "centered": ",".join(fitted.info.centered or ()) or "none",
        "recentred": "yes" if fitted.info.uncentered is not None else "no",
        "rhat": d.rhat_max,
        "ess_bulk": d.ess_bulk_min,
        "ess_tail": d.ess_tail_min,
        "div": d.divergences,
        "converged": fitted.converged,
        "err": median_abs_error(np.median(samples, axis=0), observed),
        "cov90": coverage(samples, observed, 0.9),
        "s": seconds,
    }


def row_text(r: dict[str, object]) -> str:
    return (
        f"| {r['seed']} | {r['model']} | {r['chosen']} | {r['runs']} | {r['centered']} | {r['recentred']} | {r['rhat']:.3f} | {r['ess_bulk']:.0f} / {r['ess_tail']:.0f} | {r['div']} | "
        f"{'yes' if r['converged'] else 'NO'} | {r['err']:.4f} | {r['cov90']:.2f} | {r['s']:.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--model", default=None, help="force a spec (default: the fit's own choice)")
    args = parser.parse_args()
    rows = [run(int(s), args.model) for s in args.seeds.split(",")]
    header = "| seed | model | chosen | runs | centred | re-sampled | R-hat max | ESS bulk / tail min | divergences | converged | med abs log err (9 runs at 1.4–6.9B) | cov 90 | s |"
    lines = [header, "|" + "---|" * (header.count("|") - 1)] + [row_text(r) for r in rows]
    text = "\n".join(lines)
    print(text)
    note = f"\n\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, shared 2-core machine, 4 chains × 1000 draws (the default).\n"
    previous = RESULTS.read_text() if RESULTS.exists() else "# Small grouped over-training twin (benchmarks/small_grouped_twin.py)\n\n" + (__doc__ or "").split("\n\n")[1] + "\n"
    RESULTS.write_text(previous + "\n" + text + note)


if __name__ == "__main__":
    main()
