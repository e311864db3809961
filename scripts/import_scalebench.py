"""Write data/scalebench_moe_runs.csv and data/scalebench_data_constrained_runs.csv from ScaleBench.

ScaleBench (Li et al. 2026, "Spend Less, Fit Better", repository ``PlanarG/active-sl``, MIT code,
CC-BY-4.0 data) stores each task as ``benchmark/dataset/<task>/{train,test}-00000-of-00001.parquet``.
This script converts the two tasks bayescale ships into run tables with the package's columns and
keeps the paper's split (``train``: the candidate pool, ``test``: the held-out target region) as a
``split`` column. Only these two tasks are read. Run from the repository root with the path of a
checkout (or an export) of that repository:

    uv run python scripts/import_scalebench.py /path/to/active-sl
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
#: Every run of the MoE task was trained on the same number of tokens; the source table has no
#: token column, so the run table carries Clark et al. (2022)'s nominal count (see data/README.md).
MOE_TOKENS = 1.3e11


def read_task(repo: Path, task: str) -> pd.DataFrame:
    """Both splits of one ScaleBench task, with a ``split`` column, in the source's row order."""
    parts = []
    for split in ("train", "test"):
        frame = pd.read_parquet(repo / "benchmark" / "dataset" / task / f"{split}-00000-of-00001.parquet")
        parts.append(frame.assign(split=split))
    return pd.concat(parts, ignore_index=True)


def moe_table(source: pd.DataFrame) -> pd.DataFrame:
    """The MoE task as runs: dense size → active_params (and params), num_experts → experts."""
    experts = source["num_experts"].astype(int).to_numpy()
    active = source["dense_parameter_count"].to_numpy(dtype=float)
    out = pd.DataFrame(
        {
            "split": source["split"],
            "arch": np.where(experts == 1, "dense", "moe"),
            "experts": experts,
            "active_params": active,
            "params": active,
            "tokens": MOE_TOKENS,
            "loss": source["loss_validation"].to_numpy(dtype=float),
            "cost": active * experts,
        }
    )
    return _named(out, "moe", lambda r: f"N{r.active_params:.0f}-E{r.experts}")


def data_constrained_table(source: pd.DataFrame) -> pd.DataFrame:
    """The data-constrained task as runs: params, tokens, unique_tokens, loss; cost 6·N·D."""
    out = pd.DataFrame(
        {
            "split": source["split"],
            "params": source["params"].to_numpy(dtype=float),
            "tokens": source["tokens"].to_numpy(dtype=float),
            "unique_tokens": source["unique_tokens"].to_numpy(dtype=float),
            "loss": source["loss"].to_numpy(dtype=float),
        }
    )
    out["flops"] = 6.0 * out["params"] * out["tokens"]
    out["cost"] = out["flops"]
    return _named(out, "dc", lambda r: f"N{r.params:.4g}-D{r.tokens:.4g}-U{r.unique_tokens:.4g}")


def _named(frame: pd.DataFrame, prefix: str, key: object) -> pd.DataFrame:
    """A unique ``run`` name first: the configuration, then a replicate number where configurations repeat."""
    base = [f"{prefix}-{key(r)}" for r in frame.itertuples()]  # type: ignore[operator]
    counts: dict[str, int] = {}
    names = []
    for b in base:
        counts[b] = counts.get(b, 0) + 1
        names.append(f"{b}-{counts[b]}")
    return frame.assign(run=names)[["run", *frame.columns]]


def main(repo: Path, root: Path = ROOT) -> None:
    moe_table(read_task(repo, "moe_scaling_law")).to_csv(root / "data" / "scalebench_moe_runs.csv", index=False, float_format="%.10g")
    data_constrained_table(read_task(repo, "data_constrained_scaling_law")).to_csv(root / "data" / "scalebench_data_constrained_runs.csv", index=False, float_format="%.10g")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: import_scalebench.py PATH_TO_ACTIVE_SL_CHECKOUT")
    main(Path(sys.argv[1]))
