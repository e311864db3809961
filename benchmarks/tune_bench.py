"""Tuning length against cost and convergence on the 245 Chinchilla runs (prints a table).

    uv run python benchmarks/tune_bench.py [--tunes 1000 300] [--seeds 0]

Leapfrog steps (tuning and draws, all chains) are the load-independent cost of a fit; the
convergence columns must hold for a shorter tuning to pay.
"""

from __future__ import annotations

import argparse
import warnings

import arviz_stats as azs
import numpy as np

from bayescale import compiled
from bayescale.model import build_model
from bayescale.modeldesign import design
from bayescale.pooling import resolve_centered
from bayescale.resources import data_path
from bayescale.runs import load_runs
from bayescale.spec import load_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tunes", type=int, nargs="+", default=[1000, 300])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    spec = load_spec("chinchilla")
    d = design(spec, load_runs(data_path("chinchilla_figure4_runs.csv")), ())
    spec = resolve_centered(spec, d)  # build_model samples exactly the resolved choice
    model = compiled.compile_model(build_model(spec, d, spec.check_priors(0))).nutpie_model()
    nutpie = compiled.import_nutpie()
    print("| tune | seed | leapfrog steps, tuning | leapfrog steps, 4×1000 draws | total | R-hat max | bulk ESS min | tail ESS min | divergences |")
    print("|---|---|---|---|---|---|---|---|---|")
    for tune in args.tunes:
        for seed in args.seeds:
            raw = nutpie.sample(model, draws=1000, tune=tune, chains=4, seed=seed, progress_bar=False, adaptation="low_rank", target_accept=0.9, return_raw_trace=True)
            trace = raw.get_arrow_trace()
            tuning = [np.asarray(s.column("tuning")) for s in trace[1]]
            steps = [np.asarray(s.column("n_steps")) for s in trace[1]]
            in_tune = sum(int(n[t].sum()) for n, t in zip(steps, tuning, strict=True))
            in_draws = sum(int(n[~t].sum()) for n, t in zip(steps, tuning, strict=True))
            tree = compiled.to_datatree(trace, model, ("diverging",))
            post = tree["posterior"].to_dataset()
            rhat = max(float(v) for v in azs.rhat(post).data_vars.values())
            bulk = min(float(v) for v in azs.ess(post, method="bulk").data_vars.values())
            tail = min(float(v) for v in azs.ess(post, method="tail").data_vars.values())
            divergences = int(tree["sample_stats"]["diverging"].sum())
            print(f"| {tune} | {seed} | {in_tune} | {in_draws} | {in_tune + in_draws} | {rhat:.4f} | {bulk:.0f} | {tail:.0f} | {divergences} |", flush=True)


if __name__ == "__main__":
    main()
