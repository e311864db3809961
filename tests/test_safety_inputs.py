"""Run-table inputs (issue 19, issue 16's silent trap): read once and bounded, misreads and overflow refused, magnitudes checked."""

from __future__ import annotations

import contextlib
import os
import threading
import warnings

import numpy as np
import pandas as pd
import pytest

from bayescale import DataWarning, RunTableError, fit, load_runs
from bayescale.simulate import EPOCH_CHINCHILLA, grid_runs, simulate_runs
from bayescale.tables import _read_once


@pytest.fixture(scope="module")
def frame():
    return simulate_runs("chinchilla", EPOCH_CHINCHILLA, grid_runs(np.geomspace(5e7, 3e9, 4), np.geomspace(1e9, 8e10, 4)), seed=1)


def test_parquet_with_a_bytes_column(tmp_path, frame):
    good = frame.assign(dataset=[b"web"] * len(frame))
    good.to_parquet(tmp_path / "good.parquet")
    assert set(load_runs(tmp_path / "good.parquet").data["dataset"]) == {"web"}
    bad = frame.assign(dataset=[b"\xff\xfe"] * len(frame))
    bad.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(RunTableError, match=r"column 'dataset': binary value .* is not UTF-8"):
        load_runs(tmp_path / "bad.parquet")


def test_dev_zero_is_refused_without_reading():
    with pytest.raises(RunTableError, match="device or socket"):
        load_runs("/dev/zero")


def test_streams_are_bounded(tmp_path):
    fifo = tmp_path / "endless"
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "wb") as handle, contextlib.suppress(BrokenPipeError):
            handle.write(b"x" * 5000)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    with pytest.raises(RunTableError, match="larger than a run table may be"):
        _read_once(fifo, limit=1000)
    thread.join(timeout=10)


def test_fifo_is_read_once_and_does_not_hang(tmp_path, frame):
    fifo = tmp_path / "runs.csv"
    os.mkfifo(fifo)
    text = frame.to_csv(index=False)

    def feed():
        with open(fifo, "w") as handle:  # a second open by the reader would block forever
            handle.write(text)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    table = load_runs(fifo)
    thread.join(timeout=10)
    assert len(table) == len(frame)


def test_process_substitution(frame):
    """``bayescale fit <(cat runs.csv)``: the shell hands over /dev/fd/N, an anonymous pipe read once."""
    read, write = os.pipe()
    text = frame.to_csv(index=False).encode()

    def feed():
        with os.fdopen(write, "wb") as handle:
            handle.write(text)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    try:
        table = load_runs(f"/dev/fd/{read}")
    finally:
        os.close(read)
    thread.join(timeout=10)
    assert len(table) == len(frame)


@pytest.mark.parametrize(
    ("cell", "sep", "suffix"),
    [("5,00558", "\t", ".tsv"), ("6,7956e+09", ",", ".csv"), ("6,8B", ",", ".csv")],
)
def test_decimal_commas_are_errors_naming_the_cell(tmp_path, cell, sep, suffix):
    column = "loss" if cell.startswith("5") else "params"
    rows = {"params": ["1e8", "2e8", "4e8"], "tokens": ["2e9", "4e9", "8e9"], "loss": ["3.1", "3.0", "2.9"]}
    rows[column][1] = cell
    path = tmp_path / f"runs{suffix}"
    pd.DataFrame(rows).to_csv(path, sep=sep, index=False)
    with pytest.raises(RunTableError, match=rf"row 2 \(line 3\), column '{column}'.*decimals with a point"):
        load_runs(path)


def test_thousands_separators_still_read(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text('params,tokens,loss\n"100,000,000","2,000,000,000",3.1\n')
    table = load_runs(path)
    assert table.data.loc[0, "params"] == 1e8 and table.data.loc[0, "tokens"] == 2e9


@pytest.mark.parametrize("header", ['params,tokens,loss,"loss"', "params,tokens,loss, loss", "\ufeffparams,tokens,loss,\ufeffloss", 'params,tokens,"lo""ss",loss,loss'])
def test_duplicate_headers_however_hidden(tmp_path, header):
    path = tmp_path / "runs.csv"
    path.write_text(header + "\n1e8,2e9,3.1,3.2,3.3\n", encoding="utf-8")
    with pytest.raises(RunTableError, match="'loss' appears more than once"):
        load_runs(path)


def test_bom_header_is_read(tmp_path, frame):
    path = tmp_path / "runs.csv"
    path.write_bytes(b"\xef\xbb\xbf" + frame.to_csv(index=False).encode())
    assert len(load_runs(path)) == len(frame)


def test_overflowing_derived_flops_is_an_error():
    with pytest.raises(RunTableError, match="overflows"):
        load_runs(pd.DataFrame({"params": [1e307, 2e307, 3e307], "tokens": [1e9, 2e9, 3e9], "loss": [2.0, 2.1, 2.2]}))


def test_tokens_in_billions_without_a_unit_warns_and_strict_refuses(frame):
    """The silent trap: tokens written as 20 for 20B."""
    scaled = frame.assign(tokens=frame["tokens"] / 1e9)
    with pytest.warns(DataWarning, match="tokens outside the plausible range.*without a unit"):
        load_runs(scaled)
    with pytest.raises(RunTableError, match=r"tokens outside the plausible range.*strict mode"):
        load_runs(scaled, strict=True)
    with pytest.raises(RunTableError, match="strict mode"):
        fit(scaled, strict=True, draws=10, tune=10, chains=1)


@pytest.mark.parametrize(
    ("column", "factor", "match"),
    [("params", 1e-6, "params outside"), ("params", 1e6, "params outside"), ("flops", 5.0, "flops inconsistent")],
)
def test_other_magnitudes(frame, column, factor, match):
    bad = frame.copy()
    if column == "flops":
        bad["flops"] = 6 * bad["params"] * bad["tokens"] * factor
    else:
        bad[column] = bad[column] * factor
    with pytest.warns(DataWarning, match=match):
        load_runs(bad)
    with pytest.raises(RunTableError, match=match):
        load_runs(bad, strict=True)


def test_plausible_table_is_silent(frame):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_runs(frame, strict=True)
