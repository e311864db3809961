"""Model specs: shipped specs load, and every kind of wrong spec fails before sampling."""

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


def test_round_trip_dict():
    spec = load_spec("data_constrained")
    assert ModelSpec.from_dict(spec.to_dict()) == spec


def test_user_copy_of_a_spec(tmp_path):
    text = (load_spec("chinchilla").law and open(__import__("bayescale.resources", fromlist=["x"]).models_dir() / "chinchilla.toml").read())
    path = tmp_path / "mine.toml"
    path.write_text(text.replace('E = { dist = "LogNormal", mu = 0.5, sigma = 0.5 }', 'E = { dist = "Gamma", alpha = 20, beta = 10 }'))
    spec = load_spec(path)
    assert spec.priors["E"].dist == "Gamma"


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"form": "gpt"}, "unknown form 'gpt'"),
        ({**BASE, "prior": {}}, "unknown key"),
        ({**BASE, "priors": {"gamma": {"dist": "Normal", "mu": 0, "sigma": 1}}}, "does not have"),
        ({**BASE, "priors": {"E": {"mu": 1}}}, "a prior is a table"),
        ({**BASE, "priors": {"E": {"dist": "LogNormal", "mu": "big"}}}, "must be a number"),
        ({**BASE, "pooling": {"params": ["E", "zeta"]}}, "pooling.params names zeta"),
        ({**BASE, "pooling": {"scale": {"E": -1}}}, "must be > 0"),
        ({**BASE, "pooling": {"pool": []}}, "unknown pooling key"),
        ({**BASE, "likelihood": {"family": "cauchy"}}, "not one of studentt, normal"),
        ({**BASE, "likelihood": {"nu": -2}}, "nu must be a positive number"),
    ],
)
def test_bad_spec_structure(raw, match):
    with pytest.raises(ModelSpecError, match=match):
        ModelSpec.from_dict(raw)


@pytest.mark.parametrize(
    ("priors", "match"),
    [
        ({"E": {"dist": "LogNorm", "mu": 0, "sigma": 1}}, "unknown distribution 'LogNorm'"),
        ({"E": {"dist": "LogNormal", "mu": 0, "sigma": -1}}, "priors"),
        ({"E": {"dist": "LogNormal", "mean": 0}}, "is not valid"),
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
