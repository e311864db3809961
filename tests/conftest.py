"""Session-scoped fits shared by the suite: each model is compiled and sampled once."""

from __future__ import annotations

import os
import warnings

import matplotlib
import numpy as np
import pytest
from hypothesis import settings

matplotlib.use("Agg")

from bayescale import ConvergenceWarning, fit
from bayescale.resources import data_path
from bayescale.runs import load_runs
from bayescale.simulate import EPOCH_CHINCHILLA, grid_runs, simulate_groups, simulate_runs

#: Property tests draw the same examples on every run, so the suite's verdict does not depend on
#: the day; ``--hypothesis-profile=explore`` draws new ones (run it when you touch a validator).
settings.register_profile("default", derandomize=True)
settings.register_profile("explore", derandomize=False, max_examples=200)
settings.load_profile("default")

#: Settings of the ungrouped fixtures: sampling is ~1 s of them (the compile dominates), so they keep
#: the README's 4 x 1000 draws and their numbers stay comparable with it.
FAST = {"draws": 1000, "tune": 1000, "chains": 4}
#: The grouped fixture uses the default spec: the levels (E, A, B) pooled, centred automatically
#: (each group's 36 runs pin its level down), the exponents shared as in the truth. The old default
#: (all five pooled, non-centred) on 192 runs took 436-475 s here; this samples in seconds.
GROUPED = {"draws": 1000, "tune": 1000, "chains": 2}
#: Three datasets that share exponents and differ in irreducible loss and amplitudes: the
#: situation the issue names (groups sharing exponents shrink together, offsets stay apart).
GROUP_TRUTHS = {
    "web": {"E": 1.75, "A": 400.0, "B": 1800.0, "alpha": 0.35, "beta": 0.36},
    "code": {"E": 1.55, "A": 520.0, "B": 2300.0, "alpha": 0.35, "beta": 0.36},
    "books": {"E": 1.95, "A": 460.0, "B": 2000.0, "alpha": 0.35, "beta": 0.36},
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False, help="also run the tests marked slow (deselected by default)")


def pytest_configure(config: pytest.Config) -> None:
    """``--run-slow`` lifts the default ``-m "not slow"`` of pyproject's addopts (an explicit ``-m`` wins)."""
    if config.getoption("--run-slow") and config.option.markexpr == "not slow":
        config.option.markexpr = ""


def synthetic_design(n: int = 8):
    return grid_runs(np.geomspace(2e7, 1e10, n), np.geomspace(5e8, 2e11, n))


@pytest.fixture(scope="session")
def chinchilla_runs():
    return load_runs(data_path("chinchilla_figure4_runs.csv"), drop_highest_loss=5)


@pytest.fixture(scope="session")
def chinchilla_fit(chinchilla_runs):
    return fit(chinchilla_runs, "chinchilla", seed=0, **FAST)


@pytest.fixture(scope="session")
def synthetic_frame():
    return simulate_runs("chinchilla", EPOCH_CHINCHILLA, synthetic_design(), sigma=0.01, seed=3)


@pytest.fixture(scope="session")
def synthetic_fit(synthetic_frame):
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=UserWarning)
        return fit(synthetic_frame, "chinchilla", seed=2, **FAST)


@pytest.fixture(scope="session")
def grouped_frame():
    return simulate_groups("chinchilla", GROUP_TRUTHS, synthetic_design(6), column="dataset", sigma=0.01, seed=11)


@pytest.fixture(scope="session")
def grouped_fit(grouped_frame):
    with warnings.catch_warnings():  # diagnostics are what the package warns about, not what tests pin
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit(grouped_frame, "chinchilla", group="dataset", seed=4, **GROUPED)


@pytest.fixture(scope="session")
def saved_fit_path(chinchilla_fit, tmp_path_factory):
    return chinchilla_fit.save(tmp_path_factory.mktemp("fits") / "chinchilla.nc")


@pytest.fixture(scope="session", autouse=True)
def _quiet_matplotlib():
    os.environ.setdefault("MPLBACKEND", "Agg")
