"""Leave-future-out forecasts of ScaleBench's 1.3B MoE runs from the smaller ones (README's MoE section).

Fits the ``routed`` law (Clark et al. 2022) and the ``moe`` proxy law (at the table's one token
count) on the 193 ``train`` runs (16M–368M dense sizes, 1–512 experts) with the package's default
sampler settings, forecasts the 28 ``test`` runs (1.3B, 1–512 experts) and scores them: target-region
R² of the predictive medians (ScaleBench's definition: R² of loss, clipped to [−1, 1]), median
|log error|, 90% coverage and mean 90% width (relative to the median). Writes
``benchmarks/results/moe_lfo.md``.

    nice -n 10 uv run python benchmarks/moe_lfo.py
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bayescale import fit, load_runs
from bayescale.forecasting import forecast_table
from bayescale.resources import data_path

RESULTS = Path(__file__).parent / "results"
TABLE = "scalebench_moe_runs.csv"


def target_r2(y: np.ndarray, pred: np.ndarray) -> float:
    """ScaleBench's target-region R² (``benchmark/metrics.py``): 1 − SS_res/SS_tot on loss, clipped to [−1, 1]."""
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return float(np.clip(1.0 - float(np.sum((y - pred) ** 2)) / ss_tot, -1.0, 1.0))


def score(model: str, seed: int = 0) -> dict[str, object]:
    """Fit ``model`` on the train split, forecast the test split, and score it."""
    train = load_runs(data_path(TABLE), where={"split": "train"})
    test = load_runs(data_path(TABLE), where={"split": "test"})
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit(train, model, seed=seed, progress=False)
    seconds = time.perf_counter() - start
    targets = test.data[["active_params", "experts", "tokens", "params", "arch"]]
    table = forecast_table(result.forecast(targets, seed=seed))
    y = test.column("loss").astype(float)
    median, lo, hi = (table[f"loss_{s}"].to_numpy() for s in ("median", "lo", "hi"))
    dense = test.column("experts") == 1
    return {
        "model": model,
        "R2": target_r2(y, median),
        "median_abs_log_error": float(np.median(np.abs(np.log(median / y)))),
        "coverage90": float(np.mean((lo <= y) & (y <= hi))),
        "width90": float(np.mean((hi - lo) / median)),
        "dense_forecast": f"{median[dense][0]:.3f} ({lo[dense][0]:.3f}–{hi[dense][0]:.3f}) vs {y[dense][0]:.3f}",
        "converged": result.diagnostics.converged,
        "warnings": "; ".join(sorted({str(w.message)[:120] for w in caught if "DataWarning" in type(w.message).__name__ or "Convergence" in type(w.message).__name__})),
        "fit_seconds": seconds,
    }


def main() -> None:
    rows = [score(model) for model in ("routed", "moe")]
    frame = pd.DataFrame(rows)
    lines = [
        "# Leave-future-out forecasts of ScaleBench's 1.3B MoE runs",
        "",
        f"Fitted on the 193 `train` runs of `data/{TABLE}` (dense sizes 16M–368M, 1–512 experts), forecasting the",
        "28 `test` runs (1.3B, 1–512 experts); default sampler settings (4 chains × 1000 draws). R² as ScaleBench",
        "defines it (loss, predictive medians, clipped to [−1, 1]); width = mean 90% interval width / median.",
        "",
        "| model | R² | median abs log error | 90% coverage | 90% width | dense 1.3B: forecast (90%) vs actual | converged | fit s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['model']} | {r['R2']:.3f} | {r['median_abs_log_error']:.4f} | {r['coverage90']:.2f} | {r['width90']:.3f} | {r['dense_forecast']} | {r['converged']} | {r['fit_seconds']:.0f} |"
        for r in rows
    ]
    lines += ["", "Warnings:", *[f"- {r['model']}: {r['warnings'] or 'none'}" for r in rows]]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "moe_lfo.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    frame.to_csv(RESULTS / "moe_lfo.csv", index=False)


if __name__ == "__main__":
    main()
