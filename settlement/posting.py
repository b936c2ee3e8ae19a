"""Posting: the ledger database, where every settlement run is recorded once and never
changed (DESIGN.md, laws 5 and 6).

A run is posted after its outputs are written: its identity (run id, period, clock,
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
  row. A correction is an adjustment run: new inputs for the same period, posted
  with the run it corrects (`corrects`, at most one correction per run: unique)
  and the reason; its `adjustments.csv` shows each holder's old and new amounts.
- **Hash chain.** Runs are numbered in the order they are posted (`sequence`,
  unique); each run's `hash` covers the previous run's hash, its own record, its
  totals and a digest of its balances, so `verify` finds any row changed behind
  the triggers' back.

SQLite by default (a file path), PostgreSQL by URL (`postgresql://user@host/db`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import polars as pl
from sqlalchemy import BigInteger, CheckConstraint, Index, event, insert, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlmodel import Field, Session, SQLModel, create_engine, select

from contracts.errors import RunConflict, SettlementError
from settlement import keys

GENESIS = "0" * 64  # the previous hash of the first run
AMOUNT_COLUMNS = ("gross", "commission", "withholding", "net", "payable", "carried_forward")
TOTAL_COLUMNS = ("charged", "commission", "withholding", "payable", "carried_forward", "suspense")
INT64_MAX = 2**63 - 1


class LedgerError(SettlementError):
    """The ledger database cannot be opened, or holds what the engine did not write there."""


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
    payable: int = Field(sa_type=BigInteger)
    carried_forward: int = Field(sa_type=BigInteger)


TABLES = ("run", "run_total", "holder_balance")


def engine_url(ledger: str) -> str:
    """An SQLAlchemy URL from `--ledger`: a path is an SQLite file; postgresql:// URLs use psycopg 3."""
    if "://" not in ledger:
        return f"sqlite:///{Path(ledger).resolve()}"
    if ledger.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + ledger.split("://", 1)[1]
    return ledger


def immutability_ddl(dialect: str) -> list[str]:
    """Triggers that refuse to change or delete a posted row (law 6)."""
    if dialect == "sqlite":
        return [f"CREATE TRIGGER IF NOT EXISTS {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table}: a posted run never changes (law 6)'); END"
                for table in TABLES for verb in ("UPDATE", "DELETE")]
    if dialect == "postgresql":
        return ["CREATE OR REPLACE FUNCTION settle_posted_run_never_changes() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME || ': a posted run never changes (law 6)'; END $$",
                *(f"CREATE OR REPLACE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
                  f"FOR EACH ROW EXECUTE FUNCTION settle_posted_run_never_changes()" for table in TABLES),
                *(f"CREATE OR REPLACE TRIGGER {table}_not_truncated BEFORE TRUNCATE ON {table} "
                  f"FOR EACH STATEMENT EXECUTE FUNCTION settle_posted_run_never_changes()" for table in TABLES)]
    raise LedgerError(f"ledger database {dialect!r} is not supported; expected SQLite or PostgreSQL")


def opened(ledger: str, create: bool = True) -> Engine:
    """The ledger database of `--ledger`, its tables and triggers made if new; without
    `create` (reading it), an SQLite file that does not exist is an error, not a new ledger."""
    if not create and "://" not in ledger and not Path(ledger).is_file():
        raise LedgerError(f"--ledger {ledger!r}: no ledger database there")
    try:
        engine = create_engine(engine_url(ledger))
    except (ArgumentError, ImportError) as error:
        raise LedgerError(f"--ledger {ledger!r}: cannot open the ledger database ({error}); expected a file path "
                          "(SQLite) or a postgresql://user@host/database URL") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", lambda connection, _: connection.execute("PRAGMA foreign_keys = ON"))
    try:
        SQLModel.metadata.create_all(engine)
        with engine.begin() as connection:
            for statement in immutability_ddl(engine.dialect.name):
                connection.exec_driver_sql(statement)
    except SQLAlchemyError as error:
        cause = str(getattr(error, "orig", None) or error).strip().splitlines() or [type(error).__name__]
        raise LedgerError(f"--ledger {ledger!r}: cannot open the ledger database ({cause[0]})") from None
    return engine


# --------------------------------------------------------------------------- what a run posts

@dataclass(frozen=True)
class Posting:
    """What posting a run records: its record (without sequence and hashes), totals and balances."""

    run_id: str
    period: str
    kind: str
    corrects: str | None
    reason: str | None
    clock: str
    rules_version: str
    engine_version: str
    manifest_sha256: str
    totals: list[dict]    # per currency: TOTAL_COLUMNS
    balances: list[dict]  # per holder and currency: AMOUNT_COLUMNS


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
    return [{"currency": currency, **{c: fits_int64(figures[c], f"{currency} {c}") for c in TOTAL_COLUMNS}}
            for currency, figures in sorted(totals.items())]


def balances_digest(balances: Iterable[dict]) -> str:
    """SHA-256 of the balances, one text line each, in (holder, currency) order by code point."""
    digest = hashlib.sha256()
    for row in sorted(balances, key=lambda r: (r["holder_id"], r["currency"])):
        digest.update((",".join([row["holder_id"], row["currency"], *(str(row[c]) for c in AMOUNT_COLUMNS)])
                       + "\n").encode("utf-8"))
    return digest.hexdigest()


def chain_hash(previous_hash: str, record: dict, totals: list[dict], balances: list[dict]) -> str:
    """A run's link in the chain: the previous run's hash, the run's record, totals and balances."""
    content = {**{k: record[k] for k in ("run_id", "sequence", "period", "kind", "corrects", "reason", "clock",
                                         "rules_version", "engine_version", "manifest_sha256")},
               "totals": sorted(totals, key=lambda t: t["currency"]), "balances": balances_digest(balances)}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{previous_hash}\n{canonical}".encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- reading the ledger

def run_record(engine: Engine, run_id: str) -> RunRecord | None:
    with Session(engine) as session:
        return session.get(RunRecord, run_id)


def period_runs(engine: Engine, period: str) -> list[RunRecord]:
    with Session(engine) as session:
        return list(session.exec(select(RunRecord).where(RunRecord.period == period).order_by(RunRecord.sequence)))


def latest_run(engine: Engine, period: str) -> RunRecord | None:
    """The period's settlement as it stands: its settlement run, or the last adjustment of it."""
    runs = period_runs(engine, period)
    corrected = {run.corrects for run in runs}
    standing = [run for run in runs if run.run_id not in corrected]
    return standing[-1] if standing else None


def posted_balances(engine: Engine, run_id: str) -> pl.DataFrame:
    """A posted run's balances, sorted by holder and currency (by code point, whatever the
    database's collation)."""
    table = HolderBalance.__table__
    query = select(table.c.holder_id, table.c.currency, *(table.c[c] for c in AMOUNT_COLUMNS)).where(
        table.c.run_id == run_id)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    schema = {"holder_id": pl.String, "currency": pl.String, **{c: pl.Int64 for c in AMOUNT_COLUMNS}}
    return pl.DataFrame(rows, schema=schema, orient="row").sort("holder_id", "currency")


def posted_totals(engine: Engine, run_id: str) -> list[dict]:
    with Session(engine) as session:
        rows = session.exec(select(RunTotal).where(RunTotal.run_id == run_id))
        return sorted(({"currency": r.currency, **{c: getattr(r, c) for c in TOTAL_COLUMNS}} for r in rows),
                      key=lambda t: t["currency"])


def chain(engine: Engine) -> list[RunRecord]:
    with Session(engine) as session:
        return list(session.exec(select(RunRecord).order_by(RunRecord.sequence)))


# --------------------------------------------------------------------------- deciding and posting

@dataclass(frozen=True)
class Decision:
    """What a computed run is to the ledger: `posted` already (law 5: that run, unchanged),
    or a new settlement or adjustment to post once its outputs are written."""

    posted: RunRecord | None
    corrects: RunRecord | None  # the run an adjustment corrects
    reason: str | None

    @property
    def kind(self) -> str:
        return "settlement" if self.corrects is None else "adjustment"


def decide(engine: Engine, run_id: str, period: str, corrects: str | None, reason: str | None) -> Decision:
    """Whether run `run_id` of `period` is posted already, may be posted, or conflicts
    (RunConflict). `corrects` and `reason`: the adjustment asked for, if any."""
    if (corrects is None) != (reason is None or not reason.strip()):
        raise RunConflict("an adjustment needs both --corrects RUN_ID and a --reason")
    posted = run_record(engine, run_id)
    if posted is not None:
        if corrects is not None and posted.corrects != corrects:
            raise RunConflict(f"these inputs were posted already as {run_id} ({posted.kind}"
                              + (f" correcting {posted.corrects}" if posted.corrects else "")
                              + f"): --corrects {corrects} names another run; nothing was written")
        return Decision(posted, run_record(engine, posted.corrects) if posted.corrects else None, posted.reason)
    standing = latest_run(engine, period)
    if corrects is None:
        if standing is not None:
            raise RunConflict(
                f"period {period} was settled as {standing.run_id} from other inputs; a second settlement would "
                f"pay twice, so nothing was written. To correct that run: --corrects {standing.run_id} "
                "--reason '...'")
        return Decision(None, None, None)
    corrected = run_record(engine, corrects)
    if corrected is None:
        raise RunConflict(f"--corrects {corrects}: no such run in the ledger")
    if corrected.period != period:
        raise RunConflict(f"--corrects {corrects}: that run settled period {corrected.period}, not {period}")
    if standing is not None and standing.run_id != corrected.run_id:
        raise RunConflict(f"--corrects {corrects}: that run was corrected already; the period stands as "
                          f"{standing.run_id}, which is the run to correct")
    return Decision(None, corrected, reason.strip())


def post(engine: Engine, posting: Posting) -> RunRecord:
    """Record a run, its totals and balances in one transaction, linked to the last posted run."""
    with Session(engine) as session:
        last = session.exec(select(RunRecord).order_by(RunRecord.sequence.desc()).limit(1)).first()
        record = {"run_id": posting.run_id, "sequence": 1 if last is None else last.sequence + 1,
                  "period": posting.period, "kind": posting.kind, "corrects": posting.corrects,
                  "reason": posting.reason, "clock": posting.clock, "rules_version": posting.rules_version,
                  "engine_version": posting.engine_version, "manifest_sha256": posting.manifest_sha256,
                  "previous_hash": GENESIS if last is None else last.hash}
        record["hash"] = chain_hash(record["previous_hash"], record, posting.totals, posting.balances)
        run = RunRecord(**record)
        try:
            session.add(run)
            session.flush()  # the run row first: the others refer to it
            session.add_all([RunTotal(run_id=posting.run_id, **t) for t in posting.totals])
            if posting.balances:  # one executemany, not an ORM object per holder (50,000 at 100M usage rows)
                session.connection().execute(insert(HolderBalance.__table__),
                                             [{"run_id": posting.run_id, **b} for b in posting.balances])
            session.commit()
        except IntegrityError as error:
            session.rollback()
            raise RunConflict(f"the ledger refused run {posting.run_id} of {posting.period} "
                              f"({str(error.orig).strip().splitlines()[0]}): another run was posted for the "
                              "period meanwhile; its outputs were written but are not a posted run") from None
        session.refresh(run)
        return run


def verify(engine: Engine) -> tuple[int, str, list[str]]:
    """The chain checked run by run: (runs, the last hash, problems). A problem names the
    first run whose sequence, link, or content no longer matches its hash."""
    problems, previous = [], GENESIS
    runs = chain(engine)
    for number, run in enumerate(runs, start=1):
        record = run.model_dump()
        if run.sequence != number:
            problems.append(f"{run.run_id}: sequence {run.sequence}, expected {number} (a run is missing)")
        if run.previous_hash != previous:
            problems.append(f"{run.run_id}: links to {run.previous_hash[:16]}..., but the run before it hashes "
                            f"to {previous[:16]}...")
        expected = chain_hash(run.previous_hash, record, posted_totals(engine, run.run_id),
                              posted_balances(engine, run.run_id).to_dicts())
        if expected != run.hash:
            problems.append(f"{run.run_id}: its record, totals or balances were changed after it was posted "
                            f"(they hash to {expected[:16]}..., the chain holds {run.hash[:16]}...)")
        previous = run.hash
    return len(runs), previous, problems


# --------------------------------------------------------------------------- a run, settled and posted

def settled_and_posted(inputs, period, clock: str, out: Path, progress, ledger: str | None,
                       corrects: str | None = None, reason: str | None = None) -> dict:
    """Settle `period`, write its outputs to `out` and post it to `ledger` (when given):
    the command `settle run`. Returns the run's summary, with a `posted` line saying what
    the ledger did. The ledger is opened first, so that a wrong --ledger fails in seconds;
    a conflict (law 5) is found once the run id is known, before anything is written."""
    from settlement.adjust import Adjustment
    from settlement.exports import export
    from settlement.run import settle

    engine = opened(ledger) if ledger is not None else None
    with settle(inputs, period, clock, progress) as settlement:
        if engine is None:
            return export(settlement, out, progress)
        decision = decide(engine, settlement.run_id, period.name, corrects, reason)
        adjustment = None if decision.corrects is None else Adjustment(
            decision.corrects.run_id, decision.reason, posted_balances(engine, decision.corrects.run_id))
        summary = export(settlement, out, progress, adjustment)
        manifest = hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()
        if decision.posted is not None:
            if decision.posted.manifest_sha256 != manifest:
                raise LedgerError(
                    f"run {settlement.run_id} is posted already, but the outputs written now differ from the posted "
                    f"ones (manifest.json {manifest[:16]}..., posted {decision.posted.manifest_sha256[:16]}...): "
                    f"engine {decision.posted.engine_version} posted it")
            return {**summary, "posted": f"ledger: posted already as run {decision.posted.sequence} "
                                         f"(these inputs settle to the same bytes; nothing posted again)"}
        run = post(engine, Posting(
            settlement.run_id, period.name, decision.kind, adjustment and adjustment.corrects,
            adjustment and adjustment.reason, clock, summary["rules_version"], summary["engine_version"], manifest,
            total_rows(settlement.totals), balance_rows(keys.decoded(settlement.ledger.balances,
                                                                     settlement.ledger.types))))
        return {**summary, "posted": f"ledger: posted as run {run.sequence} ({run.kind}), hash {run.hash}"}
