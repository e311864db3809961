"""Specs (issue 19): every malformed table, unknown argument or degenerate prior is a ``ModelSpecError`` (exit 4) up front."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from bayescale import ModelSpecError, load_spec
from bayescale.cli import app
from bayescale.resources import data_path

BASE = 'form = "chinchilla"\n'


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("priors = 5", "priors must be a table"),
        ("pooling = 5", "pooling must be a table"),
        ("pooling = [1, 2]", "pooling must be a table"),
        ("likelihood = 5", "likelihood must be a table"),
        ("options = 5", "unknown key"),
        ("[pooling]\nparams = 5", "pooling.params must be a parameter name or a list"),
        ("[pooling]\nparams = [1]", "pooling.params must be a parameter name or a list"),
        ("[pooling]\nscale = 5", "pooling.scale must be a table"),
        ('[pooling]\nscale = {E = "x"}', "pooling.scale.E = 'x' must be a positive number"),
        ("[pooling]\ngroup = 5", "pooling.group must be a column name"),
        ("[pooling]\ncentered = [5]", "pooling.centered names 5"),
    ],
)
def test_malformed_spec_tables(tmp_path, text, match):
    path = tmp_path / "spec.toml"
    path.write_text(BASE + text + "\n")
    with pytest.raises(ModelSpecError, match=match):
        load_spec(path)


def test_form_of_the_wrong_type():
    with pytest.raises(ModelSpecError, match="unknown form"):
        load_spec({"form": ["chinchilla"]})
    with pytest.raises(ModelSpecError, match="a spec is a table"):
        from bayescale.spec import ModelSpec

        ModelSpec.from_dict([1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("prior", "match"),
    [
        ({"dist": "Normal", "mu": 0.3, "sgima": 0.01}, "Normal has no argument 'sgima'; it accepts mu, sigma, tau"),
        ({"dist": "AsymmetricLaplace"}, "AsymmetricLaplace\\(\\) is not valid"),
        ({"dist": "Normal", "mu": 0.3, "sigma": 0}, "degenerate"),
        ({"dist": "DiracDelta", "c": 0.3}, "not a proper continuous distribution"),
        ({"dist": "Flat"}, "not a proper continuous distribution"),
        ({"dist": "Poisson", "mu": 3}, "not a proper continuous distribution"),
    ],
)
def test_bad_priors_are_spec_errors(prior, match):
    spec = load_spec({"form": "chinchilla", "priors": {"alpha": prior}})
    with pytest.raises(ModelSpecError, match=match):
        spec.check_priors()


def test_likelihood_sigma_zero_is_a_spec_error():
    spec = load_spec({"form": "chinchilla", "likelihood": {"sigma": {"dist": "HalfNormal", "sigma": 0}}})
    with pytest.raises(ModelSpecError):
        spec.check_priors()


@pytest.mark.parametrize(
    "prior",
    ['{dist = "Normal", mu = 0.3, sigma = 0}', '{dist = "DiracDelta", c = 0.3}', '{dist = "Normal", mu = 0.3, sgima = 0.01}'],
)
def test_cli_bad_prior_exits_4_before_sampling(tmp_path, prior):
    spec = tmp_path / "spec.toml"
    spec.write_text(f"{BASE}[priors]\nalpha = {prior}\n")
    result = CliRunner().invoke(app, ["fit", str(data_path("chinchilla_figure4_runs.csv")), "--model", str(spec), "-q", "-o", str(tmp_path / "f.nc")])
    assert result.exit_code == 4, result.output
    assert "error:" in result.stderr and "Traceback" not in result.output and "panicked" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_spec_file(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text(BASE)
    path.chmod(0)
    with pytest.raises(ModelSpecError, match="cannot read"):
        load_spec(path)


def test_spec_path_that_is_a_folder(tmp_path):
    folder = tmp_path / "spec.toml"
    folder.mkdir()
    with pytest.raises(ModelSpecError):
        load_spec(folder)
