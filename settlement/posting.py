"""Posting: the ledger database, where every settlement run is recorded once and never
changed (DESIGN.md, laws 5 and 6).

A run is posted once its outputs are written: its identity (run id, period, clock,
rules and engine versions), the SHA-256 of its manifest.json (which hashes every
input and output file), its totals per currency and every holder's balance, all
amounts in integer minor units. The holder lines stay in the run's files, which
the manifest pins: the database holds what is paid and what is carried forward.

- **Idempotency (law 5).** The run id is a hash of everything the run read. A run
  whose id is posted already is that run: nothing is posted again, and its outputs
  must hash as the posted ones did. A period settled already, with other inputs,
  is a `RunConflict`: a second set of payments is refused. A unique index (one
  settlement per period) and the run id's primary key back this in the database,
  not only in code.
- **Immutability (law 6).** Triggers refuse every UPDATE and DELETE of a posted
  row (and, in SQLite, an INSERT that would replace one). A correction is an
  adjustment run: new inputs for the same period, posted with the run it corrects
  (`corrects`, at most one correction per run: unique) and the reason; its
  `adjustments.csv` shows each holder's old and new amounts.
- **Hash chain.** Runs are numbered in the order they are posted (`sequence`,
  unique); each run's `hash` covers the previous run's hash, its own record, its
  totals and a digest of its balances, so `verify` finds any row changed behind
  the triggers' back, and, given the last hash a reader kept, any run removed.

SQLite by default (a file path), PostgreSQL by URL (`postgresql://user@host/db`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import polars as pl
from sqlalchemy import BigInteger, CheckConstraint, Index, event, inspect, insert, make_url, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlmodel import Field, Session, SQLModel, create_engine, select

from contracts.errors import RunConflict, SettlementError
from contracts.loading import BALANCE_SCHEMA
from settlement.adjust import TOTALS, Adjustment
from settlement.money import format_minor

GENESIS = "0" * 64  # the previous hash of the first run
AMOUNT_COLUMNS = ("gross", "commission", "withholding", "net", "brought_forward", "payable", "carried_forward")
INT64_MAX = 2**63 - 1
NEVER_CHANGES = "a posted run never changes (law 6)"
SCHEMA_LOCK = 0x5E771E  # the PostgreSQL advisory lock held while a new ledger's tables are made
POST_ATTEMPTS = 5  # a run that lost its place in the chain to another period's run tries again
EXPECTED = "a file path (SQLite) or a postgresql://user@host/database URL"


class LedgerError(SettlementError):
    """The ledger database cannot be used as asked, or holds what the engine did not write there."""


class RunRecord(SQLModel, table=True):
    """One posted run."""

    __tablename__ = "run"
    __table_args__ = (
        CheckConstraint("kind IN ('settlement', 'adjustment')", name="run_kind"),
        CheckConstraint("(kind = 'settlement' AND corrects IS NULL AND reason IS NULL) OR "
                        "(kind = 'adjustment' AND corrects IS NOT NULL AND reason IS NOT NULL)",
                        name="run_adjustment_names_its_run_and_reason"),
        # law 5 in the database: one settlement per period; other inputs come as adjustments
        Index("one_settlement_per_period", "period", unique=True,
              sqlite_where=text("kind = 'settlement'"), postgresql_where=text("kind = 'settlement'")),
    )

    run_id: str = Field(primary_key=True)
    sequence: int = Field(unique=True)  # its place in the hash chain, from 1
    period: str = Field(index=True)
    kind: str
    corrects: str | None = Field(default=None, foreign_key="run.run_id", unique=True)
    reason: str | None = None
    clock: str
    rules_version: str
    engine_version: str
    manifest_sha256: str
    previous_hash: str
    hash: str = Field(unique=True)


class RunTotal(SQLModel, table=True):
    """A posted run's totals in one currency, in minor units."""

    __tablename__ = "run_total"

    run_id: str = Field(primary_key=True, foreign_key="run.run_id")
    currency: str = Field(primary_key=True)
    charged: int = Field(sa_type=BigInteger)
    brought_forward: int = Field(sa_type=BigInteger)  # balances.csv's: what earlier runs carried forward
    commission: int = Field(sa_type=BigInteger)
    withholding: int = Field(sa_type=BigInteger)
    payable: int = Field(sa_type=BigInteger)
    carried_forward: int = Field(sa_type=BigInteger)
    suspense: int = Field(sa_type=BigInteger)


class HolderBalance(SQLModel, table=True):
    """A holder's balance in one currency in a posted run, in minor units."""

    __tablename__ = "holder_balance"

    run_id: str = Field(primary_key=True, foreign_key="run.run_id")
    holder_id: str = Field(primary_key=True)
    currency: str = Field(primary_key=True)
    gross: int = Field(sa_type=BigInteger)
    commission: int = Field(sa_type=BigInteger)
    withholding: int = Field(sa_type=BigInteger)
    net: int = Field(sa_type=BigInteger)
    brought_forward: int = Field(sa_type=BigInteger)
    payable: int = Field(sa_type=BigInteger)
    carried_forward: int = Field(sa_type=BigInteger)


TABLES = {"run": RunRecord, "run_total": RunTotal, "holder_balance": HolderBalance}
# the rows an insert would replace, per table: SQLite's INSERT OR REPLACE deletes them without firing
# DELETE triggers (unless a connection asks for recursive triggers, as the engine's do)
REPLACED = {"run": ("run_id = NEW.run_id", "sequence = NEW.sequence", "hash = NEW.hash", "corrects = NEW.corrects",
                    "(period = NEW.period AND kind = 'settlement' AND NEW.kind = 'settlement')"),
            "run_total": ("(run_id = NEW.run_id AND currency = NEW.currency)",),
            "holder_balance": ("(run_id = NEW.run_id AND holder_id = NEW.holder_id AND currency = NEW.currency)",)}


# --------------------------------------------------------------------------- opening the ledger

def engine_url(ledger: str) -> str:
    """An SQLAlchemy URL from `--ledger`: a path is an SQLite file; postgresql:// URLs use
    psycopg 3 and must name their database (the server's default one is nobody's ledger)."""
    if not ledger.strip():
        raise LedgerError(f"--ledger is empty; expected {EXPECTED}")
    if "://" not in ledger:
        if Path(ledger).is_dir():
            raise LedgerError(f"--ledger {ledger!r} is a folder; expected {EXPECTED}")
        return f"sqlite:///{Path(ledger).resolve()}"
    scheme, rest = ledger.split("://", 1)
    if scheme in ("postgresql", "postgres"):
        url = "postgresql+psycopg://" + rest
        if not make_url(url).database:
            raise LedgerError(f"--ledger {ledger!r} names no database; expected {EXPECTED}")
        return url
    if scheme.split("+")[0] not in ("sqlite", "postgresql"):
        raise LedgerError(f"--ledger {ledger!r}: {scheme} databases are not supported; expected {EXPECTED}")
    if scheme.startswith("sqlite") and make_url(ledger).database in (None, "", ":memory:"):
        raise LedgerError(f"--ledger {ledger!r} is a database in memory, which keeps no run; expected {EXPECTED}")
    return ledger


def shown(engine: Engine) -> str:
    """The ledger as an error names it, without a password."""
    return engine.url.render_as_string(hide_password=True)


def ledger_error(engine: Engine, doing: str, error: SQLAlchemyError) -> LedgerError:
    """A database's refusal (locked, read-only, gone, permissions) as one line."""
    cause = (str(getattr(error, "orig", None) or error).strip().splitlines() or [type(error).__name__])[0]
    return LedgerError(f"ledger {shown(engine)}: {doing} failed ({cause})")


@contextmanager
def database_errors(engine: Engine, doing: str) -> Iterator[None]:
    try:
        yield
    except SQLAlchemyError as error:
        raise ledger_error(engine, doing, error) from None


def opened(ledger: str, create: bool = True) -> Engine:
    """The ledger database of `--ledger`. With `create`, a database without the ledger's
    tables gets them (and their triggers), once; without it (reading the ledger), it is
    an error, and nothing is written. A database whose tables of the ledger's names are
    not the ledger's is refused, not changed."""
    try:
        engine = create_engine(engine_url(ledger))
    except (ArgumentError, ImportError, ValueError) as error:
        raise LedgerError(f"--ledger {ledger!r}: cannot open the ledger database ({error}); "
                          f"expected {EXPECTED}") from None
    if engine.dialect.name == "sqlite":
        if not create and not Path(engine.url.database or "").is_file():
            raise LedgerError(f"--ledger {ledger!r}: no ledger database there")
        event.listen(engine, "connect", sqlite_settings)
    with database_errors(engine, "opening it"):
        if complete(engine, create) and not (create and missing_triggers(engine)):
            return engine
        with schema_lock(engine):  # another process may be making the same new ledger
            if not complete(engine, create):
                with engine.begin() as connection:
                    SQLModel.metadata.create_all(connection)
            with engine.begin() as connection:
                for statement in immutability_ddl(engine.dialect.name, missing_triggers(engine)):
                    connection.exec_driver_sql(statement)
    return engine


def complete(engine: Engine, create: bool) -> bool:
    """Whether the ledger's tables are all there (checked to be the ledger's); an error if
    only some are, or none and the ledger is only read."""
    present = set(inspect(engine).get_table_names()) & set(TABLES)
    for name in sorted(present):
        check_table(engine, name)
    if present and present != set(TABLES) or not present and not create:
        raise LedgerError(f"ledger {shown(engine)}: not a ledger database (its tables "
                          f"{', '.join(sorted(TABLES))} are {'partly ' if present else ''}missing)")
    return present == set(TABLES)


@contextmanager
def schema_lock(engine: Engine) -> Iterator[None]:
    """Held while the ledger's tables and triggers are made: an SQLite file's lock (flock, which
    SQLite's own byte-range locks ignore) or a PostgreSQL advisory lock."""
    if engine.dialect.name == "sqlite":
        with open(engine.url.database, "ab") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        return
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": SCHEMA_LOCK})
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": SCHEMA_LOCK})


def trigger_names(dialect: str) -> list[str]:
    """The triggers that keep posted rows as they were posted (law 6)."""
    verbs = ("no_update", "no_delete", "no_replace") if dialect == "sqlite" else ("immutable", "not_truncated")
    return [f"{table}_{verb}" for table in TABLES for verb in verbs]


def missing_triggers(engine: Engine) -> list[str]:
    query = ("SELECT name FROM sqlite_master WHERE type = 'trigger'" if engine.dialect.name == "sqlite" else
             "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
             "WHERE NOT t.tgisinternal AND pg_table_is_visible(c.oid)")
    with engine.connect() as connection:
        present = {name for (name,) in connection.exec_driver_sql(query)}
    return [name for name in trigger_names(engine.dialect.name) if name not in present]


def sqlite_settings(connection, _) -> None:
    connection.execute("PRAGMA foreign_keys = ON")
    connection.execute("PRAGMA recursive_triggers = ON")  # a REPLACE's delete fires the DELETE triggers too


def check_table(engine: Engine, name: str) -> None:
    """Refuse a table of a ledger's name whose columns are not the ledger's (another program's)."""
    found = {column["name"] for column in inspect(engine).get_columns(name)}
    wanted = set(TABLES[name].model_fields)
    if "brought_forward" not in found and found | {"brought_forward"} == wanted:
        raise LedgerError(f"ledger {shown(engine)}: made by an earlier version of the engine, whose runs did not "
                          f"bring balances forward (its table {name} has no brought_forward column); its runs "
                          "still replay with that version, and runs of this version are posted to a new ledger, "
                          "opened with their balances.csv; nothing was changed")
    if found != wanted:
        raise LedgerError(f"ledger {shown(engine)}: its table {name} is not a ledger's (columns "
                          f"{', '.join(sorted(found))}; expected {', '.join(sorted(wanted))}); nothing was changed")


def immutability_ddl(dialect: str, names: list[str]) -> list[str]:
    """The statements that make the triggers `names` (of trigger_names), which refuse to
    change or delete a posted row (law 6)."""
    if not names:
        return []
    if dialect == "sqlite":
        return [sqlite_trigger(*name.split("_no_")) for name in names]
    function = "settle_posted_run_never_changes"
    made = {f"{table}_immutable": f"BEFORE UPDATE OR DELETE ON {table} FOR EACH ROW"
            for table in TABLES} | {f"{table}_not_truncated": f"BEFORE TRUNCATE ON {table} FOR EACH STATEMENT"
                                    for table in TABLES}
    return [f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION "
            f"USING MESSAGE = TG_TABLE_NAME || ': {NEVER_CHANGES}'; END $$",
            *(f"CREATE TRIGGER {name} {made[name]} EXECUTE FUNCTION {function}()" for name in names)]


def sqlite_trigger(table: str, verb: str) -> str:
    refuse = f"BEGIN SELECT RAISE(ABORT, '{table}: {NEVER_CHANGES}'); END"
    if verb == "replace":
        return (f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} "
                f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {' OR '.join(REPLACED[table])}) {refuse}")
    return f"CREATE TRIGGER {table}_no_{verb} BEFORE {verb.upper()} ON {table} {refuse}"


# --------------------------------------------------------------------------- what a run posts

@dataclass(frozen=True)
class Posting:
    """What posting a run records: its record (without sequence and hashes), totals and
    balances; and, for a new period's settlement, what to check again as it is posted."""

    run_id: str
    period: str
    kind: str
    corrects: str | None
    reason: str | None
    clock: str
    rules_version: str
    engine_version: str
    manifest_sha256: str
    totals: list[dict]    # per currency: TOTALS
    balances: list[dict]  # per holder and currency: AMOUNT_COLUMNS
    # a new period's settlement: the chain's last sequence when its balances.csv (`balances_file`) was
    # checked, to check it again if runs were posted since; None for a correction, which brings forward
    # what the run it corrects did
    balances_checked_at: int | None = None
    balances_file: str = ""


def fits_int64(value: int, what: str) -> int:
    """`value`, refused if the ledger's 64-bit integer columns cannot hold it."""
    if not -INT64_MAX - 1 <= value <= INT64_MAX:
        raise LedgerError(f"{what} = {value} minor units does not fit the ledger's 64-bit integers")
    return int(value)


def balance_rows(balances: pl.DataFrame) -> list[dict]:
    """A run's balances (holder_id and currency as text), as the ledger stores them, in
    (holder, currency) order."""
    for column in AMOUNT_COLUMNS:  # each amount is at most a run total in magnitude; checked, not assumed
        for extreme in (balances[column].min(), balances[column].max()):
            if extreme is not None:
                fits_int64(extreme, f"a holder's {column}")
    return balances.select("holder_id", "currency", *(pl.col(c).cast(pl.Int64) for c in AMOUNT_COLUMNS)
                           ).sort("holder_id", "currency").to_dicts()


def total_rows(totals: dict[str, dict[str, int]]) -> list[dict]:
    return [{"currency": currency, **{c: fits_int64(figures[c], f"{currency} {c}") for c in TOTALS}}
            for currency, figures in sorted(totals.items())]


def balances_digest(balances: list[dict]) -> str:
    """SHA-256 of the balances, one text line each, in (holder, currency) order by code point.
    Values enter as the database returns them: one that is not the integer posted (a
    decimal, a text) changes the digest."""
    digest = hashlib.sha256()
    for row in sorted(balances, key=lambda r: (str(r["holder_id"]), str(r["currency"]))):
        digest.update((",".join(str(row[c]) for c in ("holder_id", "currency", *AMOUNT_COLUMNS)) + "\n").encode())
    return digest.hexdigest()


def chain_hash(previous_hash: str, record: dict, totals: list[dict], balances: list[dict]) -> str:
    """A run's link in the chain: the previous run's hash, the run's record, totals and balances."""
    content = {**{k: record[k] for k in ("run_id", "sequence", "period", "kind", "corrects", "reason", "clock",
                                         "rules_version", "engine_version", "manifest_sha256")},
               "totals": sorted(totals, key=lambda t: str(t["currency"])), "balances": balances_digest(balances)}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr)
    return hashlib.sha256(f"{previous_hash}\n{canonical}".encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- reading the ledger

def run_record(engine: Engine, run_id: str) -> RunRecord | None:
    with Session(engine) as session:
        return session.get(RunRecord, run_id)


def chain(engine: Engine) -> list[RunRecord]:
    """Every posted run, in the order posted."""
    with Session(engine) as session:
        return list(session.exec(select(RunRecord).order_by(RunRecord.sequence)))


def standing_run(engine: Engine, period: str) -> RunRecord | None:
    """The period's settlement as it stands: its settlement run, or the last correction of it."""
    with Session(engine) as session:
        runs = list(session.exec(select(RunRecord).where(RunRecord.period == period).order_by(RunRecord.sequence)))
    standing = uncorrected(runs)
    return standing[-1] if standing else None


def uncorrected(runs: list[RunRecord]) -> list[RunRecord]:
    """Those of `runs` (in the order posted) that no other of them corrects."""
    corrected = {run.corrects for run in runs}
    return [run for run in runs if run.run_id not in corrected]


def raw_rows(engine: Engine, table: str, columns: tuple[str, ...], run_id: str) -> list[dict]:
    """A run's rows of `table`, values as the database holds them (verify hashes those)."""
    table = TABLES[table].__table__
    with engine.connect() as connection:
        found = connection.execute(select(*(table.c[c] for c in columns)).where(table.c.run_id == run_id))
        return [dict(row._mapping) for row in found]


def posted_totals(engine: Engine, run_id: str) -> list[dict]:
    return raw_rows(engine, "run_total", ("currency", *TOTALS), run_id)


def posted_balance_rows(engine: Engine, run_id: str) -> list[dict]:
    return raw_rows(engine, "holder_balance", ("holder_id", "currency", *AMOUNT_COLUMNS), run_id)


def run_problems(run: RunRecord, number: int, previous: str, totals: list[dict], balances: list[dict]) -> list[str]:
    """What is wrong with the `number`th run of the chain, whose predecessor hashes to `previous`,
    given its `totals` and `balances` as the database holds them."""
    problems = []
    if run.sequence != number:
        problems.append(f"{run.run_id}: sequence {run.sequence}, expected {number} (a run is missing)")
    if run.previous_hash != previous:
        problems.append(f"{run.run_id}: links to {run.previous_hash[:16]}..., but the run before it hashes "
                        f"to {previous[:16]}...")
    amounts = [row[c] for row in totals for c in TOTALS] + [row[c] for row in balances for c in AMOUNT_COLUMNS]
    if any(type(amount) is not int for amount in amounts):
        problems.append(f"{run.run_id}: holds amounts that are not integers of minor units")
    expected = chain_hash(run.previous_hash, run.model_dump(), totals, balances)
    if expected != run.hash:
        problems.append(f"{run.run_id}: its record, totals or balances were changed after it was posted "
                        f"(they hash to {expected[:16]}..., the chain holds {run.hash[:16]}...)")
    return problems


def verify(engine: Engine, last: str | None = None) -> tuple[int, str, list[str]]:
    """The chain checked run by run: (runs, the last hash, every problem found). `last`: a
    hash the reader kept (printed when a run was posted); the chain must still hold it, or
    runs were removed from its end, which no link can show."""
    problems, previous = [], GENESIS
    with database_errors(engine, "reading the chain"):
        missing = missing_triggers(engine)
        if missing:
            problems.append(f"the ledger's triggers {', '.join(missing)} are missing: posted rows can be changed "
                            "(the next run posted makes them again)")
        runs = chain(engine)
        for number, run in enumerate(runs, start=1):
            problems += run_problems(run, number, previous, posted_totals(engine, run.run_id),
                                     posted_balance_rows(engine, run.run_id))
            previous = run.hash
    if last is not None and last not in {run.hash for run in runs}:
        problems.append(f"no run hashes to {last}: runs were removed from the chain, or the hash is not this "
                        "ledger's")
    return len(runs), previous, problems


def checked_figures(engine: Engine, run: RunRecord) -> tuple[list[dict], pl.DataFrame]:
    """A posted run's totals and balances (sorted by holder and currency), checked against its
    hash first: an adjustment builds on them."""
    with Session(engine) as session:
        before = session.exec(select(RunRecord.hash).where(RunRecord.sequence == run.sequence - 1)).first()
    totals, balances = posted_totals(engine, run.run_id), posted_balance_rows(engine, run.run_id)
    problems = run_problems(run, run.sequence, GENESIS if run.sequence == 1 else before or "(no run)", totals,
                            balances)
    if problems:
        raise LedgerError(f"run {run.run_id} in the ledger is not as it was posted: {'; '.join(problems)}")
    schema = {"holder_id": pl.String, "currency": pl.String, **{c: pl.Int64 for c in AMOUNT_COLUMNS}}
    return totals, pl.DataFrame(balances, schema=schema).sort("holder_id", "currency")


# --------------------------------------------------------------------------- balances brought forward

def standing_runs(engine: Engine) -> list[RunRecord]:
    """The runs the ledger's periods stand as (standing_run), in the order posted."""
    return uncorrected(chain(engine))


def as_balances(frame: pl.DataFrame, amount: pl.Expr) -> pl.DataFrame:
    """`amount` summed per holder and currency of `frame` (checked_figures' balances), as
    BALANCE_SCHEMA, none of 0; refused past the ledger's 64-bit integers."""
    sums = (frame.group_by("holder_id", "currency").agg(amount.cast(pl.Int128).sum().alias("amount_minor"))
            .filter(pl.col("amount_minor") != 0).sort("holder_id", "currency"))
    for extreme in (sums["amount_minor"].min(), sums["amount_minor"].max()):
        if extreme is not None:
            fits_int64(extreme, "a balance carried forward")
    return sums.with_columns(pl.col("amount_minor").cast(pl.Int64))


def outstanding(engine: Engine) -> tuple[pl.DataFrame, int] | None:
    """What the ledger carries forward to the next run it posts, per holder and currency in
    minor units (BALANCE_SCHEMA; none of 0), and how many standing runs it is summed over;
    None for a ledger of no run, which takes any balances.csv as its opening balances.

    Balances go from run to run in the order they are posted, whatever their periods: the
    opening balances (what the ledger's first month brought forward, as it stands: a
    correction of it may correct them) and, for every run a period stands as, what it
    carried forward less what it brought forward. Over a chain of
    months that is the last month's carried forward; a correction adds what it changed
    (negative, a debt, when it paid what a later run had carried on already); and a month
    settled after a later one brings forward what that later one left, so no balance is
    brought forward twice. Every run read is checked against its hash first: the money
    flows on from it. (Each standing run's balances are read: at 50,000 holders, 24 runs
    took 6.3 s.)"""
    with database_errors(engine, "reading the balances carried forward"):
        runs = standing_runs(engine)
        if not runs:
            return None
        figures = {run.sequence: checked_figures(engine, run)[1] for run in runs}
        first = figures[first_month(engine, runs).sequence]
    left = [frame.select("holder_id", "currency", (pl.col("carried_forward").cast(pl.Int128)
                                                   - pl.col("brought_forward")).alias("left"))
            for frame in figures.values()]
    opening = first.select("holder_id", "currency", pl.col("brought_forward").cast(pl.Int128).alias("left"))
    return as_balances(pl.concat([opening, *left]), pl.col("left")), len(runs)


def first_month(engine: Engine, runs: list[RunRecord]) -> RunRecord:
    """Of the standing `runs`, the one the ledger's first month stands as: its first run, or
    the last correction of it."""
    period = run_record_at(engine, 1).period
    return next(run for run in runs if run.period == period)


def opens_ledger(engine: Engine, run_id: str) -> bool:
    """Whether posted run `run_id` settles the ledger's first month (its first run, or a
    correction of it), whose balances brought forward are the opening balances."""
    with database_errors(engine, "reading the ledger's first run"):
        return posted_run(engine, run_id).period == run_record_at(engine, 1).period


def brought_forward_by(engine: Engine, run_id: str) -> pl.DataFrame:
    """What posted run `run_id` brought forward (BALANCE_SCHEMA), which a correction of it
    brings forward again; a RunConflict if the ledger has no such run."""
    with database_errors(engine, "reading the balances brought forward"):
        return as_balances(checked_figures(engine, posted_run(engine, run_id))[1], pl.col("brought_forward"))


def balances_text(rows) -> str:
    """Balances, (holder_id, currency, minor units) rows of BALANCE_SCHEMA, as balances.csv."""
    return "holder_id,currency,amount\n" + "".join(f"{holder},{currency},{format_minor(amount, currency)}\n"
                                                  for holder, currency, amount in rows)


def run_record_at(engine: Engine, sequence: int) -> RunRecord:
    """The run at `sequence` in the chain."""
    with Session(engine) as session:
        return session.exec(select(RunRecord).where(RunRecord.sequence == sequence)).one()


def last_sequence(engine: Engine) -> int:
    """The place in the chain of the last run posted; 0 for a ledger of no run."""
    with Session(engine) as session:
        last = session.exec(select(RunRecord.sequence).order_by(RunRecord.sequence.desc()).limit(1)).first()
    return last or 0


def balance_differences(expected: pl.DataFrame, given: pl.DataFrame, source: str) -> str | None:
    """How `given` (BALANCE_SCHEMA) differs from `expected`, holder by holder (the first five), or None."""
    key = ["holder_id", "currency"]
    both = expected.join(given, on=key, how="full", coalesce=True, suffix="_given").fill_null(0).filter(
        pl.col("amount_minor") != pl.col("amount_minor_given"))
    if both.height == 0:
        return None
    shown_rows = "; ".join(f"{h} {c}: {source} {format_minor(e, c)}, balances.csv {format_minor(g, c)}"
                           for h, c, e, g in both.sort(key).head(5).iter_rows())
    return (f"{both.height} holder balance{'s' if both.height != 1 else ''} differ{'s' if both.height == 1 else ''}: "
            f"{shown_rows}{'; and more' if both.height > 5 else ''}")


def check_brought_forward(engine: Engine, brought_forward: pl.DataFrame, path: Path | str, corrects: str | None,
                          meanwhile: bool = False, opening: bool = False) -> None:
    """Refuse a run whose balances.csv (`path`, read as Inputs.brought_forward) is not what
    the ledger carries forward to it (outstanding): a balance left out would never be
    paid, one brought forward twice would be paid twice. A correction brings forward what
    the run it corrects did. A ledger of no run takes balances.csv as its opening
    balances (taken over from the society's system before), and so does a correction of
    its first month that says so (`opening`, --opening-balances): the opening balances are
    corrected as any other input is, and what that changes goes to the next run. Said, not
    assumed: a balances.csv written since for a later month would be taken for opening
    balances and paid again. `meanwhile`: checked again as the run is posted, other runs
    having been posted since it was settled."""
    corrects_first = corrects is not None and opens_ledger(engine, corrects)
    if opening and not corrects_first:
        which = "give --corrects with its run" if corrects is None else f"run {corrects} is not that month"
        raise LedgerError(f"--opening-balances corrects the balances the ledger's first month brought forward: "
                          f"{which}; nothing was written")
    if opening:
        return
    if corrects is not None:
        expected = brought_forward_by(engine, corrects)
    else:
        found = outstanding(engine)
        if found is None:  # a ledger of no run: balances.csv opens it
            return
        expected = found[0]
    differences = balance_differences(expected, brought_forward, "the ledger")
    if differences is None:
        return
    what = f"what run {corrects}, which this run corrects, brought forward" if corrects else \
        "what the ledger carries forward to its next run"
    command = f"settle ledger balances --ledger LEDGER{f' --corrects {corrects}' if corrects else ''} --out {path}"
    raise LedgerError(("another run was posted while this one was settled, and " if meanwhile else "")
                      + f"{path} is not {what} ({differences}); nothing was {'posted' if meanwhile else 'written'}. "
                        f"Write it from the ledger{' again, and settle again' if meanwhile else ''}: {command}"
                      + ("; or, if it corrects the ledger's opening balances, give --opening-balances"
                         if corrects_first else ""))


def check_settled_balances(engine: Engine, standing: RunRecord, brought_forward: pl.DataFrame, path: Path) -> None:
    """A settled period's inputs are its run's (law 5: that run is returned) or a conflict;
    refuse early, and say so, when balances.csv is not what that run brought forward (a
    balances.csv written again since, for the ledger's next run)."""
    differences = balance_differences(brought_forward_by(engine, standing.run_id), brought_forward, "the run")
    if differences is not None:
        raise RunConflict(f"period {standing.period} was settled as {standing.run_id}, which brought forward other "
                          f"balances than {path} ({differences}); nothing was written. To settle its inputs again, "
                          f"use the balances.csv it was settled with (settle ledger balances --ledger LEDGER "
                          f"--corrects {standing.run_id} writes it); other inputs for a settled period are posted as "
                          f"a correction only: --corrects {standing.run_id} --reason '...'")


# --------------------------------------------------------------------------- deciding and posting

def check_correction(corrects: str | None, reason: str | None) -> None:
    """The options of an adjustment: both, or neither."""
    if reason is not None and not reason.strip():
        raise LedgerError("--reason is empty: say why the run is corrected")
    if (corrects is None) != (reason is None):
        raise LedgerError("an adjustment needs both --corrects RUN_ID and --reason")


def posted_run(engine: Engine, corrects: str) -> RunRecord:
    """The posted run `corrects` (of --corrects); a RunConflict if the ledger has none."""
    corrected = run_record(engine, corrects)
    if corrected is None:
        raise RunConflict(f"--corrects {corrects}: no such run in the ledger")
    return corrected


def run_of_period(engine: Engine, period: str, corrects: str) -> RunRecord:
    """The posted run `corrects`, which must have settled `period`."""
    corrected = posted_run(engine, corrects)
    if corrected.period != period:
        raise RunConflict(f"--corrects {corrects}: that run settled period {corrected.period}, not {period}")
    return corrected


def corrected_run(engine: Engine, period: str, corrects: str) -> RunRecord:
    """The posted run an adjustment of `period` may correct: `corrects`, if the period stands as it."""
    corrected = run_of_period(engine, period, corrects)
    standing = standing_run(engine, period)
    if standing.run_id != corrected.run_id:
        raise RunConflict(f"--corrects {corrects}: that run was corrected already; the period stands as "
                          f"{standing.run_id}, which is the run to correct")
    return corrected


@dataclass(frozen=True)
class Decision:
    """What a computed run is to the ledger: `posted` already (law 5: that run, unchanged),
    or a new settlement, or an adjustment of `corrects`, to post once its outputs are written."""

    posted: RunRecord | None
    corrects: RunRecord | None

    @property
    def kind(self) -> str:
        return "settlement" if self.corrects is None else "adjustment"


def decide(engine: Engine, run_id: str, period: str, corrects: str | None) -> Decision:
    """Whether run `run_id` of `period` is posted already, may be posted, or conflicts
    (RunConflict). `corrects`: the run an adjustment corrects (its id is part of `run_id`)."""
    with database_errors(engine, "reading the period's runs"):
        posted = run_record(engine, run_id)
        if posted is not None:
            return Decision(posted, run_record(engine, posted.corrects) if posted.corrects else None)
        if corrects is not None:
            return Decision(None, corrected_run(engine, period, corrects))
        standing = standing_run(engine, period)
    if standing is not None:
        raise RunConflict(f"period {period} was settled as {standing.run_id} from other inputs; a second settlement "
                          f"would pay twice, so nothing was written. To correct that run: --corrects "
                          f"{standing.run_id} --reason '...'")
    return Decision(None, None)


def post(engine: Engine, posting: Posting) -> tuple[RunRecord, bool]:
    """Record a run, its totals and balances in one transaction, linked to the last posted run;
    the run, and whether this call posted it (not another process, meanwhile, from the same
    inputs). A run that loses its place in the chain to another run posted meanwhile
    (another period's) takes the next; one that loses its period (law 5) is a RunConflict."""
    for _ in range(POST_ATTEMPTS):
        try:
            return posted_once(engine, posting), True
        except SQLAlchemyError as error:
            if not isinstance(error, IntegrityError):
                raise ledger_error(engine, f"posting run {posting.run_id}", error) from None
            last_error = error
            decision = decide(engine, posting.run_id, posting.period, posting.corrects)  # raises on a conflict
            if decision.posted is not None:
                return decision.posted, False
    raise ledger_error(engine, f"posting run {posting.run_id} ({POST_ATTEMPTS} tries, each losing its place in "
                               "the chain to a run posted meanwhile)", last_error)


def posted_once(engine: Engine, posting: Posting) -> RunRecord:
    with Session(engine) as session:
        # the chain's end as values, not a loaded run (which may be this very run, posted meanwhile)
        last = session.exec(select(RunRecord.sequence, RunRecord.hash).order_by(RunRecord.sequence.desc()).limit(1)
                            ).first()
        if posting.balances_checked_at is not None and (0 if last is None else last.sequence) \
                != posting.balances_checked_at \
                and standing_run(engine, posting.period) is None:  # else it was posted meanwhile, or a conflict
            check_brought_forward(engine, posted_brought_forward(posting), posting.balances_file, None, meanwhile=True)
        record = {"run_id": posting.run_id, "sequence": 1 if last is None else last.sequence + 1,
                  "period": posting.period, "kind": posting.kind, "corrects": posting.corrects,
                  "reason": posting.reason, "clock": posting.clock, "rules_version": posting.rules_version,
                  "engine_version": posting.engine_version, "manifest_sha256": posting.manifest_sha256,
                  "previous_hash": GENESIS if last is None else last.hash}
        record["hash"] = chain_hash(record["previous_hash"], record, posting.totals, posting.balances)
        run = RunRecord(**record)
        session.add(run)
        session.flush()  # the run row first: the others refer to it
        session.add_all([RunTotal(run_id=posting.run_id, **t) for t in posting.totals])
        if posting.balances:  # one executemany, not an ORM object per holder (50,000 at 100M usage rows)
            session.connection().execute(insert(HolderBalance.__table__),
                                         [{"run_id": posting.run_id, **b} for b in posting.balances])
        session.commit()
        session.refresh(run)
        return run


def posted_brought_forward(posting: Posting) -> pl.DataFrame:
    """What a run to post brings forward (BALANCE_SCHEMA), from its balances."""
    rows = [(b["holder_id"], b["currency"], b["brought_forward"]) for b in posting.balances if b["brought_forward"]]
    return pl.DataFrame(rows, schema=BALANCE_SCHEMA, orient="row")


# --------------------------------------------------------------------------- a run, settled and posted

def settled_and_posted(inputs, period, clock: str, out: Path, progress, ledger: str | None,
                       corrects: str | None = None, reason: str | None = None, opening: bool = False) -> dict:
    """`settle run`: settle `period`, write its outputs to `out` and post it to `ledger`
    (when given). Returns the run's summary, with a `posted` line saying what the ledger did.

    The ledger is opened and an adjustment's run checked before the settlement, so that a
    wrong --ledger or --corrects fails in seconds; a conflict (law 5) is found once the run
    id is known, before anything is written. The outputs are written to a new folder beside
    `out` and take its place only once the run is posted (or found posted, with the same
    bytes): a run the ledger refuses leaves `out` as it was."""
    from settlement.exports import balances_as_text, check_folder, export
    from settlement.run import Correction, settle

    if ledger is None:
        with settle(inputs, period, clock, progress) as settlement:
            return export(settlement, out, progress)
    check_correction(corrects, reason)
    engine, out = opened(ledger), out.resolve()
    correction = None if corrects is None else Correction(corrects, reason.strip())
    if correction is not None:
        with database_errors(engine, "reading the run to correct"):
            run_of_period(engine, period.name, correction.corrects)
    balances_file = inputs.folder / "balances.csv"
    with database_errors(engine, "reading the period's runs"):
        standing, checked_at = standing_run(engine, period.name), last_sequence(engine)
    if standing is not None and correction is None:  # its run again (law 5), or a conflict
        check_settled_balances(engine, standing, inputs.brought_forward, balances_file)
    else:
        check_brought_forward(engine, inputs.brought_forward, balances_file, corrects, opening=opening)
    with settle(inputs, period, clock, progress, correction) as settlement:
        decision = decide(engine, settlement.run_id, period.name, corrects)
        adjustment = None  # the run id holds the correction: a run found posted was posted with it
        if decision.corrects is not None:
            old_totals, old = checked_figures(engine, decision.corrects)
            adjustment = Adjustment(correction, old, old_totals)
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.posting-", dir=out.parent))
        try:
            summary = export(settlement, staging, progress, adjustment)
            manifest = hashlib.sha256((staging / "manifest.json").read_bytes()).hexdigest()
            check_folder(out)  # still an earlier run's outputs, or nothing, before the run is posted
            record, fresh = (decision.posted, False) if decision.posted else post(engine, Posting(
                run_id=settlement.run_id, period=period.name, kind=decision.kind,
                corrects=correction.corrects if correction else None,
                reason=correction.reason if correction else None, clock=clock,
                rules_version=summary["rules_version"], engine_version=summary["engine_version"],
                manifest_sha256=manifest, totals=total_rows(settlement.totals),
                balances=balance_rows(balances_as_text(settlement)),
                balances_checked_at=checked_at if correction is None else None, balances_file=str(balances_file)))
            if not fresh:
                confirmed(record, manifest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    replaced_by(out, staging, record)
    return {**summary, "posted": posted_line(engine, record, fresh)}


def replaced_by(out: Path, staging: Path, record: RunRecord) -> None:
    """`out` replaced by the posted run's outputs in `staging`."""
    try:
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except OSError as error:
        raise LedgerError(f"run {record.run_id} is posted, but its outputs could not take the place of {out} "
                          f"({error.strerror or error}); they are in {staging}: move them there") from None


def confirmed(posted: RunRecord, manifest: str) -> None:
    """Refuse outputs written now that are not the `posted` run's (its manifest's hash)."""
    if posted.manifest_sha256 != manifest:
        raise LedgerError(f"run {posted.run_id} is posted already, but the outputs written now differ from the "
                          f"posted ones (manifest.json {manifest[:16]}..., posted {posted.manifest_sha256[:16]}...; "
                          f"engine {posted.engine_version} posted it); the output folder was left as it was")


def posted_line(engine: Engine, record: RunRecord, fresh: bool) -> str:
    """What the ledger did, as `settle run` prints it: posted the run (`fresh`), or found it posted."""
    if fresh:
        return (f"ledger: posted as run {record.sequence} ({record.kind}), hash {record.hash} "
                f"(keep it: `settle ledger verify --last HASH` shows that no run was removed since)")
    standing = standing_run(engine, record.period)
    superseded = "" if standing.run_id == record.run_id else (
        f"; it was corrected since: the period stands as {standing.run_id}")
    return (f"ledger: posted already as run {record.sequence} ({record.kind}), hash {record.hash}; these inputs "
            f"settle to the same bytes, nothing was posted again{superseded}")
