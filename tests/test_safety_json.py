"""Strict JSON everywhere (issue 32): CLI documents, batch ``result.json`` and the report's embedded
data never hold NaN/Infinity, and each null number has its ``NAME_reason`` beside it."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from bayescale.cli import app


def strict(text: str):
    """Parse ``text`` refusing NaN/Infinity as any strict parser would."""
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"non-strict JSON constant {name}"))


def test_forecast_json_null_numbers_carry_reasons(saved_fit_path, monkeypatch):
    from bayescale import forecasting

    real = forecasting.forecast_summary

    def overflowing(*args, **kwargs):
        table = real(*args, **kwargs)
        table.loc[0, "loss_median"] = np.nan
        table.loc[0, "loss_hi"] = np.inf
        return table

    monkeypatch.setattr(forecasting, "forecast_summary", overflowing)
    result = CliRunner().invoke(app, ["forecast", str(saved_fit_path), "--params", "1B", "--tokens", "20B", "--format", "json"])
    assert result.exit_code == 0, result.output
    (target,) = strict(result.stdout)["targets"]
    assert target["loss_median"] is None and "NaN" in target["loss_median_reason"]
    assert target["loss_hi"] is None and "infinite" in target["loss_hi_reason"]
    assert target["loss_lo"] > 0 and "loss_lo_reason" not in target


def test_decide_json_infinite_numbers_are_null_with_reasons(saved_fit_path, monkeypatch):
    import bayescale.decide as decide_module

    real = decide_module.decide

    def infinite(*args, **kwargs):
        doc = real(*args, **kwargs)
        doc["plans"][0]["usd"] = float("inf")
        return doc

    monkeypatch.setattr(decide_module, "decide", infinite)
    result = CliRunner().invoke(app, ["decide", str(saved_fit_path), "--target-loss", "2.5", "--flops", "1e21", "--format", "json"])
    assert result.exit_code == 0, result.output
    plan = strict(result.stdout)["plans"][0]
    assert plan["usd"] is None and plan["usd_reason"].startswith("+infinite")


def test_batch_result_json_is_strict(tmp_path, synthetic_frame, monkeypatch):
    from bayescale import forecasting
    from bayescale.batch import run_job
    from bayescale.manifest import read_manifest

    real = forecasting.forecast_table
    monkeypatch.setattr(forecasting, "forecast_table", lambda *a, **k: real(*a, **k).assign(loss_median=np.nan, loss_hi=np.inf))
    synthetic_frame.to_csv(tmp_path / "runs.csv", index=False)
    (tmp_path / "m.toml").write_text('[[job]]\nname = "j"\nruns = "runs.csv"\ndraws = 20\ntune = 20\nchains = 2\nforecast = [{ params = "7B", tokens = "140B" }]\n')
    (job,) = read_manifest(tmp_path / "m.toml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        row = run_job(job, tmp_path / "out")
    stored = strict((tmp_path / "out" / "jobs" / "j" / "result.json").read_text())["row"]
    assert stored == row  # what summary.csv gets, fresh or resumed
    assert row["forecast0_loss_median"] is None and "NaN" in row["forecast0_loss_median_reason"]
    assert row["forecast0_loss_hi"] is None and "infinite" in row["forecast0_loss_hi_reason"]


def test_report_embedded_data_is_strict(tmp_path, monkeypatch):
    from bayescale import report

    from .fakefit import fake_fit

    real = report._headline
    monkeypatch.setattr(report, "_headline", lambda *a: [dict(h, loss_hi=float("inf"), epochs=float("nan")) for h in real(*a)])
    html = report.render_report(fake_fit({"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}), tmp_path / "r.html", flops=[1e21]).read_text()
    (item,) = strict(re.search(r'id="headline-data">(.*?)</script>', html, re.S).group(1))
    assert item["loss_hi"] is None and item["loss_hi_reason"] and item["epochs"] is None and item["epochs_reason"]
