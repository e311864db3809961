"""The law library: each functional form in its own module, registered here by name."""

from __future__ import annotations

from bayescale.laws.base import Law, Parameter
from bayescale.laws.chinchilla import Chinchilla
from bayescale.laws.compute import Compute
from bayescale.laws.data_constrained import DataConstrained
from bayescale.laws.drift import Drift
from bayescale.laws.farseer import Farseer
from bayescale.laws.kaplan import Kaplan
from bayescale.laws.moe import MoE
from bayescale.laws.routed import Routed
from bayescale.laws.token_crisis import TokenCrisis

LAWS: dict[str, type[Law]] = {law.name: law for law in (Chinchilla, Kaplan, Compute, DataConstrained, TokenCrisis, MoE, Routed, Farseer, Drift)}


def get_law(name: str) -> Law:
    """The law registered under ``name``; ``KeyError`` lists the known forms."""
    try:
        return LAWS[name]()
    except KeyError:
        raise KeyError(f"unknown form {name!r}; known forms: {', '.join(sorted(LAWS))}") from None


__all__ = ["LAWS", "Law", "Parameter", "get_law"]
