"""Intake edge cases found by review and by the property tests."""

from __future__ import annotations

import json

from conftest import ROOT, settle_cli
from builders import contract, holder, split, usage, work, write_inputs
from contracts.loading import load_inputs
from settlement.intake import Period
from settlement.run import settle

CLOCK = "2026-11-05T09:00:00Z"


def test_identical_resend_in_another_format_is_a_duplicate(tmp_path):
    """A re-send written as JSONL with "" and as CSV with empty cells is the same fact: a duplicate."""
    folder = write_inputs(tmp_path / "in", holders=[holder("a")], works=[work("W1")], splits=split("W1", {"a": "1"}),
                          contracts=[contract([{"id": "t", "type": "per_unit", "use_type": "train", "unit": "token",
                                                "rate": "1"}])],
                          usage_files={"a.jsonl": [usage("r1", "WORK:W1", 5)]})
    row = usage("r1", "WORK:W1", 5)
    header = ",".join(row)
    line = ",".join("" if value == "" else value for value in row.values())  # empty cells, not ""
    (folder / "usage" / "b.csv").write_text(f"{header}\n{line}\n", encoding="utf-8")
    assert json.loads((folder / "usage" / "a.jsonl").read_text())["territory"] == ""
    settled = settle(load_inputs(folder), Period.parse("2026-10"), CLOCK)
    counts = settled.accounting.select("accepted", "duplicates", "quarantined").sum().row(0)
    assert counts == (1, 1, 0)


def test_catalogue_without_splits_sends_money_to_suspense(tmp_path):
    """A header-only splits.csv loads, and every charged amount is held in suspense."""
    folder = write_inputs(tmp_path / "in", holders=[holder("a")], works=[work("W1")], splits=[],
                          contracts=[contract([{"id": "t", "type": "flat_fee", "amount": "10", "basis": "by_usage",
                                                "use_type": "train"}])],
                          usage_files={"u.csv": [usage("r1", "WORK:W1", 5)]})
    settled = settle(load_inputs(folder), Period.parse("2026-10"), CLOCK)
    assert settled.totals["EUR"]["charged"] == settled.totals["EUR"]["suspense"] == 1000


def test_usage_globs_replace_the_usage_folder(tmp_path):
    """`--usage` globs read logs from anywhere; names outside the input folder are shown as given."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "october.csv").write_bytes((ROOT / "fixtures" / "usage" / "quill-labs-2026-10-late.csv").read_bytes())
    done = settle_cli("run", "fixtures", "--period", "2026-10", "--out", str(tmp_path / "out"),
                      "--clock", CLOCK, "--quiet", "--usage", str(logs / "*.csv"))
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [f["file"] for f in summary["files"]] == [str(logs / "october.csv")]
