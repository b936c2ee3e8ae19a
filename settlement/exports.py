"""Write a settlement's outputs, and a preview's (a part of them), byte for byte the same
for the same run.

Every file has a documented sort key (see README, "Outputs"); amounts in CSV
are plain decimal strings with exactly the currency's minor-unit digits;
everything is UTF-8 with LF line ends. Nothing here computes money.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import polars as pl

from contracts.errors import InputError
from contracts.numbers import fraction_text
from settlement.adjust import Adjustment, adjustment_table, currency_changes
from settlement.intake import ATTRIBUTION_SCALE
from settlement.keys import KeyTypes, decoded
from settlement.money import exact_type, format_minor, minor_expr
from settlement.progress import SILENT, Progress
from settlement.run import ENGINE_VERSION, RULES_VERSION, Priced, Settlement
from settlement.runfolder import hashed

AMOUNTS = ("gross", "commission", "withholding", "net")
LINE_ROW_GROUP = 512 * 512  # lines.parquet's row groups: a fixed size, so its bytes do not depend on the machine
LINE_COLUMNS = ("run_id", "period", "licensee_id", "contract_id", "work_id", "use_type", "split_version",
                "holder_id", "right", "share", "currency", "units", *AMOUNTS)


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n", encoding="utf-8")


def write_csv(path: Path, frame: pl.DataFrame) -> None:
    frame.write_csv(path, line_terminator="\n")


def check_folder(out: Path, preview: bool = False) -> None:
    """Refuse an output folder that the export must not replace: a file, a folder with
    files but no earlier run's manifest.json, and, for a `preview`, a settlement run's
    outputs (its statements and lines are not a preview's to delete). The command line
    checks it before the run starts, so that a month is not settled for nothing."""
    expected = "a new or empty folder, or an earlier " + ("preview's" if preview else "run's") + " output folder"
    if out.is_symlink():  # an export empties the folder by deleting it, which a link does not allow
        raise InputError(str(out), "the output folder is a link", expected=expected + ", not a link to one")
    if os.path.lexists(out) and not out.is_dir():
        raise InputError(str(out), "the output folder is a file", expected=expected)
    if not out.exists() or not any(out.iterdir()):
        return
    manifest = out / "manifest.json"
    if not manifest.is_file():
        raise InputError(str(out), "output folder is not empty and holds no earlier run's manifest.json",
                         expected=expected)
    if preview and not previewed(manifest):
        raise InputError(str(out), "holds a settlement run's outputs, which a preview does not replace",
                         expected=expected)


def previewed(manifest: Path) -> bool:
    """Whether `manifest` is a preview's (write_manifest marks it)."""
    try:
        return json.loads(manifest.read_text(encoding="utf-8")).get("preview") is True
    except (OSError, ValueError, AttributeError):
        return False


def prepare_folder(out: Path, preview: bool = False) -> None:
    """Empty an earlier run's (or, for a `preview`, an earlier preview's) output folder, or
    make a new one; refuse any other (check_folder)."""
    check_folder(out, preview)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)


def currencies(s: Priced) -> list[str]:
    """The run's currencies: its contracts', and those of the balances it brings forward."""
    return sorted({*(c.contract.currency for c in s.charges), *s.inputs.brought_forward["currency"]})


def amount_type(s: Settlement) -> pl.DataType:
    """The integer type in which every amount of a line or of level 1 fits: each is at
    most three times the run's charged total in magnitude (gross, commission and
    withholding are each parts of it, and net is the first less the others)."""
    charged = sum(abs(figures["charged"]) for figures in s.totals.values())
    return exact_type((3, charged))


def line_table(s: Settlement, lines: pl.LazyFrame, minor_units: bool = False, enums: bool = False) -> pl.LazyFrame:
    """The lines as their CSV shows them: keys as strings, units and amounts as decimal
    strings (or, with `minor_units`, as lines.parquet has them: units as an integer, and
    amounts as integer `<amount>_minor` columns).
    `enums`: for a writer, the small keys left as Enums, which the CSV writer writes as
    their text and the Parquet writer dictionary-encoded (keys.decoded), and the amounts
    as Decimals where it writes them as their text (minor_expr)."""
    listed, exact = currencies(s), amount_type(s)
    amounts = ([pl.col(a).cast(pl.Int64).alias(f"{a}_minor") for a in AMOUNTS] if minor_units else
               [minor_expr(pl.col(a), pl.col("currency"), listed, exact, text=not enums).alias(a) for a in AMOUNTS])
    return decoded(lines.select(
        pl.lit(s.run_id).alias("run_id"), pl.lit(s.period.name).alias("period"), "licensee_id", "contract_id",
        "work_id", "use_type", pl.col("version").alias("split_version"), "holder_id", "right", "share", "currency",
        pl.col("units") if minor_units else pl.col("units").cast(pl.String), *amounts), s.ledger.types, enums)


def write_lines(s: Settlement, out: Path) -> dict[str, str]:
    """lines.csv and lines.parquet, streamed from the ledger's files in line order, in one
    query (both sinks together: 10.3 s against 12.1 s one after the other for 9.6M lines).
    Both are written with the small keys as Enums (line_table). For the CSV that gives the
    same bytes as text: cast to text first, they took the export of 9.6M lines 9.4-9.6
    CPU seconds against 7.7-8.4 s. In Parquet each is a dictionary-encoded string column
    (polars reads it back as the Enum): 2.2-2.5 s and 4.1-5.0 CPU seconds against
    3.4-3.7 s and 6.6-7.2 for 9.6M lines as plain strings, the same values. Returns
    their SHA-256 by name (sink_hashed)."""
    return sink_hashed(out, {
        "lines.csv": lambda file: line_table(s, s.ledger.lines, enums=True).sink_csv(
            file, line_terminator="\n", lazy=True),
        "lines.parquet": lambda file: line_table(s, s.ledger.lines, minor_units=True, enums=True).sink_parquet(
            file, statistics=False, row_group_size=LINE_ROW_GROUP, lazy=True)})


class HashedFile:
    """A file that hashes what is written to it, as a sink's target."""

    def __init__(self, path: Path):
        self.handle = path.open("wb")
        self.digest = hashlib.sha256()

    def write(self, data) -> int:
        self.handle.write(data)
        self.digest.update(data)
        return len(data)

    def flush(self) -> None:
        self.handle.flush()

    def close(self) -> str:
        """Close the file; its SHA-256."""
        self.handle.close()
        return self.digest.hexdigest()


def sink_hashed(out: Path, sinks: dict) -> dict[str, str]:
    """Run lazy sinks (name → a function of the target file that returns the sink) in one
    query, into files of those names in `out`, hashed as they are written; returns each
    file's SHA-256 by name, for the manifest, which then need not read them back (at
    100M usage rows, lines.csv and allocations.csv hold 12 GB)."""
    files = {name: HashedFile(out / name) for name in sinks}
    try:
        pl.collect_all([sink(files[name]) for name, sink in sinks.items()])
    finally:
        digests = {name: file.close() for name, file in files.items()}
    return digests


STATEMENT_COLUMNS = ["record", "licensee_id", "contract_id", "work_id", "title", "use_type", "split_version", "right",
                     "share", "currency", "units", *AMOUNTS]
FREE_TEXT = ("work_id", "title")  # the only statement columns whose values may need CSV quoting
BALANCE_RECORDS = {  # record → the balance column shown as its net (totals show every amount)
    "brought_forward": "brought_forward", "threshold": "threshold", "carried_forward": "carried_forward",
    "payable": "payable"}


def csv_field(column: str) -> pl.Expr:
    """A value as CSV text: quoted only when it holds a comma, a quote or a line break."""
    text = pl.col(column).cast(pl.String)
    quoted = pl.concat_str(pl.lit('"'), text.str.replace_all('"', '""', literal=True), pl.lit('"'))
    return pl.when(text.str.contains_any([",", '"', "\r", "\n"])).then(quoted).otherwise(text).fill_null("")


def balance_table(s: Settlement, holders: pl.DataFrame) -> pl.DataFrame:
    """Per holder and currency of `holders`: the total record, then brought forward,
    threshold, carried forward and payable. `_holder`: the holder's code."""
    money = lambda column: minor_expr(pl.col(column), pl.col("currency"), currencies(s))
    balances = s.ledger.balances.join(holders, on="holder_id", how="semi", maintain_order="left")
    holder = pl.col("holder_id").alias("_holder")
    frames = [balances.select(holder, pl.col("currency").cast(pl.String), pl.lit(0).alias("_order"),
                              pl.lit("total").alias("record"), *(money(a).alias(a) for a in AMOUNTS))]
    for order, (record, column) in enumerate(BALANCE_RECORDS.items(), start=1):
        frames.append(balances.select(holder, pl.col("currency").cast(pl.String), pl.lit(order).alias("_order"),
                                      pl.lit(record).alias("record"), money(column).alias("net")))
    return pl.concat(frames, how="diagonal")


def statement_rows(s: Settlement, lines: pl.DataFrame, titles: pl.Series,
                   holders: pl.DataFrame | None = None) -> pl.DataFrame:
    """Every statement row of the holders of `lines` (all of their lines, in line order), or
    of `holders` (holder_id), as CSV text ending in a line break (`text`), with the holder's
    code (`_holder`): the lines in line order, then the balance records. Rows are rendered
    to one text column in one query each (only the columns a statement shows are decoded
    and formatted), so that putting them in holder order moves one string per row.
    `titles`: work_titles."""
    table = line_table(s, lines.lazy()).with_columns(
        pl.lit(titles.gather(lines["work_id"])).alias("title"), pl.lit("line").alias("record"),
        pl.lit(lines["holder_id"]).alias("_holder"))
    holders = lines.select("holder_id").unique() if holders is None else holders
    parts = []
    for frame in (table, balance_table(s, holders).lazy()):
        present = frame.collect_schema().names()
        fields = [pl.lit("") if c not in present else csv_field(c) if c in FREE_TEXT
                  else pl.col(c).fill_null("") for c in STATEMENT_COLUMNS]
        row = pl.concat_str(pl.concat_str(fields, separator=","), pl.lit("\n"))
        parts.append(frame.select("_holder", row.alias("text")).collect())
    return pl.concat(parts)


def work_titles(s: Settlement) -> pl.Series:
    """Per work code (keys.Codes), the catalogue work's title; null for a reference that
    names no catalogue work. Built once per run, so that each line's title is a gather
    by its code, not a join (the catalogue's works are among the codes: binary search)."""
    works, codes = s.inputs.catalogue.works, s.ledger.types.work.values
    titles = pl.repeat(None, len(codes), dtype=pl.String, eager=True)
    return titles.scatter(codes.search_sorted(works["work_id"]), works["title"])


def write_statement(path: Path, header: bytes, body: memoryview) -> str:
    """One statement file: the header, then `body`. Returns its SHA-256."""
    with path.open("wb") as handle:
        handle.write(header)
        handle.write(body)
    digest = hashlib.sha256(header)
    digest.update(body)
    return digest.hexdigest()


def holder_bodies(rows: pl.DataFrame, types: KeyTypes) -> tuple[memoryview, list[tuple[str, int, int]]]:
    """`rows` (statement_rows) as one buffer of text with every holder's rows together,
    in the order they come (lines in line order, then balances), and each holder's id
    with the byte range of its body in the buffer, holders in code order. The rows are
    sorted by holder code, stably; Arrow's large string then holds every row's text
    back to back, so a body is a slice of one buffer: no per-holder join."""
    rows = rows.sort("_holder", maintain_order=True)
    text = rows["text"].to_arrow()
    offsets = memoryview(text.buffers()[1]).cast("q")[text.offset:]
    ends = rows.group_by("_holder", maintain_order=True).len().select(
        types.holder.decode("_holder"), pl.col("len").cum_sum())
    ranges, first = [], 0
    for holder_id, end in ends.iter_rows():  # one per holder, to name its file
        ranges.append((holder_id, offsets[first], offsets[end]))
        first = end
    return memoryview(text.buffers()[2]), ranges


def write_statements(s: Settlement, out: Path, progress: Progress = SILENT) -> dict[str, str]:
    """One CSV per holder: its lines, then per currency the totals, threshold, carried forward
    and payable. Returns each statement's SHA-256 by its path in `out`, for the manifest;
    tells `progress` each partition of holders written.

    A partition of holders at a time (Ledger.holder_partitions), the rows of every
    statement are rendered as CSV text and put in holder order (holder_bodies); each file
    is then one slice of that text. For a 10M-row month (50,000 statements) this took
    12.3-13.1 s (16.4-17.5 CPU seconds) in 4 of 5 runs, where joining each holder's rows
    by a group-by took 13.4-23.1 s (18.5-29.1).

    A partition's files are written in a thread while the next partition is rendered:
    writing them is one Python loop on one core, while polars renders on both. At 10M
    rows this took 10.1-10.9 s against 12.1-12.8 s with two partitions, and 9.1-9.8 s
    against 12.2-12.6 s with ten (a 100M-row month has eleven), in interleaved runs.
    Two partitions' text is then held at once (about 0.5 GB each)."""
    (out / "statements").mkdir()
    header = (",".join(STATEMENT_COLUMNS) + "\n").encode("utf-8")
    titles = work_titles(s)
    digests, writing, partition_count, listed = {}, None, len(s.ledger.holder_files), []
    with ThreadPoolExecutor(1) as writer:
        for written, lines in enumerate(s.ledger.holder_partitions()):  # once the last is: `written` partitions
            bodies = holder_bodies(statement_rows(s, lines, titles), s.ledger.types)
            listed.append(lines.select(pl.col("holder_id").unique()))
            del lines
            if writing is not None:
                digests |= writing.result()
                progress.step(written, partition_count, "partitions of holders")
            writing = writer.submit(write_bodies, out, header, *bodies)
            del bodies
        if writing is not None:
            digests |= writing.result()
            progress.step(partition_count, partition_count, "partitions of holders")
    return digests | balance_statements(s, out, header, titles, listed)


def balance_statements(s: Settlement, out: Path, header: bytes, titles: pl.Series,
                       listed: list[pl.DataFrame]) -> dict[str, str]:
    """The statements of holders with a balance brought forward and no line this period
    (not in `listed`, the holders of every partition): their balance records alone."""
    holders = s.ledger.balances.select(pl.col("holder_id").unique())
    if listed:
        holders = holders.join(pl.concat(listed), on="holder_id", how="anti")
    if holders.height == 0:
        return {}
    rows = statement_rows(s, s.ledger.lines.head(0).collect(), titles, holders)
    return write_bodies(out, header, *holder_bodies(rows, s.ledger.types))


def write_bodies(out: Path, header: bytes, buffer: memoryview, ranges: list[tuple[str, int, int]]) -> dict[str, str]:
    """Each holder's statement file from its range of `buffer` (holder_bodies); their SHA-256 by path."""
    digests = {}
    for holder_id, start, end in ranges:
        name = f"statements/{holder_id}.csv"
        digests[name] = write_statement(out / name, header, buffer[start:end])
    return digests


def invoice(charge) -> dict:
    currency = charge.contract.currency
    return {
        "contract_id": charge.contract.contract_id, "contract_version": charge.contract.version,
        "currency": currency,
        "terms": [{
            "term_id": t.term_id, "type": t.term_type, "basis": t.basis, "use_type": t.use_type, "unit": t.unit,
            "units": t.units, "rate": t.rate, "per": t.per, "revenue": t.revenue, "tiers": t.steps,
            "exact": fraction_text(t.exact), "rounded": format_minor(t.rounded_minor, currency),
            "charged": format_minor(t.amount_minor, currency),
        } for t in charge.terms],
        "minimum_guarantee": None if charge.minimum_guarantee_minor is None
        else format_minor(charge.minimum_guarantee_minor, currency),
        "cap": None if charge.cap_minor is None else format_minor(charge.cap_minor, currency),
        "total": format_minor(charge.total_minor, currency),
    }


def write_invoices(s: Priced, out: Path) -> None:
    (out / "invoices").mkdir()
    by_licensee: dict[str, list] = {}
    for charge in s.charges:
        by_licensee.setdefault(charge.contract.licensee_id, []).append(charge)
    for licensee_id, charges in sorted(by_licensee.items()):
        contracts = [invoice(c) for c in sorted(charges, key=lambda c: c.contract.contract_id)]
        write_json(out / "invoices" / f"{licensee_id}.json",
                   {"run_id": s.run_id, "period": s.period.name, "licensee_id": licensee_id,
                    "rules_version": RULES_VERSION, "contracts": contracts})
        rows = [{"contract_id": c["contract_id"], "currency": c["currency"], **{
            k: (json.dumps(v) if isinstance(v, list) else (None if v is None else str(v)))
            for k, v in term.items()}} for c in contracts for term in c["terms"]]
        write_csv(out / "invoices" / f"{licensee_id}.csv", pl.DataFrame(rows, infer_schema_length=None))


def write_usage_reports(s: Priced, out: Path) -> None:
    """quarantine.csv and unlicensed.csv: the usage rows refused, and the use no licence covers."""
    write_csv(out / "quarantine.csv", s.quarantine)
    unlicensed = (s.unlicensed.with_columns(pl.col("units").cast(pl.String)).rename({"ref": "work_ref"})
                  .sort("licensee_id", "work_ref", "use_type", "model_id", "unit", "territory", "reason",
                        nulls_last=True))
    write_csv(out / "unlicensed.csv", unlicensed)


def write_reports(s: Settlement, out: Path) -> dict[str, str]:
    """quarantine.csv, suspense.csv, unlicensed.csv and allocations.csv; returns the
    SHA-256 of allocations.csv, the large one, hashed as it was written (sink_hashed)."""
    write_usage_reports(s, out)
    currency_of = pl.DataFrame([(c.contract.contract_id, c.contract.currency) for c in s.charges],
                               schema={"contract_id": pl.String, "currency": pl.String}, orient="row")
    amounts = decoded(s.ledger.suspense, s.ledger.types).join(currency_of, on="contract_id")
    suspense = (amounts.join(s.suspense_usage, on=["contract_id", "work_key", "use_type", "reason"], how="full", coalesce=True)
                .join(currency_of, on="contract_id", how="left", suffix="_c")
                .with_columns(pl.coalesce("currency", "currency_c").alias("currency"))
                .with_columns(pl.col("rows").fill_null(0), pl.col("units").fill_null(0).cast(pl.String),
                              minor_expr(pl.col("amount_minor").fill_null(0), pl.col("currency"),
                                         currencies(s)).alias("amount"))
                .select("contract_id", "work_key", "use_type", "reason", "rows", "units", "currency", "amount")
                .sort("contract_id", "work_key", "use_type", "reason"))
    write_csv(out / "suspense.csv", suspense)
    return sink_hashed(out, {"allocations.csv": lambda file: allocation_table(s, currency_of).sink_csv(
        file, line_terminator="\n", lazy=True)})


def allocation_table(s: Settlement, currency_of: pl.DataFrame) -> pl.LazyFrame:
    """Level 1 for auditors: each term's part per (work, use type, version), with its weight
    (the ledger keeps it sorted by contract, term, work key, use type and version). For the
    CSV writer, its small keys stay Enums, its amounts Decimals (line_table) and its weights
    integers, which it writes as their text; each part's currency is its contract's, taken
    by the contract's code, not joined: at 10M usage rows (11.6M parts) the file took
    2.9-3.1 CPU seconds to write against 3.6 with the weights cast to text and a join."""
    types = s.ledger.types
    by_contract = dict(currency_of.iter_rows())
    currency = pl.Series([by_contract.get(c) for c in types.contract.categories], dtype=types.currency)
    return (decoded(s.ledger.level1, types, enums=True)
            .with_columns(pl.lit(currency).gather(pl.col("contract_id").to_physical()).alias("currency"))
            .with_columns(minor_expr(pl.col("amount_minor"), pl.col("currency"), currencies(s), amount_type(s),
                                     text=False).alias("amount"))
            .select("contract_id", "term_id", "work_key", "use_type", "version", "status", "reason", "weight",
                    "currency", "amount"))


def summary(s: Settlement, adjustment: Adjustment | None = None) -> dict:
    """summary.json of a run; of an adjustment run, with the run it corrects, why, and each
    total before and after."""
    corrected = {} if adjustment is None else {"adjustment": {
        "corrects": adjustment.correction.corrects, "reason": adjustment.correction.reason,
        "currencies": currency_changes(adjustment, s.totals)}}
    return summary_of(s, {currency: {name: format_minor(value, currency) for name, value in totals.items()}
                          for currency, totals in s.totals.items()},
                      holders=s.ledger.balances.height and int(s.ledger.balances["holder_id"].n_unique()),
                      lines=s.ledger.line_count, **corrected)


def balances_as_text(s: Settlement) -> pl.DataFrame:
    """Each holder's balance per currency, keys as text, amounts in minor units."""
    return decoded(s.ledger.balances, s.ledger.types)


def write_adjustments(s: Settlement, out: Path, adjustment: Adjustment) -> None:
    """adjustments.csv: each holder whose amounts the adjustment changes, old and new."""
    write_csv(out / "adjustments.csv", adjustment_table(adjustment, balances_as_text(s)))


def preview_summary(s: Priced) -> dict:
    """A preview's summary: what the run would charge per currency, and per licensee."""
    licensees: dict[str, dict[str, int]] = {}
    charged: dict[str, int] = {}
    for charge in sorted(s.charges, key=lambda c: (c.contract.licensee_id, c.contract.currency)):
        currency, amount = charge.contract.currency, charge.total_minor
        per_currency = licensees.setdefault(charge.contract.licensee_id, {})
        per_currency[currency] = per_currency.get(currency, 0) + amount
        charged[currency] = charged.get(currency, 0) + amount
    return {"preview": True, **summary_of(s, {currency: {"charged": format_minor(amount, currency)}
                                              for currency, amount in sorted(charged.items())}),
            "licensees": {licensee: {currency: format_minor(amount, currency) for currency, amount in amounts.items()}
                          for licensee, amounts in licensees.items()}}


def summary_of(s: Priced, currency_totals: dict, **ledger) -> dict:
    """summary.json: the run's identity, its totals per currency, where the usage rows went
    (in all and per file), unattributed outputs, then `ledger`'s figures and the warnings."""
    rows = {name: int(s.accounting[name].sum()) for name in
            ("rows_read", "duplicates", "quarantined", "accepted", "suspense", "unlicensed")}
    return {
        "run_id": s.run_id, "period": s.period.name, "clock": s.clock, "rules_version": RULES_VERSION,
        "engine_version": ENGINE_VERSION,
        "currencies": currency_totals,
        "rows": rows,
        "files": s.accounting.to_dicts(),
        "unattributed_outputs": {
            row["licensee_id"]: {"outputs": row["outputs"],
                                 "unattributed": fraction_text(Fraction(row["unattributed_nanos"], ATTRIBUTION_SCALE))}
            for row in s.unattributed.iter_rows(named=True)},
        **ledger,
        "warnings": s.warnings,
    }


def write_manifest(s: Priced, out: Path, digests: dict[str, str], preview: bool = False) -> None:
    """Every input and output file with its SHA-256 and size. `digests`: the SHA-256 of
    outputs hashed as they were written (the statements: 50,000 files at 100M usage rows;
    the line files and allocations.csv), by their path in `out`; the rest are read back
    and hashed, a few at a time. A preview's manifest says so, so that nothing that reads
    manifests takes it for a run's."""
    inputs = sorted(((path, s.inputs.name(path)) for path in [*s.inputs.reference_files, *s.inputs.usage_files]),
                    key=lambda pair: pair[1].split("/"))  # by name, as the outputs: not by how a path was spelled
    outputs = [(os.path.join(out, name), name) for name in output_names(out) if name != "manifest.json"]
    unknown = [path for path, _ in inputs] + [path for path, name in outputs if name not in digests]
    digest_of = hashed(unknown)
    entry = lambda path, name, sha256: {"path": name, "sha256": sha256, "bytes": os.stat(path).st_size}
    write_json(out / "manifest.json", {
        **({"preview": True} if preview else {}),
        "run_id": s.run_id, "engine_version": ENGINE_VERSION, "rules_version": RULES_VERSION,
        "inputs": [entry(path, name, digest_of[path]) for path, name in inputs],
        "outputs": [entry(path, name, digests.get(name) or digest_of[path]) for path, name in outputs],
    })


def output_names(out: Path) -> list[str]:
    """Every file under `out` by its path in it, in the order sorted Paths have (by
    component). os.walk and strings: Path.rglob and Path objects took seconds over the
    50,000 statements of a 100M-row month."""
    names = []
    for folder, _, files in os.walk(out):
        prefix = os.path.relpath(folder, out).replace(os.sep, "/")
        names += files if prefix == "." else [f"{prefix}/{name}" for name in files]
    return sorted(names, key=lambda name: name.split("/"))


def export(s: Settlement, out: Path, progress: Progress = SILENT, adjustment: Adjustment | None = None) -> dict:
    """Write every output of the run into `out`, telling `progress` each stage; return the
    summary. An `adjustment` run also writes adjustments.csv."""
    prepare_folder(out)
    progress.stage("writing lines.csv and lines.parquet")
    digests = write_lines(s, out)
    progress.stage("writing the statements")
    digests |= write_statements(s, out, progress)
    progress.stage("writing invoices, reports and the manifest")
    write_invoices(s, out)
    digests |= write_reports(s, out)
    if adjustment is not None:
        write_adjustments(s, out, adjustment)
    data = summary(s, adjustment)
    write_json(out / "summary.json", data)
    write_manifest(s, out, digests)
    return data


def export_preview(s: Priced, out: Path) -> dict:
    """Write a preview into `out`: the invoices, quarantine.csv, unlicensed.csv, summary.json
    (marked `"preview": true`) and the manifest; return the summary."""
    prepare_folder(out, preview=True)
    write_invoices(s, out)
    write_usage_reports(s, out)
    data = preview_summary(s)
    write_json(out / "summary.json", data)
    write_manifest(s, out, {}, preview=True)
    return data

