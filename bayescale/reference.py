"""Published reference numbers bayescale is checked against, as data.

``hoffmann_table3()``: Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models",
Table 3 (Approach 1): estimated compute-optimal parameters and training tokens for a FLOP
budget (C ≈ 6·N·D), as printed in the paper.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from bayescale.fitted import Fitted

HOFFMANN_TABLE3_CITATION = "Hoffmann, J. et al. (2022). Training Compute-Optimal Large Language Models. arXiv:2203.15556, Table 3 (Approach 1)."

#: (params, flops, tokens) rows of Hoffmann et al. (2022) Table 3.
_ROWS = (
    (400e6, 1.92e19, 8.0e9),
    (1e9, 1.21e20, 20.2e9),
    (10e9, 1.23e22, 205.1e9),
    (67e9, 5.76e23, 1.5e12),
    (175e9, 3.85e24, 3.7e12),
    (280e9, 9.90e24, 5.9e12),
    (520e9, 3.43e25, 11.0e12),
    (1e12, 1.27e26, 21.2e12),
    (10e12, 1.30e28, 216.2e12),
)


def hoffmann_table3() -> pd.DataFrame:
    """Hoffmann et al. (2022) Table 3 as a DataFrame with columns ``params, flops, tokens`` (a fresh copy)."""
    frame = pd.DataFrame(_ROWS, columns=["params", "flops", "tokens"])
    frame.attrs["citation"] = HOFFMANN_TABLE3_CITATION
    return frame


#: Irreducible loss range of fits comparable with Hoffmann et al.'s MassiveText runs (their E = 1.69,
#: Epoch AI's refit 1.82): a fit far outside it measures another dataset or tokenizer.
HOFFMANN_E_RANGE = (1.5, 2.1)


def hoffmann_applies(fit: Fitted, theta: dict[str, np.ndarray]) -> bool:
    """Whether Hoffmann et al.'s Table 3 is fair context: a Chinchilla-family law, on data whose
    irreducible loss is comparable with theirs, with runs at compute their table covers."""
    if fit.spec.form not in ("chinchilla", "data_constrained") or "E" not in theta:
        return False
    e = float(np.median(theta["E"]))
    return HOFFMANN_E_RANGE[0] <= e <= HOFFMANN_E_RANGE[1] and float(fit.runs.data["flops"].max()) >= 1e18
