"""Data-constrained scaling (Muennighoff et al. 2023): repeated tokens and excess parameters decay.

With U_D unique tokens and R_D = D/U_D - 1 repetitions,
D' = U_D + U_D·R*_D·(1 - exp(-R_D/R*_D)); N' likewise with U_N, the compute-optimal N for
U_D under the Chinchilla law, and R_N = max(N/U_N - 1, 0). Then L = E + A/N'^alpha + B/D'^beta.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bayescale.laws.base import Law, Parameter
from bayescale.laws.chinchilla import CHINCHILLA_PARAMETERS, chinchilla_log_loss, optimal_log_n

if TYPE_CHECKING:
    import numpy as np

REPEAT_PARAMETERS = (
    Parameter("R_D_star", "repetitions at which repeated data has lost 1-1/e of its value", {"dist": "LogNormal", "mu": 2.7, "sigma": 1.0}, kind="shape"),
    Parameter("R_N_star", "excess-parameter decay constant", {"dist": "LogNormal", "mu": 1.7, "sigma": 1.0}, kind="shape"),
)


def log_effective(ops, log_unique, repeats, r_star):
    """log(U + U·R*·(1 - exp(-R/R*))) given log U and R ≥ 0."""
    return log_unique + ops.log1p(-r_star * ops.expm1(-repeats / r_star))


def effective_log_inputs(ops, p, x):
    """log N' and log D' of the data-constrained law for log-inputs ``x``."""
    log_u = x["unique_tokens"]
    repeats_d = ops.maximum(ops.expm1(x["tokens"] - log_u), 0.0)
    log_d_eff = log_effective(ops, log_u, repeats_d, p["R_D_star"])
    # U_N: the compute-optimal N for U_D tokens, N = G^((a+b)/a) · U^(b/a), G = (aA/(bB))^(1/(a+b)).
    a, b = p["alpha"], p["beta"]
    log_un = (ops.log(a) + ops.log(p["A"]) - ops.log(b) - ops.log(p["B"]) + b * log_u) / a
    repeats_n = ops.maximum(ops.expm1(x["params"] - log_un), 0.0)
    # min(N, U_N) is U_N whenever R_N > 0, and N (with a zero excess term) otherwise.
    log_n_eff = log_effective(ops, ops.minimum(x["params"], log_un), repeats_n, p["R_N_star"])
    return log_n_eff, log_d_eff


class DataConstrained(Law):
    name = "data_constrained"
    description = "Chinchilla with effective data D' and parameters N' under repetition (Muennighoff et al. 2023)"
    parameters = CHINCHILLA_PARAMETERS + REPEAT_PARAMETERS
    inputs = ("params", "tokens", "unique_tokens")
    irreducible = "E"

    def optimal_log_params(self, p: Mapping[str, Any], log_c6: Any, log_u: Any = None) -> np.ndarray | None:
        # with unlimited data (U = D) nothing repeats: N' = N, D' = D and Chinchilla's optimum holds
        return optimal_log_n(p, log_c6) if log_u is None else None

    def log_loss(self, ops: Any, p: Mapping[str, Any], x: Mapping[str, Any]) -> Any:
        log_n_eff, log_d_eff = effective_log_inputs(ops, p, x)
        return chinchilla_log_loss(ops, p, log_n_eff, log_d_eff)
