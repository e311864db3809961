"""Chinchilla (Hoffmann et al. 2022): L = E + A/N^alpha + B/D^beta."""

from __future__ import annotations

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


class Chinchilla(Law):
    name = "chinchilla"
    description = "L = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022)"
    parameters = CHINCHILLA_PARAMETERS
    inputs = ("params", "tokens")

    def log_loss(self, ops, p, x):
        return chinchilla_log_loss(ops, p, x["params"], x["tokens"])
