"""Kaplan et al. (2020): L = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D (no irreducible term)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bayescale.laws.base import Law, Parameter


class Kaplan(Law):
    name = "kaplan"
    description = "L = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D (Kaplan et al. 2020)"
    parameters = (
        Parameter("alpha_N", "parameter exponent", {"dist": "TruncatedNormal", "mu": 0.1, "sigma": 0.1, "lower": 0.0, "upper": 1.0}, kind="shape"),
        Parameter("alpha_D", "data exponent", {"dist": "TruncatedNormal", "mu": 0.1, "sigma": 0.1, "lower": 0.0, "upper": 1.0}, kind="shape"),
        Parameter("N_c", "critical parameter count", {"dist": "LogNormal", "mu": 32.0, "sigma": 5.0}, centre=(None, "params")),
        Parameter("D_c", "critical token count", {"dist": "LogNormal", "mu": 31.0, "sigma": 5.0}, centre=(None, "tokens")),
    )
    inputs = ("params", "tokens")

    def log_loss(self, ops: Any, p: Mapping[str, Any], x: Mapping[str, Any]) -> Any:
        ratio = p["alpha_N"] / p["alpha_D"]
        inner = ops.logaddexp(ratio * (ops.log(p["N_c"]) - x["params"]), ops.log(p["D_c"]) - x["tokens"])
        return p["alpha_D"] * inner
