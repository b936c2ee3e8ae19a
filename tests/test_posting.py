"""Laws 5 and 6 (DESIGN.md): the ledger database, in SQLite and in PostgreSQL.

Law 5, idempotency: the same period with the same inputs returns the posted run;
other inputs are a conflict, refused by code and by the database's constraints.
Law 6, immutability: posted rows cannot be changed or deleted; corrections are
adjustment runs naming the run they correct, with old and new amounts and the
reason; the hash chain shows any row changed behind the triggers' back.

PostgreSQL runs on 127.0.0.1:5432 (see the README); each test gets a new database.
Where it cannot be reached, its tests fail under CI=true and are skipped elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session

import strategies as gen
from builders import write_inputs
from conftest import ROOT, drop_postgres, postgres_database, settle_cli
from contracts.errors import RunConflict
from contracts.loading import load_inputs
from settlement import posting
from settlement.intake import Period
from settlement.progress import SILENT

CLOCK = "2026-11-05T09:00:00Z"
FIXTURES = ROOT / "fixtures"


def settled(folder: Path, out: Path, ledger: str, corrects: str | None = None, reason: str | None = None,
            period: str = "2026-10") -> dict:
    """`settle run` of `period` from `folder` into `out`, posted to `ledger`: its summary."""
    return posting.settled_and_posted(load_inputs(folder), Period.parse(period), CLOCK, out, SILENT, ledger,
                                      corrects, reason)


def output_files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def restated(tmp_path: Path, revenue: str = "1900000.00") -> Path:
    """The fixtures with lumen-ai's October revenue restated: other inputs for the same period."""
    folder = tmp_path / f"restated-{revenue}"
    if folder.exists():
        return folder
    shutil.copytree(FIXTURES, folder)
    path = folder / "revenue.csv"
    path.write_text(path.read_text(encoding="utf-8").replace("1850000.00", revenue), encoding="utf-8")
    return folder


def with_balances(ledger: str, period: str, tmp_path: Path) -> Path:
    """The fixtures, for `period`, with balances.csv as the ledger carries them forward to its next run."""
    folder = tmp_path / f"fixtures-{period}"
    shutil.copytree(FIXTURES, folder)
    left, _ = posting.outstanding(posting.opened(ledger))
    (folder / "balances.csv").write_text(posting.balances_text(left.iter_rows()), encoding="utf-8")
    return folder


# --------------------------------------------------------------------------- law 5: idempotency

def test_the_same_inputs_are_posted_once_and_give_the_posted_run(ledger, tmp_path):
    first = settled(FIXTURES, tmp_path / "first", ledger)
    again = settled(FIXTURES, tmp_path / "again", ledger)
    engine = posting.opened(ledger)
    runs = posting.chain(engine)
    assert [run.run_id for run in runs] == [first["run_id"]]
    assert first["posted"].startswith("ledger: posted as run 1 (settlement)")
    assert again["run_id"] == first["run_id"] and "posted already as run 1" in again["posted"]
    assert "corrected since" not in again["posted"]
    assert output_files(tmp_path / "first") == output_files(tmp_path / "again")


def test_other_inputs_for_a_settled_period_are_refused_before_anything_is_written(ledger, tmp_path):
    first = settled(FIXTURES, tmp_path / "first", ledger)
    with pytest.raises(RunConflict, match=f"period 2026-10 was settled as {first['run_id']} from other inputs"):
        settled(restated(tmp_path), tmp_path / "second", ledger)
    assert not (tmp_path / "second").exists()
    assert [run.run_id for run in posting.chain(posting.opened(ledger))] == [first["run_id"]]


def record(run_id: str, sequence: int, **fields) -> posting.RunRecord:
    values = {"run_id": run_id, "sequence": sequence, "period": "2026-10", "kind": "settlement", "clock": CLOCK,
              "rules_version": "1", "engine_version": "0", "manifest_sha256": "m", "previous_hash": "p",
              "hash": run_id}
    return posting.RunRecord(**(values | fields))


def test_a_run_that_loses_its_place_in_the_chain_to_another_periods_run_takes_the_next(ledger, tmp_path,
                                                                                      monkeypatch):
    """Two runs of different periods posted at once: the one whose chain position is
    taken between reading the chain's end and writing is posted after the other, not refused."""
    settled(FIXTURES, tmp_path / "october", ledger)
    engine, real_hash, raced = posting.opened(ledger), posting.chain_hash, []
    other = posting.Posting(run_id="run-2026-11-other", period="2026-11", kind="settlement", corrects=None,
                            reason=None, clock=CLOCK, rules_version="1", engine_version="0", manifest_sha256="m",
                            totals=[], balances=[])

    def racing_hash(*args):  # called once the chain's end is read, before the run is written
        if not raced:
            raced.append(other.run_id)
            posting.posted_once(engine, other)
        return real_hash(*args)

    december_inputs = with_balances(ledger, "2026-12", tmp_path)
    monkeypatch.setattr(posting, "chain_hash", racing_hash)
    december = settled(december_inputs, tmp_path / "december", ledger, period="2026-12")
    assert raced and december["posted"].startswith("ledger: posted as run 3 (settlement)")
    monkeypatch.undo()
    assert [run.period for run in posting.chain(engine)] == ["2026-10", "2026-11", "2026-12"]
    assert posting.verify(engine)[2] == []


def test_the_same_run_posted_meanwhile_by_another_process_is_reported_as_found(ledger, tmp_path, monkeypatch):
    real = posting.posted_once

    def raced(engine, run):  # another process, with the same inputs, posts first
        real(engine, run)
        return real(engine, run)

    monkeypatch.setattr(posting, "posted_once", raced)
    summary = settled(FIXTURES, tmp_path / "out", ledger)
    assert "posted already as run 1" in summary["posted"]
    assert len(posting.chain(posting.opened(ledger))) == 1 and (tmp_path / "out" / "manifest.json").is_file()


def test_the_output_folder_may_be_the_current_one(tmp_path, monkeypatch):
    """`--out .` from inside an earlier run's folder: the folder is replaced, not lost."""
    ledger = str(tmp_path / "ledger.sqlite")
    settled(FIXTURES, tmp_path / "out", ledger)
    monkeypatch.chdir(tmp_path / "out")
    again = settled(FIXTURES, Path("."), ledger)
    assert "posted already" in again["posted"] and (tmp_path / "out" / "manifest.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.sqlite", "out"]


def test_missing_triggers_are_reported_and_made_again(ledger, tmp_path):
    settled(FIXTURES, tmp_path / "first", ledger)
    drop = ("DROP TRIGGER holder_balance_no_update" if "://" not in ledger else
            "DROP TRIGGER holder_balance_immutable ON holder_balance")
    with posting.opened(ledger).begin() as connection:
        connection.execute(text(drop))
    problems = posting.verify(posting.opened(ledger, create=False))[2]
    assert len(problems) == 1 and "triggers holder_balance_" in problems[0] and "are missing" in problems[0]
    assert posting.verify(posting.opened(ledger))[2] == []  # opened to post: made again


def test_the_database_itself_refuses_a_second_settlement_of_a_period(ledger):
    """Law 5 is backed by constraints, not only by the code that checks first."""
    engine = posting.opened(ledger)
    refused = [record("b", 2), record("a", 2, period="2026-11"),  # same period; same run id
               record("c", 2, period="2026-11", kind="adjustment"),  # an adjustment names its run and reason
               record("d", 1, period="2026-11")]  # a place in the chain taken
    with Session(engine) as session:
        session.add(record("a", 1))
        session.commit()
    for run in refused:
        with Session(engine) as session, pytest.raises(IntegrityError):
            session.add(run)
            session.commit()
    with Session(engine) as session:
        session.add(record("e", 2, kind="adjustment", corrects="a", reason="restated"))
        session.commit()
    with Session(engine) as session, pytest.raises(IntegrityError):  # a run is corrected once
        session.add(record("f", 3, kind="adjustment", corrects="a", reason="again"))
        session.commit()


# --------------------------------------------------------------------------- law 6: immutability

@pytest.mark.parametrize("statement", [
    "UPDATE run SET reason = 'changed'", "DELETE FROM run",
    "UPDATE run_total SET payable = payable + 1", "DELETE FROM run_total",
    "UPDATE holder_balance SET payable = payable + 1", "DELETE FROM holder_balance"])
def test_posted_rows_cannot_be_changed_or_deleted(ledger, tmp_path, statement):
    settled(FIXTURES, tmp_path / "out", ledger)
    engine = posting.opened(ledger)
    with pytest.raises(DBAPIError, match="a posted run never changes"):
        with engine.begin() as connection:
            connection.execute(text(statement))
    assert posting.verify(engine)[2] == []


def without_triggers(ledger: str, *statements: str) -> None:
    """Run `statements` as someone with the database's keys would: past its triggers and
    foreign keys (SQLite's own driver leaves them off; PostgreSQL's replica role skips both)."""
    if "://" not in ledger:
        connection = sqlite3.connect(ledger)
        for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            connection.execute(f"DROP TRIGGER {name}")
        for statement in statements:
            connection.execute(statement)
        connection.commit()
        connection.close()
        return
    with posting.opened(ledger).begin() as connection:
        connection.execute(text("SET session_replication_role = replica"))
        for statement in statements:
            connection.execute(text(statement))


def test_sqlite_refuses_an_insert_that_would_replace_a_posted_row(tmp_path):
    """INSERT OR REPLACE deletes the row it replaces without DELETE triggers (in a plain
    connection, which does not ask for recursive triggers): the ledger's own insert
    triggers refuse it."""
    ledger = str(tmp_path / "ledger.sqlite")
    settled(FIXTURES, tmp_path / "out", ledger)
    connection = sqlite3.connect(ledger)
    for statement in ["INSERT OR REPLACE INTO holder_balance (run_id, holder_id, currency, gross, commission, "
                      "withholding, net, payable, carried_forward) SELECT run_id, holder_id, currency, gross, "
                      "commission, withholding, net, payable + 100, carried_forward FROM holder_balance LIMIT 1",
                      "INSERT OR REPLACE INTO run SELECT 'other', sequence, period, kind, corrects, reason, clock, "
                      "rules_version, engine_version, manifest_sha256, previous_hash, 'other' FROM run"]:
        with pytest.raises(sqlite3.DatabaseError, match="a posted run never changes"):
            connection.execute(statement)
    connection.close()
    assert posting.verify(posting.opened(ledger))[2] == []


def test_the_hash_chain_shows_a_row_changed_behind_the_triggers(ledger, tmp_path):
    first = settled(FIXTURES, tmp_path / "first", ledger)
    second = settled(restated(tmp_path), tmp_path / "second", ledger, first["run_id"], "restated revenue")
    engine = posting.opened(ledger)
    runs, last, problems = posting.verify(engine)
    assert (runs, problems) == (2, []) and last == posting.run_record(engine, second["run_id"]).hash
    without_triggers(ledger, f"UPDATE holder_balance SET payable = payable + 1 WHERE holder_id = 'H001' "
                             f"AND run_id = '{first['run_id']}'")
    problems = posting.verify(posting.opened(ledger))[2]
    assert len(problems) == 1 and problems[0].startswith(f"{first['run_id']}: its record, totals or balances")


def test_a_run_removed_from_the_end_of_the_chain_is_found_by_the_last_hash_kept(ledger, tmp_path):
    first = settled(FIXTURES, tmp_path / "first", ledger)
    settled(restated(tmp_path), tmp_path / "second", ledger, first["run_id"], "restated revenue")
    engine = posting.opened(ledger)
    second = posting.chain(engine)[-1]
    without_triggers(ledger, *(f"DELETE FROM {table} WHERE run_id = '{second.run_id}'"
                               for table in ("holder_balance", "run_total", "run")))
    assert posting.verify(posting.opened(ledger))[2] == []  # what no link can show
    problems = posting.verify(posting.opened(ledger), last=second.hash)[2]
    assert problems == [f"no run hashes to {second.hash}: runs were removed from the chain, or the hash is not "
                        "this ledger's"]


def test_a_run_removed_from_the_chain_is_found(ledger, tmp_path):
    first = settled(FIXTURES, tmp_path / "first", ledger)
    second = settled(restated(tmp_path), tmp_path / "second", ledger, first["run_id"], "restated revenue")
    third = settled(restated(tmp_path, "1950000.00"), tmp_path / "third", ledger, second["run_id"], "again")
    without_triggers(ledger, *(f"DELETE FROM {table} WHERE run_id = '{second['run_id']}'"
                               for table in ("holder_balance", "run_total", "run")))
    problems = posting.verify(posting.opened(ledger))[2]
    assert any("sequence 3, expected 2" in p for p in problems)
    assert any(p.startswith(f"{third['run_id']}: links to") for p in problems)


def test_an_adjustment_shows_each_holders_old_and_new_amounts_and_the_reason(ledger, tmp_path):
    first = settled(FIXTURES, tmp_path / "first", ledger)
    reason = "lumen-ai restated its October revenue"
    second = settled(restated(tmp_path), tmp_path / "second", ledger, first["run_id"], reason)
    assert second["adjustment"]["corrects"] == first["run_id"] and second["adjustment"]["reason"] == reason
    assert second["posted"].startswith("ledger: posted as run 2 (adjustment)")
    rows = pl.read_csv(tmp_path / "second" / "adjustments.csv", infer_schema=False)
    assert rows.height > 0 and set(rows["corrects"]) == {first["run_id"]} and set(rows["reason"]) == {reason}
    old = balances(tmp_path / "first")
    new = balances(tmp_path / "second")
    for row in rows.iter_rows(named=True):
        key = (row["holder_id"], row["currency"])
        for figure in ("net", "payable", "carried_forward"):
            assert cents(row[f"old_{figure}"]) == old.get(key, {}).get(figure, 0)
            assert cents(row[f"new_{figure}"]) == new.get(key, {}).get(figure, 0)
            assert cents(row[f"new_{figure}"]) - cents(row[f"old_{figure}"]) == cents(row[f"{figure}_change"])
    changed = {(r["holder_id"], r["currency"]) for r in rows.iter_rows(named=True)}
    assert changed == {key for key in old.keys() | new.keys() if old.get(key) != new.get(key)}
    payable = second["adjustment"]["currencies"]["EUR"]["payable"]
    assert cents(payable["new"]) - cents(payable["old"]) == sum(
        cents(r["payable_change"]) for r in rows.iter_rows(named=True) if r["currency"] == "EUR") != 0
    assert cents(payable["old"]) == cents(first["currencies"]["EUR"]["payable"])
    assert cents(payable["new"]) == cents(second["currencies"]["EUR"]["payable"])


def balances(out: Path) -> dict[tuple[str, str], dict[str, int]]:
    """Each holder's net, payable and carried forward per currency, from its statement."""
    found = {}
    for path in (out / "statements").glob("*.csv"):
        rows = pl.read_csv(path, infer_schema=False).filter(pl.col("record") != "line")
        for currency in set(rows["currency"]):
            mine = {r["record"]: r["net"] for r in rows.filter(pl.col("currency") == currency).iter_rows(named=True)}
            found[(path.stem, currency)] = {"net": cents(mine["total"]), "payable": cents(mine["payable"]),
                                            "carried_forward": cents(mine["carried_forward"])}
    return found


def cents(amount: str) -> int:
    return int(amount.replace(".", ""))


def test_a_run_is_corrected_once_and_the_standing_run_is_the_one_to_correct(ledger, tmp_path):
    first = settled(FIXTURES, tmp_path / "first", ledger)
    second = settled(restated(tmp_path), tmp_path / "second", ledger, first["run_id"], "restated")
    with pytest.raises(RunConflict, match=f"the period stands as {second['run_id']}"):
        settled(restated(tmp_path, "1950000.00"), tmp_path / "third", ledger, first["run_id"], "again")
    with pytest.raises(RunConflict, match="no such run"):
        settled(restated(tmp_path, "1950000.00"), tmp_path / "third", ledger, "run-2026-10-unknown", "again")
    with pytest.raises(posting.LedgerError, match="--reason is empty"):
        settled(restated(tmp_path, "1950000.00"), tmp_path / "third", ledger, second["run_id"], " ")
    with pytest.raises(posting.LedgerError, match="needs both --corrects RUN_ID and --reason"):
        settled(restated(tmp_path, "1950000.00"), tmp_path / "third", ledger, None, "a reason alone")
    with pytest.raises(RunConflict, match=f"period 2026-10 was settled as {second['run_id']}"):
        settled(restated(tmp_path), tmp_path / "third", ledger)  # the adjustment's inputs, but not as one
    assert not (tmp_path / "third").exists()
    again = settled(restated(tmp_path), tmp_path / "again", ledger, first["run_id"], "restated")
    assert again["run_id"] == second["run_id"] and again["adjustment"] == second["adjustment"]
    assert "posted already as run 2 (adjustment)" in again["posted"]
    assert output_files(tmp_path / "again") == output_files(tmp_path / "second")
    replayed = settled(FIXTURES, tmp_path / "replayed", ledger)  # the first run's inputs: that run, corrected since
    assert replayed["run_id"] == first["run_id"] and f"the period stands as {second['run_id']}" in replayed["posted"]
    # the first inputs again, as a correction of the correction: a new run
    reverted = settled(FIXTURES, tmp_path / "reverted", ledger, second["run_id"], "restatement withdrawn")
    assert reverted["run_id"] not in (first["run_id"], second["run_id"])
    assert reverted["currencies"] == first["currencies"]
    assert [run.kind for run in posting.chain(posting.opened(ledger))] == ["settlement", "adjustment", "adjustment"]


# --------------------------------------------------------------------------- the chain and the databases

def test_sqlite_and_postgresql_chain_a_run_to_the_same_hash(tmp_path):
    """Law 4 in the ledger: the same runs, posted in either database, hash alike."""
    url = postgres_database()
    try:
        hashes = []
        for ledger in (str(tmp_path / "ledger.sqlite"), url):
            first = settled(FIXTURES, tmp_path / f"first-{len(hashes)}", ledger)
            settled(restated(tmp_path), tmp_path / f"second-{len(hashes)}", ledger,
                    first["run_id"], "restated")
            hashes.append([run.hash for run in posting.chain(posting.opened(ledger))])
        assert hashes[0] == hashes[1]
    finally:
        drop_postgres(url)


@settings(max_examples=int(5 * float(os.environ.get("LAWS_EXAMPLES", "1"))) or 1, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=gen.input_folders())
def test_a_posted_run_holds_the_runs_totals_and_balances_to_the_minor_unit(data):
    """For random inputs: the ledger's totals are the summary's, its balances sum to them,
    and posting the same inputs again changes nothing."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder, ledger = write_inputs(tmp / "in", **data), str(tmp / "ledger.sqlite")
        summary = posting.settled_and_posted(load_inputs(folder), Period.parse(gen.PERIOD), gen.CLOCK, tmp / "out",
                                             SILENT, ledger)
        posting.settled_and_posted(load_inputs(folder), Period.parse(gen.PERIOD), gen.CLOCK, tmp / "again", SILENT,
                                   ledger)
        engine = posting.opened(ledger)
        assert [run.run_id for run in posting.chain(engine)] == [summary["run_id"]]
        totals = {t["currency"]: t for t in posting.posted_totals(engine, summary["run_id"])}
        assert sorted(totals) == sorted(summary["currencies"])
        held = posting.checked_figures(engine, posting.run_record(engine, summary["run_id"]))[1]
        for currency, figures in summary["currencies"].items():
            digits = len(figures["charged"].partition(".")[2])
            for name, amount in figures.items():
                assert totals[currency][name] == int(amount.replace(".", "")), (currency, name)
            mine = held.filter(pl.col("currency") == currency)
            for name in ("payable", "carried_forward"):
                assert int(mine[name].sum()) == totals[currency][name], (currency, name, digits)
        assert posting.verify(engine)[2] == []
        engine.dispose()


# --------------------------------------------------------------------------- the command line

def test_the_command_line_posts_refuses_and_verifies(tmp_path):
    ledger = str(tmp_path / "ledger.sqlite")
    run = lambda folder, out, *extra: settle_cli("run", str(folder), "--period", "2026-10", "--out", str(out),
                                                 "--clock", CLOCK, "--ledger", ledger, *extra)
    first = run(FIXTURES, tmp_path / "first")
    assert first.returncode == 0, first.stderr
    assert "ledger: posted as run 1 (settlement), hash " in first.stdout
    run_id = json.loads((tmp_path / "first" / "summary.json").read_text())["run_id"]
    conflict = run(restated(tmp_path), tmp_path / "second")
    assert conflict.returncode == 2 and "Traceback" not in conflict.stderr
    assert f"error: period 2026-10 was settled as {run_id} from other inputs" in conflict.stderr
    adjusted = run(restated(tmp_path), tmp_path / "second", "--corrects", run_id, "--reason", "restated revenue")
    assert adjusted.returncode == 0 and f"adjusts {run_id}: restated revenue" in adjusted.stdout
    listed = settle_cli("ledger", "list", "--ledger", ledger)
    assert listed.returncode == 0 and f"corrects {run_id}: restated revenue" in listed.stdout
    verified = settle_cli("ledger", "verify", "--ledger", ledger)
    assert verified.returncode == 0 and "ledger verified: 2 runs, chain intact" in verified.stdout


def test_another_programs_database_is_refused_and_left_as_it_was(tmp_path):
    other = tmp_path / "other.sqlite"
    connection = sqlite3.connect(other)
    connection.execute("CREATE TABLE run (id INTEGER PRIMARY KEY, x TEXT)")
    connection.execute("INSERT INTO run VALUES (1, 'theirs')")
    connection.commit()
    connection.close()
    before = other.read_bytes()
    for args in (["run", "fixtures", "--period", "2026-10", "--out", str(tmp_path / "out"), "--clock", CLOCK],
                 ["ledger", "verify"], ["ledger", "list"]):
        done = settle_cli(*args, "--ledger", str(other))
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert "its table run is not a ledger's" in done.stderr and "nothing was changed" in done.stderr
    assert other.read_bytes() == before and not (tmp_path / "out").exists()


def test_reading_a_ledger_writes_nothing(tmp_path):
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    for command in ("verify", "list"):
        done = settle_cli("ledger", command, "--ledger", str(empty))
        assert done.returncode == 2 and "not a ledger database" in done.stderr
    assert empty.read_bytes() == b""


def test_a_ledger_that_refuses_the_post_leaves_the_output_folder_as_it_was(tmp_path):
    """A database error after the run (here a read-only ledger) is one line, and the
    outputs never take the place of the folder's: they are not a posted run."""
    ledger = tmp_path / "ledger.sqlite"
    settled(FIXTURES, tmp_path / "first", str(ledger))
    read_only = f"sqlite:///file:{ledger}?mode=ro&uri=true"
    with pytest.raises(posting.LedgerError, match="attempt to write a readonly database"):
        settled(with_balances(str(ledger), "2026-11", tmp_path), tmp_path / "november", read_only, None, None,
                period="2026-11")
    assert not (tmp_path / "november").exists() and not (tmp_path / ".november.posting").exists()
    assert len(posting.chain(posting.opened(str(ledger)))) == 1


@pytest.mark.parametrize("args, message", [
    (["run", "fixtures", "--period", "2026-10", "--out", "{tmp}/out", "--clock", CLOCK, "--corrects", "run-x"],
     "--corrects, --reason and --opening-balances post an adjustment to a ledger: give --ledger too"),
    (["ledger", "verify", "--ledger", "{tmp}/none.sqlite"], "no ledger database there"),
    (["ledger", "list", "--ledger", "mysql://nobody@127.0.0.1/none"], "mysql databases are not supported"),
    (["ledger", "list", "--ledger", "postgresql://postgres@127.0.0.1:5432"], "names no database"),
    (["ledger", "list", "--ledger", ""], "--ledger is empty"),
    (["ledger", "list", "--ledger", "sqlite://"], "a database in memory"),
    (["ledger", "list", "--ledger", "{tmp}"], "is a folder"),
    (["run", "fixtures", "--period", "2026-10", "--out", "{tmp}/out", "--clock", CLOCK,
      "--ledger", "postgresql://nobody@127.0.0.1:5432/none"], "opening it failed"),
])
def test_a_wrong_ledger_gets_one_error_line(tmp_path, args, message):
    done = settle_cli(*(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()
