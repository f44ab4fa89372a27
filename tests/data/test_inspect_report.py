"""Tests of posetransfer.data.inspect_report: the findings model and its text, without a dataset."""

from __future__ import annotations

import json

from posetransfer.data.inspect_report import (
    Finding,
    InspectReport,
    SplitCounts,
    format_report,
    severity_of,
)


def _report() -> InspectReport:
    report = InspectReport("/data/x", "patn", {"train": SplitCounts(3, 3, 2, 3, None, None)})
    report.findings += [
        Finding("missing_image", severity_of("missing_image"), "train", "a.jpg: gone", "a.jpg"),
        Finding("self_pair", severity_of("self_pair"), "train", "pair a -> a"),
        Finding("missing_image", "error", "train", "b.jpg: gone"),
    ]
    return report


def test_severity_of_a_kind() -> None:
    assert severity_of("self_pair") == "warning"
    assert severity_of("missing_image") == "error"
    assert severity_of("a_kind_nobody_knows") == "error"


def test_errors_warnings_and_json() -> None:
    report = _report()
    assert [f.kind for f in report.errors] == ["missing_image", "missing_image"]
    assert [f.kind for f in report.warnings] == ["self_pair"]
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is False and data["num_errors"] == 2 and data["num_warnings"] == 1
    assert data["kinds"] == {"missing_image": 2, "self_pair": 1}
    assert data["counts"]["train"]["flows_found"] is None


def test_format_report_table_and_findings() -> None:
    text = format_report(_report(), max_listed=1)
    lines = text.splitlines()
    assert lines[0] == "dataset: /data/x (layout: patn)"
    assert lines[2].split() == ["split", "images", "poses", "pairs", "pair", "images", "flows",
                                "no", "flow"]  # fmt: skip
    assert lines[3].split() == ["train", "3", "3", "2", "3", "-", "-"]
    assert "  missing_image: 2" in lines and "    [train] a.jpg: gone" in lines
    assert "    ... and 1 more" in lines
    assert lines[-1] == "FAILED: 2 error(s), 1 warning(s)"
    clean = InspectReport("/data/y", None)
    assert format_report(clean).splitlines()[-1] == "OK: no errors, 0 warning(s)"
