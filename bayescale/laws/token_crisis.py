"""Token crisis (Xue et al. 2023): data-constrained scaling plus an over-fitting term.

Repetition does not only saturate (as in Muennighoff et al. 2023), it can *degrade* loss, more
for larger models relative to the unique data, and dropout mitigates it. The form adds to the
data-constrained loss L_dc (see ``data_constrained``)

    L = L_dc + K_o · (N/U_D)^gamma_o · (1 - exp(-R_D/R_o)) · exp(-delta · dropout)

with R_D = D/U_D - 1 repetitions. The term is exactly zero without repetition (R_D = 0), grows
with repetition and saturates after ~R_o repetitions, grows with model size per unique token
(gamma_o > 0), and shrinks with the run's dropout rate (``dropout`` column, raw value, 0 when
the run table has no such column). The default prior on K_o puts most mass on tiny values, so
the data must ask for the term (compare with ``data_constrained`` by LOO).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bayescale.laws.base import Law, Parameter
from bayescale.laws.chinchilla import CHINCHILLA_PARAMETERS, chinchilla_log_loss
from bayescale.laws.data_constrained import REPEAT_PARAMETERS, effective_log_inputs

#: Smallest saturation factor kept in log space: exp(-690) vanishes against any loss, so the
#: term adds exactly nothing (in floating point) at R_D = 0 while gradients stay finite.
_TINY = 1e-300

OVERFIT_PARAMETERS = (
    Parameter("K_o", "over-fitting amplitude: extra loss at N = U_D once repetition saturates (dropout 0)", {"dist": "LogNormal", "mu": -4.0, "sigma": 2.0}),
    Parameter("gamma_o", "over-fitting exponent in model size per unique token, N/U_D", {"dist": "LogNormal", "mu": -0.7, "sigma": 0.7}, kind="shape"),
    Parameter("R_o", "repetitions over which the over-fitting term sets in (1-1/e of its size at R_D = R_o)", {"dist": "LogNormal", "mu": 3.0, "sigma": 1.0}, kind="shape"),
    Parameter("delta", "dropout mitigation: the term is scaled by exp(-delta * dropout)", {"dist": "LogNormal", "mu": 2.3, "sigma": 1.0}, kind="shape"),
)


def overfit_log_term(ops, p, x):
    """log of K_o·(N/U_D)^gamma_o·(1 - exp(-R_D/R_o))·exp(-delta·dropout) (≈ -690 at R_D = 0)."""
    log_u = x["unique_tokens"]
    repeats = ops.maximum(ops.expm1(x["tokens"] - log_u), 0.0)
    saturation = ops.maximum(-ops.expm1(-repeats / p["R_o"]), _TINY)
    term = ops.log(p["K_o"]) + p["gamma_o"] * (x["params"] - log_u) + ops.log(saturation)
    if "dropout" in x:
        term = term - p["delta"] * x["dropout"]
    return term


class TokenCrisis(Law):
    name = "token_crisis"
    description = "data-constrained law plus an over-fitting term K_o(N/U_D)^gamma_o(1-exp(-R_D/R_o))exp(-delta*dropout) (Xue et al. 2023)"
    parameters = CHINCHILLA_PARAMETERS + REPEAT_PARAMETERS + OVERFIT_PARAMETERS
    inputs = ("params", "tokens", "unique_tokens")
    irreducible = "E"
    covariates = ("dropout",)

    def log_loss(self, ops: Any, p: Mapping[str, Any], x: Mapping[str, Any]) -> Any:
        log_n_eff, log_d_eff = effective_log_inputs(ops, p, x)
        return ops.logaddexp(chinchilla_log_loss(ops, p, log_n_eff, log_d_eff), overfit_log_term(ops, p, x))
