"""Compute-only form: L(C) = E + K·C^(-gamma), for logs that record only compute and loss."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bayescale.laws.base import Law, Parameter


class Compute(Law):
    name = "compute"
    description = "L = E + K*C^(-gamma)"
    parameters = (
        Parameter("E", "irreducible loss", {"dist": "LogNormal", "mu": 0.5, "sigma": 0.5}),
        Parameter("gamma", "compute exponent", {"dist": "TruncatedNormal", "mu": 0.15, "sigma": 0.15, "lower": 0.0, "upper": 1.0}, kind="shape"),
        Parameter("K", "compute-term amplitude", {"dist": "LogNormal", "mu": 8.0, "sigma": 4.0}, centre=("gamma", "flops")),
    )
    inputs = ("flops",)
    irreducible = "E"

    def log_loss(self, ops: Any, p: Mapping[str, Any], x: Mapping[str, Any]) -> Any:
        return ops.logaddexp(ops.log(p["E"]), ops.log(p["K"]) - p["gamma"] * x["flops"])
