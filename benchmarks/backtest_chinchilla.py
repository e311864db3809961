"""Leave-future-out backtest on the embedded Chinchilla runs: Bayesian fit vs the literature's point fit.

Fit on the runs up to a compute cutoff, forecast every larger run, score the forecasts of log
loss. Prints a markdown table (saved as benchmarks/results/backtest_chinchilla.md).

    uv run python benchmarks/backtest_chinchilla.py [--out benchmarks/results/backtest_chinchilla.md]
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings
from pathlib import Path

from bayescale import load_runs
from bayescale.resources import data_path
from bayescale.validate import backtest

CUTOFFS = (1e20, 1e21)
BAYES = {"draws": 1000, "tune": 1000, "chains": 2, "cores": 2}
BOOTSTRAP = 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    runs = load_runs(data_path("chinchilla_figure4_runs.csv"), drop_highest_loss=5)
    rows = []
    start = time.perf_counter()
    for cutoff in CUTOFFS:
        for method in ("bayes", "point"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kwargs = BAYES if method == "bayes" else {"bootstrap": BOOTSTRAP}
                rows.append(backtest(runs, "chinchilla", cutoff, method=method, seed=0, **kwargs))
            print(rows[-1], flush=True)
    total = time.perf_counter() - start
    header = "| train on flops ≤ | method | n train / test | max extrapolation | median abs log error | CRPS (log loss) | coverage 50 / 80 / 90% | mean 90% width | seconds |"
    lines = [
        "# Leave-future-out backtest: Chinchilla Figure 4 runs (5 highest-loss runs dropped)",
        "",
        "Fit on the runs up to the cutoff, forecast every larger run; scores are on log loss (0.01 ≈ 1% of the loss).",
        f"bayes: chinchilla spec (Student-t, nu=4), nutpie, {BAYES['chains']} chains × {BAYES['draws']} draws, posterior predictive intervals. "
        f"point: Huber (δ=1e-3) L-BFGS-B from the Besiroglu et al. grid, {BOOTSTRAP} bootstrap refits + resampled residuals for intervals.",
        "",
        header,
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        conv = "" if r.get("converged", True) else " (not converged)"
        lines.append(
            f"| {r['train_max_flops']:.0e} | {r['method']}{conv} | {r['n_train']} / {r['n_test']} | {r['max_extrapolation']:.0f}× | "
            f"{r['median_abs_log_error']:.4f} | {r['crps']:.4f} | {r['coverage_50']:.2f} / {r['coverage_80']:.2f} / {r['coverage_90']:.2f} | "
            f"{r['mean_width_90']:.4f} | {r['seconds']:.0f} |"
        )
    lines += ["", f"Total {total:.0f} s on {platform.machine()} ({platform.python_version()}), shared 2-core machine."]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
