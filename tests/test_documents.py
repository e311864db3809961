"""The typed fit documents keep the JSON field names users read, and read every format-2 file."""

from __future__ import annotations

import json

from bayescale.documents import FitInfo, SelfCheck, Uncentering

#: ``info`` and ``self_check`` as main wrote them before the documents were typed (format 2).
STORED_INFO = {
    "seconds": 1.5,
    "draws": 300,
    "tune": 300,
    "chains": 2,
    "target_accept": 0.9,
    "adaptation": "diag",
    "pooled": ["E", "A"],
    "centered": ["E"],
    "centering": "auto",
    "created": "2026-01-01T00:00:00Z",
    "command": "bayescale fit runs.csv",
    "recentred": {"params": ["A"], "divergences": 7},
}
STORED_CHECK = {
    "extrapolation": 3.2,
    "median_abs_log_error": 0.01,
    "coverage_90": 1.0,
    "n_test": 3,
    "coverage_50": 0.6666666666666666,
    "n_train": 9,
    "covered_90": 3,
    "cutoff_flops": 1e20,
    "converged": True,
    "log_error": [0.01, -0.02, 0.0],
    "sd": [0.02, 0.02, 0.03],
    "distance": [0.0, 0.5, 1.0],
    "split": "compute",
    "seconds": 0.7,
}


def test_info_round_trips_with_the_stored_json_keys():
    info = FitInfo.from_dict(json.loads(json.dumps(STORED_INFO)))
    assert info.uncentered == Uncentering(("A",), 7) and info.centered == ("E",)
    assert info.to_dict() == STORED_INFO  # same keys (``recentred`` included), same values
    assert FitInfo.from_dict({}) == FitInfo() and FitInfo().to_dict() == {}  # hand-built fits record nothing


def test_self_check_round_trips_and_skipped_documents_keep_the_headline_keys():
    check = SelfCheck.from_dict(STORED_CHECK)
    assert check.to_dict() == STORED_CHECK and check.ran and check.residuals()[2] == (0.0, 0.5, 1.0)
    skipped = SelfCheck.skip("too few runs")
    assert skipped.to_dict() == {"extrapolation": None, "median_abs_log_error": None, "coverage_90": None, "n_test": None, "skipped": "too few runs"}
    assert SelfCheck.from_dict(skipped.to_dict()) == skipped and skipped.residuals() == ((), (), ())


def test_older_self_check_without_the_count_still_reads():
    older = {k: v for k, v in STORED_CHECK.items() if k != "covered_90"}
    assert SelfCheck.from_dict(older).held_out_covered() == 3
