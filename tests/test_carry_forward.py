"""Balances carried forward from one period to the next (DESIGN.md: the engine "carries small
balances forward"; rule 4's threshold).

A holder whose net is below its threshold is not paid: the balance is carried forward. The
next period's input folder brings it forward in balances.csv, written from the ledger by
`settle ledger balances`; the run pays it with that period's net once the two reach the
threshold. `settle run --ledger` refuses a balances.csv that is not what the ledger
carries forward to its next run: a balance left out would never be paid, one brought
forward twice would be paid twice. These tests settle the sample month several times
(October to December, and January; the later months charge their flat fees), in order,
out of order and at once, and correct months already followed by others.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from builders import holder, write_csv
from conftest import ROOT, settle_cli
from contracts.loading import load_inputs
from settlement import posting
from settlement.check import check
from settlement.intake import Period
from settlement.progress import SILENT

FIXTURES = ROOT / "fixtures"
CLOCKS = {"2026-10": "2026-11-05T09:00:00Z", "2026-11": "2026-12-05T09:00:00Z", "2026-12": "2027-01-05T09:00:00Z"}
BALANCE_HEADER = "holder_id,currency,amount\n"


def settled(folder: Path, out: Path, ledger: str, period: str = "2026-10", corrects: str | None = None,
            reason: str | None = None, opening: bool = False) -> dict:
    return posting.settled_and_posted(load_inputs(folder), Period.parse(period), CLOCKS[period], out, SILENT, ledger,
                                      corrects, reason, opening)


def brought_to(ledger: str, name: str, tmp_path: Path, source: Path = FIXTURES, corrects: str | None = None) -> Path:
    """`source` with balances.csv as `settle ledger balances [--corrects RUN_ID]` writes it."""
    folder = tmp_path / f"inputs-{name}"
    shutil.copytree(source, folder)
    engine = posting.opened(ledger)
    balances = posting.brought_forward_by(engine, corrects) if corrects else posting.outstanding(engine)[0]
    (folder / "balances.csv").write_text(posting.balances_text(balances.iter_rows()), encoding="utf-8")
    return folder


def with_holder(folder: Path, old: str, new: str) -> Path:
    """`folder` with one row of holders.csv changed."""
    path = folder / "holders.csv"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    return folder


H042 = "H042,Kalle Öberg,SE,,,EUR,0,\n"  # no threshold of its own: the policy's 10.00 EUR
H042_AT_3 = "H042,Kalle Öberg,SE,,,EUR,0,3.00\n"


def statement_figures(out: Path) -> dict[tuple[str, str], dict[str, int]]:
    """Per holder and currency, each balance record of its statement (total: the net), in minor units."""
    found = {}
    for path in sorted((out / "statements").glob("*.csv")):
        rows = pl.read_csv(path, infer_schema=False).filter(pl.col("record") != "line")
        for row in rows.iter_rows(named=True):
            found.setdefault((path.stem, row["currency"]), {})[row["record"]] = int(row["net"].replace(".", ""))
    return found


def carried(out: Path) -> dict[tuple[str, str], int]:
    return {key: f["carried_forward"] for key, f in statement_figures(out).items() if f["carried_forward"]}


def test_a_small_balance_is_carried_forward_until_it_reaches_the_threshold_and_then_paid(ledger, tmp_path):
    """H042 earns 4.00 a month against a threshold of 10.00: carried forward in October (4.00)
    and November (8.00), paid 12.00 in December. Each month brings forward exactly what the
    month before carried forward, and every statement pays or carries net + brought forward."""
    months, outs = ["2026-10", "2026-11", "2026-12"], {}
    for number, period in enumerate(months):
        inputs = FIXTURES if number == 0 else brought_to(ledger, period, tmp_path)
        outs[period] = tmp_path / period
        settled(inputs, outs[period], ledger, period)
        figures = statement_figures(outs[period])
        before = {} if number == 0 else carried(outs[months[number - 1]])
        assert {k: f["brought_forward"] for k, f in figures.items() if f["brought_forward"]} == before
        for key, f in figures.items():
            owed = f["total"] + f["brought_forward"]
            paid = owed >= f["threshold"] and owed > 0
            assert (f["payable"], f["carried_forward"]) == ((owed, 0) if paid else (0, owed)), key
        assert check(outs[period])[1].failed == []
    h042 = [statement_figures(outs[p])[("H042", "EUR")] for p in months]
    assert [(f["total"], f["brought_forward"], f["payable"], f["carried_forward"]) for f in h042] == [
        (400, 0, 0, 400), (400, 400, 0, 800), (400, 800, 1200, 0)]
    h043 = statement_figures(outs["2026-12"])[("H043", "EUR")]  # 17.00 a month against its own 50.00
    assert (h043["brought_forward"], h043["payable"]) == (3400, 5100)
    assert posting.verify(posting.opened(ledger))[2] == []


def test_a_balances_file_that_is_not_the_ledgers_is_refused_before_anything_is_written(tmp_path):
    """November without October's balances, or with a cent more, is refused and writes
    nothing; December with October's balances (brought forward by November already) too.
    November posted again is its run."""
    ledger = str(tmp_path / "ledger.sqlite")
    settled(FIXTURES, tmp_path / "october", ledger)
    with pytest.raises(posting.LedgerError) as refused:  # none brought forward: they would never be paid
        settled(FIXTURES, tmp_path / "november", ledger, "2026-11")
    assert "balances.csv is not what the ledger carries forward to its next run (4 holder balances differ: " \
           "H042 EUR: the ledger 4.00, balances.csv 0.00; H043 EUR: the ledger 17.00" in str(refused.value)
    assert "settle ledger balances --ledger LEDGER --out " in str(refused.value)
    november = brought_to(ledger, "2026-11", tmp_path)
    right = (november / "balances.csv").read_text(encoding="utf-8")
    (november / "balances.csv").write_text(right.replace("H042,EUR,4.00", "H042,EUR,4.01"), encoding="utf-8")
    with pytest.raises(posting.LedgerError, match=r"\(1 holder balance differs: H042 EUR: the ledger 4.00, "
                                                  r"balances.csv 4.01\)"):
        settled(november, tmp_path / "november", ledger, "2026-11")
    assert not (tmp_path / "november").exists() and len(posting.chain(posting.opened(ledger))) == 1
    (november / "balances.csv").write_text(right, encoding="utf-8")
    settled(november, tmp_path / "november", ledger, "2026-11")
    with pytest.raises(posting.LedgerError, match="what the ledger carries forward"):  # October's again: twice
        settled(november, tmp_path / "december", ledger, "2026-12")
    again = settled(november, tmp_path / "november-again", ledger, "2026-11")  # a settled period: its run
    assert "posted already as run 2" in again["posted"]


def test_a_month_settled_after_a_later_one_brings_forward_what_that_one_left(tmp_path):
    """October, then December, then November: November brings forward what December carried
    forward (October's balances and December's own), not October's again."""
    ledger = str(tmp_path / "ledger.sqlite")
    settled(FIXTURES, tmp_path / "october", ledger)
    settled(brought_to(ledger, "2026-12", tmp_path), tmp_path / "december", ledger, "2026-12")
    november = brought_to(ledger, "2026-11", tmp_path)
    assert carried(tmp_path / "december")[("H042", "EUR")] == 800
    assert "H042,EUR,8.00\n" in (november / "balances.csv").read_text(encoding="utf-8")
    settled(november, tmp_path / "november", ledger, "2026-11")
    figures = statement_figures(tmp_path / "november")[("H042", "EUR")]
    assert (figures["brought_forward"], figures["payable"], figures["carried_forward"]) == (800, 1200, 0)
    left, runs = posting.outstanding(posting.opened(ledger))
    assert runs == 3 and ("H042", "EUR") not in {(h, c) for h, c, _ in left.iter_rows()}


def test_a_run_posted_while_another_was_settled_is_checked_again_and_refused(tmp_path, monkeypatch):
    """December and November settled at once from the same balances.csv: November is posted
    first, so December, which brought forward what November paid or carried on, is refused
    as it is posted (both would pay October's balances), and nothing of it is written."""
    ledger = str(tmp_path / "ledger.sqlite")
    settled(FIXTURES, tmp_path / "october", ledger)
    november, december = brought_to(ledger, "2026-11", tmp_path), brought_to(ledger, "2026-12", tmp_path)
    real_decide, raced = posting.decide, []

    def racing_decide(*args):  # called once December is settled, before it is posted
        if not raced:
            raced.append("november")
            settled(november, tmp_path / "november", ledger, "2026-11")
        return real_decide(*args)

    monkeypatch.setattr(posting, "decide", racing_decide)
    with pytest.raises(posting.LedgerError, match=r"another run was posted while this one was settled, and .*"
                                                  r"balances.csv is not what the ledger carries forward to its next "
                                                  r"run \(2 holder balances differ: H042 EUR: the ledger 8.00, "
                                                  r"balances.csv 4.00.*nothing was posted"):
        settled(december, tmp_path / "december", ledger, "2026-12")
    assert raced and not (tmp_path / "december").exists()
    assert [run.period for run in posting.chain(posting.opened(ledger))] == ["2026-10", "2026-11"]


def test_a_settled_period_with_another_balances_file_is_a_conflict_found_before_settling(tmp_path, monkeypatch):
    """October posted, then run again with the balances.csv written for the next run: a
    conflict naming the run's balances, found before anything is settled."""
    ledger = str(tmp_path / "ledger.sqlite")
    october = settled(FIXTURES, tmp_path / "october", ledger)
    inputs = brought_to(ledger, "again", tmp_path)  # written again after October: for the next run
    def settle(*args, **kwargs):
        raise AssertionError("settled, though the conflict could be found first")


    monkeypatch.setattr("settlement.run.settle", settle)
    with pytest.raises(posting.RunConflict, match=rf"period 2026-10 was settled as {october['run_id']}, which "
                                                  r"brought forward other balances than .*balances.csv \(4 holder "
                                                  r"balances differ: H042 EUR: the run 0.00, balances.csv 4.00.*"
                                                  rf"--corrects {october['run_id']} writes it"):
        settled(inputs, tmp_path / "again", ledger)


def test_a_month_that_only_pays_balances_is_checked(tmp_path):
    """January, when no contract is in force: it only brings forward October's balances
    (and pays the USD ones, whose currency has no threshold of its own), and passes check."""
    ledger = str(tmp_path / "ledger.sqlite")
    settled(FIXTURES, tmp_path / "october", ledger)
    january = brought_to(ledger, "2027-01", tmp_path)
    summary = posting.settled_and_posted(load_inputs(january), Period.parse("2027-01"), "2027-02-05T09:00:00Z",
                                         tmp_path / "january", SILENT, ledger)
    assert summary["currencies"]["EUR"]["charged"] == "0.00" and summary["currencies"]["EUR"]["brought_forward"] \
        == "21.00"
    pinned, findings = check(tmp_path / "january")
    assert findings.failed == [] and any("EUR: charged 0.00 + brought forward 21.00" in p for p in findings.passed)


def test_a_run_of_engine_0_1_is_not_checked_or_explained_as_this_versions(tmp_path):
    """A run folder of engine 0.1 (no brought_forward rows) gets one line naming its version."""
    out = tmp_path / "old"
    assert settle_cli("run", str(FIXTURES), "--period", "2026-10", "--out", str(out), "--clock",
                      CLOCKS["2026-10"], "--quiet").returncode == 0
    manifest = out / "manifest.json"
    manifest.write_text(manifest.read_text(encoding="utf-8").replace('"engine_version": "0.2.0"',
                                                                     '"engine_version": "0.1.0"'), encoding="utf-8")
    for command in (["check", str(out)], ["explain", str(out), str(FIXTURES), "--holder", "H042"]):
        done = settle_cli(*command)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert "was made by engine 0.1.0, whose outputs this version does not read" in done.stderr


def test_a_new_ledger_takes_balances_csv_as_its_opening_balances(tmp_path):
    """The first run takes balances.csv as it is (a zero row left out, a currency no contract
    uses paid in it, a holder without lines given a statement of its balance), and what it
    pays of them is not owed again."""
    ledger = str(tmp_path / "ledger.sqlite")
    inputs = tmp_path / "inputs"
    shutil.copytree(FIXTURES, inputs)
    write_csv(inputs / "balances.csv", [{"holder_id": "H042", "currency": "EUR", "amount": "6.00"},
                                        {"holder_id": "H004", "currency": "GBP", "amount": "2.50"},
                                        {"holder_id": "H005", "currency": "JPY", "amount": "0"}],
              ["holder_id", "currency", "amount"])
    summary = settled(inputs, tmp_path / "october", ledger)
    assert summary["currencies"]["EUR"]["brought_forward"] == "6.00" and "JPY" not in summary["currencies"]
    assert summary["currencies"]["GBP"] == {"charged": "0.00", "brought_forward": "2.50", "suspense": "0.00",
                                            "commission": "0.00", "withholding": "0.00", "payable": "2.50",
                                            "carried_forward": "0.00"}
    figures = statement_figures(tmp_path / "october")
    assert (figures[("H042", "EUR")]["brought_forward"], figures[("H042", "EUR")]["payable"]) == (600, 1000)
    h004 = (tmp_path / "october" / "statements" / "H004.csv").read_text(encoding="utf-8").splitlines()
    assert [line.split(",")[0] for line in h004[1:]] == ["total", "brought_forward", "threshold", "carried_forward",
                                                         "payable"]  # no line this month: its balance alone
    assert check(tmp_path / "october")[1].failed == []
    left, _ = posting.outstanding(posting.opened(ledger))  # the opening balances were paid: nothing of them left
    assert {(h, c): a for h, c, a in left.iter_rows()} == {("H043", "EUR"): 1700, ("H054", "USD"): 10,
                                                            ("H056", "USD"): 995}


def test_a_balance_past_the_ledgers_integers_gets_one_error_line(tmp_path):
    """A balance that takes a payable past 2^63 minor units: one error line, nothing written."""
    inputs = tmp_path / "inputs"
    shutil.copytree(FIXTURES, inputs)
    (inputs / "balances.csv").write_text(BALANCE_HEADER + "H042,EUR,92233720368547758.07\n", encoding="utf-8")
    done = settle_cli("run", str(inputs), "--period", "2026-10", "--out", str(tmp_path / "out"), "--clock",
                      CLOCKS["2026-10"], "--ledger", str(tmp_path / "ledger.sqlite"))
    assert done.returncode == 2 and "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("error: ") and "does not fit the ledger's 64-bit integers" in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()


def test_corrections_of_settled_periods_move_what_they_change_to_the_next_run(tmp_path):
    """October and November settled; then both corrected, November first: H042 (4.00 a month
    against the policy's 10.00) had a threshold of 5.00 in November, which pays it 8.00
    (October's 4.00 brought forward, and its own), and of 3.00 in October, which pays it
    October's 4.00 again. What the corrections change goes to the next run, and only that:
    December brings forward H042's -4.00, the debt, against its 4.00 of December. A
    correction brings forward what the run it corrects did, and is the same run when posted
    again after the other correction."""
    ledger = str(tmp_path / "ledger.sqlite")
    october = settled(FIXTURES, tmp_path / "october", ledger)
    november = settled(brought_to(ledger, "2026-11", tmp_path), tmp_path / "november", ledger, "2026-11")
    november_fix = with_holder(brought_to(ledger, "november-fix", tmp_path, corrects=november["run_id"]), H042,
                               H042.replace(",\n", ",5.00\n"))
    first = settled(november_fix, tmp_path / "november-2", ledger, "2026-11", november["run_id"], "threshold 5.00")
    october_fix = with_holder(brought_to(ledger, "october-fix", tmp_path, corrects=october["run_id"]), H042, H042_AT_3)
    assert (october_fix / "balances.csv").read_text(encoding="utf-8") == BALANCE_HEADER
    settled(october_fix, tmp_path / "october-2", ledger, "2026-10", october["run_id"], "threshold 3.00")
    again = settled(november_fix, tmp_path / "november-3", ledger, "2026-11", november["run_id"], "threshold 5.00")
    assert again["run_id"] == first["run_id"] and "posted already" in again["posted"]

    change = {key: carried(tmp_path / "october-2").get(key, 0) - carried(tmp_path / "october").get(key, 0)
              for key in carried(tmp_path / "october-2").keys() | carried(tmp_path / "october").keys()}
    assert {key: amount for key, amount in change.items() if amount} == {("H042", "EUR"): -400}
    assert statement_figures(tmp_path / "november-2")[("H042", "EUR")]["payable"] == 800
    expected = {key: carried(tmp_path / "november-2").get(key, 0) + change.get(key, 0)
                for key in carried(tmp_path / "november-2").keys() | change.keys()}
    left, runs = posting.outstanding(posting.opened(ledger))
    assert runs == 2 and {(h, c): a for h, c, a in left.iter_rows()} == {k: v for k, v in expected.items() if v}
    assert expected[("H042", "EUR")] == -400
    december = brought_to(ledger, "2026-12", tmp_path)
    settled(december, tmp_path / "december", ledger, "2026-12")
    h042 = statement_figures(tmp_path / "december")[("H042", "EUR")]
    assert (h042["total"], h042["brought_forward"], h042["payable"], h042["carried_forward"]) == (400, -400, 0, 0)
    assert check(tmp_path / "december")[1].failed == []
    explained = settle_cli("explain", str(tmp_path / "december"), str(december), "--holder", "H042")
    assert explained.returncode == 0 and "✗" not in explained.stdout
    assert ("with -4.00 brought forward (balances.csv) 0.00, below the threshold 10.00: payable 0.00, carried "
            "forward 0.00") in explained.stdout


def test_the_command_line_writes_the_balances_and_refuses_others(tmp_path):
    """settle ledger balances prints or writes balances.csv; settle run refuses the month
    without it, settles it with it, and replay and explain agree."""
    ledger = str(tmp_path / "ledger.sqlite")
    assert settle_cli("run", str(FIXTURES), "--period", "2026-10", "--out", str(tmp_path / "october"), "--clock",
                      CLOCKS["2026-10"], "--ledger", ledger, "--quiet").returncode == 0
    empty = settle_cli("ledger", "balances", "--ledger", str(tmp_path / "new.sqlite"), "--out", str(tmp_path / "b"))
    assert empty.returncode == 2 and "no ledger database there" in empty.stderr  # reading a ledger makes none
    printed = settle_cli("ledger", "balances", "--ledger", ledger)
    assert printed.returncode == 0 and printed.stdout == (BALANCE_HEADER + "H042,EUR,4.00\nH043,EUR,17.00\n"
                                                          "H054,USD,0.10\nH056,USD,9.95\n")
    inputs = tmp_path / "inputs"
    shutil.copytree(FIXTURES, inputs)
    november = ["run", str(inputs), "--period", "2026-11", "--out", str(tmp_path / "november"), "--clock",
                CLOCKS["2026-11"], "--ledger", ledger]
    refused = settle_cli(*november)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith(f"error: {inputs / 'balances.csv'} is not what the ledger carries forward to "
                                     "its next run")
    written = settle_cli("ledger", "balances", "--ledger", ledger, "--out", str(inputs / "balances.csv"))
    assert written.returncode == 0
    assert written.stdout == (f"{inputs / 'balances.csv'}: 4 balances carried forward by the 1 run the ledger's "
                              "periods stand as\n")
    done = settle_cli(*november)
    assert done.returncode == 0, done.stderr
    assert "EUR: charged 14500.00 + brought forward 21.00 = payable " in done.stdout
    replayed = settle_cli("replay", str(tmp_path / "november"), str(inputs), "--ledger", ledger, "--quiet")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    explained = settle_cli("explain", str(tmp_path / "november"), str(inputs), "--holder", "H042")
    assert explained.returncode == 0 and "✗" not in explained.stdout
    assert ("H042's EUR net over all its lines is 4.00, and with 4.00 brought forward (balances.csv) 8.00, below "
            "the threshold 10.00: payable 0.00, carried forward 8.00") in explained.stdout
    for arguments, message in ((["--corrects", "run-2026-10-unknown"], "no such run in the ledger"),
                               (["--out", str(tmp_path / "no" / "such" / "balances.csv")],
                                "the balances command stopped on a system error")):
        wrong = settle_cli("ledger", "balances", "--ledger", ledger, *arguments)
        assert wrong.returncode == 2 and message in wrong.stderr and "Traceback" not in wrong.stderr


@pytest.mark.parametrize("rows, parts", [
    ("H9,EUR,1.00\n", ["row 1", "holder_id", "H9", "unknown holder", "a holder_id of holders.csv"]),
    ("h1,EUR,1.005\n", ["row 1", "amount", "1.005", "not a whole number of EUR's minor unit",
                        "at most 2 decimal places"]),
    ("h1,JPY,1.5\n", ["amount", "1.5", "at most 0 decimal places"]),
    ("h1,EUR,1e3\n", ["row 1", "amount", "1e3"]),
    ("h1,EUR,\n", ["row 1", "amount"]),
    ("h1,EUR,-0.50\nh2,XXX,1\n", ["row 2", "currency", "XXX", "unknown currency"]),
    ("h1,EUR,1.00\nh1,EUR,2.00\n", ["row 2", "holder_id, currency", "h1, EUR", "given twice (first at row 1)"]),
    ("h1,EUR,99999999999999999.99\n", ["amount", "too large for the ledger"]),
])
def test_a_bad_balances_file_gets_one_error_line(tmp_path, rows, parts):
    """Each mistake in balances.csv: one line naming the file, row, field, value and what was expected."""
    from test_bad_reference_inputs import assert_parts, error_line, good_folder

    folder = good_folder(tmp_path / "in", holders=[holder("h1"), holder("h2")])
    (folder / "balances.csv").write_text(BALANCE_HEADER + rows, encoding="utf-8")
    assert_parts(error_line(folder, tmp_path / "out"), "balances.csv", *parts)


def test_a_balances_file_with_a_column_missing_gets_one_error_line(tmp_path):
    """A column missing: one line naming it."""
    from test_bad_reference_inputs import assert_parts, error_line, good_folder

    folder = good_folder(tmp_path / "in")
    (folder / "balances.csv").write_text("holder_id,amount\nh1,1.00\n", encoding="utf-8")
    assert_parts(error_line(folder, tmp_path / "out"), "balances.csv", "currency")


def test_a_ledger_of_no_run_leaves_the_opening_balances_file_as_it_is(tmp_path):
    """A ledger whose tables were made but which holds no run (a first run that failed) has no
    balances to write: --out is refused and the society's opening balances.csv kept."""
    ledger = str(tmp_path / "ledger.sqlite")
    posting.opened(ledger).dispose()
    opening = tmp_path / "balances.csv"
    opening.write_text(BALANCE_HEADER + "H042,EUR,6.00\n", encoding="utf-8")
    refused = settle_cli("ledger", "balances", "--ledger", ledger, "--out", str(opening))
    assert refused.returncode == 2 and "the ledger holds no run, so nothing was written" in refused.stderr
    assert opening.read_text(encoding="utf-8") == BALANCE_HEADER + "H042,EUR,6.00\n"
    printed = settle_cli("ledger", "balances", "--ledger", ledger)
    assert printed.returncode == 0 and printed.stdout == BALANCE_HEADER


def test_a_correction_of_the_ledgers_first_month_may_correct_its_opening_balances(tmp_path):
    """The society's system before handed H042's balance over as 2.00, where it was 7.00.
    October, the ledger's first month, carried 6.00 (its 4.00 and the 2.00, below the
    threshold of 10.00). Corrected with 7.00 brought forward and --opening-balances, it pays
    H042 11.00, and November brings forward nothing for H042. Without the option, a
    balances.csv written since for November is refused (it would pay November's balances
    again), and the option on any other month is refused."""
    ledger = str(tmp_path / "ledger.sqlite")
    inputs = tmp_path / "inputs"
    shutil.copytree(FIXTURES, inputs)
    (inputs / "balances.csv").write_text(BALANCE_HEADER + "H042,EUR,2.00\n", encoding="utf-8")
    october = settled(inputs, tmp_path / "october", ledger)
    assert carried(tmp_path / "october")[("H042", "EUR")] == 600
    stale = brought_to(ledger, "stale", tmp_path)  # November's balances.csv, not October's
    with pytest.raises(posting.LedgerError, match="or, if it corrects the ledger's opening balances, give "
                                                  "--opening-balances"):
        settled(stale, tmp_path / "october-2", ledger, "2026-10", october["run_id"], "a split")
    (inputs / "balances.csv").write_text(BALANCE_HEADER + "H042,EUR,7.00\n", encoding="utf-8")
    command = ["run", str(inputs), "--period", "2026-10", "--out", str(tmp_path / "october-2"), "--clock",
               CLOCKS["2026-10"], "--quiet", "--corrects", october["run_id"], "--reason", "H042's opening balance",
               "--opening-balances"]
    unposted = settle_cli(*command)  # no ledger to post the correction to
    assert unposted.returncode == 2 and unposted.stderr.startswith("error: --corrects, --reason and "
                                                                   "--opening-balances post an adjustment")
    assert settle_cli(*command, "--ledger", ledger).returncode == 0
    fixed = json.loads((tmp_path / "october-2" / "summary.json").read_text(encoding="utf-8"))
    h042 = statement_figures(tmp_path / "october-2")[("H042", "EUR")]
    assert (h042["brought_forward"], h042["payable"], h042["carried_forward"]) == (700, 1100, 0)
    assert fixed["adjustment"]["currencies"]["EUR"]["brought_forward"] == {"old": "2.00", "new": "7.00",
                                                                           "change": "5.00"}
    assert check(tmp_path / "october-2")[1].failed == []
    left, runs = posting.outstanding(posting.opened(ledger))
    assert runs == 1 and {(h, c): a for h, c, a in left.iter_rows()} == {
        ("H043", "EUR"): 1700, ("H054", "USD"): 10, ("H056", "USD"): 995}
    november = brought_to(ledger, "2026-11", tmp_path)
    first_november = settled(november, tmp_path / "november", ledger, "2026-11")
    h042 = statement_figures(tmp_path / "november")[("H042", "EUR")]
    assert (h042["brought_forward"], h042["carried_forward"]) == (0, 400)
    (november / "balances.csv").write_text(BALANCE_HEADER + "H042,EUR,7.00\n", encoding="utf-8")
    with pytest.raises(posting.LedgerError, match=f"run {first_november['run_id']} is not that month"):
        settled(november, tmp_path / "november-2", ledger, "2026-11", first_november["run_id"], "not an opening",
                opening=True)
    assert not (tmp_path / "november-2").exists()
