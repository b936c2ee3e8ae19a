"""Check (`settle check`): a run's invariants, from its output files alone. Each forged
run below is consistent with its manifest (the files re-pinned, as a forger would), so
only the invariant it breaks can find it."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT, settle_cli
from contracts.loading import load_inputs
from settlement.check import check
from settlement.exports import export
from settlement.intake import Period
from settlement.run import settle

CLOCK = "2026-11-05T09:00:00Z"
FIXTURES = ROOT / "fixtures"


@pytest.fixture(scope="module")
def run_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "out"
    with settle(load_inputs(FIXTURES), Period.parse("2026-10"), CLOCK) as settlement:
        export(settlement, out)
    return out


def forged(run_out: Path, tmp_path: Path, name: str, line: int, old: str, new: str) -> Path:
    """A copy of the run with `old` replaced by `new` on line `line` (from 1) of file `name`,
    and the manifest re-pinned to match."""
    out = tmp_path / "forged"
    shutil.copytree(run_out, out)
    path = out / name
    lines = path.read_text(encoding="utf-8").split("\n")
    assert old in lines[line - 1], lines[line - 1]
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    path.write_text("\n".join(lines), encoding="utf-8")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    for entry in manifest["outputs"]:
        if entry["path"] == name:
            entry["sha256"], entry["bytes"] = hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return out


def failed(out: Path) -> list[str]:
    return check(out)[1].failed


def test_every_invariant_of_the_sample_month_holds(run_out):
    pinned, findings = check(run_out)
    assert findings.failed == [] and findings.broken == 0
    assert [line.split(":")[0].split(" (")[0] for line in findings.passed] == [
        "every output file is the one manifest.json pins",
        "every amount written with its currency's digits, no line missing a key or an amount",
        "lines.csv and lines.parquet hold the same 1321 lines", "invoices", "level 1", "level 2",
        "suspense.csv holds level 1's suspense parts, key by key",
        "net = gross − commission − withholding on every line, none negative", "statements",
        "conservation, as summary.json states it", "summary.json's counts are the files'", "rows"]
    assert "EUR: charged 70000.00 = payable 59843.34 + carried forward 21.00 + commission 6943.22 + withholding " \
           "2132.09 + suspense 1060.35" in findings.passed[9]


def test_summary_counts_that_are_not_the_files_are_found(run_out, tmp_path):
    summary = (run_out / "summary.json").read_text(encoding="utf-8").split("\n")
    line = next(i for i, text in enumerate(summary, start=1) if text.strip().startswith('"lines"'))
    assert failed(forged(run_out, tmp_path, "summary.json", line, "1321", "1322")) == [
        "summary.json counts 1322 lines, lines.parquet holds 1321"]


def test_a_term_whose_parts_do_not_sum_to_its_charge_breaks_level_one_and_two(run_out, tmp_path):
    out = forged(run_out, tmp_path, "allocations.csv", 2, "88.89", "88.90")
    problems = failed(out)
    assert [p.split(":")[0] for p in problems] == ["level 1", "level 2"]
    assert problems[0].endswith("(1): contract_id=MUSIC-AI-2026, term_id=fixed-fee, currency=EUR, charged=1200000, "
                                "currency_parts=EUR, parts=1200001")
    assert problems[1].endswith("(1): contract_id=MUSIC-AI-2026, work_id=W000001, use_type=train, "
                                "split_version=2020-01-01, currency=EUR, level1=61658, gross=61657")


def test_a_cent_moved_between_two_suspense_keys_is_found(run_out, tmp_path):
    out = forged(run_out, tmp_path, "suspense.csv", 2, ",53.58", ",53.57")
    out = forged(out, tmp_path / "again", "suspense.csv", 3, ",4.02", ",4.03")
    problems = failed(out)
    assert len(problems) == 1 and problems[0].startswith(
        "suspense: keys whose amount in suspense.csv is not their level-1 suspense parts' (minor units) (2): ")


def test_suspense_raised_by_a_cent_breaks_conservation(run_out, tmp_path):
    out = forged(run_out, tmp_path, "suspense.csv", 2, ",53.58", ",53.59")
    problems = failed(out)
    assert problems[1:] == [
        "conservation does not hold: EUR: charged 70000.00 = payable 59843.34 + carried forward 21.00 + commission "
        "6943.22 + withholding 2132.09 + suspense 1060.36 = 70000.01",
        "EUR: suspense 1060.35 in summary.json, 1060.36 in the files"]


def test_amounts_not_written_with_the_currencys_digits_are_found(run_out, tmp_path):
    out = forged(run_out, tmp_path, "lines.csv", 2, ",12.43,1.24,0.00,11.19", ",124.3,12.4,0.00,111.9")
    problems = failed(out)
    assert problems[0].startswith("lines.csv: amounts not written with their currency's digits (1): ")
    assert problems[1] == "lines.csv (1321 lines) and lines.parquet (1321 lines) do not hold the same lines"


def test_a_statement_line_of_another_work_is_found(run_out, tmp_path):
    """The statement's count and sums stay as they were: only its lines, compared one by one, show it."""
    out = forged(run_out, tmp_path, "statements/H009.csv", 2, "W000001", "W000199")
    problems = failed(out)
    assert problems == ["statements: holders whose statement does not list exactly their lines of lines.parquet "
                        "(lines and net in minor units, there and on the statement) (1): holder_id=H009, currency=EUR, "
                        "lines=17, lines_statement=17, net=124184, net_statement=124184"]


def test_statements_whose_rows_are_not_their_line_counts_are_read_one_by_one(run_out, tmp_path):
    """A title with a quoted line end, or a last line without one, and the batch is parsed file by file."""
    from settlement.check import statement_rows

    folder = tmp_path / "statements"
    shutil.copytree(run_out / "statements", folder)
    paths = tuple(sorted(folder.glob("*.csv"))[:5])
    expected = statement_rows(paths).collect()
    rows = pl.read_csv(paths[0], infer_schema=False)
    title = rows["title"][0]
    rows.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit(title[:3] + "\n" + title[3:]))
                      .otherwise(pl.col("title")).alias("title")).write_csv(paths[0], line_terminator="\n")
    read = statement_rows(paths).collect()
    assert read.height == expected.height and read["holder_id"].to_list() == expected["holder_id"].to_list()
    assert read["title"].to_list()[0] == title[:3] + "\n" + title[3:]
    paths[1].write_bytes(paths[1].read_bytes().rstrip(b"\n"))  # its last row would run into the next file's first
    assert statement_rows(paths).collect().height == expected.height


def test_a_statement_paying_what_it_should_carry_forward_is_found(run_out, tmp_path):
    statement = (run_out / "statements" / "H043.csv").read_text(encoding="utf-8").split("\n")
    payable = next(i for i, line in enumerate(statement, start=1) if line.startswith("payable,"))
    out = forged(run_out, tmp_path, "statements/H043.csv", payable, ",0.00", ",17.00")
    problems = failed(out)
    assert problems[0].startswith("statements: balances (net + brought forward) not paid at or above the threshold, "
                                  "or not carried forward below it, or missing a total, brought-forward, threshold, "
                                  "payable or carried-forward row (minor units) (1): holder_id=H043, currency=EUR, "
                                  "net=1700, brought_forward=0, threshold=5000, payable=1700")
    assert problems[1].startswith("conservation does not hold: EUR")


def test_an_invoice_whose_csv_charges_otherwise_than_its_json_is_found(run_out, tmp_path):
    out = forged(run_out, tmp_path, "invoices/lumen-ai.csv", 2, ",12000.00,12000.00", ",12000.00,11000.00")
    problems = failed(out)
    assert problems == ["invoices: terms whose CSV and JSON differ (charged in minor units) (1): "
                        "contract_id=MUSIC-AI-2026, term_id=fixed-fee, currency=EUR, charged=1200000, "
                        "currency_csv=EUR, charged_csv=1100000"]


def test_rows_that_do_not_add_up_are_found(run_out, tmp_path):
    summary = (run_out / "summary.json").read_text(encoding="utf-8").split("\n")
    line = next(i for i, text in enumerate(summary, start=1) if '"quarantined": 29' in text)
    out = forged(run_out, tmp_path, "summary.json", line, "29", "28")
    assert failed(out) == [
        "rows of all files: 3471 read, but 3345 accepted + 31 duplicates + 28 quarantined + 37 suspense + 29 "
        "unlicensed = 3470",
        "rows: the files' quarantined do not sum to summary.json's 28"]


def test_a_usage_log_left_out_of_the_accounting_is_found(run_out, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(run_out, out)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    late = next(entry for entry in summary["files"] if entry["file"] == "usage/quill-labs-2026-10-late.csv")
    summary["files"].remove(late)
    summary["rows"] = {fate: count - late[fate] for fate, count in summary["rows"].items()}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    problems = failed(forged(out, tmp_path / "again", "summary.json", 1, "{", "{"))
    assert any(p.startswith("rows: summary.json accounts for the usage logs ['usage/lumen-ai-2026-10-a.csv', ")
               and "the manifest pins ['usage/lumen-ai-2026-10-a.csv'," in p for p in problems)
    assert any(p.startswith("rows: files whose quarantined rows in summary.json are not quarantine.csv's (1): "
                            "file=usage/quill-labs-2026-10-late.csv, quarantined=None, listed=3") for p in problems)


def test_files_that_cannot_be_read_as_a_runs_fail_their_invariants_and_the_rest_are_checked(run_out, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(run_out, out)
    (out / "allocations.csv").unlink()
    (out / "lines.parquet").write_bytes(b"not parquet")
    pinned, findings = check(out)
    assert findings.failed[:2] == ["output allocations.csv: missing", findings.failed[1]]
    assert findings.failed[1].startswith("output lines.parquet: SHA-256 ")
    assert any(p.startswith("level 1: cannot be checked, the files are not as a run writes them (") for p in findings.failed)
    assert any(p.startswith("lines: cannot be checked") for p in findings.failed)
    assert any(line.startswith("rows: ") for line in findings.passed)  # what can be read is still checked


def test_an_adjustment_run_checks_its_adjustments(tmp_path):
    from settlement import posting
    from settlement.progress import SILENT

    ledger = str(tmp_path / "ledger.sqlite")
    first = posting.settled_and_posted(load_inputs(FIXTURES), Period.parse("2026-10"), CLOCK, tmp_path / "first",
                                       SILENT, ledger)
    inputs = tmp_path / "restated"
    shutil.copytree(FIXTURES, inputs)
    (inputs / "revenue.csv").write_text((FIXTURES / "revenue.csv").read_text(encoding="utf-8").replace(
        "1850000.00", "1700000.00"), encoding="utf-8")
    posting.settled_and_posted(load_inputs(inputs), Period.parse("2026-10"), CLOCK, tmp_path / "adjusted", SILENT,
                               ledger, first["run_id"], "restated")
    pinned, findings = check(tmp_path / "adjusted")
    assert findings.failed == [] and findings.passed[-1].startswith("adjustment: adjustments.csv's ")
    table = (tmp_path / "adjusted" / "adjustments.csv").read_text(encoding="utf-8").split("\n")
    row = table[1].split(",")
    row[table[0].split(",").index("new_payable")] = "9999.99"
    out = forged(tmp_path / "adjusted", tmp_path / "forged-adjustment", "adjustments.csv", 2, table[1], ",".join(row))
    assert [p.split(" (")[0] for p in failed(out)] == [
        "adjustments.csv: rows whose change is not new − old", "adjustments.csv: new figures that are not the "
        "holder's statement's"]


def test_the_command_line_exits_1_naming_what_does_not_hold(run_out, tmp_path):
    done = settle_cli("check", str(run_out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Checked run-2026-10-") and done.stdout.count("  ✓ ") == 12
    out = tmp_path / "edited"
    shutil.copytree(run_out, out)
    (out / "lines.csv").write_text((run_out / "lines.csv").read_text(encoding="utf-8").replace(",11.19\n", ",11.18\n", 1),
                                   encoding="utf-8")
    done = settle_cli("check", str(out))
    assert done.returncode == 1
    run_id = json.loads((run_out / "summary.json").read_text())["run_id"]
    assert done.stderr.splitlines()[1:] == [
        "  ✗ lines.csv (1321 lines) and lines.parquet (1321 lines) do not hold the same lines",
        f"error: 2 invariants of run {run_id} do not hold"]
    assert done.stderr.startswith("  ✗ output lines.csv: SHA-256 ")
    done = settle_cli("check", str(tmp_path / "nowhere"))
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1


def test_amounts_not_in_plain_notation_are_found(run_out, tmp_path):
    """A contract's total with a digit short, a negative zero, a leading zero: not a run's writing (law 4)."""
    invoice = (run_out / "invoices" / "lumen-ai.json").read_text(encoding="utf-8").split("\n")
    total = next(i for i, line in enumerate(invoice, start=1) if '"total": "67500.00"' in line)
    problems = failed(forged(run_out, tmp_path, "invoices/lumen-ai.json", total, "67500.00", "67500.0"))
    assert problems[0].startswith("invoices: contracts whose total is not the sum of their terms' charges (1): "
                                  "contract_id=MUSIC-AI-2026, total=None")
    for written in ("-0.00", "011.19"):
        problems = failed(forged(run_out, tmp_path / written, "lines.csv", 2, ",11.19", "," + written))
        assert problems[0].startswith("lines.csv: amounts not written with their currency's digits (1): ")


def test_a_work_amount_on_one_side_only_is_found_though_it_sums_to_zero(run_out, tmp_path):
    """A level-1 part of 0.00 that no holder line shares out: the sums agree, the keys do not."""
    part = "MUSIC-AI-2026,fixed-fee,W000001,train,2020-01-01,accepted,,1,EUR,88.89"
    out = forged(run_out, tmp_path, "allocations.csv", 2, part,
                 part + "\nMUSIC-AI-2026,fixed-fee,W000199,crawl,2020-01-01,accepted,,0,EUR,0.00")
    assert failed(out) == [
        "level 2: work amounts whose holders' gross is not the level-1 amount (minor units; null: none there) (1): "
        "contract_id=MUSIC-AI-2026, work_id=W000199, use_type=crawl, split_version=2020-01-01, currency=EUR, "
        "level1=0, gross=None"]


AMOUNT_TEXT = st.one_of(
    st.from_regex(r"\A-?(0|[1-9][0-9]{0,40})(\.[0-9]{0,5})?\Z"),  # plain decimals, some past 128 bits
    st.sampled_from(["-0", "-0.00", "-0.000", "0", "0.00", "00.10", "+1.00", "1e3", " 1.00", "1.00 ", ".50", "5.",
                     "١٢.٣٠", "1,00", "", "-", "-.", "12.3O"]),
    st.text(alphabet="0123456789.-", max_size=8))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.none(), AMOUNT_TEXT), st.sampled_from(["EUR", "JPY", "BHD", "XXX", "CLF"])),
                min_size=1, max_size=40))
def test_an_amount_is_read_only_when_written_with_exactly_its_currencys_digits(rows):
    """minor_units, which every check reads amounts by, against the written rule: a plain
    ASCII decimal (no sign but `-`, no leading zero, no exponent, no `-0`) with exactly the
    currency's digits, as an integer of minor units that fits 128 bits; else null."""
    from settlement.money import exponent
    from settlement.runfolder import minor_units

    def rule(text: str | None, currency: str) -> int | None:
        try:
            digits = exponent(currency)
        except Exception:
            return None
        if text is None or not re.fullmatch(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?", text) or re.fullmatch(r"-[0.]*", text):
            return None
        places = len(text.split(".")[1]) if "." in text else 0
        if places != digits or (digits == 0 and "." in text):
            return None
        value = int(text.replace(".", ""))
        return value if -(1 << 127) <= value < 1 << 127 else None

    frame = pl.DataFrame(rows, schema={"amount": pl.String, "currency": pl.String}, orient="row")
    read = frame.select(minor_units("amount")).to_series().to_list()
    assert read == [rule(text, currency) for text, currency in rows]


def test_a_lines_csv_without_a_column_fails_its_comparison_and_hides_no_other_finding(run_out, tmp_path):
    """lines.csv is read once for two invariants: without its run_id column its lines cannot
    be compared with lines.parquet's, but its amounts and the other files' are still checked."""
    out = forged(run_out, tmp_path, "allocations.csv", 2, ",88.89", ",88.890")
    path = out / "lines.csv"
    path.write_text("".join(line.split(",", 1)[1] + "\n" for line in path.read_text(encoding="utf-8").splitlines()),
                    encoding="utf-8")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    for entry in manifest["outputs"]:
        if entry["path"] == "lines.csv":
            entry["sha256"], entry["bytes"] = hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    problems = failed(out)
    assert problems[0].startswith("allocations.csv: amounts not written with their currency's digits (1): ")
    assert problems[1].startswith("lines.csv and lines.parquet: cannot be checked, the files are not as a run writes "
                                  "them (ColumnNotFoundError")
