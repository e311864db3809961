"""Model specs: shipped specs load, and every kind of wrong spec fails before sampling."""

import numpy as np
import pytest

from bayescale import ModelSpecError, load_spec
from bayescale.spec import ModelSpec, shipped_specs

BASE = {"form": "chinchilla"}


def test_shipped_specs_are_valid():
    assert {"chinchilla", "kaplan", "compute", "data_constrained"} <= set(shipped_specs())
    for name in shipped_specs():
        spec = load_spec(name)
        spec.check_priors()
        assert set(spec.priors) == set(spec.law.parameter_names)


def test_default_priors_live_in_the_laws_only():
    """A shipped spec lists a prior only where it differs from its law's default: one place for each."""
    import tomllib

    from bayescale.resources import models_dir

    for name in shipped_specs():
        raw = tomllib.loads((models_dir() / f"{name}.toml").read_text())
        law = load_spec(name).law
        repeated = [k for k, v in raw.get("priors", {}).items() if law.parameter(k).prior == v]
        assert not repeated, f"{name}.toml repeats the {law.name} law's default prior for {repeated}"


def test_spec_command_prints_toml_that_reads_back(tmp_path):
    """``bayescale spec NAME`` writes every prior out, and the text loads back as the same spec."""
    from typer.testing import CliRunner

    from bayescale.cli import app

    for name in shipped_specs():
        result = CliRunner().invoke(app, ["spec", name])
        assert result.exit_code == 0, result.output
        path = tmp_path / f"{name}.toml"
        path.write_text(result.output)
        spec = load_spec(name)
        assert load_spec(path).to_dict() == spec.to_dict()
        assert all(f"\n{p} = {{ dist = " in result.output for p in spec.law.parameter_names)
    bad = CliRunner().invoke(app, ["spec", "chinchila"])
    assert bad.exit_code == 4 and "chinchila" in bad.output


def test_round_trip_dict():
    spec = load_spec("data_constrained")
    assert ModelSpec.from_dict(spec.to_dict()) == spec


def test_user_copy_of_a_spec(tmp_path):
    """The workflow the README gives: print a spec with every prior (``bayescale spec``), edit one, fit with the copy."""
    text = load_spec("chinchilla").to_toml()
    path = tmp_path / "mine.toml"
    path.write_text(text.replace('E = { dist = "LogNormal", mu = 0.5, sigma = 0.5 }', 'E = { dist = "Gamma", alpha = 20, beta = 10 }'))
    spec = load_spec(path)
    assert spec.priors["E"].dist == "Gamma"


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"form": "gpt"}, "unknown form 'gpt'"),
        ({**BASE, "priros": {}}, "unknown key"),
        ({**BASE, "prior": {}}, r"prior: unknown prior \{\}; known priors: default, literature \(per-parameter priors go under \[priors\]\)"),
        ({**BASE, "priors": {"gamma": {"dist": "Normal", "mu": 0, "sigma": 1}}}, "does not have"),
        ({**BASE, "priors": {"E": {"mu": 1}}}, "a prior is a table"),
        ({**BASE, "priors": {"E": {"dist": "LogNormal", "mu": "big"}}}, "must be a number"),
        ({**BASE, "pooling": {"params": ["E", "zeta"]}}, "pooling.params names zeta"),
        ({**BASE, "pooling": {"scale": {"E": -1}}}, "must be > 0"),
        ({**BASE, "pooling": {"pool": []}}, "unknown pooling key"),
        ({**BASE, "pooling": {"params": ["E"], "centered": ["A"]}}, "pooling.centered names A, not pooled"),
        ({**BASE, "pooling": {"centered": "E"}}, 'pooling.centered must be "auto", a list'),
        ({**BASE, "likelihood": {"family": "cauchy"}}, "not one of studentt, normal"),
        ({**BASE, "likelihood": {"nu": -2}}, "nu = -2 must be a number from 0.1 to 1e"),
        ({**BASE, "priors": {"E": {"dist": "Fixed"}}}, "a fixed parameter is written"),
        ({**BASE, "priors": {"E": {"dist": "Fixed", "value": 1.8, "sigma": 1}}}, "a fixed parameter is written"),
        ({**BASE, "priors": {"E": {"dist": "Fixed", "value": float("nan")}}}, "a fixed parameter is written"),
        ({**BASE, "priors": {"E": {"dist": "Fixed", "value": 1.8}}, "pooling": {"params": ["E"]}}, "fixed by its prior"),
        ({**BASE, "priors": {k: {"dist": "Fixed", "value": 1.0} for k in ("E", "A", "B", "alpha", "beta")}}, "every parameter"),
        ({**BASE, "likelihood": {"sigma": {"dist": "Fixed", "value": 0.01}}}, "cannot be Fixed"),
    ],
)
def test_bad_spec_structure(raw, match):
    with pytest.raises(ModelSpecError, match=match):
        ModelSpec.from_dict(raw)


def test_fixed_parameters():
    spec = load_spec("data_constrained_two_stage")
    assert set(spec.fixed) == {"E", "A", "B", "alpha", "beta"}
    assert spec.fixed["alpha"] == pytest.approx(0.3526596)
    assert spec.pooled == ()
    draws = spec.check_priors()
    assert (draws["priors.B"] == spec.fixed["B"]).all()  # a point mass draws its constant
    assert draws["priors.R_D_star"].std() > 0
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    # without an explicit pooling list, the free level parameters are pooled (exponents shared)
    free = ModelSpec.from_dict({**BASE, "priors": {"E": {"dist": "Fixed", "value": 1.8}}})
    assert free.pooled == ("A", "B")
    with pytest.raises(ModelSpecError, match="E must be positive"):
        ModelSpec.from_dict({**BASE, "priors": {"E": {"dist": "Fixed", "value": -1.0}}}).check_priors()


def test_centered_pooling():
    spec = ModelSpec.from_dict({**BASE, "pooling": {"params": ["E", "A"], "centered": True}})
    assert spec.centered == ("E", "A")
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert ModelSpec.from_dict(BASE).centered == "auto"
    auto = ModelSpec.from_dict({**BASE, "pooling": {"centered": "auto"}})
    assert auto.centered == "auto" and ModelSpec.from_dict(auto.to_dict()) == auto


@pytest.mark.parametrize(
    ("priors", "match"),
    [
        ({"E": {"dist": "LogNorm", "mu": 0, "sigma": 1}}, "unknown distribution 'LogNorm'"),
        ({"E": {"dist": "LogNormal", "mu": 0, "sigma": -1}}, "priors"),
        ({"E": {"dist": "LogNormal", "mean": 0}}, "has no argument 'mean'; it accepts mu, sigma"),
        ({"alpha": {"dist": "Normal", "mu": 0.3, "sigma": 1}}, "alpha must be positive"),
    ],
)
def test_impossible_priors(priors, match):
    spec = ModelSpec.from_dict({**BASE, "priors": priors})
    with pytest.raises(ModelSpecError, match=match):
        spec.check_priors()


def test_unknown_names_and_files(tmp_path):
    with pytest.raises(ModelSpecError, match="not a shipped spec"):
        load_spec("nonsense")
    with pytest.raises(ModelSpecError, match="no such model spec file"):
        load_spec(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("form = [")
    with pytest.raises(ModelSpecError, match="not valid TOML"):
        load_spec(bad)


def test_prior_draws_are_reused_read_only_per_spec_size_and_seed():
    """A warm refit reuses the prior draws behind its initial values; they cannot be changed in place."""
    spec = load_spec("chinchilla")
    first, again, other = spec.draw_priors(16, seed=0), spec.draw_priors(16, seed=0), spec.draw_priors(16, seed=1)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["priors.E"], other["priors.E"])
    with pytest.raises(ValueError):
        first["priors.E"][0] = 1.0
    first.pop("priors.E")  # the returned mapping is the caller's own
    assert "priors.E" in spec.draw_priors(16, seed=0)
