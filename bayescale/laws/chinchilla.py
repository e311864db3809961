"""Chinchilla (Hoffmann et al. 2022): L = E + A/N^alpha + B/D^beta."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bayescale.laws.base import Law, Parameter

#: Shared by the forms that extend Chinchilla (data-constrained, token-crisis, MoE).
CHINCHILLA_PARAMETERS = (
    Parameter("E", "irreducible loss", {"dist": "LogNormal", "mu": 0.5, "sigma": 0.5}),
    Parameter("alpha", "parameter exponent", {"dist": "TruncatedNormal", "mu": 0.35, "sigma": 0.25, "lower": 0.0, "upper": 2.0}, kind="shape"),
    Parameter("beta", "data exponent", {"dist": "TruncatedNormal", "mu": 0.35, "sigma": 0.25, "lower": 0.0, "upper": 2.0}, kind="shape"),
    Parameter("A", "parameter-term amplitude", {"dist": "LogNormal", "mu": 6.0, "sigma": 3.0}, centre=("alpha", "params")),
    Parameter("B", "data-term amplitude", {"dist": "LogNormal", "mu": 7.0, "sigma": 3.0}, centre=("beta", "tokens")),
)


def chinchilla_log_loss(ops, p, log_n, log_d):
    """log(E + A/N^alpha + B/D^beta) in log-sum-exp form, for effective log N and log D."""
    return ops.logsumexp(ops.log(p["A"]) - p["alpha"] * log_n, ops.log(p["B"]) - p["beta"] * log_d, ops.log(p["E"]))


def optimal_log_n(p: Mapping[str, Any], log_c6: Any) -> np.ndarray:
    """Chinchilla's compute-optimal log N for budgets C = 6·exp(log_c6): N = G·(C/6)^(β/(α+β)), G = (αA/(βB))^(1/(α+β))."""
    a, b = np.asarray(p["alpha"], float), np.asarray(p["beta"], float)
    log_g = (np.log(a) + np.log(p["A"]) - np.log(b) - np.log(p["B"])) / (a + b)
    return log_g + b / (a + b) * np.asarray(log_c6, float)


class Chinchilla(Law):
    name = "chinchilla"
    description = "L = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022)"
    parameters = CHINCHILLA_PARAMETERS
    inputs = ("params", "tokens")
    irreducible = "E"

    def optimal_log_params(self, p: Mapping[str, Any], log_c6: Any, log_u: Any = None) -> np.ndarray | None:
        return optimal_log_n(p, log_c6)

    def log_loss(self, ops: Any, p: Mapping[str, Any], x: Mapping[str, Any]) -> Any:
        return chinchilla_log_loss(ops, p, x["params"], x["tokens"])
