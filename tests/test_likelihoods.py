"""The likelihood registry: each family's numpy and PyMC densities agree, its noise has the
family's spread, specs round-trip, and no module outside ``bayescale/likelihoods/`` names a
family's own parameter."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from bayescale import ModelSpecError, load_spec
from bayescale.likelihoods import FAMILIES, Normal, StudentT
from bayescale.priors import Prior

PACKAGE = Path(__file__).resolve().parents[1] / "bayescale"


def test_only_the_likelihoods_package_names_nu():
    found = [
        f"{path.relative_to(PACKAGE)}:{number}"
        for path in PACKAGE.rglob("*.py")
        if "likelihoods" not in path.relative_to(PACKAGE).parts
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"\bnu\b", line)
    ]
    assert found == []


@pytest.mark.parametrize("likelihood", [Normal(), StudentT(nu=3.0), StudentT(nu=Prior("Gamma", {"alpha": 2.0, "beta": 0.1}))], ids=["normal", "studentt", "studentt-sampled"])
def test_numpy_and_pymc_log_densities_agree(likelihood):
    import pymc as pm
    import pytensor.tensor as pt
    from pytensor.graph.replace import graph_replace

    y, mu = np.array([0.1, 0.5, -0.2]), np.array([0.0, 0.45, 0.1])
    with pm.Model() as model:
        density = likelihood.pymc_log_density(mu, y)
    at = {v.name: 0.2 if v.name == "sigma" else 3.0 for v in model.free_RVs}
    assert next(iter(at)) == "sigma" and set(at) == set(likelihood.priors())  # sigma first, then the family's sampled ones
    fixed = graph_replace(density, {v: pt.as_tensor(np.float64(at[v.name])) for v in model.free_RVs})
    values = likelihood.values({k: v for k, v in at.items() if k != "sigma"})
    np.testing.assert_allclose(fixed.eval(), likelihood.logpdf(y, mu, 0.2, values), rtol=1e-7)  # PyMC rounds its normalising constants


def test_unit_noise_has_the_family_spread():
    rng = np.random.default_rng(0)
    assert abs(Normal().unit_noise(rng, {}, (200_000,)).std() - 1.0) < 0.01
    t = StudentT(nu=5.0)
    assert abs(t.unit_noise(rng, t.values({}), (200_000,)).var() - 5.0 / 3.0) < 0.05  # nu / (nu - 2)


def test_normal_specs_write_no_degrees_of_freedom_and_old_ones_still_load():
    spec = load_spec({"form": "chinchilla", "likelihood": {"family": "normal"}})
    assert spec.likelihood.to_dict() == {"family": "normal", "sigma": {"dist": "HalfNormal", "sigma": 0.05}}
    assert load_spec(spec.to_dict()) == spec
    legacy = {**spec.to_dict(), "likelihood": {"family": "normal", "nu": 4.0, "sigma": {"dist": "HalfNormal", "sigma": 0.05}}}  # a fit file from before
    assert load_spec(legacy) == spec
    assert load_spec("chinchilla").likelihood.to_dict()["nu"] == 4.0  # Student-t keeps its table


def test_registry_names_the_families():
    assert list(FAMILIES) == ["studentt", "normal"]
    with pytest.raises(ModelSpecError, match="not one of studentt, normal"):
        load_spec({"form": "chinchilla", "likelihood": {"family": ["normal"]}})
