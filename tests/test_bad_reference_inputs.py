"""Bad reference inputs and bad usage discovery: one clear error line, nothing silently ignored.

Each test breaks one thing in a folder that settles cleanly and runs the `settle` command
line in-process (typer's CliRunner): the run must stop with exit code 2 and one `error:`
line naming the file, the row (or YAML line), the field, the value and what was expected,
and no traceback. The rules are in docs/formats.md.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from builders import contract, holder, split, usage, work, write_inputs, write_usage
from contracts.loading import StrictYamlLoader, load_inputs
from settlement.cli import app

CLOCK = "2026-11-05T09:00:00Z"
TOKENS = {"id": "tokens", "type": "per_unit", "use_type": "train", "unit": "token", "rate": "0.40", "per": 1000}


def good_folder(folder: Path, **changes) -> Path:
    """A folder that settles cleanly; each test below breaks one thing in it."""
    spec = dict(holders=[holder("h1"), holder("h2")], works=[work("W1"), work("W2")],
                splits=split("W1", {"h1": "0.5", "h2": "0.5"}) + split("W2", {"h2": "1"}),
                contracts=[contract([TOKENS])], usage_files={"u.csv": [usage("r1", "WORK:W1", 1000)]})
    return write_inputs(folder, **(spec | changes))


def settle(folder: Path, out: Path, *usage_patterns: str):
    arguments = ["run", str(folder), "--period", "2026-10", "--out", str(out), "--clock", CLOCK, "--quiet"]
    for pattern in usage_patterns:
        arguments += ["--usage", pattern]
    return CliRunner().invoke(app, arguments)


def error_line(folder: Path, out: Path, *usage_patterns: str) -> str:
    """Run; expect exit 2, exactly one `error:` line, no traceback and no output; return the line."""
    result = settle(folder, out, *usage_patterns)
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.exception)
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert not out.exists()
    return lines[0]


def assert_parts(line: str, *parts: str) -> None:
    for part in parts:
        assert part in line, (part, line)


def rows_read_by_file(folder: Path, out: Path, *usage_patterns: str) -> dict[str, int]:
    result = settle(folder, out, *usage_patterns)
    assert result.exit_code == 0, (result.stderr, result.exception)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return {entry["file"]: entry["rows_read"] for entry in summary["files"]}


def line_of(path: Path, text: str) -> int:
    """The 1-based line of `path` that holds `text`."""
    return next(n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if text in line)


def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, (old, text)
    path.write_text(text.replace(old, new), encoding="utf-8")


# --- 1-3. YAML: impossible dates, where a syntax error is, keys given twice -----------------------

def test_an_impossible_date_in_a_contract_is_one_error_line_with_its_line(tmp_path):
    folder = good_folder(tmp_path / "in")
    path = folder / "contracts" / "C1.yaml"
    replace_in(path, "start: '2026-01-01'", "start: 2026-02-30")
    line = error_line(folder, tmp_path / "out")
    assert_parts(line, f"{path}: not valid YAML at line {line_of(path, '2026-02-30')}, column ",
                 "'2026-02-30' is not a date that exists (day is out of range for month)")


def test_an_impossible_date_in_the_policy_is_one_error_line(tmp_path):
    folder = good_folder(tmp_path / "in")
    (folder / "policy.yaml").write_text("society: S\nstart: 2026-02-30\ncommission: {train: '0'}\n", encoding="utf-8")
    line = error_line(folder, tmp_path / "out")
    assert_parts(line, f"{folder / 'policy.yaml'}: not valid YAML at line 2, column 8: '2026-02-30' is not a date")


def test_invalid_yaml_is_reported_with_its_line_and_column(tmp_path):
    folder = good_folder(tmp_path / "in")
    path = folder / "contracts" / "C1.yaml"
    replace_in(path, "licensor: Test Society", "licensor: Test: Society")
    line = error_line(folder, tmp_path / "out")
    assert_parts(line, f"{path}: not valid YAML at line {line_of(path, 'Test: Society')}, column 15: "
                       "mapping values are not allowed here")


def test_a_key_given_twice_in_a_contract_is_refused_naming_the_key_and_both_lines(tmp_path):
    folder = good_folder(tmp_path / "in")
    path = folder / "contracts" / "C1.yaml"
    text = path.read_text(encoding="utf-8")
    terms = text[text.index("terms:"):text.index("territories:")]  # safe_dump sorts keys
    path.write_text(text + terms.replace("'0.40'", "'0.50'"), encoding="utf-8")
    first, second = (n for n, line in enumerate(path.read_text().splitlines(), 1) if line.startswith("terms:"))
    line = error_line(folder, tmp_path / "out")
    assert_parts(line, f"{path}: not valid YAML at line {second}, column 1: key 'terms' is given twice "
                       f"(first at line {first})")


def test_a_key_given_twice_in_a_nested_mapping_is_refused(tmp_path):
    folder = good_folder(tmp_path / "in")
    (folder / "policy.yaml").write_text("society: S\ncommission:\n  train: '0.1'\n  train: '0.2'\n", encoding="utf-8")
    line = error_line(folder, tmp_path / "out")
    assert_parts(line, f"{folder / 'policy.yaml'}: not valid YAML at line 4, column 3: key 'train' is given twice "
                       "(first at line 3)")


def test_a_merged_mapping_may_override_what_it_merges_at_any_depth():
    """`<<:` merges are not keys given twice, even when the merged mapping merges another itself:
    the strict loader reads what PyYAML's safe loader reads."""
    text = ("defs:\n  a: &a\n    x: 1\n    y: 1\n  b: &b\n    <<: *a\n    x: 2\n"
            "c:\n  <<: *b\n  z: 3\n")
    assert yaml.load(text, Loader=StrictYamlLoader) == yaml.safe_load(text)


# --- 4. contracts/: .yml read, anything else refused ---------------------------------------------

def test_a_contract_saved_as_yml_is_read(tmp_path):
    folder = good_folder(tmp_path / "in")
    (folder / "contracts" / "C1.yaml").rename(folder / "contracts" / "C1.yml")
    (folder / "contracts" / ".gitkeep").write_text("", encoding="utf-8")  # hidden: not an input
    inputs = load_inputs(folder)
    assert [c.contract_id for c in inputs.contracts] == ["C1"]
    assert folder / "contracts" / "C1.yml" in inputs.reference_files


@pytest.mark.parametrize(("name", "problem"), [("C2.txt", "is not a contract file"),
                                               ("old", "is a folder")])
def test_anything_else_in_contracts_is_refused(name, problem, tmp_path):
    folder = good_folder(tmp_path / "in")
    extra = folder / "contracts" / name
    extra.mkdir() if name == "old" else extra.write_text("contract_id: C2\n", encoding="utf-8")
    line = error_line(folder, tmp_path / "out")
    assert_parts(line, f"{extra}: {problem}", "expected a contract file (*.yaml, *.yml, *.json)")


# --- 5. usage discovery: nothing in usage/ or named by --usage left unread unnoticed --------------

def make_symlink_to_nowhere(path: Path) -> None:
    path.symlink_to(path.parent / "gone.csv")


@pytest.mark.parametrize(("name", "problem"), [
    ("u2.txt", "is not a usage log by its name"),
    ("u2.json", "is not a usage log by its name"),
    ("u2.ndjson.gz", "is not a usage log by its name"),
    ("u2.JSONL", "is not a usage log by its name"),  # intake picks JSON Lines by the lower-case name only
    ("link.csv", "is a broken link"),
    ("x.csv/notes.txt", "is not a usage log by its name"),  # inside a folder named like a log
])
def test_a_file_in_usage_that_is_not_a_usage_log_is_refused(name, problem, tmp_path):
    folder = good_folder(tmp_path / "in")
    path = folder / "usage" / name
    path.parent.mkdir(exist_ok=True)
    make_symlink_to_nowhere(path) if name == "link.csv" else path.write_text("record_id\n", encoding="utf-8")
    line = error_line(folder, tmp_path / "out")
    assert_parts(line, f"{path}: {problem}", "expected a usage log named *.csv, *.csv.gz, *.csv.zst (any case), "
                                             "*.jsonl, *.ndjson or *.parquet (lower case)")


def test_upper_case_csv_names_and_folders_in_usage_are_read_and_hidden_files_skipped(tmp_path):
    folder = good_folder(tmp_path / "in")
    write_usage(folder / "usage" / "U2.CSV", [usage("r2", "WORK:W1", 10), usage("r3", "WORK:W2", 10)])
    (folder / "usage" / "x.csv").mkdir()
    write_usage(folder / "usage" / "x.csv" / "part-0.csv", [usage("r4", "WORK:W1", 10)])
    (folder / "usage" / ".DS_Store").write_bytes(b"\0\1")
    (folder / "usage" / "x.csv" / "_SUCCESS").write_bytes(b"")  # Spark's marker beside its parts
    assert rows_read_by_file(folder, tmp_path / "out") == {"usage/U2.CSV": 2, "usage/u.csv": 1,
                                                           "usage/x.csv/part-0.csv": 1}


def logs_outside(tmp_path: Path) -> Path:
    logs = tmp_path / "logs"
    (logs / "deep").mkdir(parents=True)
    write_usage(logs / "a.csv", [usage("a1", "WORK:W1", 10)])
    write_usage(logs / "deep" / "b.jsonl", [usage("b1", "WORK:W1", 10), usage("b2", "WORK:W2", 10)])
    return logs


@pytest.mark.parametrize("nothing", ["{logs}/*.parquet", "{logs}/nowhere", "{logs}/deep/*.txt", "{empty}"],
                         ids=["matches-nothing", "no-such-path", "only-unknown-suffix", "empty-folder"])
def test_a_usage_pattern_naming_no_log_is_refused_even_beside_one_that_does(nothing, tmp_path):
    logs = logs_outside(tmp_path)
    (logs / "deep" / "notes.txt").write_text("hello\n", encoding="utf-8")
    (tmp_path / "empty").mkdir()
    folder = good_folder(tmp_path / "in")
    pattern = nothing.format(logs=logs, empty=tmp_path / "empty")
    line = error_line(folder, tmp_path / "out", str(logs / "*.csv"), pattern)
    if "txt" in pattern:  # the file it matches is named, with the pattern
        assert_parts(line, f"{logs / 'deep' / 'notes.txt'}: named by --usage {pattern!r}, is not a usage log")
    else:
        assert_parts(line, f"error: {pattern}: --usage pattern names no usage log; expected a usage log named")


def test_a_usage_folder_is_read_recursively_and_a_file_named_twice_is_read_once(tmp_path, monkeypatch):
    logs = logs_outside(tmp_path)
    folder = good_folder(tmp_path / "in")
    monkeypatch.chdir(tmp_path)
    files = rows_read_by_file(folder, tmp_path / "out", "logs/a.csv", str(logs / "a.csv"), str(logs))
    # a.csv three times, read once, and named by its path in the folder its patterns start from
    assert files == {"a.csv": 1, "deep/b.jsonl": 2}


# --- 6-7. ids and revenue keys given twice -------------------------------------------------------

def test_a_holder_id_given_twice_is_refused_at_its_second_row(tmp_path):
    folder = good_folder(tmp_path / "in", holders=[holder("h1"), holder("h2"), holder("h1", name="Other")])
    line = error_line(folder, tmp_path / "out")
    assert_parts(line, f"{folder / 'holders.csv'}, row 3: field 'holder_id' = 'h1': given twice (first at row 1); "
                       "expected each holder_id once")


def test_a_licensee_id_given_twice_is_refused_at_its_second_row(tmp_path):
    folder = good_folder(tmp_path / "in")
    (folder / "licensees.csv").write_text("licensee_id,name,country\nai,AI Firm,US\nai,Other,SE\n", encoding="utf-8")
    line = error_line(folder, tmp_path / "out")
    assert_parts(line, f"{folder / 'licensees.csv'}, row 2: field 'licensee_id' = 'ai': given twice (first at row 1)")


def test_revenue_reported_twice_for_one_contract_and_period_is_refused(tmp_path):
    report = {"licensee_id": "ai", "contract_id": "C1", "period": "2026-10", "amount": "100.00", "currency": "EUR"}
    folder = good_folder(tmp_path / "in", revenue=[report, report | {"period": "2026-09"}, report | {"amount": "5"}])
    line = error_line(folder, tmp_path / "out")
    assert_parts(line, f"{folder / 'revenue.csv'}, row 3: field 'licensee_id, contract_id, period' = "
                       "'ai, C1, 2026-10': given twice (first at row 1); "
                       "expected one report per licensee, contract and period")


@pytest.mark.parametrize(("change", "fragment"), [
    ({"licensee_id": "bi"}, "row 1: field 'licensee_id' = 'bi': not the contract's licensee; expected ai (contract C1)"),
    ({"currency": "USD"}, "row 1: field 'currency' = 'USD': revenue currency differs from the contract's; "
                          "expected EUR (contract C1)"),
], ids=["another-licensee", "another-currency"])
def test_a_revenue_report_that_matches_no_contract_of_its_licensee_is_refused_at_its_row(change, fragment, tmp_path):
    """A report its contract would not use (its revenue share then charged 0 with a warning) is refused when read."""
    report = {"licensee_id": "ai", "contract_id": "C1", "period": "2026-10", "amount": "100.00", "currency": "EUR"}
    folder = good_folder(tmp_path / "in", revenue=[report | change])
    assert_parts(error_line(folder, tmp_path / "out"), f"{folder / 'revenue.csv'}, {fragment}")


# --- 8. a repertoire's works are catalogue works -------------------------------------------------

def test_a_repertoire_listing_an_unknown_work_is_refused(tmp_path):
    folder = good_folder(tmp_path / "in", contracts=[contract([TOKENS], repertoire={"works": ["W1", "NOPE-1"]})])
    line = error_line(folder, tmp_path / "out")
    assert_parts(line, f"{folder / 'contracts' / 'C1.yaml'}: field 'repertoire.works.1' = 'NOPE-1': unknown work; "
                       "expected a work_id of works.csv")


# --- 9. errors name the real file and the row ----------------------------------------------------

def test_an_unknown_holder_in_splits_is_named_with_its_row(tmp_path):
    splits = split("W2", {"h2": "1"}) + split("W1", {"h1": "0.5", "H999": "0.5"})
    folder = good_folder(tmp_path / "in", splits=splits)
    line = error_line(folder, tmp_path / "out")
    assert_parts(line, f"{folder / 'splits.csv'}, row 3: field 'holder_id' = 'H999': unknown holder; "
                       "expected a holder_id of holders.csv")


def test_an_unknown_payout_currency_is_named_with_its_file_and_row(tmp_path):
    folder = good_folder(tmp_path / "in", holders=[holder("h1"), holder("h2", payout_currency="XYZ")])
    line = error_line(folder, tmp_path / "out")
    assert_parts(line, f"error: {folder / 'holders.csv'}, row 2: field 'payout_currency' = 'XYZ': unknown currency")


def test_an_unknown_threshold_currency_is_named_with_the_policy_file(tmp_path):
    folder = good_folder(tmp_path / "in")
    policy = yaml.safe_load((folder / "policy.yaml").read_text()) | {"thresholds": {"XYZ": "10"}}
    (folder / "policy.yaml").unlink()
    (folder / "policy.json").write_text(json.dumps(policy), encoding="utf-8")
    line = error_line(folder, tmp_path / "out")
    assert_parts(line, f"error: {folder / 'policy.json'}: field 'thresholds' = 'XYZ': unknown currency")


# --- 10. a use type the policy gives no commission rate: none (documented, kept) -----------------

def test_a_use_type_missing_from_the_commission_mapping_loads_with_no_commission(tmp_path):
    """docs/formats.md: a use type left out of `commission` is charged no commission (rate 0)."""
    folder = good_folder(tmp_path / "in", policy={"society": "S", "commission": {"output": "0.5"}})
    assert dict(load_inputs(folder).policy.commission) == {"output": Fraction(1, 2)}
    formats = (Path(__file__).resolve().parent.parent / "docs" / "formats.md").read_text(encoding="utf-8")
    assert "a use type not listed here is charged no commission" in formats
