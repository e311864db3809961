"""Trust checks: the literature's point fit, PSIS-LOO and leave-future-out comparison, backtests, SBC."""

from __future__ import annotations

from bayescale.validate.backtest import backtest, backtest_sweep, default_cutoffs, split_by_flops
from bayescale.validate.compare import compare, kfold_by_group, log_likelihood, loo, loo_tree
from bayescale.validate.lfo import compare_lfo, lfo_candidates
from bayescale.validate.metrics import coverage, crps, crps_pointwise, interval, mean_width, median_abs_error
from bayescale.validate.point import PointFit, point_fit
from bayescale.validate.sbc import SBCResult, sbc

__all__ = [
    "PointFit",
    "SBCResult",
    "backtest",
    "backtest_sweep",
    "compare",
    "compare_lfo",
    "coverage",
    "crps",
    "crps_pointwise",
    "default_cutoffs",
    "interval",
    "kfold_by_group",
    "lfo_candidates",
    "log_likelihood",
    "loo",
    "loo_tree",
    "mean_width",
    "median_abs_error",
    "point_fit",
    "sbc",
    "split_by_flops",
]
