"""The two-step task-accuracy model: a run table with a task column checked into a ``TaskTable``,
and the one PyMC model that fits both steps of the chain jointly (Bhagia et al. 2024, arXiv 2412.04403).

Step 1, task loss: ``L_t(N, D) = E_t + exp(a_t − α_t·(log N − c_N)) + exp(b_t − β_t·(log D − c_D))``
(Chinchilla per task, amplitudes at the data's centre; the exponents α, β and the link's
steepness k partially pooled across tasks, log-normal, non-centred), observed as
``log L ~ Normal(log L_t, σ_t)``. Step 2, accuracy:
``acc = c_t + (u_t − c_t)·sigmoid(k_t·(L0_t − L))``, bounded by the task's chance ``c_t`` and a
ceiling ``u_t = c_t + (1 − c_t)·sigmoid(h_t) < 1``, observed as ``Beta(μφ_t, (1 − μ)φ_t)``
(proportions, noise per task). Step 2 reads the observed task loss of each run, as the paper does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bayescale.errors import RunTableError

#: Forms the task fit knows: the loss step's law and the accuracy link.
LAWS = ("chinchilla",)
LINKS = ("sigmoid",)
#: Parameters per task (public names, one value per task per draw).
TASK_PARAMETERS = ("E", "A", "B", "alpha", "beta", "sigma", "k", "L0", "ceiling", "phi")
#: Parameters partially pooled across tasks (log scale): their population mean and spread are in the posterior too.
POOLED = ("alpha", "beta", "k")
#: (name, prior mean and sd of the population's log value, HalfNormal scale of the spread between tasks).
POOL_PRIORS = (("alpha", np.log(0.3), 0.5, 0.25), ("beta", np.log(0.3), 0.5, 0.25), ("k", np.log(4.0), 1.0, 0.5))
#: The canonical columns of a task table.
COLUMNS = ("task", "params", "tokens", "loss", "accuracy", "chance")


@dataclass(frozen=True)
class TaskTable:
    """Validated task runs: one row per (run, task) with the canonical ``COLUMNS``; ``tasks`` in first-seen order."""

    data: pd.DataFrame
    tasks: tuple[str, ...]
    source: str = "<DataFrame>"

    @property
    def codes(self) -> np.ndarray:
        """Each row's task index into ``tasks``."""
        return pd.Categorical(self.data["task"], categories=list(self.tasks)).codes.astype("int64")

    def chance(self) -> np.ndarray:
        """The chance level of each task (one value per task, in ``tasks`` order)."""
        first = self.data.groupby("task", sort=False)["chance"].first()
        return first.reindex(list(self.tasks)).to_numpy(dtype=float)

    def centres(self) -> tuple[float, float]:
        """Mean log N and log D of the runs: the loss step's amplitudes are sampled there."""
        return float(np.log(self.data["params"]).mean()), float(np.log(self.data["tokens"]).mean())


def task_table(
    runs: pd.DataFrame,
    *,
    task: str = "task",
    loss: str = "task_bpb",
    accuracy: str = "accuracy",
    chance: str | float | None = None,
    tasks: tuple[str, ...] | None = None,
    source: str = "<DataFrame>",
) -> TaskTable:
    """Check ``runs`` (columns ``params``, ``tokens``, the task, loss and accuracy columns named) into a ``TaskTable``.

    ``chance`` names a column of chance levels (constant within a task), or is one number for
    every task, or ``None``: the column ``chance`` if present, else 0. ``tasks`` lists the tasks
    the fit must cover: a task with no runs is an error naming it. Bad input is one line naming
    the column, row and value.
    """
    from bayescale.tables import parse_numeric_column

    if not isinstance(runs, pd.DataFrame):
        raise RunTableError(f"{source}: expected a table of runs, got {type(runs).__name__}")
    if chance is None and "chance" in runs.columns:
        chance = "chance"
    needed = {"params": "params", "tokens": "tokens", "task": task, "loss": loss, "accuracy": accuracy}
    if isinstance(chance, str):
        needed["chance"] = chance
    for role, column in needed.items():
        if column not in runs.columns:
            hint = f" (give --{role}-column / {role}=)" if role in ("task", "loss", "accuracy", "chance") else ""
            raise RunTableError(f"{source}: no {role} column {column!r}{hint}; columns are {', '.join(map(str, runs.columns))}")
    if len(runs) == 0:
        raise RunTableError(f"{source}: no runs")
    names = runs[task]
    if names.isna().any():
        raise RunTableError(f"{source}: row {int(np.flatnonzero(names.isna().to_numpy())[0]) + 1}, column {task!r}: empty task name")
    frame = pd.DataFrame({"task": names.astype(str).str.strip().to_numpy()})
    if (frame["task"] == "").any():
        raise RunTableError(f"{source}: row {int(np.flatnonzero(frame['task'] == '')[0]) + 1}, column {task!r}: empty task name")
    for role in ("params", "tokens", "loss"):
        frame[role] = parse_numeric_column(runs, needed[role], source, from_file=source != "<DataFrame>")
    frame["accuracy"] = _in_unit_interval(runs, accuracy, source, closed=True)
    if isinstance(chance, str):
        frame["chance"] = _in_unit_interval(runs, chance, source, closed=False, upper_open=True)
        varying = frame.groupby("task")["chance"].nunique()
        if (varying > 1).any():
            raise RunTableError(f"{source}: column {chance!r} varies within task {varying[varying > 1].index[0]!r}; chance is one value per task")
    else:
        level = 0.0 if chance is None else float(chance)
        if not 0.0 <= level < 1.0:
            raise RunTableError(f"chance must be in [0, 1), got {chance!r}")
        frame["chance"] = level
    seen = tuple(dict.fromkeys(frame["task"]))
    if tasks is not None:
        missing = [t for t in tasks if t not in seen]
        if missing:
            raise RunTableError(f"{source}: task {missing[0]!r} has no runs; tasks with runs: {', '.join(seen)}")
        frame = frame[frame["task"].isin(tasks)].reset_index(drop=True)
        seen = tuple(tasks)
    counts = frame["task"].value_counts()
    thin = counts[counts < 3]
    if len(thin):
        raise RunTableError(f"{source}: task {thin.index[0]!r} has {int(thin.iloc[0])} run(s); the loss step needs at least 3 per task")
    return TaskTable(frame, seen, source)


def _in_unit_interval(runs: pd.DataFrame, column: str, source: str, closed: bool, upper_open: bool = False) -> np.ndarray:
    """Column ``column`` as floats in [0, 1] (``closed``) or [0, 1) (``upper_open``), else an error naming the row and value."""
    values = pd.to_numeric(runs[column], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values) | (values < 0) | ((values >= 1) if upper_open else (values > 1))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        bound = "[0, 1)" if upper_open else "[0, 1]"
        raise RunTableError(f"{source}: row {row + 1}, column {column!r}: value {_shown(runs[column].iloc[row])} is not a proportion in {bound}")
    return values


def _shown(value: Any) -> str:
    """A cell as the user wrote it: numbers plainly (``1.2``, not ``np.float64(1.2)``)."""
    return f"{value:g}" if isinstance(value, (int, float, np.number)) and not isinstance(value, bool) else repr(value)


def accuracy_link(loss: Any, chance: Any, k: Any, l0: Any, ceiling: Any) -> Any:
    """Mean accuracy at task loss ``loss``: chance + (ceiling − chance)·sigmoid(k·(L0 − loss)) (numpy, broadcasting)."""
    return chance + (ceiling - chance) / (1.0 + np.exp(-k * (l0 - loss)))


def task_loss(log_n: Any, log_d: Any, p: Mapping[str, Any], centres: tuple[float, float]) -> Any:
    """Step 1's mean task loss at log N, log D from public parameters ``p`` (numpy, broadcasting)."""
    c_n, c_d = centres
    term_n = p["A"] * np.exp(-p["alpha"] * (log_n - c_n))
    term_d = p["B"] * np.exp(-p["beta"] * (log_d - c_d))
    return p["E"] + term_n + term_d


def build_model(table: TaskTable) -> Any:
    """The joint PyMC model of both steps on ``table`` (coords ``task``, ``row``).

    Amplitudes ``A``, ``B`` are the loss terms at the data's centre (``centres``), which removes
    the amplitude–exponent ridge; pooled parameters are ``exp(μ + τ·z_t)``.
    """
    import pymc as pm
    import pytensor.tensor as pt

    data = table.data
    idx = table.codes
    c_n, c_d = table.centres()
    log_n = np.log(data["params"].to_numpy())
    log_d = np.log(data["tokens"].to_numpy())
    loss = data["loss"].to_numpy()
    acc = np.clip(data["accuracy"].to_numpy(), 1e-4, 1 - 1e-4)  # a Beta density needs (0, 1)
    chance = table.chance()
    by_task = data.groupby("task", sort=False)["loss"]
    low = by_task.min().reindex(list(table.tasks)).to_numpy()
    spread = by_task.mean().reindex(list(table.tasks)).to_numpy()
    coords = {"task": list(table.tasks), "row": np.arange(len(data))}
    with pm.Model(coords=coords) as model:
        x_n = pm.Data("x_n", log_n - c_n, dims="row")
        x_d = pm.Data("x_d", log_d - c_d, dims="row")
        obs_loss = pm.Data("loss", loss, dims="row")
        obs_acc = pm.Data("accuracy", acc, dims="row")
        task = pm.Data("task_index", idx, dims="row")
        pooled = {}
        for name, mu, sd, spread_prior in POOL_PRIORS:
            mean = pm.Normal(f"{name}_mu", mu, sd)
            tau = pm.HalfNormal(f"{name}_tau", spread_prior)
            z = pm.Normal(f"{name}_z", 0.0, 1.0, dims="task")
            pooled[name] = pm.Deterministic(name, pt.exp(mean + tau * z), dims="task")
        # E below the smallest loss seen: E = low·sigmoid(e)
        e = pm.Normal("e_logit", 0.0, 1.5, dims="task")
        big_e = pm.Deterministic("E", low * pm.math.sigmoid(e), dims="task")
        log_a = pm.Normal("log_A", np.log(0.3 * spread), 1.5, dims="task")
        log_b = pm.Normal("log_B", np.log(0.3 * spread), 1.5, dims="task")
        pm.Deterministic("A", pt.exp(log_a), dims="task")
        pm.Deterministic("B", pt.exp(log_b), dims="task")
        sigma = pm.HalfNormal("sigma", 0.05, dims="task")
        mean_loss = big_e[task] + pt.exp(log_a[task] - pooled["alpha"][task] * x_n) + pt.exp(log_b[task] - pooled["beta"][task] * x_d)
        pm.Normal("log_loss_obs", pt.log(mean_loss), sigma[task], observed=pt.log(obs_loss), dims="row")
        # the link's position as the logit of the way from chance to the ceiling at the task's mean loss
        # (q = k·(L0 − mean loss)): nearly independent of k, where L0 itself is not
        q = pm.Normal("position", 0.0, 2.0, dims="task")
        l0 = pm.Deterministic("L0", spread + q / pooled["k"], dims="task")
        # a benchmark's ceiling is near 100% (label noise aside): the fraction of the way from chance is
        # sigmoid(h), prior median 0.95, 90% in 0.79–0.99; a loose prior let the ladder's lower part of
        # the curve pick ceilings near 0.5 (ARC-Challenge) that the 7B and 13B models exceed
        h = pm.Normal("ceiling_logit", 3.0, 1.0, dims="task")
        ceiling = pm.Deterministic("ceiling", chance + (1.0 - chance) * pm.math.sigmoid(h), dims="task")
        log_phi = pm.Normal("log_phi", np.log(300.0), 1.5, dims="task")
        phi = pm.Deterministic("phi", pt.exp(log_phi), dims="task")
        mu = chance[idx] + (ceiling[task] - chance[idx]) * pm.math.sigmoid(pooled["k"][task] * (l0[task] - obs_loss))
        mu = pt.clip(mu, 1e-6, 1 - 1e-6)
        pm.Beta("accuracy_obs", alpha=mu * phi[task], beta=(1 - mu) * phi[task], observed=obs_acc, dims="row")
    return model


def public_draws(posterior: Any) -> dict[str, np.ndarray]:
    """Each ``TASK_PARAMETERS`` value as an array (draws, tasks) from a posterior ``Dataset`` (chain and draw stacked)."""
    out = {}
    for name in TASK_PARAMETERS:
        var = posterior[name]
        out[name] = var.values.reshape(-1, var.sizes["task"])
    return out
