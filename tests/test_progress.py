"""A fit is never silent: phases and, without a terminal, plain sampling lines with draws/s and an ETA."""

from __future__ import annotations

import io
import sys
import warnings
from types import SimpleNamespace

from typer.testing import CliRunner

from bayescale.cli import app
from bayescale.progress import DrawsReporter, in_notebook, show_progress
from bayescale.resources import data_path


def _chains(done: int, total: int, tuning: bool = False, divergences: int = 0):
    return [SimpleNamespace(finished_draws=done, total_draws=total, tuning=tuning, divergences=divergences) for _ in range(2)]


def test_reporter_prints_at_most_every_interval_and_always_the_end():
    now = [0.0]
    out = io.StringIO()
    report = DrawsReporter("sampling", every=10.0, stream=out, clock=lambda: now[0])
    for t, done in [(1, 100), (5, 300), (11, 600), (15, 700), (22, 1000), (23, 1000)]:
        now[0] = float(t)
        report(_chains(done, 1000, tuning=done < 500, divergences=1))
    lines = out.getvalue().splitlines()
    assert len(lines) == 3  # t=1 (first), t=11 (10 s later), t=22 (finished), nothing more
    assert lines[0].startswith("bayescale: sampling: 200/2000 draws (2 of 2 chains tuning), 200 draws/s") and "about 9 s left" in lines[0]
    assert "2000/2000 draws" in lines[-1] and "left" not in lines[-1] and "2 divergences" in lines[-1]


def test_fit_without_a_terminal_says_what_it_does(tmp_path):
    out = tmp_path / "fit.nc"
    result = CliRunner().invoke(app, ["fit", str(data_path("chinchilla_figure4_runs.csv")), "--model", "chinchilla", "--draws", "100", "--tune", "100", "--chains", "2", "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = result.output
    for expected in ("bayescale: sampling 2 chains × (100 tuning + 100) draws", "400/400 draws", "draws/s", "bayescale: self-check: refitting", f"bayescale: saving {out}"):
        assert expected in text, f"missing {expected!r} in:\n{text}"
    quiet = CliRunner().invoke(
        app, ["fit", str(data_path("chinchilla_figure4_runs.csv")), "--model", "chinchilla", "--draws", "100", "--tune", "100", "--chains", "2", "-q", "--force", "-o", str(out)]
    )
    assert quiet.exit_code == 0 and "bayescale: " not in quiet.output


def _kernel(monkeypatch, shell):
    """Pretend IPython is imported and ``get_ipython()`` returns ``shell``."""
    monkeypatch.setitem(sys.modules, "IPython", SimpleNamespace(get_ipython=lambda: shell))


def test_notebook_detection_and_the_api_default(monkeypatch):
    assert not in_notebook() and show_progress(None) is False  # pytest, a plain interpreter: quiet
    _kernel(monkeypatch, SimpleNamespace(kernel=object()))  # a Jupyter kernel's shell
    assert in_notebook() and show_progress(None) is True and show_progress(False) is False
    _kernel(monkeypatch, SimpleNamespace())  # terminal IPython: no kernel
    assert not in_notebook() and show_progress(None) is False and show_progress(True) is True
    _kernel(monkeypatch, None)  # IPython imported, no shell running
    assert not in_notebook()


def test_api_fit_shows_progress_in_a_notebook_unless_told_not_to(synthetic_frame, monkeypatch, capsys):
    from bayescale import fit, progress, sampling

    small = {"draws": 20, "tune": 20, "chains": 2, "self_check": False}
    monkeypatch.setattr(sampling, "live_bar", lambda: False)  # plain lines, as on a log (nutpie's HTML bar needs a real kernel)
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit(synthetic_frame, "chinchilla", **small)
        shown = capsys.readouterr().err
        fit(synthetic_frame, "chinchilla", progress=False, **small)
        silenced = capsys.readouterr().err
        monkeypatch.setattr(progress, "in_notebook", lambda: False)
        fit(synthetic_frame, "chinchilla", **small)
        script = capsys.readouterr().err
    assert "bayescale: sampling 2 chains" in shown and "draws/s" in shown
    assert "bayescale: " not in silenced and "bayescale: " not in script
