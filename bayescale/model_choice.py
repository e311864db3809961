"""Model choice by forecasting: which law form (and, on grouped tables, which pooling) ``fit`` samples.

A scaling law is judged by how it forecasts larger runs, so the choice is an inner
leave-future-out on the user's own runs, on the self-check's split (``self_check.split``: the
largest runs held out). Each candidate is fitted at its posterior mode on the smaller runs (the
spec's priors, group offsets penalised at the spec's pooling scales), its posterior approximated
by a Laplace (Gaussian) fit around the mode, and its predictive distribution of the held-out runs'
log loss (likelihood noise, the discrepancy at its prior, as the self-check scores) scored by the
log predictive density. No model is compiled or sampled: the whole choice costs seconds, then
the full fit samples the chosen spec only.

One candidate is chosen, not a stack of them: stacking needs a full posterior of every candidate
(several samplings for one fit), and the candidates are nested (``farseer_exponent`` is
Chinchilla at γ = 0), so near-ties are common and mean the simpler form is as good. Among the
candidates whose summed score is within ``max(one standard error, MIN_GAIN per held-out run)``
of the best (paired over held-out runs), the one with the fewest free coordinates is chosen.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from bayescale.discrepancy import coordinates, distance, draw_tau, ranges
from bayescale.documents import Candidate, ModelChoice
from bayescale.errors import BayescaleError
from bayescale.laws.ops import NUMPY
from bayescale.modeldesign import Design
from bayescale.modeldesign import design as make_design
from bayescale.pooling import with_pooling
from bayescale.runs import RunTable
from bayescale.spec import ModelSpec, load_spec

#: Forms tried on a table of sizes and token counts, simplest first. ``farseer`` (δ free) and
#: ``drift`` are left out: on the forecast benchmark's tables their full fits did not converge.
FORMS = ("chinchilla", "farseer_exponent")
#: Tried as well when some run repeats its data (more than one epoch).
REPEATS_FORM = "data_constrained"
#: Tried alone when every run has about the same tokens per parameter (within this many decades):
#: then N and D move together and only loss against compute is identified.
COMPUTE_FORM = "compute"
MIN_RATIO_DECADES = 0.3
#: Poolings tried on a grouped table: the levels vary by group, or every free parameter does.
POOLINGS = ("levels", "all")
#: Laplace draws per candidate for the predictive scores.
DRAWS = 400
#: Held-out log density per run (nats) a more complex candidate must gain, beyond one standard
#: error, to be chosen. On 49-run Chinchilla-true grids (10 held out) ``farseer_exponent`` gained
#: at most 0.17 per run over 10 seeds; with a true drift γ = 0.08 it gained 0.66–1.26.
MIN_GAIN = 0.25
#: Finite-difference step of the Hessian, in internal coordinates.
STEP = 1e-4


def candidate_specs(runs: RunTable, groups: Sequence[str]) -> list[tuple[ModelSpec, str | None]]:
    """The (spec, pooling) candidates for this table: ``FORMS``, plus ``REPEATS_FORM`` when runs
    repeat data, or ``COMPUTE_FORM`` alone when tokens per parameter hardly vary; on grouped
    tables each with every pooling of ``POOLINGS``."""
    forms = list(FORMS)
    if np.any(runs.column("epochs").astype(float) > 1.0 + 1e-9):
        forms.append(REPEATS_FORM)
    ratio = np.log10(runs.column("tokens").astype(float) / runs.column("params").astype(float))
    if np.ptp(ratio) < MIN_RATIO_DECADES:
        forms = [COMPUTE_FORM]
    out: list[tuple[ModelSpec, str | None]] = []
    for form in forms:
        spec = load_spec(form)
        if not groups:
            out.append((spec, None))
            continue
        out.extend((spec if pooling == "levels" else with_pooling(spec, pooling), pooling) for pooling in POOLINGS)
    return out


def forced(spec: ModelSpec, reason: str) -> ModelChoice:
    """The record of a fit whose spec the caller gave: no choice made."""
    return ModelChoice(chosen=spec.name, pooling=None, made=False, reason=reason)


def choose(runs: RunTable, groups: Sequence[str] = (), seed: int = 0) -> tuple[ModelSpec, ModelChoice]:
    """Score every candidate on the self-check's split and return the chosen spec and the record.

    When the runs cannot support the split, or no candidate can be fitted on the smaller runs, the
    first candidate (Chinchilla, levels pooled) is returned with the reason. A table the first
    candidate cannot take at all raises its error (``modeldesign.design``).
    """
    from bayescale.self_check import Skip, split

    start = time.perf_counter()
    groups = tuple(groups)
    candidates = candidate_specs(runs, groups)
    first_spec, first_pooling = candidates[0]
    make_design(first_spec, runs, groups)  # a table the simplest candidate cannot take fails as a fit of it would, before any work
    try:
        held, _ = split(runs, groups)
    except Skip as exc:
        return first_spec, ModelChoice(chosen=first_spec.name, pooling=first_pooling, reason=f"no choice: {exc}", seconds=time.perf_counter() - start)
    train_runs = RunTable(runs.data[~held].reset_index(drop=True), source=f"{runs.source} (model choice)", extra_columns=runs.extra_columns)
    scored: list[tuple[Candidate, np.ndarray | None]] = []
    try:
        with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):  # BLAS threads on small vectors: ~10x slower on busy cores
            warnings.simplefilter("ignore")
            start_values = _starting_values(train_runs, first_spec)
    except BayescaleError as exc:
        return first_spec, ModelChoice(chosen=first_spec.name, pooling=first_pooling, reason=f"no choice: the smaller runs cannot be fitted ({exc})", seconds=time.perf_counter() - start)
    for spec, pooling in candidates:
        try:
            with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
                warnings.simplefilter("ignore")
                result = _score(spec, runs, train_runs, groups, held, seed, start_values)
        except BayescaleError as exc:
            scored.append((Candidate(spec.name, pooling, skipped=str(exc)), None))
            continue
        scored.append((Candidate(spec.name, pooling, float(result.lpd.mean()), None, result.crps, result.median_error, result.parameters), result.lpd))
    index, documents = _pick(scored)
    n_test = int(held.sum())
    choice = ModelChoice(chosen=candidates[index][0].name, pooling=candidates[index][1], candidates=documents, n_train=len(runs) - n_test, n_test=n_test, seconds=time.perf_counter() - start)
    if all(c.score is None for c in documents):
        choice = ModelChoice(chosen=first_spec.name, pooling=first_pooling, candidates=documents, reason="no candidate could be fitted on the smaller runs", seconds=choice.seconds)
    return candidates[index][0], choice


def _pick(scored: list[tuple[Candidate, np.ndarray | None]]) -> tuple[int, tuple[Candidate, ...]]:
    """The simplest candidate within ``max(one standard error, MIN_GAIN per run)`` of the best summed score, and every
    candidate's document with its standard error of the difference to the best."""
    valid = [i for i, (_, lpd) in enumerate(scored) if lpd is not None]
    if not valid:
        return 0, tuple(c for c, _ in scored)
    best = max(valid, key=lambda i: float(np.sum(scored[i][1])))  # type: ignore[arg-type]
    top = np.asarray(scored[best][1])
    documents = []
    eligible = []
    for i, (candidate, lpd) in enumerate(scored):
        if lpd is None:
            documents.append(candidate)
            continue
        diff = top - lpd
        se = float(np.sqrt(diff.size) * np.std(diff, ddof=1)) if diff.size > 1 else 0.0
        documents.append(Candidate(**{**candidate.__dict__, "se": se}))
        if float(diff.sum()) <= max(se, MIN_GAIN * diff.size):
            eligible.append(i)
    chosen = min(eligible, key=lambda i: (scored[i][0].parameters or 0, i))
    return chosen, tuple(documents)


@dataclass(frozen=True)
class _Scores:
    lpd: np.ndarray
    crps: float
    median_error: float
    parameters: int


class _Posterior:
    """The log posterior density of one candidate on the training runs, over a flat vector of
    internal coordinates: the free law parameters, each pooled parameter's offset per group level
    (``N(0, scale)``), and log σ. Priors are Gaussian in log (positive) or raw values, matched to
    the spec's prior draws: an approximation good enough to rank forecasts."""

    def __init__(self, spec: ModelSpec, design: Design, train: np.ndarray, centres: dict[str, float]):
        self.spec, self.law, self.design, self.centres = spec, spec.law, design, centres
        self.train = train
        self.fixed = spec.fixed
        self.free = [n for n in self.law.parameter_names if n not in self.fixed]
        self.pooled = [(p, g) for p in spec.pooled if p in self.free for g in design.groups]
        self.sizes = [len(design.levels[g]) for _, g in self.pooled]
        self.n = len(self.free) + sum(self.sizes) + 1
        draws = spec.check_priors(0)
        self.prior = {}
        for name in self.free:
            t = draws[f"priors.{name}"]
            t = np.log(t) if self.law.parameter(name).positive else t
            self.prior[name] = (float(np.mean(t)), float(max(np.std(t), 1e-3)))
        log_sigma = np.log(draws["likelihood.sigma"])
        self.sigma_prior = (float(np.mean(log_sigma)), float(np.std(log_sigma)))
        self.values = {**spec.likelihood.constants(), **{k: float(np.median(draws[f"likelihood.{k}"])) for k in spec.likelihood.parameters if f"likelihood.{k}" in draws}}

    def unpack(self, theta: np.ndarray, rows: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Public parameter values at the runs ``rows`` (leading axes of ``theta`` broadcast) and σ."""
        z = {n: theta[..., i, None] for i, n in enumerate(self.free)}
        at = len(self.free)
        for (name, g), size in zip(self.pooled, self.sizes, strict=True):
            z[name] = z[name] + theta[..., at : at + size][..., self.design.codes[g][rows]]
            at += size
        public: dict[str, np.ndarray] = {}
        for q in self.law.parameters:
            public[q.name] = np.asarray(self.fixed[q.name]) if q.name in self.fixed else self.law.public_value(NUMPY, q.name, z[q.name], public, self.centres)
        return public, np.exp(theta[..., -1, None])

    def log_density(self, theta: np.ndarray) -> np.ndarray:
        """The log posterior density at each row of ``theta`` (shape ``(k, n)`` → ``(k,)``; -1e300 where not finite)."""
        public, sigma = self.unpack(theta, self.train)
        x = {k: v[self.train] for k, v in self.design.x.items()}
        with np.errstate(all="ignore"):
            mu = self.law.log_loss(NUMPY, public, x)
            total = np.sum(self.spec.likelihood.logpdf(self.design.y[self.train][None, :], mu, sigma, self.values), axis=-1)
            population: dict[str, np.ndarray] = dict(self.fixed)  # type: ignore[arg-type]
            for i, name in enumerate(self.free):
                population[name] = self.law.public_value(NUMPY, name, theta[:, i], population, self.centres)
                t = np.log(population[name]) if self.law.parameter(name).positive else population[name]
                m, s = self.prior[name]
                total = total - 0.5 * ((t - m) / s) ** 2
        at = len(self.free)
        for (name, _), size in zip(self.pooled, self.sizes, strict=True):
            total = total - 0.5 * np.sum((theta[:, at : at + size] / self.spec.pool_scale[name]) ** 2, axis=-1)
            at += size
        total = total - 0.5 * ((theta[:, -1] - self.sigma_prior[0]) / self.sigma_prior[1]) ** 2
        return np.where(np.isfinite(total), total, -1e300)

    def objective(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Negative log density and its gradient (central differences, one batched evaluation)."""
        steps = np.eye(theta.size) * STEP
        values = -self.log_density(np.vstack([theta, theta + steps, theta - steps]))
        return float(values[0]), (values[1 : theta.size + 1] - values[theta.size + 1 :]) / (2 * STEP)

    def start(self, values: dict[str, float], sigma: float) -> np.ndarray:
        """Internal coordinates at the public ``values`` (prior medians for the parameters they
        lack, so a nested form starts at its null), group offsets 0, σ given."""
        draws = self.spec.check_priors(0)
        public = {n: values[n] if n in values else float(np.median(draws[f"priors.{n}"])) for n in self.law.parameter_names}
        internal = self.law.to_internal({**public, **self.fixed}, self.centres)
        theta = np.zeros(self.n)
        theta[: len(self.free)] = [internal[n] for n in self.free]
        theta[-1] = np.log(max(sigma, 1e-4))
        return theta


def _starting_values(train_runs: RunTable, spec: ModelSpec) -> tuple[dict[str, float], float]:
    """The point fit of the first (simplest) candidate's form on the training runs (the literature's
    grid of starts; no groups) and its residuals' robust scale: where every candidate's mode search
    starts (a nested form at its null)."""
    from bayescale.validate.point import point_fit

    fitted = point_fit(train_runs, spec.name, n_refine=2)
    r = fitted.residuals
    return dict(fitted.estimate), 1.4826 * float(np.median(np.abs(r - np.median(r))))


def _score(spec: ModelSpec, runs: RunTable, train_runs: RunTable, groups: tuple[str, ...], held: np.ndarray, seed: int, start: tuple[dict[str, float], float]) -> _Scores:
    """Mode + Laplace fit of ``spec`` on the runs not ``held`` from ``start``, scored on the ``held`` runs."""
    from scipy.optimize import minimize
    from scipy.special import logsumexp

    from bayescale.validate.metrics import crps

    full = make_design(spec, runs, groups)
    train_design = make_design(spec, train_runs, groups)
    if any(train_design.levels[g] != full.levels[g] for g in groups):
        raise BayescaleError("a group has no runs below the cutoff")
    post = _Posterior(spec, full, ~held, train_design.centres)
    theta0 = post.start(*start)
    found = minimize(post.objective, theta0, jac=True, method="L-BFGS-B", options={"maxiter": 3000})
    mode = found.x
    cov = _laplace_covariance(post, mode)
    rng = np.random.default_rng([seed, 0x6D63])
    draws = rng.multivariate_normal(mode, cov, size=DRAWS, method="eigh")
    test = np.flatnonzero(held)
    public, sigma = post.unpack(draws, test)
    x = {k: v[test] for k, v in full.x.items()}
    with np.errstate(all="ignore"):
        mu = np.broadcast_to(spec.law.log_loss(NUMPY, public, x), (DRAWS, test.size))
    tau, u = draw_tau(spec.discrepancy.scale, (DRAWS,), seed) if spec.discrepancy.enabled else (np.zeros(DRAWS), np.zeros(DRAWS))
    mu = mu + (tau * u)[:, None] * _distance(spec, runs, groups, held)[None, :]
    y = full.y[test]
    with np.errstate(all="ignore"):
        lpd = logsumexp(spec.likelihood.logpdf(y[None, :], mu, sigma, post.values), axis=0) - np.log(DRAWS)
    samples = mu + sigma * spec.likelihood.unit_noise(rng, post.values, mu.shape)
    if not np.all(np.isfinite(lpd)) or not np.all(np.isfinite(samples)):
        raise BayescaleError(f"{spec.name}: its mode fit forecasts non-finite losses")
    return _Scores(lpd, crps(samples, y), float(np.median(np.abs(np.median(samples, axis=0) - y))), post.n)


def _laplace_covariance(post: _Posterior, mode: np.ndarray) -> np.ndarray:
    """Inverse of the negative log density's Hessian at the mode (central differences of the
    gradient), its eigenvalues floored at 1 so a direction the data barely fix stays at most one
    unit of internal coordinate wide, not infinite."""
    n = mode.size
    steps = np.eye(n) * STEP
    grads = np.array([post.objective(mode + e)[1] - post.objective(mode - e)[1] for e in steps]) / (2 * STEP)
    eigval, eigvec = np.linalg.eigh(0.5 * (grads + grads.T))
    return (eigvec / np.maximum(eigval, 1.0)) @ eigvec.T


def _distance(spec: ModelSpec, runs: RunTable, groups: tuple[str, ...], held: np.ndarray) -> np.ndarray:
    """Decades each held-out run lies beyond the training runs of its own group (all when ungrouped)."""
    inputs = spec.law.inputs
    coords = coordinates(inputs, runs.data)
    keys = runs.data[list(groups)].astype(str).agg("|".join, axis=1).to_numpy() if groups else np.zeros(len(runs), dtype=str)
    out = np.zeros(len(runs))
    for key in np.unique(keys[held]):
        mine = keys == key
        bounds = ranges({k: v[mine & ~held] for k, v in coords.items()})
        out[mine & held] = distance({k: v[mine & held] for k, v in coords.items()}, bounds)
    return out[held]
