"""Mixture-of-experts proxies: Chinchilla on effective parameters N_eff = N_active·(1 + c·log E).

A run with E experts and N_active parameters active per token counts as a dense model of
N_eff parameters; c ≥ 0 is the log-expert efficiency (c = 0: experts add nothing). Dense runs
have E = 1, so log E = 0 and N_eff = N_active = N: the same law describes both, and exponents
learned from cheap MoE runs inform dense forecasts. ``models/moe.toml`` lets selected offsets
differ by architecture (``group = ["arch"]``) while the exponents and c stay shared.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from bayescale.laws.base import Law, Parameter
from bayescale.laws.chinchilla import CHINCHILLA_PARAMETERS, chinchilla_log_loss

MOE_PARAMETERS = (
    *tuple(Parameter(p.name, p.doc + (" (of N_eff)" if p.name == "A" else ""), p.prior, p.positive, ("alpha", "active_params"), p.kind) if p.name == "A" else p for p in CHINCHILLA_PARAMETERS),
    Parameter("c", "log-expert efficiency: N_eff = N_active*(1 + c*log E)", {"dist": "LogNormal", "mu": -1.0, "sigma": 1.0}, kind="shape"),
)


class MoE(Law):
    name = "moe"
    description = "L = E + A/N_eff^alpha + B/D^beta, N_eff = N_active*(1 + c*log experts)"
    parameters = MOE_PARAMETERS
    inputs = ("active_params", "experts", "tokens")
    irreducible = "E"
    #: Proxy suites often train every run on one token count (ScaleBench's MoE table does): the law
    #: still fits, with its data term folded into the offset.
    may_be_constant: ClassVar[Mapping[str, str]] = {
        "experts": "",
        "tokens": "its data term B/D^beta is then one constant beside E, so how the two split, and any forecast at another token count, rests on the priors",
    }

    def log_loss(self, ops: Any, p: Mapping[str, Any], x: Mapping[str, Any]) -> Any:
        log_n_eff = x["active_params"] + ops.log1p(p["c"] * x["experts"])
        return chinchilla_log_loss(ops, p, log_n_eff, x["tokens"])
