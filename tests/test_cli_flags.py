"""CLI flags of issues 16 and 19: group targeting, --column on targets, --force, several --flops values,
range checks with one ``error:`` line and exit 2 (never a traceback or a boxed usage error)."""

import json
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from bayescale.cli import app
from bayescale.documents import FitInfo
from bayescale.fitting import load_fit

from .fakefit import fake_fit, fake_grouped_fit

runner = CliRunner()
TRUTH = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
LEVELS = {"RPJ": TRUTH, "web": {"E": 1.55, "A": 520.0, "B": 2300.0, "alpha": 0.36, "beta": 0.38}}


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_error(result, code: int, match: str) -> None:
    assert result.exit_code == code, result.output
    assert match in result.stderr, result.stderr
    assert result.stderr.count("error:") == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.output and "╭" not in result.output


@pytest.fixture(scope="module")
def grouped_path(tmp_path_factory):
    return fake_grouped_fit(TRUTH, LEVELS, chains=2, draws=100).save(tmp_path_factory.mktemp("grouped") / "grouped.nc")


@pytest.fixture(scope="module")
def plain_path(tmp_path_factory):
    return fake_fit(TRUTH).save(tmp_path_factory.mktemp("plain") / "plain.nc")


@pytest.fixture
def runs_csv(tmp_path):
    path = tmp_path / "runs.csv"
    fake_fit(TRUTH).runs.data[["params", "tokens", "loss"]].to_csv(path, index=False)
    return path


def test_forecast_group_value_ignores_case_and_says_so(grouped_path):
    result = invoke("forecast", grouped_path, "--params", "1B", "--tokens", "20B", "--group-value", "dataset=rpj", "--format", "json")
    assert result.exit_code == 0, result.output
    (target,) = json.loads(result.stdout)["targets"]
    assert target["dataset"] == "RPJ" and target["new_group"] is False


def test_forecast_unknown_level_lists_levels(grouped_path):
    one_error(invoke("forecast", grouped_path, "--params", "1B", "--tokens", "20B", "--group-value", "dataset=legal"), 2, "levels: RPJ, web")
    one_error(invoke("forecast", grouped_path, "--params", "1B", "--tokens", "20B"), 2, "--new-group")


def test_forecast_new_group_is_labelled(grouped_path):
    result = invoke("forecast", grouped_path, "--params", "1B", "--tokens", "20B", "--new-group", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["targets"][0]["new_group"] is True
    table = invoke("forecast", grouped_path, "--params", "1B", "--tokens", "20B", "--group-value", "dataset=legal", "--new-group")
    assert table.exit_code == 0 and "not seen at fit time" in table.stdout and "legal" in table.stdout


def test_group_flags_on_a_fit_without_groups_are_errors(plain_path):
    one_error(invoke("forecast", plain_path, "--params", "1B", "--tokens", "20B", "--group-value", "ds=web"), 2, "this fit has no groups")
    one_error(invoke("allocate", plain_path, "--flops", "1e21", "--new-group"), 2, "this fit has no groups")


@pytest.mark.slow
def test_allocate_decide_report_take_group_flags(grouped_path, tmp_path):
    seen = json.loads(invoke("allocate", grouped_path, "--flops", "1e21", "--group-value", "dataset=WEB", "--format", "json").stdout)
    assert seen["group"] == {"dataset": "web"} and seen["new_group"] is False
    new = invoke("allocate", grouped_path, "--flops", "1e21", "--new-group")
    assert new.exit_code == 0 and new.stdout.startswith("for a new, unseen dataset")
    every = json.loads(invoke("allocate", grouped_path, "--flops", "1e21", "--format", "json").stdout)  # no level named: every level and a new group
    levels = [doc["group"]["dataset"] for doc in every["levels"]]
    assert levels[-1] == "(new)" and [doc["new_group"] for doc in every["levels"]] == [False] * (len(levels) - 1) + [True]
    assert next(doc for doc in every["levels"] if doc["group"]["dataset"] == "web")["budgets"] == seen["budgets"]
    rows = pd.read_csv(__import__("io").StringIO(invoke("allocate", grouped_path, "--flops", "1e21", "1e22", "--format", "csv").stdout))
    assert list(rows.columns[:2]) == ["dataset", "new_group"] and len(rows) == 2 * len(levels)
    decided = json.loads(invoke("decide", grouped_path, "--target-loss", "2.5", "--flops", "1e21", "--format", "json").stdout)
    assert [doc["group"]["dataset"] for doc in decided["levels"]] == levels
    doc = json.loads(invoke("decide", grouped_path, "--target-loss", "2.5", "--flops", "1e21", "--new-group", "--format", "json").stdout)
    assert doc["new_group"] is True and doc["group"] == {"dataset": "(new)"}
    report = invoke("report", grouped_path, "-o", tmp_path / "r.html", "--flops", "1e21", "--group-value", "dataset=rpj")
    assert report.exit_code == 0, report.output
    assert "dataset=RPJ, a group seen at fit time" in (tmp_path / "r.html").read_text()


def test_several_flops_values_repeats_and_ranges(plain_path):
    result = invoke("allocate", plain_path, "--flops", "1e21", "1e22", "1e23", "--format", "json")
    assert result.exit_code == 0, result.output
    assert [b["flops"] for b in json.loads(result.stdout)["budgets"]] == [1e21, 1e22, 1e23]
    mixed = invoke("allocate", "--flops", "1e20", "1e21:1e23:3", plain_path, "--flops", "5e23", "--format", "csv")
    assert mixed.exit_code == 0, mixed.output
    assert pd.read_csv(__import__("io").StringIO(mixed.stdout))["flops"].tolist() == pytest.approx([1e20, 1e21, 1e22, 1e23, 5e23])


def test_forecast_targets_column_mapping(saved_fit_path, tmp_path):
    targets = tmp_path / "targets.csv"
    pd.DataFrame({"Model Size": ["1B", "7B"], "Tokens": ["20B", "140B"]}).to_csv(targets, index=False)
    result = invoke("forecast", saved_fit_path, "--targets", targets, "--column", "params=Model Size", "--column", "tokens=Tokens", "--format", "csv")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("params,tokens,loss_median")
    one_error(invoke("forecast", saved_fit_path, "--targets", targets, "--column", "params=Size"), 3, "no column 'Size'")


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["forecast", "{fit}", "--params", "1B", "--tokens", "20B", "--seed", "-1"], "seed=-1 must be a whole number"),
        (["forecast", "{fit}", "--params", "1B", "--tokens", "20B", "--seed", "abc"], "Invalid value for '--seed'"),
        (["report", "{fit}", "-o", "{tmp}/r.html", "--unique-tokens", "abc"], "cannot read 'abc'"),
        (["fit", "{runs}", "-o", "{tmp}/f.nc", "--seed", "-1"], "seed=-1 must be a whole number"),
        (["fit", "{runs}", "-o", "{tmp}/f.nc", "--seed", str(2**64)], "must be a whole number from 0 to 4294967295"),
        (["fit", "{runs}", "-o", "{tmp}/f.nc", "--draws", "1000000000"], "GiB of posterior draws"),
        (["fit", "{runs}", "-o", "{tmp}/f.nc", "--draws", "0"], "draws=0 must be a whole number >= 1"),
        (["fit", "{runs}", "-o", "{tmp}/f.nc", "--chains", "0"], "chains=0 must be a whole number >= 1"),
        (["allocate", "{fit}", "--flops", "1e21:1e25:100000000"], "100000000 budgets is more than the 1000"),
        (["fit"], "Missing argument 'runs'"),
    ],
)
def test_flag_ranges_are_one_line_errors_with_exit_2(args, match, plain_path, runs_csv, tmp_path):
    names = {"fit": plain_path, "runs": runs_csv, "tmp": tmp_path}
    one_error(invoke(*[a.format(**names) for a in args]), 2, match)


def test_multi_line_messages_become_one_line(plain_path, monkeypatch):
    from bayescale import fitfile
    from bayescale.errors import FitFileError

    def broken(path):
        raise FitFileError(f"{path}: first line\n  second line\n")

    monkeypatch.setattr(fitfile, "load_fit", broken)
    one_error(invoke("summary", plain_path), 5, "first line second line")


def test_fit_refuses_to_overwrite_a_different_fit(plain_path, runs_csv, tmp_path):
    target = tmp_path / "fit.nc"
    target.write_text("not a fit")
    one_error(invoke("fit", runs_csv, "-o", target, "-q"), 2, "is an existing file that is not a saved fit")  # the output check (safety)
    shutil.copy(plain_path, target)
    one_error(invoke("fit", runs_csv, "-o", target, "-q", "--draws", "150"), 2, "already holds a different fit")
    assert load_fit(target).info == FitInfo()  # untouched


def test_overwrite_check_accepts_the_same_fit(saved_fit_path, chinchilla_runs):
    from bayescale.cli.fit import _refuse_overwrite
    from bayescale.sampling import SamplerConfig
    from bayescale.spec import load_spec

    _refuse_overwrite(saved_fit_path, chinchilla_runs, load_spec("chinchilla"), None, SamplerConfig(draws=1000, tune=1000, chains=4, seed=0, sampler="nutpie"))
    with pytest.raises(Exception, match="other seed"):
        _refuse_overwrite(saved_fit_path, chinchilla_runs, load_spec("chinchilla"), None, SamplerConfig(draws=1000, tune=1000, chains=4, seed=1, sampler="nutpie"))


def test_summary_says_what_the_convergence_flag_covers(saved_fit_path):
    result = invoke("summary", saved_fit_path)
    assert result.exit_code == 0
    assert "Convergence is judged on every sampled variable" in result.stdout
