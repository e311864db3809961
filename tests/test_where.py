"""``--where`` row conditions: parsed, never evaluated; numbers compared as numbers; one documented order."""

import pandas as pd
import pytest

from bayescale.errors import RunTableError
from bayescale.resources import data_path
from bayescale.runs import load_runs
from bayescale.where import parse_conditions

CHINCHILLA = data_path("chinchilla_figure4_runs.csv")


def _frame():
    return pd.DataFrame(
        {
            "params": [1e8, 5e8, 1e9, 2e9, 4e9, 245106000.0],
            "tokens": [2e9, 1e10, 2e10, 4e10, 8e10, 5e9],
            "loss": [3.5, 3.1, 2.9, 2.7, 2.6, 3.3],
            "arch": ["dense"] * 6,
            "dataset": ["web", "code", "Web", "books", "code", "a,b"],
            "lr": ["1e-3", "3e-4", "1e-3", "3e-4", "1e-4", "1e-3"],
        }
    )


@pytest.mark.parametrize(
    ("text", "column", "op", "value"),
    [("params<=1e9", "params", "<=", "1e9"), ("params >= 70M", "params", ">=", "70M"), ("arch!=moe", "arch", "!=", "moe"), ("loss<3", "loss", "<", "3"), ("x='a b'", "x", "=", "a b")],
)
def test_operators_are_parsed_not_read_into_the_column(text, column, op, value):
    (condition,) = parse_conditions([text], ["params", "arch", "loss", "x"])
    assert (condition.column, condition.op, condition.values) == (column, op, (value,))


def test_a_column_name_holding_an_operator_character_is_preferred():
    (condition,) = parse_conditions(["a<b=1"], ["a<b", "x"])
    assert (condition.column, condition.op) == ("a<b", "=")


def test_inequalities_keep_exactly_the_runs_on_their_side():
    table = load_runs(CHINCHILLA, where="params<=1e9")
    full = load_runs(CHINCHILLA)
    assert len(table) == int((full.column("params") <= 1e9).sum()) > 0
    assert len(load_runs(CHINCHILLA, where=["params>1e9"])) == len(full) - len(table)
    assert len(load_runs(_frame(), where=["params<1e9"])) == 3
    assert len(load_runs(_frame(), where=["params>=1e9", "params<4e9"])) == 2  # conditions on one column with other operators: AND


def test_numbers_match_as_printed():
    frame = _frame()
    assert load_runs(frame, where=["params=2.45106e+08"]).column("params").tolist() == [245106000.0]
    assert len(load_runs(frame, where=["params=245.106M"])) == 1
    assert len(load_runs(frame, where=["params!=2.45106e+08"])) == 5
    assert len(load_runs(frame, where=["lr=0.001"])) == 3  # a text column whose cells are all numbers compares as numbers


def test_lists_and_repeats_are_or_and_text_ignores_case():
    frame = _frame()
    assert len(load_runs(frame, where=["dataset=web,code"])) == 4
    assert len(load_runs(frame, where=["dataset=web", "dataset=books"])) == 3
    assert len(load_runs(frame, where={"dataset": ["web", "books"]})) == 3
    assert len(load_runs(frame, where=["dataset!=web,code"])) == 2
    assert len(load_runs(frame, where=["dataset=a,b"])) == 1  # the whole text is a level: not split
    assert len(load_runs(frame, where=["params=1e8,2e9"])) == 2


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (["parms<=1e9"], r"cannot select rows by column 'parms': no such column; did you mean 'params'\?"),
        (["dataset<web"], "column 'dataset' is text, and < compares numbers"),
        (["params<=big"], "column 'params' holds numbers and 'big' is not one"),
        (["params<1e8,2e8"], "< takes one value, not a list"),
        (["params<1e3"], r"'params<1e3' matches none of the 6 runs \(column 'params' ranges 1e\+08..4e\+09\)"),
        (["dataset=web", "params>3e9"], "no run matches every --where condition together .*dataset=web matches 2; params>3e9 matches 1"),
        (["dataset"], "expected COLUMN OP VALUE"),
        (["=web"], "expected COLUMN OP VALUE"),
    ],
)
def test_bad_conditions_give_one_clear_line(where, message):
    with pytest.raises(RunTableError, match=message) as info:
        load_runs(_frame(), where=where)
    assert "\n" not in str(info.value)


def test_filter_order_is_where_then_drop_then_max_epochs():
    frame = _frame()
    table = load_runs(frame, where=["dataset=code,books"], drop_highest_loss=1)
    assert sorted(table.column("loss")) == [2.6, 2.7]  # dropped the highest loss among the kept runs (3.1), not the table's (3.5)
    assert table.selection["read"] == 6
    assert [(s["filter"], s["kept"]) for s in table.selection["steps"]] == [("where", 3), ("drop_highest_loss", 2)]
    assert load_runs(frame).selection == {}


def test_a_fit_shows_its_selection_in_summary_and_json():
    from dataclasses import replace

    from bayescale.cli.formatting import Format, format_summary
    from bayescale.documents import FitInfo

    from .fakefit import fake_fit

    steps = [{"filter": "where", "rule": "params<=1e9", "kept": 120}, {"filter": "drop_highest_loss", "value": 5, "kept": 115}]
    fit = replace(fake_fit({"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}), info=FitInfo(selection={"read": 273, "steps": steps}))
    line = "runs: 273 runs read; where params<=1e9: 120 kept; drop 5 highest-loss: 115 kept"
    assert fit.selection_sentence() == line
    assert line in format_summary(fit, 0.9, Format.table)
    assert fit.summary_dict()["selection"]["steps"][0]["rule"] == "params<=1e9"
