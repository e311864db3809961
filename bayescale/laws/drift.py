"""Chinchilla with exponents that drift with scale: a smoothly varying power law in N and in D.

    L = E + A·N_ref^(−α)·(N/N_ref)^(−α(N)) + B·D_ref^(−β)·(D/D_ref)^(−β(D))
    α(N) = α + κ_N·log(N/N_ref),   β(D) = β + κ_D·log(D/D_ref),   N_ref = 1e9, D_ref = 2e10

Each term is a power law whose exponent moves linearly in log scale (curvature in log-log
space; the local slope is α + 2κ_N·log(N/N_ref)). Anchoring at N_ref and D_ref keeps α and β
the exponents at the reference scales, nearly uncorrelated with κ. At κ_N = κ_D = 0 it is
Chinchilla exactly (the same floating-point log loss), so a posterior on κ around 0 says "no drift".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bayescale.laws.base import Law, Parameter
from bayescale.laws.chinchilla import CHINCHILLA_PARAMETERS
from bayescale.laws.farseer import LOG_D_REF, LOG_N_REF

#: Prior scale of κ: one sd moves an exponent by 0.07 per decade (κ·ln 10), the size of the
#: drift the Chinchilla runs show in β (0.457 fitted on runs ≤ 1e20 FLOPs, 0.366 on all).
KAPPA_PRIOR = {"dist": "Normal", "mu": 0.0, "sigma": 0.03}

DRIFT_PARAMETERS = (
    *CHINCHILLA_PARAMETERS,
    Parameter("kappa_N", "drift of the parameter exponent: alpha(N) = alpha + kappa_N*log(N/1e9)", KAPPA_PRIOR, positive=False, kind="shape"),
    Parameter("kappa_D", "drift of the data exponent: beta(D) = beta + kappa_D*log(D/2e10)", KAPPA_PRIOR, positive=False, kind="shape"),
)


class Drift(Law):
    name = "drift"
    description = "Chinchilla with alpha(N) = alpha + kappa_N*log(N/1e9), beta(D) = beta + kappa_D*log(D/2e10)"
    parameters = DRIFT_PARAMETERS
    inputs = ("params", "tokens")
    irreducible = "E"

    def log_loss(self, ops: Any, p: Mapping[str, Any], x: Mapping[str, Any]) -> Any:
        u, v = x["params"] - LOG_N_REF, x["tokens"] - LOG_D_REF
        # −α(N)·(log N − log N_ref) − α·log N_ref = −α·log N − κ_N·u²: Chinchilla's term, then the drift
        model = ops.log(p["A"]) - p["alpha"] * x["params"] - p["kappa_N"] * u * u
        data = ops.log(p["B"]) - p["beta"] * x["tokens"] - p["kappa_D"] * v * v
        return ops.logsumexp(model, data, ops.log(p["E"]))
