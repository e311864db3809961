"""Write the four example notebooks in notebooks/ and execute them, storing outputs and figures.

    uv run python scripts/make_notebooks.py               # write and execute (full draws, ~10 min)
    uv run python scripts/make_notebooks.py --no-execute  # write the cells only, without outputs

Each notebook reads ``BAYESCALE_NOTEBOOK_DRAWS`` (default 1000); the test suite runs them with fewer.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]

SETUP = """import os
import warnings

import numpy as np
import pandas as pd

import bayescale
from bayescale import plots
from bayescale.resources import data_path

DRAWS = int(os.environ.get("BAYESCALE_NOTEBOOK_DRAWS", 1000))
SETTINGS = dict(draws=DRAWS, tune=max(DRAWS, 500), chains=4, seed=1, progress=False)"""

QUICKSTART = [
    new_markdown_cell(
        "# bayescale quickstart\n"
        "\n"
        "Load runs → fit a Bayesian Chinchilla law → check convergence → forecast a model never trained → save.\n"
        "\n"
        "`BAYESCALE_NOTEBOOK_DRAWS` sets the draws per chain (the test suite runs this notebook with few draws)."
    ),
    new_code_cell(
        "import os\n"
        "\n"
        "import matplotlib.pyplot as plt\n"
        "\n"
        "import bayescale\n"
        "from bayescale.plots import plot_isoflop_profiles, plot_observed_vs_predicted\n"
        "from bayescale.resources import data_path\n"
        "\n"
        'DRAWS = int(os.environ.get("BAYESCALE_NOTEBOOK_DRAWS", 1000))'
    ),
    new_markdown_cell("## 1. Runs\nThe embedded Chinchilla points (Hoffmann et al. 2022, extracted by Epoch AI). As Epoch AI did, we drop the 5 highest-loss runs — an explicit option."),
    new_code_cell('runs = bayescale.load_runs(data_path("chinchilla_figure4_runs.csv"), drop_highest_loss=5)\nprint(len(runs), "runs")\nruns.data[["params", "tokens", "flops", "loss"]].describe()'),
    new_markdown_cell("## 2. Fit\nnutpie NUTS, 4 chains. Convergence problems would raise a `ConvergenceWarning` here."),
    new_code_cell('fit = bayescale.fit(runs, model="chinchilla", draws=DRAWS, tune=DRAWS, chains=4, seed=0)\nprint(fit.diagnostics.message())\nfit.summary(ci=0.9)'),
    new_code_cell("plot_isoflop_profiles(fit);"),
    new_code_cell("plot_observed_vs_predicted(fit);"),
    new_markdown_cell(
        "## 3. Forecast\nThe loss of Chinchilla itself (70B parameters, 1.4T tokens) and of a 7B model on 140B tokens: `loss_*` include observation noise, `mean_*` are the law's mean curve."
    ),
    new_code_cell('ds = fit.forecast(params=["70B", "7B"], tokens=["1.4T", "140B"])\nbayescale.forecast_table(ds, ci=0.9)'),
    new_code_cell(
        "fig, ax = plt.subplots(figsize=(6, 3.5))\n"
        'for i, label in enumerate(["70B / 1.4T", "7B / 140B"]):\n'
        '    ax.hist(ds["loss_pred"].isel(target=i).values.ravel(), bins=60, alpha=0.6, label=label)\n'
        'ax.set_xlabel("forecast loss")\n'
        "ax.legend();"
    ),
    new_markdown_cell("## 4. Save and reload\nA fit is one netCDF file holding the posterior, the runs, the spec, the seed and the diagnostics."),
    new_code_cell(
        "import tempfile\n"
        "from pathlib import Path\n"
        "\n"
        'path = fit.save(Path(tempfile.mkdtemp()) / "chinchilla.nc")\n'
        "reloaded = bayescale.load_fit(path)\n"
        "assert reloaded.summary().equals(fit.summary())\n"
        "path"
    ),
]

BUDGET = [
    new_markdown_cell(
        "# Budget decisions with posterior uncertainty\n"
        "\n"
        "Fit the Chinchilla law to the embedded Figure-4 runs (Hoffmann et al. 2022; the 5 highest-loss runs dropped as in "
        "Besiroglu et al. 2024), then ask: for a FLOP budget, how many parameters and tokens? And how much compute does a "
        "target loss need with 75% probability?\n"
        "\n"
        "Set `BAYESCALE_NOTEBOOK_DRAWS` to use fewer draws (the test suite uses 300)."
    ),
    new_code_cell(
        "import os\n"
        "\n"
        "import numpy as np\n"
        "\n"
        "from bayescale.allocate import allocation_table\n"
        "from bayescale.decide import compare_plans, compute_for_target\n"
        "from bayescale.fitting import fit\n"
        "from bayescale.plots import plot_frontier, plot_prob_vs_compute\n"
        "from bayescale.reference import hoffmann_table3\n"
        "from bayescale.resources import data_path\n"
        "from bayescale.runs import load_runs\n"
        "\n"
        'DRAWS = int(os.environ.get("BAYESCALE_NOTEBOOK_DRAWS", "1000"))\n'
        'runs = load_runs(data_path("chinchilla_figure4_runs.csv"), drop_highest_loss=5)\n'
        'result = fit(runs, "chinchilla", draws=DRAWS, tune=DRAWS, chains=4, seed=0, progress=False)\n'
        "print(result.diagnostics.message())"
    ),
    new_markdown_cell(
        "## The allocation frontier\n"
        "\n"
        "Per posterior draw, the compute-optimal N and D for each budget (C = 6ND), and the single robust plan minimising the posterior expected loss. Crosses: Hoffmann et al. Table 3. "
        "`loss_*` is the predictive loss of the run trained at the robust plan (what `forecast` gives there, discrepancy and noise included); "
        "`loss_optimum_*` is the law alone at each draw's own optimum, a much narrower spread that is not the loss of any run."
    ),
    new_code_cell("budgets = np.geomspace(1e19, 1e26, 29)\nds = result.allocate(budgets, ci=0.9)\ntable = allocation_table(ds)\nfig = plot_frontier(ds, reference=hoffmann_table3())\ntable.iloc[::7]"),
    new_markdown_cell(
        "## How much compute for a target loss?\n"
        "\n"
        "P(loss < 2.0) of one training run (posterior predictive, including run-to-run noise) at each budget's robust plan, and the least compute reaching it with probability 0.75. "
        "The forecasts carry the model discrepancy, which grows with every decade beyond the runs: far enough out, P(loss < 2.0) "
        "levels off below 0.8, so asking for 0.9 is an error that says the target is unreachable with that confidence."
    ),
    new_code_cell(
        "target = 2.0\nfig = plot_prob_vs_compute(result, target, np.geomspace(1e21, 1e26, 21), prob=0.75)\ndecision = compute_for_target(result, target, 0.75, usd_per_flop=2e-18)\ndecision.to_dict()"
    ),
    new_markdown_cell(
        "## Two plans at the same compute\n\nThe robust plan against Chinchilla's own 70B on 1.4T tokens: posterior of the loss difference (mean curve) and the probability the first is better."
    ),
    new_code_cell(
        "c = 6 * 70e9 * 1.4e12\n"
        "robust = result.allocate(c)\n"
        'plan_a = {"params": float(robust["robust_params"][0]), "tokens": float(robust["robust_tokens"][0])}\n'
        'comparison = compare_plans(result, plan_a, {"params": 70e9, "tokens": 1.4e12})\n'
        '{k: v for k, v in comparison.items() if k != "diff"}'
    ),
    new_markdown_cell(
        "## What to train next\n"
        "\n"
        "Which small runs would firm up the forecast of 70B on 1.4T tokens most, for at most 5e22 FLOPs in all? `next_runs` "
        "reads it off the posterior (a linear-Gaussian update of the law's draws, no refit per candidate) on a grid of "
        "candidates around the runs; each pick is conditioned on the earlier ones, and the model discrepancy shrinks only as "
        "far as a pick widens the runs' range towards the target. Colour: what each candidate alone removes per FLOP; "
        "circles: the picks, in order; crosses: the fitted runs; star: the target."
    ),
    new_code_cell(
        "from bayescale.design import next_runs\n"
        "from bayescale.plots import plot_next_runs\n"
        "\n"
        'plan = next_runs(result, "grid", {"params": 70e9, "tokens": 1.4e12}, budget_flops=5e22)\n'
        "fig = plot_next_runs(result, plan)\n"
        'print(f"sd of log loss at the target: {plan.sd_now:.4f} now, {plan.sd_expected_after:.4f} expected after {len(plan.selected)} runs")\n'
        'plan.selected[["params", "tokens", "cost", "expected_sd_after", "gain"]]'
    ),
]

REPEATED = [
    new_markdown_cell(
        "# How much is a repeated epoch worth?\n\n"
        "Muennighoff et al. (2023) trained 296 models on C4 with 1 to 9000 epochs over a limited set of unique "
        "tokens (`data/datablations_c4_runs.csv`). Their data-constrained law replaces the token count D by the "
        "effective count D′ = U_D·(1 + R*_D·(1 − e^(−R_D/R*_D))), where R_D is the number of repetitions: the "
        "k-th pass over the data is worth less than fresh data, and R*_D sets how fast the value decays "
        "(published R*_D ≈ 15.4). Here we reproduce their fit with bayescale, read the answer off the "
        "posterior, and then see how much the answer depends on their choices."
    ),
    new_code_cell(SETUP),
    new_markdown_cell(
        "## The runs\n\n"
        "Runs of large models on small unique sets *diverge* at extreme repetition: loss rises again "
        "(e.g. 1.1B parameters on 100M unique tokens goes from 3.8 at 15 epochs to 8.1 at 120). The "
        "authors fitted on 182 of the 296 runs, leaving out diverged runs, extra seeds and the extreme "
        "repetition settings; the column `published_fit` marks those runs (taken from the notebook that "
        "produced the published numbers, see `data/README.md`)."
    ),
    new_code_cell(
        'path = data_path("datablations_c4_runs.csv")\n'
        "all_runs = bayescale.load_runs(path)\n"
        'published = bayescale.load_runs(path, where={"published_fit": "true"})\n'
        'print(f"{len(all_runs)} runs, {len(published)} in the published fit")\n'
        'all_runs.data.sort_values(["params", "unique_tokens", "epochs"]).query("unique_tokens == 1e8")[["params", "epochs", "loss", "published_fit"]].head(20)'
    ),
    new_markdown_cell(
        "## The published two-stage fit, with uncertainty\n\n"
        "The authors did not fit all five Chinchilla constants on these runs. Stage 1 fitted E, A, B and "
        "α = β on Hoffmann et al.'s C4 isoFLOP points; stage 2 held them fixed and fitted only R*_D and R*_N "
        "on the 182 runs. `models/data_constrained_two_stage.toml` is that model: the stage-1 constants are "
        "`Fixed` priors, R*_D and R*_N get weakly informative log-normal priors, and the Student-t "
        "likelihood plays the role of their Huber loss."
    ),
    new_code_cell(
        'two_stage = bayescale.fit(published, "data_constrained_two_stage", **SETTINGS)\n'
        "print(two_stage.diagnostics.message())\n"
        "table = two_stage.summary()\n"
        'row = table.loc["R_D_star"]\n'
        "print(f\"R_D_star {row['median']:.1f} (90%: {row['lo']:.1f}-{row['hi']:.1f}); published 15.4 is {'inside' if row['lo'] <= 15.4 <= row['hi'] else 'outside'}\")\n"
        "table"
    ),
    new_markdown_cell(
        "The published 15.4 is inside the interval, but the interval is wide and skewed upwards: the runs "
        "pin down the *early* epochs well (all values of R*_D above ≈ 15 say the first few repeats are "
        "worth nearly fresh data) and say little about how fast the value decays after that. The Huber "
        "objective of the published fit is nearly flat in R*_D (measured: 0.015826 at 15.4, 0.015805 at 95), "
        "so a point estimate of 15.4 hides a range of almost equally good answers.\n\n"
        "## The value of the k-th epoch\n\n"
        "The k-th pass adds D′(k−1) − D′(k−2) effective tokens, i.e. a fraction "
        "R*_D·(e^(−(k−2)/R*_D) − e^(−(k−1)/R*_D)) ≈ e^(−(k−1.5)/R*_D) of what fresh data would add. The band "
        "is the 90% posterior interval from the draws of R*_D."
    ),
    new_code_cell("fig = plots.plot_epoch_value(two_stage, max_epoch=80)"),
    new_code_cell(
        'r = two_stage.posterior["R_D_star"].values.ravel()\n'
        "for k in (2, 4, 8, 16, 32, 64):\n"
        "    v = r * (np.exp(-(k - 2) / r) - np.exp(-(k - 1) / r))\n"
        "    lo, med, hi = np.quantile(v, [0.05, 0.5, 0.95])\n"
        '    print(f"epoch {k:3d}: worth {med:.2f} of fresh data (90%: {lo:.2f}-{hi:.2f})")\n'
        "half = 2 + r * np.log(2)\n"
        'print("a repeated epoch is worth half of fresh data from epoch", np.round(np.quantile(half, [0.05, 0.5, 0.95]), 1))'
    ),
    new_markdown_cell(
        "## Fitting everything at once\n\n"
        "A single joint fit of all seven constants on the runs themselves is the natural Bayesian "
        "alternative. `max_epochs` (a documented option of `load_runs`, `--max-epochs` on the CLI) keeps "
        "runs up to a number of epochs so that the most diverged runs do not dominate. (Measured: with all "
        "296 runs R*_D ≈ 46, 90% 28–89; with at most 100 epochs ≈ 47, 90% 26–119; the two-stage spec on "
        "all 296 runs instead of the published 182 gives ≈ 160. The runs the authors left out pull R*_D up.)"
    ),
    new_code_cell(
        "MAX_EPOCHS = 100\n"
        "runs = bayescale.load_runs(path, max_epochs=MAX_EPOCHS)\n"
        'joint = bayescale.fit(runs, "data_constrained", **SETTINGS)\n'
        "print(joint.diagnostics.message())\n"
        'pd.DataFrame({name: fit.summary().loc["R_D_star", ["median", "lo", "hi"]] for name, fit in\n'
        '              {"two-stage, 182 published runs": two_stage, f"joint, {len(runs)} runs <= {MAX_EPOCHS} epochs": joint}.items()}).T'
    ),
    new_markdown_cell(
        "## When does repetition start to hurt?\n\n"
        "Under the data-constrained law repetition never makes loss *worse*, it only stops helping: the "
        "first few repeated epochs are worth nearly as much as fresh data, the value halves after "
        "≈ R*_D·ln 2 repetitions, and beyond a few R*_D further epochs add almost nothing. The runs "
        "excluded from the published fit show the other regime, where large models on small unique sets "
        "over-fit and loss rises; the `token_crisis` form models that, and LOO can compare the two forms."
    ),
    new_code_cell("fig = plots.plot_observed_vs_predicted(two_stage)"),
]

MOE = [
    new_markdown_cell(
        "# MoE proxy runs for dense forecasts\n\n"
        "Xue et al. (2023) observed that mixture-of-experts models show the same scaling trends as dense "
        "models with the same parameters at a fraction of the compute. The `moe` form counts a run with E "
        "experts and N_active active parameters as a dense model of N_eff = N_active·(1 + c·log E) "
        "parameters inside the Chinchilla law; `models/moe.toml` lets E and B differ by architecture "
        "(`arch`, partially pooled) and shares the exponents, A and c. Data: "
        "`data/synthetic_moe_runs.csv` (16 small dense runs and 45 MoE proxy runs drawn from a known truth, "
        "see `scripts/make_synthetic_moe.py`)."
    ),
    new_code_cell(SETUP),
    new_code_cell(
        "import json\n"
        'runs = bayescale.load_runs(data_path("synthetic_moe_runs.csv"))\n'
        'truth = json.loads(data_path("synthetic_moe_truth.json").read_text())\n'
        'dense = runs.data[runs.data["arch"] == "dense"][["params", "tokens", "loss"]]\n'
        'runs.data.groupby(["arch", "experts"]).size()'
    ),
    new_code_cell(
        'with_moe = bayescale.fit(runs, "moe", **SETTINGS)\n'
        'dense_only = bayescale.fit(dense, "chinchilla", **SETTINGS)\n'
        "print(with_moe.diagnostics.message())\n"
        "print(dense_only.diagnostics.message())\n"
        "with_moe.summary()"
    ),
    new_markdown_cell("## Dense forecasts along the compute-optimal frontier, up to 30× the largest dense run"),
    new_code_cell(
        'c_max = float(runs.data.loc[runs.data["arch"] == "dense", "flops"].max())\n'
        "compute = np.geomspace(c_max / 10, 30 * c_max, 20)\n"
        "n = np.sqrt(compute / (6 * 20))  # about 20 tokens per parameter\n"
        "d = compute / (6 * n)\n"
        'moe_targets = pd.DataFrame({"active_params": n, "params": n, "experts": 1, "tokens": d, "arch": "dense"})\n'
        'dense_targets = pd.DataFrame({"params": n, "tokens": d})\n'
        'law = bayescale.laws.get_law("moe")\n'
        'true_loss = law.loss({**truth["shared"], **truth["by_arch"]["dense"]}, {"active_params": n, "experts": np.ones_like(n), "tokens": d})\n'
        'fig = plots.plot_forecast_bands({"dense runs only": (dense_only, dense_targets), "dense + MoE proxies": (with_moe, moe_targets)}, compute, truth=true_loss)\n'
        'fig.axes[0].axvline(c_max, color="grey", lw=0.8, ls=":")'
    ),
    new_code_cell(
        "from bayescale.forecasting import forecast_table\n"
        'at = {"params": n[-1], "tokens": d[-1]}\n'
        "a = forecast_table(dense_only.forecast(**at)).iloc[0]\n"
        'b = forecast_table(with_moe.forecast(active_params=n[-1], experts=1, arch="dense", **at)).iloc[0]\n'
        'print(f"truth {true_loss[-1]:.4f}")\n'
        'print(f"dense only:   {a.mean_median:.4f} [{a.mean_lo:.4f}, {a.mean_hi:.4f}] width {a.mean_hi - a.mean_lo:.4f}")\n'
        'print(f"with MoE:     {b.mean_median:.4f} [{b.mean_lo:.4f}, {b.mean_hi:.4f}] width {b.mean_hi - b.mean_lo:.4f}")'
    ),
    new_markdown_cell(
        "The MoE runs pin down the shared exponents over a wider range of (effective) sizes, so the dense "
        "forecast is much narrower; the dense-level offsets of E and B still come from the dense runs, "
        "shrunk towards the MoE level only as far as the data allow."
    ),
]


NOTEBOOKS = {
    "quickstart.ipynb": QUICKSTART,
    "budget_decision.ipynb": BUDGET,
    "repeated_data.ipynb": REPEATED,
    "moe_proxies.ipynb": MOE,
}


def execute(path: Path, timeout: int = 3600) -> None:
    """Run ``path`` top to bottom in a fresh kernel and store its outputs (figures inline, not Agg)."""
    nb = nbformat.read(path, as_version=4)
    os.environ.pop("MPLBACKEND", None)  # the kernel inherits it: Agg would hide every figure
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(nb, path)
    print("executed", path)


def write(name: str, cells) -> Path:
    for i, cell in enumerate(cells):
        cell.id = f"{Path(name).stem[:40]}-{i}"  # stable ids keep regenerated notebooks diff-free
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}, "language_info": {"name": "python"}})
    nbformat.validate(nb)
    path = ROOT / "notebooks" / name
    nbformat.write(nb, path)
    print("wrote", path)
    return path


if __name__ == "__main__":
    for name, cells in NOTEBOOKS.items():
        path = write(name, cells)
        if "--no-execute" not in sys.argv[1:]:
            execute(path)
