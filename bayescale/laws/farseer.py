"""Farseer-style law (Li et al. 2025): Chinchilla whose data exponent depends on model size.

Farseer writes L(N, D) = exp(a3·N^γ3 + b3) + exp(a2·N^γ2 + b2)·D^(−exp(a1·N^γ1 + b1)): the data
term's amplitude and exponent are both functions of N. This module keeps Chinchilla's
parameter term and the first-order version of that dependence, anchored at N_ref = 1e9 and
D_ref = 2e10 so that β and B keep their Chinchilla meaning near the data:

    L = E + A/N^α + B·D_ref^(−β)·(N/N_ref)^δ·(D/D_ref)^(−β(N)),   β(N) = β·(N/N_ref)^γ

β(N) stays positive for any γ. At γ = δ = 0 the data term is B/D^β and the law is Chinchilla
exactly (the same floating-point log loss), so a posterior on γ and δ around 0 says "no drift".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bayescale.laws.base import Law, Parameter
from bayescale.laws.chinchilla import CHINCHILLA_PARAMETERS

#: Reference scales the drift is anchored at: β(N_ref) = β, and γ leaves the data term at D_ref unchanged.
LOG_N_REF = float(np.log(1e9))
LOG_D_REF = float(np.log(2e10))

#: Prior scale of γ and δ. On the Chinchilla runs the data exponent fitted on runs ≤ 1e20 FLOPs
#: is 0.457 against 0.366 on all runs, a 20% change over about one decade of N: |γ| ≈ 0.1, 1.2
#: prior sd out. The prior admits drift of that size and shrinks towards none.
DRIFT_PRIOR = {"dist": "Normal", "mu": 0.0, "sigma": 0.08}

FARSEER_PARAMETERS = (
    *CHINCHILLA_PARAMETERS,
    Parameter("gamma", "drift of the data exponent with model size: beta(N) = beta*(N/1e9)^gamma", DRIFT_PRIOR, positive=False, kind="shape"),
    Parameter("delta", "size shift of the data term: times (N/1e9)^delta at D = 2e10", DRIFT_PRIOR, positive=False, kind="shape"),
)


def farseer_log_loss(ops: Any, p: Mapping[str, Any], log_n: Any, log_d: Any) -> Any:
    """log L with the data term written as Chinchilla's plus its drift, so γ = δ = 0 adds exactly nothing."""
    u, v = log_n - LOG_N_REF, log_d - LOG_D_REF
    # β(N)·v = β·v + β·expm1(γu)·v and −β·log D_ref − β·v = −β·log D: Chinchilla's term, then the drift
    data = ops.log(p["B"]) - p["beta"] * log_d - p["beta"] * ops.expm1(p["gamma"] * u) * v + p["delta"] * u
    return ops.logsumexp(ops.log(p["A"]) - p["alpha"] * log_n, data, ops.log(p["E"]))


class Farseer(Law):
    name = "farseer"
    description = "L = E + A/N^alpha + B*Dref^-beta*(N/Nref)^delta*(D/Dref)^-beta(N), beta(N) = beta*(N/1e9)^gamma (after Li et al. 2025)"
    parameters = FARSEER_PARAMETERS
    inputs = ("params", "tokens")
    irreducible = "E"

    def log_loss(self, ops: Any, p: Mapping[str, Any], x: Mapping[str, Any]) -> Any:
        return farseer_log_loss(ops, p, x["params"], x["tokens"])
