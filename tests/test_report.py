"""The HTML report: every section and figure present, headline numbers equal allocate/decide."""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from typer.testing import CliRunner

from bayescale.allocate import allocate, allocation_table
from bayescale.cli import app
from bayescale.decide import decide
from bayescale.report import SECTIONS, render_report

BUDGETS = [1e22, 5.76e23]


@pytest.fixture(scope="module")
def report_html(chinchilla_fit, tmp_path_factory):
    path = render_report(chinchilla_fit, tmp_path_factory.mktemp("report") / "report.html", flops=BUDGETS, target_loss=2.0)
    return path, path.read_text()


def test_every_section_and_figure(report_html):
    _, html = report_html
    for section in SECTIONS:
        assert f'<section id="{section}">' in html
    figures = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]{1000,})"', html)
    assert len(figures) == 6  # isoFLOPs, observed vs predicted, frontier, P(target), fan, posteriors
    assert "http://" not in html and "https://" not in html  # self-contained: nothing to fetch
    assert "NOT CONVERGED" not in html


def test_hoffmann_context_and_isoflop_figure_for_chinchilla(report_html):
    _, html = report_html
    assert 'id="hoffmann-context"' in html and "Context, not a check" in html  # Chinchilla law, comparable data
    assert 'alt="isoFLOP profiles"' in html  # Hoffmann et al.'s runs lie on isoFLOP lines


def test_headline_equals_allocate_and_decide(report_html, chinchilla_fit):
    _, html = report_html
    headline = json.loads(re.search(r'<script type="application/json" id="headline-data">(.*?)</script>', html, re.S).group(1))
    table = allocation_table(allocate(chinchilla_fit, BUDGETS), 0.9)
    doc = decide(chinchilla_fit, 2.0, 0.9, flops=BUDGETS)
    for item, (_, row), plan in zip(headline, table.iterrows(), doc["plans"], strict=True):
        assert item["params"] == row["robust_params"] == plan["params"]
        assert item["tokens"] == row["robust_tokens"] == plan["tokens"]
        assert item["params_lo"] == row["params_lo"] and item["loss_median"] == row["loss_median"]
        assert item["prob"] == plan["prob"]


def test_not_converged_banner(chinchilla_fit, tmp_path):
    from dataclasses import replace

    broken = replace(chinchilla_fit, diagnostics=replace(chinchilla_fit.diagnostics, problems=("R-hat 1.2 > 1.01",)))
    html = render_report(broken, tmp_path / "r.html", flops=[1e22]).read_text()
    assert 'id="not-converged"' in html and "R-hat 1.2" in html


def test_cli_report(saved_fit_path, tmp_path):
    out = tmp_path / "r.html"
    result = CliRunner().invoke(app, ["report", str(saved_fit_path), "-o", str(out), "--flops", "1e22"])
    assert result.exit_code == 0, result.output
    assert "bayescale report" in out.read_text()
    bad = CliRunner().invoke(app, ["report", str(saved_fit_path), "-o", str(out), "--target-loss", "-1"])
    assert bad.exit_code == 2 and "must be positive" in bad.stderr


@pytest.mark.slow
def test_cli_report_compare_ranks_the_given_fits(saved_fit_path, report_html, tmp_path):
    """``--compare`` fills the comparison section with a PSIS-LOO ranking, naming fits of one spec by file."""
    other = tmp_path / "again.nc"
    shutil.copy(saved_fit_path, other)
    out = tmp_path / "r.html"
    result = CliRunner().invoke(app, ["report", str(saved_fit_path), "-o", str(out), "--compare", str(other)])
    assert result.exit_code == 0, result.output
    section = out.read_text().split('<section id="comparison">')[1].split("</section>")[0]
    assert "elpd" in section and f"chinchilla ({saved_fit_path.name})" in section and "chinchilla (again.nc)" in section
    assert "No model comparison" not in section
    assert "No model comparison" in report_html[1].split('<section id="comparison">')[1]  # without --compare


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Chromium (Debian package chromium) is not installed")
def test_screenshot_not_blank(report_html, tmp_path):
    from PIL import Image

    path, _ = report_html
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1200,2400",
            path.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    image = Image.open(shot).convert("L")
    low, high = image.getextrema()
    assert high - low > 100  # not a blank page
    assert len(np.unique(np.asarray(image))) > 50  # many grey levels: figures, not just text
