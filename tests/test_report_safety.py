"""The report read by a budget owner: escaped user data, the group a plan is for, Hoffmann's table
only as context where it applies, the fit figure chosen from the run design, complete Reproduce."""

from dataclasses import replace

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from bayescale.allocate import parameter_draws
from bayescale.cli import app
from bayescale.documents import FitInfo
from bayescale.plots import isoflop_lines
from bayescale.reference import hoffmann_applies
from bayescale.report import display_path, render_report
from bayescale.runs import RunTable
from bayescale.simulate import grid_runs

from .fakefit import fake_fit, fake_grouped_fit

TRUTH = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
OTHER = {"E": 1.55, "A": 520.0, "B": 2300.0, "alpha": 0.36, "beta": 0.38}
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(2)>'


def hostile_fit():
    """A grouped fit whose every user-supplied string is markup."""
    fit = fake_grouped_fit(TRUTH, {SCRIPT: TRUTH, IMG: OTHER}, chains=2, draws=100)
    runs = RunTable(fit.runs.data, source=f"/data/{IMG}runs{SCRIPT}.csv", extra_columns=fit.runs.extra_columns)
    spec = replace(fit.spec, name=f"spec{SCRIPT}", description=IMG)
    return replace(fit, runs=runs, spec=spec, sampler=f"nutpie{IMG}", info=FitInfo(command=f"bayescale fit {SCRIPT}.csv", adaptation=IMG))  # counts are typed: a text count is refused at load


def assert_escaped(html: str) -> None:
    for raw in (SCRIPT, IMG, "<img src=x", "onerror=alert(2)>"):
        assert raw not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_hostile_strings_are_escaped_everywhere(tmp_path):
    html = render_report(hostile_fit(), tmp_path / "r.html", flops=[1e21], command=f"bayescale report x -o {IMG}.html", group_values={"dataset": IMG}).read_text()
    assert_escaped(html)
    assert html.count("<script") == 1  # only our own JSON data block


def test_hostile_output_name_and_fit_file_through_the_cli(tmp_path):
    saved = hostile_fit().save(tmp_path / "hostile.nc")
    out = tmp_path / f"{IMG}.html"
    result = CliRunner().invoke(app, ["report", str(saved), "-o", str(out), "--flops", "1e21", "--group-value", f"dataset={SCRIPT}"])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert_escaped(html)
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;.html" in html  # the -o name, shown escaped in Reproduce
    assert str(tmp_path) not in html  # never the machine's absolute paths


def test_report_says_which_group_the_plan_is_for(tmp_path):
    fit = fake_grouped_fit(TRUTH, {"web": TRUTH, "code": OTHER}, chains=2, draws=100)
    seen = render_report(fit, tmp_path / "seen.html", flops=[1e21], group_values={"dataset": "WEB"}).read_text()
    assert "This plan is for dataset=web, a group seen at fit time" in seen and "population-level plan" not in seen
    new = render_report(fit, tmp_path / "new.html", flops=[1e21], new_group=True).read_text()
    assert "a new, unseen dataset" in new and "population-level plan" in new
    assert 'id="level-1"' not in seen + new  # one level named: no per-level sections


def test_grouped_report_answers_every_level_as_allocate_and_decide_do(grouped_fit, tmp_path):
    """Issue 31 §5: no --group-value → a one-screen overview, then a section per seen level and a new
    group, each headline the predictive interval and probability ``allocate``/``decide`` give there."""
    import json
    import re

    from bayescale.allocate import allocate, allocation_table
    from bayescale.decide import decide
    from bayescale.groups import every_level

    saved = grouped_fit.save(tmp_path / "grouped.nc")
    out = tmp_path / "every.html"
    result = CliRunner().invoke(app, ["report", str(saved), "-o", str(out), "--flops", "1e21", "--target-loss", "2.5"])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    expected = every_level(grouped_fit)
    assert len(expected) == 4  # books, code, web and a new dataset
    overview = html.split('id="overview-table"')[1].split("</table>")[0]
    for i, (label, _, new) in enumerate(expected, start=1):
        section = html.split(f'<section id="level-{i}" class="level">')[1].split("</section>")[0]
        assert f"<h2>{label}</h2>" in section and f'href="#level-{i}">{label}<' in overview
        assert ("population-level plan" in section) == new
    levels = json.loads(re.search(r'id="headline-data">(.*?)</script>', html, re.S).group(1))["levels"]
    for level, (label, values, new) in zip(levels, expected, strict=True):
        groups = {"group_values": values or None, "new_group": new}
        row = allocation_table(allocate(grouped_fit, [1e21], **groups), 0.9).iloc[0]
        (plan,) = decide(grouped_fit, 2.5, 0.9, flops=[1e21], **groups)["plans"]
        (item,) = level["headline"]
        assert level["label"] == label and level["new_group"] == new and (new or level["group"] == values)
        assert item["params"] == row["robust_params"] == plan["params"] and item["tokens"] == row["robust_tokens"]
        assert item["loss_lo"] == row["loss_lo"] == plan["loss_lo"] and item["loss_hi"] == row["loss_hi"] == plan["loss_hi"]
        assert item["prob"] == plan["prob"]


def test_hoffmann_table_and_isoflop_figure_only_where_they_apply(tmp_path):
    comparable = fake_fit(TRUTH)
    assert hoffmann_applies(comparable, parameter_draws(comparable))
    other_data = fake_fit({**TRUTH, "E": 3.2})
    assert not hoffmann_applies(other_data, parameter_draws(other_data))
    html = render_report(other_data, tmp_path / "r.html", flops=[1e21]).read_text()
    assert "Hoffmann" not in html
    # a 4 x 4 grid of sizes and token counts is not an isoFLOP design: the fit is shown run by run
    assert 'alt="isoFLOP profiles"' not in html and "not planned on isoFLOP lines" in html and 'alt="observed vs predicted"' in html
    assert "bayescale.fit(bayescale.load_runs(" in html and "Python API" in html  # a fit made through the API


def test_isoflop_design_detection(chinchilla_runs):
    lines = isoflop_lines(chinchilla_runs.data)
    assert lines is not None and 8 <= len(np.unique(lines[lines >= 0])) <= 12  # nine budgets in Hoffmann et al.'s Figure 4
    planned = pd.DataFrame([(n, c / (6 * n)) for c in (1e19, 1e20, 1e21) for n in np.geomspace(1e8, 1e10, 6)], columns=["params", "tokens"])
    planned["flops"] = 6 * planned["params"] * planned["tokens"]
    assert isoflop_lines(planned).tolist() == [0] * 6 + [1] * 6 + [2] * 6
    grid = grid_runs(np.geomspace(2e7, 1e10, 8), np.geomspace(5e8, 2e11, 8))
    assert isoflop_lines(grid.assign(flops=6 * grid["params"] * grid["tokens"])) is None
    rng = np.random.default_rng(0)
    scattered = pd.DataFrame({"params": 10 ** rng.uniform(7, 10, 200), "tokens": 10 ** rng.uniform(9, 11, 200)})
    assert isoflop_lines(scattered.assign(flops=6 * scattered["params"] * scattered["tokens"])) is None


def test_reproduce_shows_the_fit_and_report_commands(tmp_path):
    fit = replace(fake_fit(TRUTH), info=FitInfo(command="bayescale fit runs.csv -o fit.nc --column 'params=Model Size' --where dataset=c4 --draws 1000 --seed 0"))
    saved = fit.save(tmp_path / "fit.nc")
    result = CliRunner().invoke(app, ["report", str(saved), "-o", str(tmp_path / "r.html"), "--flops", "1e21", "1e22", "--target-loss", "2.5"])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "r.html").read_text()
    assert "bayescale fit runs.csv -o fit.nc --column &#39;params=Model Size&#39; --where dataset=c4" in html
    assert "bayescale report fit.nc -o r.html --flops 1e21 --flops 1e22 --target-loss 2.5" in html
    assert str(tmp_path) not in html


def test_display_path_never_shows_the_machine_layout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert display_path("data/runs.csv") == "data/runs.csv"
    assert display_path(tmp_path / "sub" / "runs.csv") == "sub/runs.csv"
    assert display_path("/elsewhere/deep/runs.csv") == "runs.csv"
