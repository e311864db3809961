"""The model's inputs computed from a run table: ``Design`` (log inputs, centres, observed log
loss, group codes) and ``design()``, which first checks that the runs can identify the law.

It knows nothing of PyMC: ``model.build_model`` builds the graph on a design, and the pooling
rule, the posterior view and the self-check read one.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bayescale.errors import DataWarning, RunTableError
from bayescale.laws import Law
from bayescale.names import RESERVED_DIMS, stored_name
from bayescale.runs import RunTable
from bayescale.spec import ModelSpec

#: Fewest distinct values of each law input needed to identify a power law with an offset.
MIN_DISTINCT = 3


@dataclass(frozen=True)
class Design:
    """What the model needs from the runs: log inputs, centres, observed log loss, group codes."""

    law: Law
    x: dict[str, np.ndarray]
    y: np.ndarray
    centres: dict[str, float]
    groups: tuple[str, ...]
    levels: dict[str, list[str]]
    codes: dict[str, np.ndarray]


def design(spec: ModelSpec, runs: RunTable, groups: Sequence[str] = ()) -> Design:
    """Check the runs can identify the spec's law and compute the model's inputs."""
    law = spec.law
    groups = tuple(groups)
    if len(set(groups)) != len(groups):
        raise RunTableError(f"{runs.source}: a grouping column is listed twice: {', '.join(groups)}")
    reserved = [g for g in groups if g in ("params", "tokens", "loss", "flops", "unique_tokens", "epochs", "experts", "active_params")]
    if reserved:
        raise RunTableError(f"{runs.source}: cannot group by the numeric column(s) {', '.join(reserved)}")
    taken = [g for g in groups if stored_name(g) in RESERVED_DIMS]
    if taken:
        raise RunTableError(f"{runs.source}: cannot group by a column named {', '.join(map(repr, taken))}: a fit uses that name for its own dimension; rename the column in the table")
    runs.require_group_columns(groups)
    n_params = len(law.parameters)
    needed = n_params + 2
    if len(runs) < needed:
        raise RunTableError(
            f"{runs.source}: {len(runs)} run(s) cannot identify the {law.name} law's {n_params} parameters; "
            f"at least {needed} runs are needed (more, spread over sizes and token counts, for useful intervals)"
        )
    for column in law.inputs:
        distinct = np.unique(runs.column(column)).size
        if column in law.may_be_constant:
            if distinct == 1 and law.may_be_constant[column]:
                value = runs.column(column)[0]
                warnings.warn(f"{runs.source}: every run has {column} = {value:.4g}; for the {law.name} law {law.may_be_constant[column]}", DataWarning, stacklevel=3)
            continue
        if distinct < MIN_DISTINCT:
            raise RunTableError(
                f"{runs.source}: column {column!r} has only {distinct} distinct value(s); the {law.name} law needs "
                f"runs at {MIN_DISTINCT} or more different {column} values to separate the power law from its offset"
            )
    x = law.log_inputs(runs.data)
    centres = {c: float(np.mean(x[c])) for c in law.inputs}
    levels, codes = {}, {}
    for g in groups:
        values = runs.data[g].astype(str).to_numpy()
        levels[g] = sorted(set(values))
        lookup = {v: i for i, v in enumerate(levels[g])}
        codes[g] = np.array([lookup[v] for v in values], dtype=np.int64)
    return Design(law, x, np.log(runs.column("loss").astype(float)), centres, groups, levels, codes)
