"""One figure of a fit by kind (``Fit.plot``, ``figures.save_figure``): the report's drawing code, per level."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from bayescale.errors import BayescaleError
from bayescale.figures import KINDS, figure, save_figure
from bayescale.groups import requests_or_every_level


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_draws_a_figure_with_data(chinchilla_fit, kind):
    fig = chinchilla_fit.plot(kind)
    try:
        axes = [ax for ax in fig.axes if ax.get_visible()]
        assert axes, f"{kind}: no visible axes"
        assert any(ax.lines or ax.collections or ax.patches for ax in axes), f"{kind}: nothing drawn"
    finally:
        plt.close(fig)


def test_grouped_fit_gets_a_panel_per_level_and_a_new_group(grouped_fit):
    levels = sorted(grouped_fit.runs.data["dataset"].astype(str).unique())
    panels = requests_or_every_level(grouped_fit, None, False)
    assert [values for _, values, new in panels if not new] == [{"dataset": level} for level in levels]
    assert panels[-1][2] is True
    fig = figure(grouped_fit, "allocation")
    try:
        titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
        assert len(titles) == len(levels) + 1
        assert all(any(f"dataset={level}" in t for t in titles) for level in levels)
        assert "new, unseen" in titles[-1]
    finally:
        plt.close(fig)


def test_a_named_level_gives_one_panel(grouped_fit):
    level = str(grouped_fit.runs.data["dataset"].iloc[0])
    fig = figure(grouped_fit, "forecast", group_values={"dataset": level})
    try:
        assert len([ax for ax in fig.axes if ax.get_visible()]) == 1
    finally:
        plt.close(fig)


@pytest.mark.parametrize(("suffix", "magic"), [(".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_save_figure_writes_the_format_of_the_suffix(chinchilla_fit, tmp_path, suffix, magic):
    path = save_figure(chinchilla_fit.plot("fit"), tmp_path / f"fig{suffix}")
    assert path.read_bytes().startswith(magic)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"fig{suffix}"]  # no temporary left


def test_bad_kind_and_suffix_are_refused_clearly(chinchilla_fit, tmp_path):
    with pytest.raises(BayescaleError, match="unknown figure kind 'frontier'; kinds: fit, isoflop"):
        chinchilla_fit.plot("frontier")
    fig = chinchilla_fit.plot("fit")
    with pytest.raises(BayescaleError, match=r"end the file name in \.png, \.svg, \.pdf"):
        save_figure(fig, tmp_path / "fig.jpeg")
    assert not list(tmp_path.iterdir())


def test_plot_command_writes_the_figure_and_refuses_bad_requests(saved_fit_path, tmp_path):
    from typer.testing import CliRunner

    from bayescale.cli import app

    runner = CliRunner()
    out = tmp_path / "frontier.svg"
    done = runner.invoke(app, ["plot", str(saved_fit_path), "--kind", "allocation", "--flops", "1e22", "1e23", "-o", str(out)])
    assert done.exit_code == 0, done.output
    assert out.read_bytes().startswith(b"<?xml")
    bad_kind = runner.invoke(app, ["plot", str(saved_fit_path), "--kind", "frontier", "-o", str(tmp_path / "x.png")])
    assert bad_kind.exit_code != 0 and "choose one of fit, isoflop" in bad_kind.output
    bad_suffix = runner.invoke(app, ["plot", str(saved_fit_path), "-o", str(tmp_path / "x.jpg")])
    assert bad_suffix.exit_code != 0 and ".png, .svg, .pdf" in bad_suffix.output
    onto_fit = runner.invoke(app, ["plot", str(saved_fit_path), "-o", str(saved_fit_path)])
    assert onto_fit.exit_code == 2
