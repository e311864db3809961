"""What a candidate run would teach about a target, for ``design.next_runs``: the linear-Gaussian
update of the law's covariances between targets and candidates (``Covariances``, conditioned pick
by pick), the discrepancy a pick removes by extending the target's run range (``Ranges``), the
noise a run is observed with (``noise_variances``), the expected certainty of a decision after
learning (``decisiveness``) and the greedy pass over a pool (``select``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bayescale.discrepancy import coordinates, distance
from bayescale.errors import check_seed

if TYPE_CHECKING:
    from bayescale.evaluate import PosteriorEvaluator
    from bayescale.fitted import Fitted

#: Probabilists' Gauss–Hermite nodes: the expected decisiveness after a pick (preposterior analysis).
HERMITE = np.polynomial.hermite_e.hermegauss(40)
#: Unit-noise samples (at least one per posterior draw) behind the noise's variance and Fisher information.
NOISE_SAMPLES = 200_000


@dataclass(frozen=True)
class Picks:
    """One greedy pass: the candidates picked in order, the variance removed per target and the
    objective before and after each pick, the score of every candidate alone, and why it stopped."""

    order: list[int]
    gone: list[np.ndarray]
    values: list[float]
    first: np.ndarray
    notes: list[str]


def select(state: Covariances, value: Callable[[np.ndarray], np.ndarray], cost: np.ndarray, budget: float | None, k: int | None, per_cost: bool, var_now: np.ndarray, floor: float) -> Picks:
    """Greedy picks by score per unit of cost (``per_cost``) or by score, until ``k`` picks, the budget,
    or no affordable candidate removes more than the share ``floor`` of the variance left (``var_now``
    less what earlier picks removed, per target)."""
    gone = np.zeros(state.cross.shape[0])
    values = [float(value(gone[:, None])[0])]
    order: list[int] = []
    gones, notes, first = [gone], [], None
    spent = 0.0
    while True:
        gain = state.gains()  # (targets, candidates): variance each candidate would remove now
        score = value(gone[:, None] + gain) - values[-1]
        first = score.copy() if first is None else first
        if k is not None and len(order) >= k:
            break
        afford = (cost <= budget - spent) if budget is not None else np.ones(len(cost), dtype=bool)
        afford[order] = False
        if not afford.any():
            if budget is not None and not order:
                notes.append(f"the budget {budget:.3g} is below the cheapest candidate's cost {cost.min():.3g}: nothing selected")
            break
        useful = afford & (np.mean(gain, axis=0) > floor * np.mean(var_now - gone)) & (score > 0)
        if not useful.any():
            notes.append(f"no remaining affordable candidate is expected to remove {floor:.1%} of the target's variance left: stopped")
            break
        j = int(np.argmax(np.where(useful, score / cost if per_cost else score, -np.inf)))
        gone = gone + gain[:, j]
        state.pick(j)
        spent += cost[j]
        order.append(j)
        gones.append(gone)
        values.append(float(value(gone[:, None])[0]))
    return Picks(order, gones, values, first, notes)


def noise_variances(ev: PosteriorEvaluator, seed: int) -> tuple[float, float]:
    """(variance of one run's observation noise on log loss, the variance a run's observation carries as
    information about the law: 1 / Fisher information; both σ² for a normal likelihood)."""
    if ev.likelihood is None or ev.sigma is None:
        return 0.0, 0.0
    rng = np.random.default_rng([check_seed(seed), 2])
    shape = (ev.size, max(1, -(-NOISE_SAMPLES // ev.size)))
    values = {k: np.broadcast_to(v, shape) for k, v in (ev.noise_values or {}).items()}
    unit = ev.likelihood.unit_noise(rng, values, shape)
    sigma2 = np.maximum(ev.sigma**2, 1e-300)
    step = 1e-4  # the score d/dμ log p(e | μ, 1) at μ = 0, by central difference
    score = (ev.likelihood.logpdf(unit, step, 1.0, values) - ev.likelihood.logpdf(unit, -step, 1.0, values)) / (2 * step)
    return float(np.mean(sigma2 * unit**2)), float(1.0 / np.mean(score**2 / sigma2))


class Ranges:
    """Each target's distance d from the runs, and d′ once a candidate's run joins them (when it trains
    in the target's group, or the target is a new group): the discrepancy a pick removes."""

    def __init__(self, fit: Fitted, ev: PosteriorEvaluator, targets: pd.DataFrame, pool: pd.DataFrame, bounds: list[Any]) -> None:
        shift = ev.shift
        self.var_shift = 0.0 if shift is None or bounds[0] is None else float(np.var(shift))
        inputs = fit.spec.law.inputs
        self.x = coordinates(inputs, targets)
        self.c = coordinates(inputs, pool)
        directions = list(self.x) if self.var_shift else []
        self.lo = {k: np.array([b[k][0] for b in bounds]) for k in directions}
        self.hi = {k: np.array([b[k][1] for b in bounds]) for k in directions}
        self.extends = np.ones((len(targets), len(pool)), dtype=bool)
        for g in fit.groups:
            seen = ~targets["new_group"].to_numpy(dtype=bool)
            same = targets[g].astype(str).to_numpy()[:, None] == pool[g].astype(str).to_numpy()[None, :]
            self.extends &= same | ~seen[:, None]
        self.d = self._distance(self.lo, self.hi)

    def _distance(self, lo: Mapping[str, np.ndarray], hi: Mapping[str, np.ndarray]) -> np.ndarray:
        """d of each target from ranges (lo, hi) per direction, (targets,) or (targets, candidates)."""
        if not lo:
            return np.zeros(len(self.extends))
        ranges: dict[str, Any] = {k: (lo[k], hi[k]) for k in lo}  # arrays broadcast where ``distance`` documents floats
        return distance({k: self.x[k].reshape((-1,) + (1,) * (np.ndim(lo[k]) - 1)) for k in lo}, ranges)

    def _extended(self, columns: Any) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        mask = self.extends[:, columns]
        lo = {k: np.where(mask, np.minimum(v[:, None], self.c[k][None, columns]), v[:, None]) for k, v in self.lo.items()}
        hi = {k: np.where(mask, np.maximum(v[:, None], self.c[k][None, columns]), v[:, None]) for k, v in self.hi.items()}
        return lo, hi

    def gains(self) -> np.ndarray:
        """(targets, candidates): discrepancy variance each candidate removes, Var(τ·u)·(d² − d′²)."""
        if not self.var_shift:
            return np.zeros(self.extends.shape)
        after = self._distance(*self._extended(slice(None)))
        return self.var_shift * (self.d[:, None] ** 2 - after**2)

    def pick(self, j: int) -> None:
        if self.var_shift:
            lo, hi = self._extended([j])
            self.lo, self.hi = {k: v[:, 0] for k, v in lo.items()}, {k: v[:, 0] for k, v in hi.items()}
            self.d = self._distance(self.lo, self.hi)


class Covariances:
    """The law's covariances between targets and candidates, conditioned on the picks so far."""

    def __init__(self, targets: np.ndarray, candidates: np.ndarray, noise: float, ranges: Ranges) -> None:
        self.f = candidates - candidates.mean(axis=0)
        g = targets - targets.mean(axis=0)
        self.n = self.f.shape[0]
        self.cross = g.T @ self.f / self.n  # (targets, candidates): Cov(target, candidate)
        self.var = np.einsum("ij,ij->j", self.f, self.f) / self.n
        self.noise = noise
        self.ranges = ranges
        self.picked: list[tuple[np.ndarray, float]] = []  # conditioned Cov(·, pick) and its denominator

    def gains(self) -> np.ndarray:
        """(targets, candidates): the variance each candidate would remove now (law and discrepancy)."""
        return self.cross**2 / (np.maximum(self.var, 0.0) + self.noise + 1e-300) + self.ranges.gains()

    def pick(self, j: int) -> None:
        """Condition on candidate ``j``'s run (a rank-one update of every covariance with it)."""
        column = self.f.T @ self.f[:, j] / self.n
        for earlier, denom in self.picked:
            column -= earlier * earlier[j] / denom
        denom = max(float(self.var[j]), 0.0) + self.noise + 1e-300
        self.cross = self.cross - np.outer(self.cross[:, j], column) / denom
        self.var = self.var - column**2 / denom
        self.picked.append((column, denom))
        self.ranges.pick(j)


def decisiveness(mean: np.ndarray, var_left: np.ndarray, var_gone: np.ndarray, threshold: float) -> np.ndarray:
    """Expected max(p, 1 − p), p = P(log loss < threshold), once ``var_gone`` (targets, options) of the
    variance has been learnt (the mean moves by that much) and ``var_left`` remains; mean over targets."""
    from scipy.special import ndtr

    nodes, weights = HERMITE
    shifted = mean[:, None, None] + np.sqrt(np.maximum(var_gone, 0.0))[..., None] * nodes
    p = ndtr((threshold - shifted) / np.sqrt(np.maximum(var_left, 1e-300))[..., None])
    return np.mean(np.sum(weights * np.maximum(p, 1.0 - p), axis=-1) / weights.sum(), axis=0)


__all__ = ["Covariances", "Picks", "Ranges", "decisiveness", "noise_variances", "select"]
