"""The named priors: ``prior = "literature"`` in a spec and ``--prior`` on ``bayescale fit``."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from bayescale.cli import app
from bayescale.errors import ModelSpecError
from bayescale.fitting import load_fit
from bayescale.laws import get_law
from bayescale.likelihoods import DEFAULT_SIGMA_PRIOR
from bayescale.literature import LITERATURE_FILE, literature_document
from bayescale.spec import DEFAULT_DISCREPANCY_SCALE, ModelSpec, load_spec

runner = CliRunner()


def literature_spec(**extra):
    return ModelSpec.from_dict({"form": "chinchilla", "prior": "literature", **extra})


def test_the_shipped_document_names_its_studies_and_population():
    doc = literature_document()
    assert doc["name"] == "literature" and doc["built"] and doc["bayescale_version"]
    assert {s["name"] for s in doc["studies"]} >= {"chinchilla", "llama3_isoflop", "gemstones"}
    assert all(s["runs"] > 0 and s["source"] for s in doc["studies"])
    for name in ("alpha", "beta", "log_sigma"):
        assert set(doc["population"][name]) == {"mean_mu", "sd_mu", "mean_sd", "sd_sd"}
    assert 0.1 < doc["priors"]["exponents"]["alpha"]["mu"] < 0.8  # the published exponents sit around 0.3-0.4


def test_a_spec_naming_the_literature_prior_gets_its_priors():
    doc = literature_document()["priors"]
    spec = literature_spec()
    assert spec.prior == "literature"
    for p in ("alpha", "beta"):
        assert spec.priors[p].to_dict() == doc["exponents"][p]
    assert spec.likelihood.sigma.to_dict() == doc["sigma"]
    assert spec.discrepancy.scale == doc["discrepancy_scale"]
    default = load_spec("chinchilla")
    assert spec.priors["E"] == default.priors["E"] and spec.priors["A"] == default.priors["A"]  # levels stay the law's


def test_the_specs_own_entries_win_over_the_named_prior():
    spec = literature_spec(priors={"alpha": {"dist": "Normal", "mu": 0.3, "sigma": 0.01}}, discrepancy={"scale": 0.05})
    assert spec.priors["alpha"].to_dict() == {"dist": "Normal", "mu": 0.3, "sigma": 0.01}
    assert spec.discrepancy.scale == 0.05
    assert spec.priors["beta"].to_dict() == literature_document()["priors"]["exponents"]["beta"]


def test_named_prior_round_trips_through_dict_toml_and_with_prior(tmp_path):
    spec = literature_spec()
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    path = tmp_path / "lit.toml"
    path.write_text(spec.to_toml())
    assert 'prior = "literature"' in path.read_text()
    assert load_spec(path) == spec
    default = load_spec("chinchilla")
    assert "prior" not in default.to_dict()  # specs without a named prior serialise as before
    switched = default.with_prior("literature")
    assert switched.priors == spec.priors and switched.likelihood == spec.likelihood and switched.discrepancy == spec.discrepancy
    back = switched.with_prior("default")
    assert back.priors == default.priors and back.likelihood.sigma.to_dict() == DEFAULT_SIGMA_PRIOR
    assert back.discrepancy.scale == DEFAULT_DISCREPANCY_SCALE and back.prior == "default"


def test_the_document_round_trips_through_a_file(tmp_path):
    doc = literature_document()
    copy = tmp_path / "literature_prior.json"
    copy.write_text(json.dumps(doc, indent=1))
    assert literature_document(copy) == doc == json.loads(LITERATURE_FILE.read_text())


@pytest.mark.parametrize("name", ["literatur", "", 3, "Literature"])
def test_unknown_prior_names_are_one_clear_error(name):
    with pytest.raises(ModelSpecError, match=r"prior: unknown prior .*known priors: default, literature"):
        ModelSpec.from_dict({"form": "chinchilla", "prior": name})
    with pytest.raises(ModelSpecError, match="known priors: default, literature"):
        load_spec("chinchilla").with_prior(name)


def test_the_literature_prior_needs_chinchillas_exponents():
    with pytest.raises(ModelSpecError, match=r"sets Chinchilla's exponents alpha and beta, which the compute form does not have"):
        ModelSpec.from_dict({"form": "compute", "prior": "literature"})
    spec = ModelSpec.from_dict({"form": "data_constrained", "prior": "literature"})  # a Chinchilla-family form takes it
    assert set(get_law("data_constrained").parameter_names) >= {"alpha", "beta"} and spec.prior == "literature"


@pytest.mark.filterwarnings("ignore::bayescale.errors.ConvergenceWarning")  # 150 draws: diagnostics are not what this checks
def test_cli_fit_with_the_literature_prior_saves_and_reloads_it(synthetic_frame, tmp_path):
    runs = tmp_path / "runs.csv"
    synthetic_frame.to_csv(runs, index=False)
    out = tmp_path / "fit.nc"
    result = runner.invoke(app, ["fit", str(runs), "--prior", "literature", "--draws", "150", "--tune", "150", "--chains", "2", "-q", "-o", str(out)])
    assert result.exit_code == 0, result.output
    fitted = load_fit(out)
    assert fitted.spec.prior == "literature"
    assert fitted.spec.priors["alpha"].to_dict() == literature_document()["priors"]["exponents"]["alpha"]
    assert "--prior literature" in fitted.info.command
    forecast = fitted.forecast(params=[7e10], tokens=[1.4e12])
    assert np.all(np.isfinite(forecast["loss_pred"].values))


def test_cli_fit_refuses_an_unknown_prior_before_reading_the_runs(tmp_path):
    result = runner.invoke(app, ["fit", str(tmp_path / "missing.csv"), "--prior", "bogus", "-o", str(tmp_path / "f.nc")])
    assert result.exit_code == ModelSpecError.exit_code
    assert "unknown prior 'bogus'" in result.output and "known priors: default, literature" in result.output
