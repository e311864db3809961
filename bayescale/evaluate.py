"""One evaluation path: a posterior's per-draw log loss at targets, without and with the model
discrepancy ``τ·u·d(x)``.

Forecasts, allocations, decisions and the self-check all evaluate the law here, so a new
discrepancy form or a new input column touches one place:

* ``plan_inputs`` builds the law's log inputs of plans given by (N, D[, unique tokens]) — the
  isoFLOP lines of ``allocate`` and the plans of ``decide`` (target tables use ``Law.log_inputs``);
* ``plan_distance`` is the extrapolation distance of such plans (``discrepancy.distance``);
* ``with_discrepancy`` is the one place the shift ``τ·u · d`` is added to log loss;
* ``log_loss`` is the law at public parameter draws plus that shift: both curves;
* ``PosteriorEvaluator`` holds one fit's draws for one group selection (public parameters, τ·u,
  the runs' ranges, the likelihood's σ and its family's values), flattened to (draws, 1) so targets broadcast on
  the last axis; ``allocate`` and ``decide`` evaluate their plans through it, and ``forecasting``
  (whose targets each carry their own group level) calls ``log_loss`` with per-target draws.

Callers outside this module reach ``with_discrepancy`` and ``log_loss`` as ``evaluate.NAME`` at
call time, so replacing one of them (a test does) changes every consumer alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bayescale.discrepancy import coordinates, distance, group_bounds, shift_per_draw
from bayescale.errors import BayescaleError, check_seed
from bayescale.laws.ops import NUMPY

if TYPE_CHECKING:
    from bayescale.fitted import Fitted
    from bayescale.laws import Law
    from bayescale.spec import Likelihood

Bounds = Mapping[str, tuple[float, float]]


def plan_inputs(law: Law, log_n: Any, log_d: Any, log_u: Any = None, log_c: Any = None) -> dict[str, Any]:
    """The law's log inputs at plans of ``exp(log_n)`` parameters on ``exp(log_d)`` tokens (arrays broadcast).

    ``log_u`` (log unique tokens; None: all fresh) is capped at the tokens trained on: the law
    sees U_eff = min(U, D). Compute is ``log_c`` when the caller knows it exactly (an isoFLOP
    line), else log 6ND. Laws that need other columns (MoE's experts) cannot be planned by (N, D).
    """
    if log_u is not None and "unique_tokens" not in law.inputs:
        raise BayescaleError(f"unique_tokens needs a repeat-aware law (e.g. data_constrained); this fit's law is {law.name}")
    x: dict[str, Any] = {"params": log_n, "tokens": log_d}
    if "unique_tokens" in law.inputs:
        x["unique_tokens"] = log_d if log_u is None else np.minimum(log_u, log_d)
    if "flops" in law.inputs:
        x["flops"] = (np.log(6.0) + log_n + log_d) if log_c is None else log_c + 0.0 * log_n
    missing = [c for c in law.inputs if c not in x]
    if missing:
        raise BayescaleError(f"the {law.name} law needs {', '.join(missing)}; plans (allocations and decisions) give only params and tokens")
    return x


def plan_distance(inputs: tuple[str, ...], bounds: Bounds, log_n: Any, log_d: Any) -> np.ndarray:
    """d(x) of plans given by natural-log parameters and tokens, beyond the runs' ``bounds``."""
    n, d = np.exp(log_n), np.exp(log_d)
    return distance(coordinates(inputs, {"params": n, "active_params": n, "tokens": d, "flops": 6.0 * n * d}), bounds)


def with_discrepancy(log_loss: Any, shift: Any, dist: Any) -> Any:
    """``log_loss + shift · dist``: the model discrepancy (τ·u per draw times d per target, laid out
    by the caller to broadcast); unchanged to the bit without a shift or where every d is 0."""
    if shift is None or dist is None or not np.any(dist):
        return log_loss
    return log_loss + shift * dist


def log_loss(law: Law, p: Mapping[str, Any], x: Mapping[str, Any], shift: Any = None, dist: Any = None, ops: Any = NUMPY) -> tuple[Any, Any]:
    """(law only, with discrepancy): log loss of public parameters ``p`` at log inputs ``x``."""
    mu = law.log_loss(ops, p, x)
    return mu, with_discrepancy(mu, shift, dist)


@dataclass(frozen=True)
class PosteriorEvaluator:
    """One fit's draws for one group selection, flattened to (S, 1): plans broadcast on the last axis.

    ``params`` are public law parameters, ``shift`` τ·u (None without discrepancy), ``bounds`` the
    ranges of the runs the distance is measured from, ``sigma`` the likelihood's scale and
    ``noise_values`` its family's own parameters (``Likelihood.values``), ``shape`` (chains, draws).
    """

    law: Law
    params: Mapping[str, np.ndarray]
    shape: tuple[int, ...]
    shift: np.ndarray | None = None
    bounds: Bounds | None = None
    sigma: np.ndarray | None = None
    noise_values: Mapping[str, Any] | None = None
    likelihood: Likelihood | None = None

    @classmethod
    def of(cls, fit: Fitted, group_values: Mapping[str, Any] | None = None, new_group: bool = False, seed: int = 0) -> PosteriorEvaluator:
        """The evaluator of a fit at a seen level per group column, or a new group (fresh offsets per
        draw from ``default_rng([seed, 1])``, never the stream noise is drawn from)."""
        from bayescale.groups import resolve_request, seen_levels
        from bayescale.posterior import PosteriorView

        resolved = resolve_request(fit, group_values, new_group)
        rng = np.random.default_rng([check_seed(seed), 1]) if resolved else None
        view = PosteriorView.of(fit)
        draws = view.parameters(resolved, rng)
        shift = shift_per_draw(fit)
        post = fit.posterior
        likelihood = fit.spec.likelihood
        size = int(np.prod(view.shape))
        return cls(
            law=fit.spec.law,
            params={k: v.reshape(-1, 1) for k, v in draws.items()},
            shape=next(iter(draws.values())).shape,
            shift=None if shift is None else shift.reshape(-1, 1),
            bounds=None if shift is None else group_bounds(fit, seen_levels(resolved)),
            sigma=view.sigma().reshape(-1, 1) if "sigma" in post else np.zeros((size, 1)),
            noise_values={k: np.reshape(v, (-1, 1)) for k, v in view.likelihood_values().items()},
            likelihood=likelihood,
        )

    @classmethod
    def from_draws(cls, law: Law, theta: Mapping[str, Any], shift: Any = None, bounds: Bounds | None = None) -> PosteriorEvaluator:
        """The evaluator of given public draws (arrays of one shape) and, optionally, τ·u per draw and the runs' ranges."""
        arrays = {k: np.asarray(v, dtype=float) for k, v in theta.items()}
        shape = np.broadcast_shapes(*(a.shape for a in arrays.values()))
        flat = {k: np.broadcast_to(v, shape).reshape(-1, 1) for k, v in arrays.items()}
        has_shift = shift is not None and bounds is not None
        return cls(law=law, params=flat, shape=shape, shift=np.asarray(shift, dtype=float).reshape(-1, 1) if has_shift else None, bounds=bounds if has_shift else None)

    @property
    def size(self) -> int:
        """Number of posterior draws S."""
        return int(np.prod(self.shape))

    def log_loss(self, log_n: Any, log_d: Any, log_u: Any = None, log_c: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """(law only, with discrepancy) per draw at plans given in logs: (..., S, T) for plans (..., 1, T)."""
        x = plan_inputs(self.law, log_n, log_d, log_u, log_c)
        dist = None if self.shift is None or self.bounds is None else plan_distance(self.law.inputs, self.bounds, log_n, log_d)
        return log_loss(self.law, self.params, x, self.shift, dist)

    def at(self, params: Any, tokens: Any, unique_tokens: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """(law only, with discrepancy) per draw, (S, T), at targets (T,) in natural units."""
        n, d = np.atleast_1d(params).astype(float), np.atleast_1d(tokens).astype(float)
        log_u = None if unique_tokens is None else np.log(np.atleast_1d(unique_tokens).astype(float))[None, :]
        return self.log_loss(np.log(n)[None, :], np.log(d)[None, :], log_u, np.log(6.0 * n * d)[None, :])

    def at_table(self, frame: Any) -> tuple[np.ndarray, np.ndarray]:
        """(law only, with discrepancy) per draw, (S, T), at the rows of a parsed target table: any
        law's inputs (MoE's experts too), the distance measured from this selection's runs."""
        x = {k: np.asarray(v)[None, :] for k, v in self.law.log_inputs(frame).items()}
        dist = None if self.shift is None or self.bounds is None else distance(coordinates(self.law.inputs, frame), self.bounds)[None, :]
        return log_loss(self.law, self.params, x, self.shift, dist)

    def unit_noise(self, rng: np.random.Generator) -> np.ndarray:
        """One standard draw of the likelihood's noise per posterior draw, (S, 1) (σ not applied)."""
        if self.likelihood is None:
            raise BayescaleError("an evaluator built from parameter draws alone has no noise model")
        return self.likelihood.unit_noise(rng, self.noise_values or {}, (self.size, 1))
