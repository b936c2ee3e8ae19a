"""Bad input, table-driven and in order of precedence.

Two kinds of bad input, two kinds of answer:

- a wrong reference file (contract, catalogue, splits...) aborts the run: the
  CLI prints one `error:` line naming file, row or field, value and what was
  expected, exits 2, and shows no traceback;
- a wrong usage row is data, not an error: the run succeeds and the row is
  quarantined with a reason code (law 3, nothing lost), and every row read is
  accounted for.

Each table lists its cases in the order the engine checks them; the
precedence tests stack a case's fault on top of every later case's fault and
expect the earlier one to be reported.
"""

from __future__ import annotations

import csv
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from builders import contract, holder, split, usage, work, write_csv, write_inputs
from settlement.intake import REQUIRED_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
SETTLE = ROOT / ".venv" / "bin" / "settle"
CLOCK = "2026-11-05T09:00:00Z"
ROW_FATES = ("accepted", "duplicates", "quarantined", "suspense", "unlicensed")
SPLIT_COLUMNS = ["work_id", "right", "holder_id", "share", "valid_from", "valid_to"]
USAGE_COLUMNS = list(usage("r", "WORK:x", 1))
ISWC = "ISWC:T-034.524.680-1"  # a valid ISWC (check digit 1)


def settle_cli(folder: Path, out: Path, subcommand: str = "run") -> subprocess.CompletedProcess:
    command = [str(SETTLE), subcommand, str(folder), "--period", "2026-10", "--out", str(out), "--clock", CLOCK]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)


def assert_one_error_line(result: subprocess.CompletedProcess) -> str:
    """Exit 2, exactly one `error:` line on stderr, no traceback; return the line."""
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


# --- reference files: the run is refused -------------------------------------------------------------

def good_folder(folder: Path) -> Path:
    """A folder that settles cleanly; each case below breaks one thing in it."""
    return write_inputs(
        folder,
        holders=[holder("h1"), holder("h2")],
        works=[work("W1", identifiers=ISWC), work("W2")],
        splits=split("W1", {"h1": "0.5", "h2": "0.5"}) + split("W2", {"h2": "1"}),
        contracts=[contract([{"id": "tokens", "type": "per_unit", "use_type": "train", "unit": "token",
                              "rate": "0.40", "per": 1000}])],
        usage_files={"u.csv": [usage("r1", "WORK:W1", 1000)]})


def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, (old, text)
    path.write_text(text.replace(old, new), encoding="utf-8")


def float_rate(folder: Path) -> None:
    replace_in(folder / "contracts" / "C1.yaml", "rate: '0.40'", "rate: 0.40")


def unknown_currency(folder: Path) -> None:
    replace_in(folder / "contracts" / "C1.yaml", "currency: EUR", "currency: XYZ")


def work_id_too_long(folder: Path) -> None:
    text = (folder / "works.csv").read_text(encoding="utf-8")
    assert "\nW2," in text
    (folder / "works.csv").write_text(text.replace("\nW2,", "\n" + "W" * 129 + ","), encoding="utf-8")


def bad_iswc_check_digit(folder: Path) -> None:
    replace_in(folder / "works.csv", "T-034.524.680-1", "T-034.524.680-2")


def splits_short_of_one(folder: Path) -> None:
    write_csv(folder / "splits.csv", split("W1", {"h1": "0.5", "h2": "0.4999"}) + split("W2", {"h2": "1"}),
              SPLIT_COLUMNS)


def holder_twice(folder: Path) -> None:
    write_csv(folder / "splits.csv", split("W2", {"h2": "1"}) + split("W1", {"h1": "0.5"}) * 2, SPLIT_COLUMNS)


def rights_mixed(folder: Path) -> None:
    write_csv(folder / "splits.csv", split("W2", {"h2": "1"}) + split("W1", {"h1": "0.5"})
              + split("W1", {"h2": "0.5"}, right="recording"), SPLIT_COLUMNS)


def split_ends_before_it_starts(folder: Path) -> None:
    write_csv(folder / "splits.csv", split("W2", {"h2": "1"}) + split("W1", {"h1": "1"}, valid_to="2019-12-31"),
              SPLIT_COLUMNS)


def split_versions_overlap(folder: Path) -> None:
    write_csv(folder / "splits.csv", split("W2", {"h2": "1"}) + split("W1", {"h1": "1"})
              + split("W1", {"h2": "1"}, valid_from="2026-10-16"), SPLIT_COLUMNS)


@dataclass(frozen=True)
class ReferenceCase:
    name: str
    fault: Callable[[Path], None]
    file: str                  # the file the message must name
    fragments: tuple[str, ...]  # row/field, value and expectation, as the message words them


# In the order load_inputs reads and checks: contracts (parsed, then currencies), works, splits.
REFERENCE_CASES = [
    ReferenceCase("float rate", float_rate, "contracts/C1.yaml",
                  ("field 'terms.0.per_unit.rate'", "= 0.4", "is a float", "write exact numbers as strings")),
    ReferenceCase("unknown currency", unknown_currency, "contracts/C1.yaml",
                  ("field 'currency'", "= 'XYZ'", "unknown currency", "expected an ISO 4217 code")),
    ReferenceCase("work id of 129 characters", work_id_too_long, "works.csv",
                  ("row 2", "field 'work_id'", "WWWW", "expected a catalogue work id: 1-128 characters, no spaces")),
    ReferenceCase("ISWC check digit", bad_iswc_check_digit, "works.csv",
                  ("row 1", "field 'identifiers'", "= 'ISWC:T-034.524.680-2'", "invalid_iswc",
                   "expected an ISWC like T-034.524.680-1 with a valid check digit")),
    ReferenceCase("splits sum to 0.9999", splits_short_of_one, "splits.csv",
                  ("row 1", "field 'share'", "work W1", "sum to 0.9999", "expected shares summing to exactly 1")),
]
# Each rewrites splits.csv, so they are not stacked in the precedence test.
SPLIT_VERSION_CASES = [
    ReferenceCase("holder twice in a version", holder_twice, "splits.csv",
                  ("row 2", "field 'holder_id'", "holder listed twice", "expected each holder once per split version")),
    ReferenceCase("version mixes rights", rights_mixed, "splits.csv",
                  ("row 2", "field 'right'", "mixes rights", "expected one right per split version")),
    ReferenceCase("version ends before it starts", split_ends_before_it_starts, "splits.csv",
                  ("row 2", "field 'valid_to'", "2019-12-31", "expected a date after valid_from")),
    ReferenceCase("versions overlap", split_versions_overlap, "splits.csv",
                  ("row 2", "field 'valid_to'", "split versions overlap", "expected versions of one work that do not overlap")),
]


@pytest.mark.parametrize("case", REFERENCE_CASES + SPLIT_VERSION_CASES, ids=lambda c: c.name)
def test_reference_error_is_one_line_naming_where_and_what(case, tmp_path):
    """A bad reference file stops the run with one `error:` line naming file, field, value and expectation."""
    folder = good_folder(tmp_path / "in")
    case.fault(folder)
    line = assert_one_error_line(settle_cli(folder, tmp_path / "out"))
    assert str(folder / case.file) in line
    for fragment in case.fragments:
        assert fragment in line, (fragment, line)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("index", range(len(REFERENCE_CASES)), ids=[c.name for c in REFERENCE_CASES])
def test_reference_errors_are_reported_in_order_of_precedence(index, tmp_path):
    """With this case's fault and every later case's fault present, this case's error is the one reported."""
    folder = good_folder(tmp_path / "in")
    for case in REFERENCE_CASES[index:]:
        case.fault(folder)
    expected = REFERENCE_CASES[index]
    line = assert_one_error_line(settle_cli(folder, tmp_path / "out"))
    assert str(folder / expected.file) in line
    for fragment in expected.fragments:
        assert fragment in line, (fragment, line)


@pytest.mark.parametrize(("option", "value", "fragment"), [
    ("--period", "2026-13", "--period '2026-13': expected a month such as 2026-10"),
    ("--period", "[/b]", "--period '[/b]': expected a month such as 2026-10"),
    ("--clock", "2026-11-05 09:00", "--clock '2026-11-05 09:00': expected a UTC time"),
    ("--clock", "2026-02-30T09:00:00Z", "--clock '2026-02-30T09:00:00Z': expected a UTC time"),
    ("--clock", "2026-11-05T24:00:60Z", "--clock '2026-11-05T24:00:60Z': expected a UTC time"),
], ids=["month-13", "markup-like-period", "clock-without-T-and-Z", "clock-february-30", "clock-hour-24"])
def test_bad_command_line_option_is_one_error_line(option, value, fragment, tmp_path):
    """A malformed --period or --clock is refused with one `error:` line quoting it as given."""
    arguments = {"--period": "2026-10", "--clock": CLOCK, option: value}
    command = [str(SETTLE), "run", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
               *(part for pair in arguments.items() for part in pair)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert fragment in assert_one_error_line(result)


def test_error_line_shows_a_value_with_brackets_verbatim(tmp_path):
    """A value that looks like console markup is shown as written, not interpreted (nor crashing the CLI)."""
    folder = good_folder(tmp_path / "in")
    (folder / "licensees.csv").write_text("licensee_id,name,country\nai,AI Firm,[/b]\n", encoding="utf-8")
    line = assert_one_error_line(settle_cli(folder, tmp_path / "out"))
    assert str(folder / "licensees.csv") in line
    assert "row 1" in line and "field 'country'" in line and "'[/b]'" in line


def test_an_output_folder_that_cannot_be_made_is_one_error_line(tmp_path):
    """A system error (here --out under a regular file; a full disk takes the same way) stops
    the run with one `error:` line naming the path, not a traceback."""
    folder = good_folder(tmp_path / "in")
    (tmp_path / "a-file").write_text("not a folder\n", encoding="utf-8")
    out = tmp_path / "a-file" / "out"
    line = assert_one_error_line(settle_cli(folder, out))
    assert "the run stopped on a system error" in line and "Not a directory" in line, line
    assert str(out) in line and "delete it before running again" in line, line


@pytest.mark.parametrize("case", [REFERENCE_CASES[0], REFERENCE_CASES[-1], SPLIT_VERSION_CASES[-1]],
                         ids=lambda c: c.name)
def test_a_preview_refuses_bad_reference_files_with_the_runs_error_line(case, tmp_path):
    """`settle preview` reads the inputs as `settle run` does (law 7): the same fault gives
    the same one `error:` line, and no output folder."""
    folder = good_folder(tmp_path / "in")
    case.fault(folder)
    run_line = assert_one_error_line(settle_cli(folder, tmp_path / "out"))
    assert assert_one_error_line(settle_cli(folder, tmp_path / "out", "preview")) == run_line
    assert not (tmp_path / "out").exists()


def test_a_preview_does_not_clear_a_folder_that_is_not_an_output_folder(tmp_path):
    """Like a run, a preview refuses to empty a folder without a manifest.json, and then
    writes into it once it is an earlier preview's."""
    folder = good_folder(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n", encoding="utf-8")
    line = assert_one_error_line(settle_cli(folder, out, "preview"))
    assert "output folder is not empty" in line and (out / "notes.txt").exists()
    (out / "notes.txt").unlink()
    for _ in range(2):
        done = settle_cli(folder, out, "preview")
        assert done.returncode == 0, done.stderr
    assert sorted(path.name for path in out.iterdir()) == [
        "invoices", "manifest.json", "quarantine.csv", "summary.json", "unlicensed.csv"]


def test_an_output_folder_that_is_a_file_is_refused_before_the_run(tmp_path):
    """--out naming a file is the user's mistake, not a system error: one `error:` line, the
    file left as it was."""
    folder = good_folder(tmp_path / "in")
    out = tmp_path / "a-file"
    out.write_text("mine\n", encoding="utf-8")
    line = assert_one_error_line(settle_cli(folder, out))
    assert str(out) in line and "the output folder is a file" in line, line
    assert out.read_text(encoding="utf-8") == "mine\n"


def test_an_output_folder_that_is_a_link_is_refused_before_the_run(tmp_path):
    """An export empties its folder by deleting it, which a link does not allow: refused at once,
    not after the month is settled."""
    folder = good_folder(tmp_path / "in")
    (tmp_path / "real").mkdir()
    out = tmp_path / "link"
    out.symlink_to(tmp_path / "real")
    line = assert_one_error_line(settle_cli(folder, out))
    assert str(out) in line and "the output folder is a link" in line, line


def test_a_long_value_before_a_broken_row_does_not_hide_it(tmp_path):
    """The row finder reads values of any length, as polars does (Python's csv module stops at
    128 KiB by default): the broken row is named, not the long one, and no traceback."""
    folder = good_folder(tmp_path / "in")
    log = next((folder / "usage").glob("*.csv"))
    header = log.read_bytes().split(b"\n", 1)[0]
    long_row = b"g8,ai," + b"m" * 200_000 + b",WORK:W1,train,100,token,2026-10-10T12:00:00Z,,,\n"
    log.write_bytes(header + b"\n" + long_row + b"g9,ai,m1,WORK:W1,train,100,token,2026-10-10T12:00:00Z,,,,extra\n")
    line = assert_one_error_line(settle_cli(folder, tmp_path / "out"))
    assert "row 2: 12 fields where the header names 11" in line, line


def test_a_preview_does_not_replace_a_runs_outputs(tmp_path):
    """A preview into a settlement run's output folder is refused, leaving the run's
    statements and lines as they were; a run may replace a preview's folder."""
    folder = good_folder(tmp_path / "in")
    out = tmp_path / "out"
    assert settle_cli(folder, out).returncode == 0
    before = sorted(path.relative_to(out) for path in out.rglob("*"))
    line = assert_one_error_line(settle_cli(folder, out, "preview"))
    assert str(out) in line and "holds a settlement run's outputs" in line, line
    assert sorted(path.relative_to(out) for path in out.rglob("*")) == before
    previewed = tmp_path / "previewed"
    assert settle_cli(folder, previewed, "preview").returncode == 0
    assert settle_cli(folder, previewed).returncode == 0
    assert (previewed / "lines.csv").exists()


@pytest.mark.parametrize(("tail", "fragment"), [
    (b"g9,ai,m1,WORK:W1,train,100,token,2026-10-10T12:00:00Z,,,,extra\n",
     "row 2: 12 fields where the header names 11 (extra: 'extra')"),
    (b'g9,ai,"m1,WORK:W1,train,100,token,2026-10-10T12:00:00Z,,,\n', "row 2: field 'model_id' = '\"m1,WORK:W1"),
    (b"g\xf69,ai,m1,WORK:W1,train,100,token,2026-10-10T12:00:00Z,,,\n",
     "row 2: field 'record_id' = b'g\\xf69': not UTF-8 text"),
], ids=["more-fields-than-the-header", "quote-left-open", "not-utf-8"])
def test_a_usage_csv_that_cannot_be_parsed_is_refused_with_where_it_breaks(tail, fragment, tmp_path):
    """A CSV usage file that is not CSV at some row (polars refuses the whole file) is one
    `error:` line naming the file and the row, field and value where it breaks, not only the
    parser's words (the reference tables' message: contracts/csv_faults.py)."""
    folder = good_folder(tmp_path / "in")
    log = next((folder / "usage").glob("*.csv"))
    header = log.read_bytes().split(b"\n", 1)[0]
    log.write_bytes(header + b"\n" + b"g8,ai,m1,WORK:W1,train,100,token,2026-10-10T12:00:00Z,,,\n" + tail)
    line = assert_one_error_line(settle_cli(folder, tmp_path / "out"))
    assert f"usage/{log.name}, " in line and fragment in line, line


# --- usage rows: quarantined, counted, never lost ---------------------------------------------------

def good(record_id: str, **fields) -> dict:
    return usage(record_id, "WORK:W1", 100, **fields)


@dataclass(frozen=True)
class UsageCase:
    name: str
    file: str
    rows: list[dict] | None     # None: the file is written by `raw` instead
    bad: list[tuple[int, str, str, str]]  # (row, reason, field, value) of each quarantined row
    raw: str | None = None


ALL_REQUIRED = ",".join(REQUIRED_COLUMNS)  # what a file with none of the log's columns lacks

# In the order intake checks a row: missing column, missing field, licensee, use type, unit, units,
# timestamp, period, territory, attribution, work_ref; then re-sends, then attribution per output.
USAGE_CASES = [
    UsageCase("missing column", "01-missing-column.csv", None,
              [(1, "missing_column", "-", "units"), (2, "missing_column", "-", "units")],
              raw="record_id,licensee_id,model_id,work_ref,use_type,unit,occurred_at\n"
                  "mc1,ai,m1,WORK:W1,train,token,2026-10-10T12:00:00Z\n"
                  "mc2,ai,m1,WORK:W1,train,token,2026-10-11T12:00:00Z\n"),
    UsageCase("none of the log's columns", "01-none-of-the-columns.csv", None,  # rows kept, never dropped
              [(1, "missing_column", "-", ALL_REQUIRED), (2, "missing_column", "-", ALL_REQUIRED)],
              raw="row,amount\n7,12\n8,13\n"),
    UsageCase("unknown licensee", "02-unknown-licensee.csv",
              [good("ul1"), good("ul2", licensee_id="nobody")],
              [(2, "unknown_licensee", "licensee_id", "nobody")]),
    UsageCase("unknown use type", "03-unknown-use-type.csv",
              [good("ut1"), good("ut2", use_type="summarise")],
              [(2, "invalid_use_type", "use_type", "summarise")]),
    UsageCase("negative units", "04-negative-units.csv",
              [good("nu1"), usage("nu2", "WORK:W1", "-5")],
              [(2, "negative_units", "units", "-5")]),
    UsageCase("units not a number", "05-units-abc.csv",
              [good("ua1"), usage("ua2", "WORK:W1", "abc")],
              [(2, "invalid_units", "units", "abc")]),
    UsageCase("units not an integer", "06-units-decimal.csv",
              [good("ud1"), usage("ud2", "WORK:W1", "12.5")],
              [(2, "invalid_units", "units", "12.5")]),
    UsageCase("day 32", "07-timestamp-day-32.csv",
              [good("td1"), good("td2", occurred_at="2026-10-32T10:00:00Z")],
              [(2, "invalid_timestamp", "occurred_at", "2026-10-32T10:00:00Z")]),
    UsageCase("no timezone", "08-timestamp-no-zone.csv",
              [good("tz1"), good("tz2", occurred_at="2026-10-10T10:00:00")],
              [(2, "invalid_timestamp", "occurred_at", "2026-10-10T10:00:00")]),
    UsageCase("empty file", "09-empty.csv", None, [], raw=""),
    UsageCase("header only", "10-header-only.csv", [], []),
    UsageCase("conflicting re-send", "11-resend.csv",
              [good("rs1"), good("rs1"), usage("rs1", "WORK:W1", 101), good("rs2"), good("rs2")],
              [(1, "conflicting_resend", "record_id", "rs1"), (2, "conflicting_resend", "record_id", "rs1"),
               (3, "conflicting_resend", "record_id", "rs1")]),
    UsageCase("attribution over one", "12-attribution.csv",
              [usage("at1", "WORK:W1", 1, use_type="output", unit="output", output_id="o1", attribution="0.6"),
               usage("at2", "WORK:W2", 1, use_type="output", unit="output", output_id="o1", attribution="0.5"),
               usage("at3", "WORK:W1", 1, use_type="output", unit="output", output_id="o2", attribution="0.5")],
              [(1, "attribution_over_one", "attribution", "shares of output o1 sum to 1.1"),
               (2, "attribution_over_one", "attribution", "shares of output o1 sum to 1.1")]),
    UsageCase("faults stacked on one row each, earliest wins", "13-precedence.csv",
              [usage("p1", "ISWC:T-034.524.680-2", "-5", licensee_id="nobody", use_type="summarise",
                     model_id="", occurred_at="2026-10-32T10:00:00Z"),
               usage("p2", "ISWC:T-034.524.680-2", "-5", licensee_id="nobody", use_type="summarise",
                     occurred_at="2026-10-32T10:00:00Z"),
               usage("p3", "ISWC:T-034.524.680-2", "-5", use_type="summarise", occurred_at="2026-10-32T10:00:00Z"),
               usage("p4", "ISWC:T-034.524.680-2", "-5", occurred_at="2026-10-32T10:00:00Z"),
               usage("p5", "ISWC:T-034.524.680-2", "12.5", occurred_at="2026-10-32T10:00:00Z"),
               usage("p6", "ISWC:T-034.524.680-2", 7, occurred_at="2026-10-32T10:00:00Z"),
               usage("p7", "ISWC:T-034.524.680-2", 7, occurred_at="2026-11-01T00:00:00Z"),
               usage("p8", "ISWC:T-034.524.680-2", 7)],
              [(1, "missing_field", "model_id", ""),
               (2, "unknown_licensee", "licensee_id", "nobody"),
               (3, "invalid_use_type", "use_type", "summarise"),
               (4, "negative_units", "units", "-5"),
               (5, "invalid_units", "units", "12.5"),
               (6, "invalid_timestamp", "occurred_at", "2026-10-32T10:00:00Z"),
               (7, "outside_period", "occurred_at", "2026-11-01T00:00:00Z"),
               (8, "invalid_iswc", "work_ref", "ISWC:T-034.524.680-2")]),
]


@dataclass(frozen=True)
class UsageRun:
    result: subprocess.CompletedProcess
    summary: dict
    quarantine: list[dict[str, str]]

    def file_counts(self, file: str) -> dict:
        (entry,) = [e for e in self.summary["files"] if e["file"] == f"usage/{file}"]
        return entry

    def quarantined(self, file: str) -> list[dict[str, str]]:
        return [row for row in self.quarantine if row["file"] == f"usage/{file}"]


@pytest.fixture(scope="module")
def usage_run(tmp_path_factory) -> UsageRun:
    """One run over one file per usage case (record ids differ per file, so files do not interact)."""
    folder = tmp_path_factory.mktemp("usage") / "in"
    contracts = [contract([{"id": "tokens", "type": "per_unit", "use_type": "train", "unit": "token",
                            "rate": "0.01"},
                           {"id": "outputs", "type": "per_unit", "use_type": "output", "unit": "output",
                            "rate": "0.01"}], use_types=["train", "output"])]
    write_inputs(folder, holders=[holder("h1")], works=[work("W1"), work("W2")],
                 splits=split("W1", {"h1": "1"}) + split("W2", {"h1": "1"}), contracts=contracts,
                 usage_files={case.file: case.rows for case in USAGE_CASES if case.rows is not None})
    for case in USAGE_CASES:
        if case.raw is not None:
            (folder / "usage" / case.file).write_text(case.raw, encoding="utf-8")
    out = folder.parent / "out"
    result = settle_cli(folder, out)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    with (out / "quarantine.csv").open(encoding="utf-8", newline="") as handle:
        quarantine = list(csv.DictReader(handle))
    return UsageRun(result, summary, quarantine)


def rows_written(case: UsageCase) -> int:
    if case.rows is not None:
        return len(case.rows)
    return max(0, len(case.raw.splitlines()) - 1)


@pytest.mark.parametrize("case", USAGE_CASES, ids=lambda c: c.name)
def test_bad_usage_rows_are_quarantined_with_their_reason(case, usage_run):
    """Each bad row is quarantined with its reason code, field and value, and every row read is accounted for."""
    quarantined = usage_run.quarantined(case.file)
    # A missing column has no field of its own to name (the engine says `_missing`): not pinned.
    shown = [(int(r["row"]), r["reason"], r["field"] if r["reason"] != "missing_column" else "-", r["value"])
             for r in quarantined]
    assert shown == case.bad
    assert all(r["expected"] for r in quarantined), quarantined
    counts = usage_run.file_counts(case.file)
    assert counts["rows_read"] == rows_written(case)
    assert counts["quarantined"] == len(case.bad)
    assert counts["rows_read"] == sum(counts[fate] for fate in ROW_FATES), counts


def test_usage_run_accounts_for_every_row(usage_run):
    """Over all files, rows read = accepted + duplicates + quarantined + suspense + unlicensed."""
    rows = usage_run.summary["rows"]
    assert rows["rows_read"] == sum(rows_written(case) for case in USAGE_CASES)
    assert rows["rows_read"] == sum(rows[fate] for fate in ROW_FATES), rows
    assert rows["quarantined"] == len(usage_run.quarantine) == sum(len(case.bad) for case in USAGE_CASES)
    assert rows["duplicates"] == 1  # the identical re-send of rs2 (rs1's copies differ: all quarantined)
    # Only the good rows are charged: 8 train rows × 100 tokens × 0.01 = 8.00, plus output at3 1 × 0.01.
    assert rows["accepted"] == 9
    assert usage_run.summary["currencies"]["EUR"]["charged"] == "8.01"
    assert usage_run.result.stderr == ""


def test_empty_and_header_only_files_read_no_rows(usage_run):
    """A 0-byte usage file and a header-only one are read as zero rows, not refused."""
    for file in ("09-empty.csv", "10-header-only.csv"):
        assert usage_run.file_counts(file) == {"file": f"usage/{file}", "rows_read": 0, "accepted": 0,
                                               "duplicates": 0, "quarantined": 0, "suspense": 0, "unlicensed": 0}
