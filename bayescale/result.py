"""The result of a fit: ``Fit`` (posterior DataTree, spec, runs, groups, diagnostics, seed,
sampler) and its convergence check (``check_convergence`` → ``documents.Diagnostics``).

A ``Fit`` is immutable: the posterior plus everything needed to use and reproduce it. Sampling
lives in ``sampling``, files in ``fitformat`` (writing) and ``fitfile`` (reading), and ``fitting.fit`` ties them together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from bayescale.documents import Diagnostics, FitInfo, SelfCheck, failure
from bayescale.errors import check_probability
from bayescale.modeldesign import Design, design
from bayescale.names import original_name
from bayescale.posterior import SAMPLE_DIMS, by_level_name
from bayescale.runs import RunTable
from bayescale.spec import ModelSpec

if TYPE_CHECKING:
    from matplotlib.figure import Figure

RHAT_MAX = 1.01
ESS_MIN = 400
#: Tree-depth saturation counts as a problem when more than this share of draws hit the cap:
#: occasional hits cost only efficiency, systematic ones mean the sampler cannot traverse.
TREEDEPTH_MAX_SHARE = 0.01
#: The tree node holding ``Fit.summary``'s per-parameter R-hat and ESS, computed once at fit time
#: (``Fit.with_parameter_diagnostics``) so that reading a fit needs no ArviZ.
PARAMETER_DIAGNOSTICS = "parameter_diagnostics"
PARAMETER_STATISTICS = ("rhat", "ess_bulk", "ess_tail")


def check_convergence(tree: xr.DataTree, var_names: Sequence[str]) -> Diagnostics:
    """R-hat, bulk/tail ESS over ``var_names``; divergences and tree-depth hits from sample stats."""
    import arviz_stats as az

    posterior = tree["posterior"].to_dataset()[list(var_names)]
    stats = tree["sample_stats"].to_dataset()
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]

    def extreme(ds: xr.Dataset, fn) -> float:
        values = np.concatenate([np.ravel(v.values) for v in ds.data_vars.values()])
        values = values[np.isfinite(values)]
        return float(fn(values)) if values.size else float("nan")

    rhat = az.rhat(posterior) if chains > 1 else None
    bulk, tail = az.ess(posterior, method="bulk"), az.ess(posterior, method="tail")
    rhat_max = extreme(rhat, np.max) if rhat is not None else float("nan")
    ess_bulk = extreme(bulk, np.min)
    ess_tail = extreme(tail, np.min)
    divergences = int(stats["diverging"].sum()) if "diverging" in stats else 0
    depth_var = next((v for v in ("maxdepth_reached", "reached_max_treedepth") if v in stats), None)
    depth_hits = int(stats[depth_var].sum()) if depth_var else 0
    problems = []
    if rhat is not None and not rhat_max <= RHAT_MAX:
        problems.append(f"R-hat {rhat_max:.3f} > {RHAT_MAX} ({_at_fault(rhat, lambda v: v > RHAT_MAX, '.3f', largest_first=True)})")
    if not ess_bulk >= ESS_MIN:
        problems.append(f"bulk ESS {ess_bulk:.0f} < {ESS_MIN} ({_at_fault(bulk, lambda v: v < ESS_MIN, '.0f')})")
    if not ess_tail >= ESS_MIN:
        problems.append(f"tail ESS {ess_tail:.0f} < {ESS_MIN} ({_at_fault(tail, lambda v: v < ESS_MIN, '.0f')})")
    if divergences:
        problems.append(f"{divergences} divergent transition(s)")
    if depth_hits > TREEDEPTH_MAX_SHARE * chains * draws:
        problems.append(f"{depth_hits} draw(s) ({depth_hits / (chains * draws):.1%}) hit the maximum tree depth")
    return Diagnostics(rhat_max, ess_bulk, ess_tail, divergences, depth_hits, draws, chains, tuple(problems))


def _at_fault(stat: xr.Dataset, bad, fmt: str, largest_first: bool = False, limit: int = 4) -> str:
    """The variables (with their level, e.g. ``B_eta_dataset[web]``) whose statistic fails ``bad``, worst first."""
    found = []
    for name, da in stat.data_vars.items():
        values = np.atleast_1d(da.values)
        labels = (
            [original_name(str(name))]
            if da.ndim == 0
            else [f"{original_name(str(name))}[{', '.join(str(da[d].values[i]) for d, i in zip(da.dims, idx, strict=True))}]" for idx in np.ndindex(da.shape)]
        )
        for label, value in zip(labels, values.ravel(), strict=True):
            if np.isfinite(value) and bad(value):
                found.append((-value if largest_first else value, label, value))
    if not found:  # the statistic is NaN everywhere (constant or too few draws): there is no variable to blame
        return "not computable on these draws: too few, or constant"
    found.sort()
    shown = ", ".join(f"{label} {value:{fmt}}" for _, label, value in found[:limit])
    more = f" and {len(found) - limit} more" if len(found) > limit else ""
    return f"at fault: {shown}{more}"


@dataclass(frozen=True)
class Fit:
    """A fitted scaling law: the posterior plus all that is needed to use and reproduce it."""

    tree: xr.DataTree
    spec: ModelSpec
    runs: RunTable
    groups: tuple[str, ...]
    diagnostics: Diagnostics
    seed: int
    sampler: str
    info: FitInfo = field(default_factory=FitInfo)
    #: The fit's own leave-future-out backtest (``bayescale.self_check``); None if not run.
    self_check: SelfCheck | None = None

    def __repr__(self) -> str:
        """A few lines: law, runs, groups, convergence and parameter medians (not the whole posterior)."""
        post = self.posterior
        medians = ", ".join(f"{p}={float(post[p].median()):.4g}" for p in (*self.spec.law.parameter_names, "sigma") if p in post)
        groups = "; ".join(f"{g}: {self.runs.data[g].nunique()} levels" for g in self.groups) or "none"
        draws = f"{self.diagnostics.chains}×{self.diagnostics.draws} draws"
        status = "converged" if self.converged else f"NOT CONVERGED ({'; '.join(self.diagnostics.problems)})"
        return (
            f"<Fit {self.spec.name} ({self.spec.form}) of {len(self.runs)} runs from {Path(self.runs.source).name}; groups: {groups}; "
            f"{draws}, {self.sampler}, seed {self.seed}; {status}\n  medians: {medians}>"
        )

    @cached_property
    def design(self) -> Design:
        """The model's inputs for these runs (log inputs, centres, group codes), computed once per fit."""
        return design(self.spec, self.runs, self.groups)

    @property
    def posterior(self) -> xr.Dataset:
        """The posterior draws (internal coordinates and public parameters), dims (chain, draw, …)."""
        return self.tree["posterior"].to_dataset()

    def with_posterior(self, posterior: xr.Dataset) -> Fit:
        """This fit with its posterior group replaced (the other groups, e.g. sample stats, kept;
        the stored per-parameter diagnostics dropped, since they described the old draws)."""
        nodes = {k: self.tree[k].to_dataset() for k in self.tree.children if k != PARAMETER_DIAGNOSTICS}
        nodes["posterior"] = posterior
        return replace(self, tree=xr.DataTree.from_dict(nodes))

    def with_parameter_diagnostics(self) -> Fit:
        """This fit with ``summary``'s R-hat and ESS of every free public parameter stored in the
        tree (node ``parameter_diagnostics``, dim ``statistic``), so a loaded fit shows them without ArviZ."""
        nodes = {k: self.tree[k].to_dataset() for k in self.tree.children}
        nodes[PARAMETER_DIAGNOSTICS] = self._parameter_statistics()
        return replace(self, tree=xr.DataTree.from_dict(nodes))

    def _free_parameters(self) -> list[str]:
        return [n for n in self.parameter_names if n in self.posterior and n not in self.spec.fixed]  # constants have no R-hat/ESS

    def _parameter_statistics(self) -> xr.Dataset:
        """R-hat (NaN with one chain), bulk and tail ESS of the free public parameters, along dim ``statistic``."""
        import arviz_stats as az

        free = self.posterior[self._free_parameters()]
        bulk, tail = az.ess(free, method="bulk"), az.ess(free, method="tail")
        rhat = az.rhat(free) if free.sizes["chain"] > 1 else xr.full_like(bulk, np.nan)
        return xr.concat([rhat, bulk, tail], dim=pd.Index(PARAMETER_STATISTICS, name="statistic"))

    def _stored_statistics(self) -> xr.Dataset:
        """The statistics stored at fit time when they cover every free parameter, else computed now."""
        if PARAMETER_DIAGNOSTICS in self.tree.children:
            stored = self.tree[PARAMETER_DIAGNOSTICS].to_dataset()
            if all(n in stored for n in self._free_parameters()):
                return stored
        return self._parameter_statistics()

    @property
    def converged(self) -> bool:
        return self.diagnostics.converged

    @property
    def parameter_names(self) -> list[str]:
        """Public parameter names in the posterior: the law's, then the likelihood's (``sigma`` and any sampled), then group-level."""
        names = [*list(self.spec.law.parameter_names), "sigma", *(n for n in self.spec.likelihood.parameters if n in self.posterior)]
        names += [by_level_name(p, g) for g in self.groups for p in self.spec.pooled]
        return names

    def summary(self, ci: float = 0.9) -> pd.DataFrame:
        """Median, equal-tailed ``ci`` interval, R-hat and ESS of every public parameter."""
        check_probability(ci)
        post = self.posterior[self.parameter_names]
        stats = self._stored_statistics()

        def stat(statistic: str, name, sel) -> float:
            return float(stats[name].sel(statistic=statistic, **sel)) if name in stats else float("nan")

        rows = []
        for name, da in post.data_vars.items():
            extra_dims = [d for d in da.dims if d not in SAMPLE_DIMS]
            labels = [(None, da)] if not extra_dims else [(lvl, da.sel({extra_dims[0]: lvl})) for lvl in da[extra_dims[0]].values]
            for level, sub in labels:
                values = sub.values.reshape(-1)
                key = name if level is None else f"{str(name).split('_by_')[0]}[{original_name(str(extra_dims[0]))}={level}]"
                sel = {} if level is None else {extra_dims[0]: level}
                rows.append(
                    {
                        "parameter": key,
                        "median": float(np.median(values)),
                        "lo": float(np.quantile(values, (1 - ci) / 2)),
                        "hi": float(np.quantile(values, (1 + ci) / 2)),
                        "rhat": stat("rhat", name, sel),
                        "ess_bulk": stat("ess_bulk", name, sel),
                        "ess_tail": stat("ess_tail", name, sel),
                    }
                )
        return pd.DataFrame(rows).set_index("parameter")

    def summary_dict(self, ci: float = 0.9) -> dict[str, Any]:
        """The ``bayescale summary --format json`` document."""
        table = self.summary(ci)
        return {
            "model": self.spec.name,
            "form": self.spec.form,
            "ci": ci,
            "n_runs": len(self.runs),
            "groups": list(self.groups),
            "parameters": {k: {c: _finite_or_none(row[c]) for c in ("median", "lo", "hi", "rhat", "ess_bulk", "ess_tail")} for k, row in table.iterrows()},
            "fixed": dict(self.spec.fixed),
            "diagnostics": {k: _finite_or_none(v) if isinstance(v, float) else v for k, v in self.diagnostics.to_dict().items()},
            "converged": self.converged,
            "self_check": self.self_check_summary(),
            "self_check_warning": failure(self.self_check),
            "discrepancy": self.discrepancy_summary(ci),
            "pooling": self.pooling_summary(),
            "selection": dict(self.info.selection) if self.info.selection else None,
            "model_choice": None if self.info.model_choice is None else self.info.model_choice.to_dict(),
        }

    def model_choice_sentence(self) -> str:
        """One line: how the law form was chosen (``documents.ModelChoice.sentence``), or that the file does not say."""
        if self.info.model_choice is None:
            return f"model {self.spec.name}: how it was chosen is not recorded (a fit from an older version)"
        return self.info.model_choice.sentence()

    def selection_sentence(self) -> str:
        """One line: how many runs the table had and how many each row filter kept (``where.describe``)."""
        from bayescale.where import describe

        selection = self.info.selection or {}
        if not selection:
            return f"runs: all {len(self.runs)} rows of the table"
        return "runs: " + describe(selection.get("steps", []), int(selection.get("read", len(self.runs))))

    def pooling_summary(self) -> dict[str, Any]:
        """What varied by group and how it was sampled: ``pooled``, ``centered``, ``centering``
        (``auto``/``spec``) and, when a first run did not converge, ``recentred`` (what was switched, each run's verdict, which was kept)."""
        info = self.info.to_dict()
        return {k: info[k] for k in ("pooled", "centered", "centering", "recentred") if k in info} if self.groups else {}

    def pooling_sentence(self) -> str:
        """One line for people: which levels vary by which groups, which are centred, and any re-sampling."""
        if not self.groups:
            return "pooling: none (no groups)"
        info = self.info
        pooled = list(self.spec.pooled if info.pooled is None else info.pooled)
        centered = [p for p in pooled if p in (self.spec.centered if info.centered is None else info.centered)]
        text = f"pooling: {', '.join(pooled) or 'nothing'} vary by {', '.join(self.groups)}; centred: {', '.join(centered) or 'none'} ({info.centering or 'spec'})"
        if info.uncentered is not None:
            text += f"; {info.uncentered.sentence()}"
        return text

    def self_check_summary(self) -> dict[str, Any] | None:
        """The self-check's headline numbers (``SUMMARY_KEYS`` plus coverage_50, n_train, split, skipped); None if not run."""
        if self.self_check is None:
            return None
        keep = (*SelfCheck.SUMMARY_KEYS, "coverage_50", "n_train", "cutoff_flops", "split", "skipped")
        document = self.self_check.to_dict()
        return {k: document[k] for k in keep if k in document}

    def discrepancy_summary(self, ci: float = 0.9) -> dict[str, Any]:
        """Whether forecasts carry the extrapolation discrepancy, its prior scale and τ's posterior median and interval."""
        out: dict[str, Any] = {"enabled": self.spec.discrepancy.enabled, "scale": self.spec.discrepancy.scale}
        if self.spec.discrepancy.enabled and "discrepancy_tau" in self.posterior:
            tau = self.posterior["discrepancy_tau"].values.reshape(-1)
            out.update(tau_median=float(np.median(tau)), tau_lo=float(np.quantile(tau, (1 - ci) / 2)), tau_hi=float(np.quantile(tau, (1 + ci) / 2)))
        else:
            out["enabled"] = False
        return out

    def forecast(self, targets: Any = None, *, seed: int = 0, group_values: Mapping[str, Any] | None = None, new_group: bool = False, **columns: Any) -> xr.Dataset:
        """Posterior forecast of loss at ``targets`` (a table) or keyword columns, see ``forecasting.forecast``."""
        from bayescale.forecasting import forecast

        return forecast(self, targets, seed=seed, group_values=group_values, new_group=new_group, **columns)

    def allocate(
        self, flops: Any, unique_tokens: Any = None, ci: float = 0.9, robust_quantile: float | None = None, group_values: Mapping[str, Any] | None = None, new_group: bool = False, seed: int = 0
    ) -> xr.Dataset:
        """Compute-optimal (N, D) per FLOP budget for every draw, plus the robust plan, see ``allocate.allocate``."""
        from bayescale.allocate import allocate

        return allocate(self, flops, unique_tokens=unique_tokens, ci=ci, robust_quantile=robust_quantile, group_values=group_values, new_group=new_group, seed=seed)

    def plot(self, kind: str = "fit", **options: Any) -> Figure:
        """One figure of this fit (``figures.KINDS``), drawn as ``bayescale plot`` and the report draw it; see ``figures.figure``."""
        from bayescale.figures import figure

        return figure(self, kind, **options)

    def save(self, path: str | Path) -> Path:
        """Write the fit atomically to ``path`` (``.nc`` netCDF, ``.zarr`` zarr store)."""
        from bayescale.fitformat import save_fit

        return save_fit(self, path)


def _finite_or_none(value: float) -> float | None:
    """JSON has no NaN: undefined statistics (R-hat of one chain, of a fixed constant) become null."""
    return float(value) if np.isfinite(value) else None
