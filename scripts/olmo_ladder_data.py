"""Rebuild data/olmo_ladder_*.csv from a checkout of allenai/OLMo-ladder (Apache-2.0).

Usage: python scripts/olmo_ladder_data.py GIT_DIR  (a clone or bare mirror of the repository).
It follows the paper's own reading of its W&B exports (src/scaling/utils.py): N is the
non-embedding parameter count of MODEL_PARAMS, D the last row's tokens, the final-checkpoint
values a mean over the last 5 evaluations (``--moving_avg 5``), MMLU the 0.215/0.335/0.219/0.231
weighted mean of its four test subsets, accuracy the ranked-classification len-norm accuracy.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import numpy as np

LADDER = "src/scripts/paper/data/ladder-runs"
PARAMS = {
    "190M": 190354176,
    "370M": 371262464,
    "760M": 758220288,
    "1B": 1279395840,
    "3B": 3169537280,
}
SIZE_LABEL = {"190M": "190M", "370M": "370M", "760M": "760M", "1B": "1.3B", "3B": "3.2B"}
TARGETS = {
    "7B-4T": ("peteish7_eval_anneal.csv", 6887575552),
    "13B-5T": ("peteish13_eval_final.csv", 13202396160),
}
MULTIPLES = ["1xC", "2xC", "5xC", "10xC"]
MMLU_WEIGHTS = {"stem": 0.215, "humanities": 0.335, "social_sciences": 0.219, "other": 0.231}
SMALL_TASKS = ["hellaswag_val", "arc_challenge_test", "arc_easy_test", "piqa_val", "csqa_val", "socialiqa_val", "openbookqa_test"]
CHANCE = {"piqa_val": 0.5, "socialiqa_val": 1 / 3, "csqa_val": 0.2}
WINDOW = 5


def task_keys() -> dict[str, tuple[list[str], list[str], list[float]]]:
    """Task name → (bpb columns, accuracy columns, weights), as the paper's v2_main task set."""
    keys = {}
    subsets = [f"mmlu_{s}_test" for s in MMLU_WEIGHTS]
    keys["mmlu_avg_test_5shot"] = (
        [f"eval/downstream_bpb/{s}_rc_5shot_bpb" for s in subsets],
        [f"eval/downstream/{s}_rc_5shot_len_norm" for s in subsets],
        list(MMLU_WEIGHTS.values()),
    )
    for t in SMALL_TASKS:
        keys[f"{t}_5shot"] = (
            [f"eval/downstream_bpb/{t}_rc_5shot_bpb"],
            [f"eval/downstream/{t}_rc_5shot_len_norm"],
            [1.0],
        )
    return keys


def read(git_dir: str, name: str) -> list[dict[str, str]]:
    text = subprocess.run(
        ["git", "--git-dir", git_dir, "show", f"HEAD:{LADDER}/{name}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return list(csv.DictReader(io.StringIO(text)))


def tokens(row: dict[str, str]) -> int:
    if row.get("throughput/total_tokens"):
        return int(float(row["throughput/total_tokens"]))
    return int(float(row["_step"])) * int(float(row["batch_size_in_tokens"]))


def values(rows: list[dict[str, str]], cols: list[str], weights: list[float]) -> np.ndarray:
    return np.array([np.average([float(r[c]) for c in cols], weights=weights) for r in rows])


def main(git_dir: str, out: Path) -> None:
    keys = task_keys()
    final, targets = [], []
    for size, n in PARAMS.items():
        for mult in MULTIPLES:
            rows = read(git_dir, f"{size}-{mult}.csv")
            run = f"{SIZE_LABEL[size]}-{mult}"
            for task, (bpb, acc, w) in keys.items():
                loss, accuracy = values(rows, bpb, w), values(rows, acc, w)
                chance = CHANCE.get(task.removesuffix("_5shot"), 0.25)
                final.append([run, SIZE_LABEL[size], mult, n, tokens(rows[-1]), task, loss[-WINDOW:].mean(), accuracy[-WINDOW:].mean(), chance])
    for label, (name, n) in TARGETS.items():
        rows = read(git_dir, name)
        for task, (bpb, acc, w) in keys.items():
            chance = CHANCE.get(task.removesuffix("_5shot"), 0.25)
            targets.append([label, n, tokens(rows[-1]), task, values(rows, bpb, w)[-WINDOW:].mean(), values(rows, acc, w)[-WINDOW:].mean(), chance])
    head = ["run", "size", "multiple", "params", "tokens", "task", "task_bpb", "accuracy", "chance"]
    write(out / "olmo_ladder_runs.csv", head, final)
    write(out / "olmo_ladder_targets.csv", ["target", "params", "tokens", "task", "task_bpb", "accuracy", "chance"], targets)


def write(path: Path, head: list[str], rows: list[list[object]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(head)
        for r in rows:
            w.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in r])


if __name__ == "__main__":
    main(sys.argv[1], Path(__file__).resolve().parents[1] / "data")
