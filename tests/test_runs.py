"""Run tables: every validation rule raises a RunTableError naming file, row, column and value."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from bayescale import BayescaleError, DataWarning, RunTableError, load_runs
from bayescale.resources import data_path


def write(tmp_path, text, name="runs.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_embedded_tables_load():
    chin = load_runs(data_path("chinchilla_figure4_runs.csv"))
    assert len(chin) == 245
    np.testing.assert_allclose(chin.column("epochs"), 1.0)
    c4 = load_runs(data_path("datablations_c4_runs.csv"))
    assert len(c4) == 296 and c4.column("epochs").max() > 100
    assert "run" in c4.extra_columns


def test_units_and_derived_columns():
    table = load_runs(
        pd.DataFrame({"params": ["70M", "1.5B", "1B"], "tokens": ["1.4T", "30B", "2e10"], "loss": [3.0, 2.5, "2.6"], "unique_tokens": ["1.4T", "10B", "2e10"], "dataset": ["a", "b", "a"]})
    )
    np.testing.assert_allclose(table.column("params"), [7e7, 1.5e9, 1e9])
    np.testing.assert_allclose(table.column("flops"), 6 * table.column("params") * table.column("tokens"))
    np.testing.assert_allclose(table.column("epochs"), [1.0, 3.0, 1.0])
    assert list(table.column("dataset")) == ["a", "b", "a"]


def test_column_mapping(tmp_path):
    path = write(tmp_path, "Model Size,Tokens Seen,Final Loss\n1e8,2e9,3.1\n")
    table = load_runs(path, columns={"params": "Model Size", "tokens": "Tokens Seen", "loss": "Final Loss"})
    assert table.column("params")[0] == 1e8
    with pytest.raises(RunTableError, match="no column 'Size'"):
        load_runs(path, columns={"params": "Size"})


def test_where_selects_rows():
    path = data_path("datablations_c4_runs.csv")
    published = load_runs(path, where={"published_fit": "TRUE"})
    assert len(published) == 182  # the runs of Muennighoff et al.'s published fit
    assert len(load_runs(path, where={"published_fit": "false"})) == 296 - 182
    with pytest.raises(RunTableError, match="cannot select rows by column 'paper'"):
        load_runs(path, where={"paper": "true"})
    with pytest.raises(RunTableError, match=r"'published_fit=yes' matches none of the 296 runs \(values present: false, true\)"):
        load_runs(path, where={"published_fit": "yes"})


def test_drop_highest_loss():
    frame = pd.DataFrame({"params": [1e8, 2e8, 3e8, 4e8], "tokens": [1e9] * 4, "loss": [3.0, 5.0, 2.0, 4.0]})
    assert sorted(load_runs(frame, drop_highest_loss=2).column("loss")) == [2.0, 3.0]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("params,tokens\n1e8,1e9\n", r"missing required column\(s\) 'loss'"),
        ("params,tokens,loss\n1e8,1e9,\n", r"row 1 \(line 2\), column 'loss': empty or NaN"),
        ("params,tokens,loss\n1e8,1e9,3\n1e8,1e9,nan\n", r"row 2 \(line 3\), column 'loss': empty or NaN"),
        ("params,tokens,loss\n1e8,0,3\n", r"row 1 \(line 2\), column 'tokens': value '0' must be > 0"),
        ("params,tokens,loss\n-5,1e9,3\n", r"column 'params': value '-5' must be > 0"),
        ("params,tokens,loss\n1e8,lots,3\n", r"column 'tokens': cannot read 'lots' as a number"),
        ("params,tokens,loss\n1e8,1e9,inf\n", r"column 'loss': value 'inf' is not finite"),
        ("params,tokens,loss,unique_tokens\n1e8,1e9,3,2e9\n", r"tokens=1e\+09 is less than unique_tokens=2e\+09"),
        ("params,tokens,loss\n", r"has no rows"),
        ("params,tokens,loss,loss\n1,2,3,4\n", r"column 'loss' appears more than once"),
        ("params,tokens,loss,arch\n1e8,1e9,3,transformer\n", r"column 'arch': 'transformer' is not one of dense, moe"),
        ("params,tokens,loss,arch,experts\n1e8,1e9,3,moe,1\n", r"MoE run needs at least 2 experts"),
        ("params,tokens,loss,active_params\n1e8,1e9,3,2e8\n", r"active_params.*exceeds params"),
    ],
)
def test_bad_tables(tmp_path, text, match):
    path = write(tmp_path, text)
    with pytest.raises(RunTableError, match=match) as info:
        load_runs(path)
    assert str(path) in str(info.value)


def test_unreadable_files(tmp_path):
    with pytest.raises(RunTableError, match="no such file"):
        load_runs(tmp_path / "missing.csv")
    with pytest.raises(RunTableError, match="empty"):
        load_runs(write(tmp_path, ""))
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\x00\x01\x02params")
    with pytest.raises(RunTableError, match="binary"):
        load_runs(binary)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("params,tokens,loss,note\n1e8,1e9,3,caf\xe9\n".encode("latin-1"))
    with pytest.raises(RunTableError, match="not UTF-8"):
        load_runs(latin)
    with pytest.raises(RunTableError, match="is a folder"):
        load_runs(tmp_path)
    with pytest.raises(RunTableError, match="cannot read a run table from a list"):
        load_runs([1, 2, 3])


def test_flops_inconsistent_warns():
    frame = pd.DataFrame({"params": [1e8, 2e8], "tokens": [1e9, 1e9], "loss": [3.0, 2.9], "flops": [6e17, 4e18]})
    with pytest.warns(DataWarning, match=r"1 run\(s\) have flops inconsistent.*row 2"):
        table = load_runs(frame)
    assert table.column("flops")[1] == 4e18
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_runs(frame.iloc[:1])


def test_parquet_round_trip(tmp_path):
    frame = pd.DataFrame({"params": [1e8, 2e8], "tokens": [1e9, 2e9], "loss": [3.0, 2.9]})
    frame.to_parquet(tmp_path / "runs.parquet")
    assert len(load_runs(tmp_path / "runs.parquet")) == 2


def test_content_hash_ignores_source(tmp_path):
    frame = pd.DataFrame({"params": [1e8, 2e8], "tokens": [1e9, 2e9], "loss": [3.0, 2.9]})
    frame.to_csv(tmp_path / "a.csv", index=False)
    assert load_runs(tmp_path / "a.csv").content_hash() == load_runs(frame).content_hash()


def _gflops_frame(header: str = "flops") -> pd.DataFrame:
    n, d = np.array([1e8, 4e8, 1.6e9]), np.array([2e9, 8e9, 3.2e10])
    return pd.DataFrame({"params": n, "tokens": d, "loss": [3.2, 2.9, 2.6], header: 6 * n * d / 1e9})


def test_flops_in_gflops_is_refused_naming_the_row_and_the_unit():
    with pytest.raises(RunTableError, match=r"row 1, flops: 1.2e\+09 FLOPs is 1e-09 × 6·params·tokens = 1.2e\+18 \(3 of 3 runs .*looks like GFLOPs: pass --flops-unit GFLOPs") as info:
        load_runs(_gflops_frame())
    assert "\n" not in str(info.value)
    table = load_runs(_gflops_frame(), flops_unit="GFLOP")
    np.testing.assert_allclose(table.column("flops"), 6 * table.column("params") * table.column("tokens"))
    with pytest.raises(RunTableError, match="--flops-unit: unknown FLOP unit 'furlongs'; use one of FLOPs, GFLOPs"):
        load_runs(_gflops_frame(), flops_unit="furlongs")


def test_flops_far_off_with_no_unit_explaining_it_is_refused():
    frame = _gflops_frame()
    frame["flops"] = 6 * frame["params"] * frame["tokens"] * 37
    with pytest.raises(RunTableError, match="no FLOP unit explains it"):
        load_runs(frame)


@pytest.mark.parametrize(("header", "unit"), [("total_gflops", "GFLOPs"), ("flops (GFLOPs)", "GFLOPs")])
def test_unit_named_headers_are_converted_saying_so(header, unit):
    with pytest.warns(DataWarning, match=rf"column '{re.escape(header)}' is in {unit} \(its name says so\): converted to FLOPs"):
        table = load_runs(_gflops_frame(header))
    np.testing.assert_allclose(table.column("flops"), 6 * table.column("params") * table.column("tokens"))
    assert header not in table.data.columns


def test_pf_days_and_mapped_unit_headers():
    frame = _gflops_frame()
    frame["compute (PF-days)"] = frame.pop("flops") * 1e9 / 8.64e19
    with pytest.warns(DataWarning, match="in PF-days"):
        assert load_runs(frame).column("flops")[0] == pytest.approx(1.2e18)
    frame["throughput/total_tflops"] = 1.0  # not the compute: a throughput stays an ordinary column
    frame = frame.rename(columns={"compute (PF-days)": "c"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = load_runs(frame.drop(columns="c"))
    assert "throughput/total_tflops" in table.data.columns


def test_moe_flops_agree_with_active_params():
    n, active, d = np.array([8e9, 1.6e10]), np.array([1e9, 2e9]), np.array([2e10, 4e10])
    frame = pd.DataFrame({"params": n, "tokens": d, "loss": [2.8, 2.6], "arch": "moe", "experts": 8, "active_params": active, "flops": 6 * active * d})
    assert load_runs(frame).column("flops").tolist() == (6 * active * d).tolist()


def _runs(**extra):
    frame = pd.DataFrame({"params": [1e8, 2e8, 4e8, 8e8], "tokens": [2e9, 4e9, 8e9, 1.6e10], "loss": [3.4, 3.1, 2.9, 2.7]})
    return frame.assign(**extra)


@pytest.mark.parametrize(
    ("loss", "message"),
    [
        ([3.4, 3.1, 45.0, 2.7], r"row 3, column 'loss': 45 is outside the plausible 0.01..20 nats .*1 of 4 runs.*a percentage or an accuracy in %"),
        ([3.4, 3.1, 2.566e9, 2.7], r"row 3, column 'loss': 2.566e\+09 .*a count, a perplexity or a value with a unit suffix"),
        ([3.4, 0.001, 2.9, 2.7], r"row 2, column 'loss': 0.001 is outside"),
        ([2.5, 2.5, 2.5, 2.5], r"column 'loss': all 4 runs have the same loss 2.5; a fit needs losses that vary"),
        (["3.4", "3.1", "n/a", "2.7"], r"row 3, column 'loss': cannot read 'n/a' as a number"),
    ],
)
def test_implausible_losses_are_refused_in_one_line(loss, message):
    with pytest.raises(RunTableError, match=message) as info:
        load_runs(_runs(loss=loss))
    assert "\n" not in str(info.value)


def test_no_spread_left_by_the_filters_says_so():
    with pytest.raises(RunTableError, match="all 2 runs after the row filters have the same loss"):
        load_runs(_runs(loss=[3.0, 3.0, 2.9, 2.7]), where="params<=2e8")


def test_an_epochs_column_gives_unique_tokens():
    table = load_runs(_runs(epochs=[1, 2, 4, 8]))
    np.testing.assert_allclose(table.column("unique_tokens"), [2e9, 2e9, 2e9, 2e9])
    assert len(load_runs(_runs(epochs=[1, 2, 4, 8]), max_epochs=4)) == 3
    with pytest.raises(RunTableError, match=r"row 2, column 'epochs': 0.5 is below 1"):
        load_runs(_runs(epochs=[1, 0.5, 4, 8]))
    with pytest.raises(RunTableError, match=r"row 1, column 'epochs': 3 disagrees with tokens / unique_tokens = 1"):
        load_runs(_runs(epochs=[3, 1, 1, 1], unique_tokens=[2e9, 4e9, 8e9, 1.6e10]))


def test_multiindex_columns_are_refused():
    frame = _runs()
    frame.columns = pd.MultiIndex.from_tuples([("run", c) for c in frame.columns])
    with pytest.raises(RunTableError, match=r"the columns are a 2-level MultiIndex.*flatten them first"):
        load_runs(frame)


def test_blank_group_cells_are_refused_naming_the_rows():
    from bayescale.modeldesign import design
    from bayescale.spec import load_spec

    table = load_runs(_runs(dataset=["web", " ", "code", ""]))
    with pytest.raises(RunTableError, match=r"grouping column 'dataset' is blank in 2 run\(s\) \(row\(s\) 2, 4 of the fitted table\)"):
        design(load_spec("chinchilla"), table, ["dataset"])


def test_forecast_targets_group_values_per_target_and_collisions():
    """``group_values`` gives one level per target (each validated); target columns that collide with the fit's groups are refused."""
    from bayescale.forecasting import forecast_summary

    from .fakefit import fake_grouped_fit

    truth = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
    fit = fake_grouped_fit(truth, {"RPJ": truth, "web": {**truth, "E": 1.55}}, chains=1, draws=20)
    both = forecast_summary(fit, params=[1e9, 1e9], tokens=[2e10, 2e10], group_values={"dataset": ["rpj", "web"]})
    assert both["dataset"].tolist() == ["RPJ", "web"]
    assert both["loss_median"].iloc[0] - both["loss_median"].iloc[1] == pytest.approx(0.14, abs=1e-6)
    with pytest.raises(BayescaleError, match="nonesuch"):
        forecast_summary(fit, params=[1e9, 1e9], tokens=[2e10, 2e10], group_values={"dataset": ["rpj", "nonesuch"]})
    with pytest.raises(RunTableError, match=r"gives 3 levels for 2 targets"):
        forecast_summary(fit, params=[1e9, 1e9], tokens=[2e10, 2e10], group_values={"dataset": ["rpj", "web", "web"]})
    with pytest.raises(RunTableError, match="target column 'Dataset' collides with the fit's group 'dataset'"):
        forecast_summary(fit, pd.DataFrame({"params": [1e9], "tokens": [2e10], "Dataset": ["web"]}))
    with pytest.raises(RunTableError, match="the targets have a column 'new_group'"):
        forecast_summary(fit, pd.DataFrame({"params": [1e9], "tokens": [2e10], "dataset": ["web"], "new_group": [False]}))


def test_identifiability_asks_only_for_the_inputs_a_law_needs_varied():
    """ScaleBench's MoE runs share one token count: the moe proxy law and the routed law fit them
    (moe saying its data term then rests on the priors), Chinchilla still refuses them."""
    from bayescale.modeldesign import design
    from bayescale.spec import load_spec

    runs = load_runs(data_path("scalebench_moe_runs.csv"), where={"split": "train"})
    with pytest.warns(DataWarning, match=r"every run has tokens = 1\.3e\+11; for the moe law its data term .* rests on the priors"):
        moe = design(load_spec("moe"), runs, ["arch"])
    assert np.ptp(moe.x["tokens"]) == 0 and np.ptp(moe.x["active_params"]) > 3
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        routed = design(load_spec("routed"), runs)  # no token input: nothing to say
    assert set(routed.x) == {"active_params", "experts"}
    with pytest.raises(RunTableError, match="column 'tokens' has only 1 distinct value"):
        design(load_spec("chinchilla"), runs)
