"""Forecasts and decisions from a task fit: per task, the chained posterior predictive of task loss
and accuracy at (N, D) plans (``forecast_tasks``), P(accuracy ≥ x) and the least compute reaching
it (``decide_task``).

Each draw goes through both steps: the loss law, the extrapolation discrepancy ``τ·u_t·d(x)``
(d in decades beyond the ladder, as ``discrepancy.distance``; τ from its HalfNormal prior, u per
task and draw) and the loss noise, then the link and the accuracy's Beta noise. The discrepancy is
exactly 0 inside the ladder's range.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from bayescale.discrepancy import coordinates, distance, ranges
from bayescale.errors import BayescaleError, RunTableError, check_probability, check_seed
from bayescale.taskfit import TaskFit
from bayescale.taskmodel import accuracy_link, public_draws, task_loss

#: The output fields of ``forecast_tasks`` (CSV columns, JSON keys).
FIELDS = ("task", "params", "tokens", "accuracy_median", "accuracy_lo", "accuracy_hi", "loss_median", "loss_lo", "loss_hi", "chance", "extrapolation_decades")


def plan_distance(fit: TaskFit, params: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Decades beyond the ladder's runs (N, D, D/N, C) of each (params, tokens) plan; 0 inside."""
    inputs = ("params", "tokens")
    bounds = ranges(coordinates(inputs, fit.table.data))
    return distance(coordinates(inputs, {"params": params, "tokens": tokens}), bounds)


def chained_draws(fit: TaskFit, params: Any, tokens: Any, *, seed: int = 0, predictive: bool = True, tasks: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Draws of task loss and accuracy, arrays (draws, plans, tasks), at each (params, tokens) plan.

    ``predictive`` adds the loss and accuracy noise of one evaluation; otherwise the mean curve
    (law, parameters and discrepancy). The discrepancy and noise draws are seeded by the fit's
    seed and ``seed``.
    """
    check_seed(seed)
    n = np.atleast_1d(np.asarray(params, dtype=float))
    d = np.atleast_1d(np.asarray(tokens, dtype=float))
    if n.shape != d.shape or not (np.all(np.isfinite(n) & (n > 0)) and np.all(np.isfinite(d) & (d > 0))):
        raise RunTableError("params and tokens must be positive finite numbers, one of each per plan")
    p = public_draws(fit.posterior)
    keep = _task_index(fit, tasks)
    p = {k: v[:, keep] for k, v in p.items()}
    chance = fit.table.chance()[keep]
    rng = np.random.default_rng([fit.seed, seed, 27])
    s, t = p["E"].shape
    tau = np.abs(rng.normal(0.0, fit.discrepancy_scale, size=(s, 1, 1)))
    u = rng.normal(size=(s, 1, t))
    dist = plan_distance(fit, n, d)[None, :, None]
    centres = fit.table.centres()
    pp = {k: v[:, None, :] for k, v in p.items()}
    log_loss = np.log(task_loss(np.log(n)[None, :, None], np.log(d)[None, :, None], pp, centres)) + tau * u * dist
    if predictive:
        log_loss = log_loss + pp["sigma"] * rng.normal(size=log_loss.shape)
    loss = np.exp(log_loss)
    mean = accuracy_link(loss, chance[None, None, :], pp["k"], pp["L0"], pp["ceiling"])
    if predictive:
        mean = np.clip(mean, 1e-9, 1 - 1e-9)
        accuracy = rng.beta(mean * pp["phi"], (1 - mean) * pp["phi"])
    else:
        accuracy = mean
    return {"loss": loss, "accuracy": accuracy, "tasks": np.array([fit.tasks[i] for i in keep]), "distance": dist[0, :, 0]}


def _task_index(fit: TaskFit, tasks: Sequence[str] | None) -> list[int]:
    """Indices of ``tasks`` (all when None) in the fit; an unknown task is an error listing the fitted ones."""
    if tasks is None:
        return list(range(len(fit.tasks)))
    out = []
    for name in tasks:
        if name not in fit.tasks:
            raise BayescaleError(f"task {name!r} is not in this fit; its tasks: {', '.join(fit.tasks)}")
        out.append(fit.tasks.index(name))
    return out


def forecast_tasks(fit: TaskFit, params: Any, tokens: Any, *, ci: float = 0.9, seed: int = 0, predictive: bool = True, tasks: Sequence[str] | None = None) -> pd.DataFrame:
    """Per plan and task: accuracy and task-loss medians and central ``ci`` intervals (``FIELDS``)."""
    check_probability(ci)
    draws = chained_draws(fit, params, tokens, seed=seed, predictive=predictive, tasks=tasks)
    n = np.atleast_1d(np.asarray(params, dtype=float))
    d = np.atleast_1d(np.asarray(tokens, dtype=float))
    q = [0.5, (1 - ci) / 2, (1 + ci) / 2]
    acc = np.quantile(draws["accuracy"], q, axis=0)
    loss = np.quantile(draws["loss"], q, axis=0)
    chance = fit.table.chance()[_task_index(fit, tasks)]
    rows = []
    for i in range(n.size):
        for j, name in enumerate(draws["tasks"]):
            rows.append(
                {
                    "task": str(name), "params": n[i], "tokens": d[i],
                    "accuracy_median": acc[0, i, j], "accuracy_lo": acc[1, i, j], "accuracy_hi": acc[2, i, j],
                    "loss_median": loss[0, i, j], "loss_lo": loss[1, i, j], "loss_hi": loss[2, i, j],
                    "chance": chance[j], "extrapolation_decades": draws["distance"][i],
                }
            )  # fmt: skip
    return pd.DataFrame(rows, columns=list(FIELDS))


def prob_accuracy(fit: TaskFit, task: str, target: float, params: Any, tokens: Any, *, seed: int = 0, predictive: bool = True) -> np.ndarray:
    """P(accuracy ≥ ``target`` on ``task``) at each (params, tokens) plan."""
    _check_target(fit, task, target)
    draws = chained_draws(fit, params, tokens, seed=seed, predictive=predictive, tasks=[task])
    return (draws["accuracy"][:, :, 0] >= target).mean(axis=0)


def _check_target(fit: TaskFit, task: str, target: float) -> None:
    _task_index(fit, [task])
    if not (np.isfinite(target) and 0.0 < target < 1.0):
        raise BayescaleError(f"--accuracy-target must be a proportion in (0, 1), got {target!r}")


def decide_task(
    fit: TaskFit,
    task: str,
    target: float,
    *,
    prob: float = 0.9,
    params: float | None = None,
    tokens: float | None = None,
    tokens_per_param: float = 20.0,
    seed: int = 0,
    predictive: bool = True,
) -> dict[str, Any]:
    """P(accuracy ≥ ``target`` on ``task``) at a plan (``params`` and ``tokens``), and the least compute
    (C = 6ND at ``tokens_per_param``, or the plan's own ratio) that reaches it with probability ``prob``.

    The compute is searched on a log grid from the ladder's smallest run to 10⁴× the largest
    (``compute_needed`` is None when even that is not enough).
    """
    check_probability(prob, "--prob")
    _check_target(fit, task, target)
    if (params is None) != (tokens is None):
        raise BayescaleError("give both --params and --tokens (a plan), or neither (find the compute)")
    ratio = float(tokens) / float(params) if params is not None and tokens is not None else float(tokens_per_param)
    if not (np.isfinite(ratio) and ratio > 0):
        raise BayescaleError(f"tokens per parameter must be positive, got {ratio!r}")
    doc: dict[str, Any] = {"task": task, "accuracy_target": target, "prob_required": prob, "predictive": predictive, "tokens_per_param": ratio, "converged": fit.converged}
    if params is not None and tokens is not None:
        p = float(prob_accuracy(fit, task, target, params, tokens, seed=seed, predictive=predictive)[0])
        doc.update(params=float(params), tokens=float(tokens), flops=6.0 * float(params) * float(tokens), prob=p, meets=p >= prob)
    flops = 6.0 * fit.table.data["params"] * fit.table.data["tokens"]
    grid = np.logspace(np.log10(flops.min()), np.log10(flops.max() * 1e4), 121)
    n = np.sqrt(grid / (6.0 * ratio))
    probs = prob_accuracy(fit, task, target, n, n * ratio, seed=seed, predictive=predictive)
    hit = np.flatnonzero(probs >= prob)
    if hit.size:
        i = int(hit[0])
        doc["compute_needed"] = {"flops": float(grid[i]), "params": float(n[i]), "tokens": float(n[i] * ratio), "prob": float(probs[i])}
    else:
        doc["compute_needed"] = None
        doc["compute_needed_reason"] = f"P stays below {prob:g} up to {grid[-1]:.3g} FLOPs (10⁴× the largest ladder run) at {ratio:g} tokens per parameter"
    return doc
