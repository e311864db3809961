"""Routed language models (Clark et al. 2022, "Unified Scaling Laws for Routed Language Models").

At a fixed training length, the loss of a model of dense size N routed over E experts is
bilinear in log N and log Ê:

    log L = d − alpha·log N − beta·log Ê + c·log N·log Ê

(the paper's a = −alpha, b = −beta), with Ê the saturating expert count

    1/Ê = 1/(E − 1 + (1/E_start − 1/E_max)^−1) + 1/E_max,

which is E_start for a dense model (E = 1), grows about one for one with E while E ≪ E_max and
tends to E_max: adding experts stops helping. c > 0 means experts help large models less.
N is the run table's ``active_params`` (the dense model the routed one is built from, whose
FLOPs per token it keeps). The law has no token input: every run is trained on the same number
of tokens, and forecasts hold only at that length. ``d`` is sampled at the runs' centre
(``d − alpha·mean log N``) and ``beta`` as the expert exponent there (``beta − c·mean log N``),
which removes the offset–slope and slope–interaction ridges of the raw coordinates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bayescale.laws.base import Law, Parameter

ROUTED_PARAMETERS = (
    Parameter("alpha", "size exponent of log loss (the paper's −a)", {"dist": "TruncatedNormal", "mu": 0.1, "sigma": 0.1, "lower": 0.0, "upper": 1.0}, kind="shape"),
    Parameter("c", "interaction exponent: the expert exponent falls by c per unit of log N", {"dist": "Normal", "mu": 0.0, "sigma": 0.02}, positive=False, kind="shape"),
    Parameter("beta", "expert exponent of log loss at N = 1 (the paper's −b)", {"dist": "Normal", "mu": 0.1, "sigma": 0.2}, positive=False, centre=("c", "active_params"), kind="shape"),
    Parameter("d", "log loss of a 1-parameter dense model (the offset)", {"dist": "Normal", "mu": 2.5, "sigma": 2.0}, positive=False, centre=("alpha", "active_params")),
    Parameter("E_start", "saturating expert count of a dense model (Ê at E = 1)", {"dist": "TruncatedNormal", "mu": 2.0, "sigma": 4.0, "lower": 1.0, "upper": 16.0}),
    Parameter("E_max", "expert count at which routing saturates (Ê → E_max)", {"dist": "TruncatedNormal", "mu": 300.0, "sigma": 1000.0, "lower": 16.0, "upper": 1e5}),
)


class Routed(Law):
    name = "routed"
    description = "log L = d - alpha log N - beta log Ê + c log N log Ê, Ê the saturating expert count (Clark et al. 2022)"
    parameters = ROUTED_PARAMETERS
    inputs = ("active_params", "experts")

    def log_loss(self, ops: Any, p: Mapping[str, Any], x: Mapping[str, Any]) -> Any:
        shift = 1.0 / (1.0 / p["E_start"] - 1.0 / p["E_max"])  # E_start < E_max: the priors' bounds keep it positive
        log_e_hat = -ops.log(1.0 / (ops.exp(x["experts"]) - 1.0 + shift) + 1.0 / p["E_max"])
        log_n = x["active_params"]
        return p["d"] - p["alpha"] * log_n - p["beta"] * log_e_hat + p["c"] * log_n * log_e_hat
