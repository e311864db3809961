"""Choose the discrepancy prior scale: leave-future-out backtests for each scale and τ update.

For each dataset × compute cutoff the law is fitted once on the runs up to the cutoff (with its
self-check, which only informs τ); the law's posterior does not depend on τ, so every prior scale
and every way of drawing τ is scored on the same fit: coverage of the larger runs at 50/80/90%,
mean 90% width, median |log error| and CRPS, all on log loss. ``off`` is the forecast without the
discrepancy (today's). Writes benchmarks/results/discrepancy_scales.md.

    uv run python benchmarks/discrepancy_scales.py [--cache DIR] [--only NAME]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import re
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from bayescale import load_runs
from bayescale.discrepancy import draw_tau
from bayescale.fitting import SAMPLE_DIMS, fit, load_fit
from bayescale.resources import data_path
from bayescale.runs import RunTable
from bayescale.simulate import EPOCH_CHINCHILLA, simulate_runs
from bayescale.spec import Discrepancy
from bayescale.validate.backtest import split_by_flops
from bayescale.validate.metrics import coverage, crps, mean_width, median_abs_error

SETTINGS = {"draws": 1000, "tune": 1000, "chains": 2, "cores": 2}
SCALES = (0.005, 0.01, 0.02, 0.03, 0.05)
#: How τ is drawn: its prior only (no self-check), or updated by the self-check's residuals:
#: independent held-out runs (tempered by t; "n_eff=3": t = 3 / n_test), or one shared u.
MODES = {
    "prior": None,
    "self-check indep.": {},
    "self-check indep. t=0.5": {"temper": 0.5},
    "self-check indep. n_eff=3": {"n_eff": 3},
    "self-check shared u": {"shared": True},
}
OUT = Path(__file__).parent / "results" / "discrepancy_scales.md"


def datasets() -> list[tuple[str, str, RunTable, float]]:
    """(name, spec, runs, cutoff) for every split scored."""
    chin = load_runs(data_path("chinchilla_figure4_runs.csv"), drop_highest_loss=5)
    blations = load_runs(data_path("datablations_c4_runs.csv"), max_epochs=100)
    out = [("chinchilla", "chinchilla", chin, c) for c in (1e20, 1e21)]
    out += [("datablations (max 100 epochs)", "data_constrained", blations, c) for c in (3e20, 1e21)]
    llama = load_runs(data_path("llama3_isoflop_runs.csv"))
    out += [("llama3 isoFLOP", "chinchilla", llama, c) for c in (1e20, 1e21)]
    gems = load_runs(data_path("gemstones_runs.csv"), where={"recipe": "cooldown"})
    out += [("gemstones cooldown", "chinchilla", gems, 1e20)]
    design = chin.data[["params", "tokens"]]
    # law-true runs at Chinchilla's design: noise 0.005 is what the real runs' Student-t fit implies
    # (sigma 0.0035-0.004 at nu = 4, sd = sigma * sqrt(2)); 0.01 as a noisier contrast
    for sigma in (0.005, 0.01):
        for seed in (1, 2):
            frame = simulate_runs("chinchilla", EPOCH_CHINCHILLA, design, sigma=sigma, seed=seed)
            label = f"synthetic law-true (seed {seed})" if sigma == 0.01 else f"synthetic law-true noise {sigma:g} (seed {seed})"
            out += [(label, "chinchilla", load_runs(frame), c) for c in (1e20, 1e21)]
    return out


def fitted(name: str, spec: str, train: RunTable, cutoff: float, cache: Path):
    path = cache / f"{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}-{cutoff:.0e}.nc"
    if path.exists():
        return load_fit(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit(train, spec, seed=0, **SETTINGS)
    result.save(path)
    return result


def with_tau(result, scale: float, mode: dict | None):
    """The fit with τ ~ HalfNormal(scale) (prior, ``mode`` None) or updated by its self-check."""
    spec = dataclasses.replace(result.spec, discrepancy=Discrepancy(True, scale))
    check = result.self_check.to_dict() if result.self_check else {}
    evidence = [check.get(k, ()) for k in ("log_error", "sd", "distance")] if mode is not None and not check.get("skipped") else [(), (), ()]
    kwargs = dict(mode or {})
    if "n_eff" in kwargs:
        kwargs = {"temper": min(1.0, kwargs["n_eff"] / max(1, len(evidence[0])))}
    post = result.posterior
    tau, u = draw_tau(scale, (post.sizes["chain"], post.sizes["draw"]), result.seed, *evidence, **kwargs)
    post = post.assign(discrepancy_tau=(SAMPLE_DIMS, tau), discrepancy_u=(SAMPLE_DIMS, u))
    nodes = {k: result.tree[k].to_dataset() for k in result.tree.children}
    nodes["posterior"] = post
    return dataclasses.replace(result, spec=spec, tree=xr.DataTree.from_dict(nodes)), float(np.median(tau))


def score(result, test: RunTable) -> dict[str, float]:
    targets = test.data.drop(columns=["loss"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = result.forecast(targets, seed=0)
    samples = np.log(ds["loss_pred"].transpose("chain", "draw", "target").values.reshape(-1, len(test)))
    observed = np.log(test.column("loss").astype(float))
    return {
        "cov50": coverage(samples, observed, 0.5),
        "cov80": coverage(samples, observed, 0.8),
        "cov90": coverage(samples, observed, 0.9),
        "width90": mean_width(samples, 0.9),
        "mae": median_abs_error(np.median(samples, axis=0), observed),
        "crps": crps(samples, observed),
    }


def candidates(frame: pd.DataFrame) -> list[str]:
    """One line per variant: real tables' 90% coverage range, law-true synthetic coverage error and width vs off."""
    synthetic = frame["dataset"].str.startswith("synthetic")
    off = frame[frame["variant"] == "off (today)"].set_index(["dataset", "cutoff"])["width90"]
    out = ["| variant | real: 90% coverage min–max (mean) | real: 50% coverage min–max | synthetic: max abs(coverage − nominal) 50/80/90 | synthetic: max 90% width ÷ off |", "|---|---|---|---|---|"]
    for variant, rows in frame.groupby("variant", sort=False):
        real, syn = rows[~synthetic.loc[rows.index]], rows[synthetic.loc[rows.index]]
        ratio = (syn.set_index(["dataset", "cutoff"])["width90"] / off).dropna()
        dev = [(syn[f"cov{q}"] - q / 100).abs().max() for q in (50, 80, 90)]
        out.append(
            f"| {variant} | {real['cov90'].min():.2f}–{real['cov90'].max():.2f} ({real['cov90'].mean():.2f}) | {real['cov50'].min():.2f}–{real['cov50'].max():.2f} | "
            f"{dev[0]:.2f} / {dev[1]:.2f} / {dev[2]:.2f} | {ratio.max():.2f} |"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/bayescale-discrepancy-fits"))
    parser.add_argument("--only", default=None, help="Score only datasets whose name starts with this.")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    rows = []
    start = time.perf_counter()
    for name, spec, runs, cutoff in datasets():
        if args.only and not name.startswith(args.only):
            continue
        train, test = split_by_flops(runs, cutoff)
        t0 = time.perf_counter()
        result = fitted(name, spec, train, cutoff, args.cache)
        check = result.self_check.to_dict() if result.self_check else {}
        base = {"dataset": name, "cutoff": cutoff, "n_train": len(train), "n_test": len(test), "extrap": float(test.column("flops").max() / train.column("flops").max())}
        off = dataclasses.replace(result, spec=dataclasses.replace(result.spec, discrepancy=Discrepancy(False, 0.01)))
        rows.append({**base, "variant": "off (today)", "tau_median": 0.0, **score(off, test)})
        for scale in SCALES:
            for mode, how in MODES.items():
                variant, tau_median = with_tau(result, scale, how)
                rows.append({**base, "variant": f"scale {scale:g}, {mode}", "tau_median": tau_median, **score(variant, test)})
        sc = f"self-check {check.get('n_test')} runs, {check.get('extrapolation') or 0:.1f}x, cov90 {check.get('coverage_90')}"
        print(f"{name} {cutoff:.0e}: {time.perf_counter() - t0:.0f} s; {sc}", flush=True)
        print(pd.DataFrame([r for r in rows if r["dataset"] == name and r["cutoff"] == cutoff]).drop(columns=["dataset", "cutoff"]).to_string(float_format=lambda v: f"{v:.3g}"), flush=True)
    frame = pd.DataFrame(rows)
    lines = [
        "# Discrepancy prior scale: leave-future-out backtests",
        "",
        f"One fit per split ({SETTINGS['chains']} chains × {SETTINGS['draws']} draws, default spec, self-check on); each row draws τ differently on the same posterior.",
        "Coverage, width, error and CRPS of the held-out larger runs, on log loss. `off` = no discrepancy (today's forecasts).",
        "",
        "| dataset | cutoff | train/test | extrap. | variant | τ median | cov 50 / 80 / 90 | 90% width | median abs err | CRPS |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines.extend(
        f"| {r['dataset']} | {r['cutoff']:.0e} | {r['n_train']}/{r['n_test']} | {r['extrap']:.0f}× | {r['variant']} | {r['tau_median']:.4f} | "
        f"{r['cov50']:.2f} / {r['cov80']:.2f} / {r['cov90']:.2f} | {r['width90']:.4f} | {r['mae']:.4f} | {r['crps']:.4f} |"
        for r in rows
    )
    lines += ["", "## Per variant across splits", "", *candidates(frame), ""]
    lines += ["", f"Total {time.perf_counter() - start:.0f} s on {platform.machine()} (Python {platform.python_version()}), shared 2-core machine."]
    text = "\n".join(lines)
    print(text)
    if not args.only:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    frame.to_csv(args.cache / "rows.csv", index=False)


if __name__ == "__main__":
    main()
