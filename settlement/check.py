"""Check: a run's invariants, checked independently from its output files alone (DESIGN.md,
"Who uses it", 3: the auditor "checks the invariants independently").

Nothing here calls the engine: every figure is read back from the files a run wrote, as
the README documents them, and compared or summed again by frame operations (lines,
allocations.csv and the statements are scanned, never looped over). Each invariant is
checked on its own; one whose files cannot be read as a run writes them fails with the
reason, and the others are still checked. What is checked:

- every output file is the one the manifest pins;
- every amount is written as a decimal with exactly its currency's digits, and no key or
  amount of a line is missing;
- lines.csv and lines.parquet hold the same lines;
- each invoice: its CSV and JSON charge the same, and each contract's total is its terms';
- each term's level-1 parts sum to its charge, in its contract's currency (law 2, level 1);
- each (contract, work, use type, split version)'s holder lines sum to its level-1 amount,
  and every such amount has lines (law 2, level 2);
- suspense.csv holds the suspense parts of level 1, key by key;
- net = gross − commission − withholding on every line, none negative (rule 4);
- each statement lists exactly its holder's lines, totals them, and pays the total and the
  balance brought forward, or carries them forward, by the threshold it shows (rule 4);
- per currency: charged + brought forward = payable + carried forward + commission +
  withholding + suspense, each figure summed from the files, and as summary.json states it
  (law 2); summary.json's counts of lines and holders;
- the usage rows: read = accepted + duplicates + quarantined + suspense + unlicensed, per
  file and in all, for every usage log the manifest pins, with quarantine.csv (per file),
  unlicensed.csv and suspense.csv holding the rows summary.json counts (law 3);
- of an adjustment run: adjustments.csv's new figures are the statements', each change is
  new − old, and summary.json's new totals are the run's (law 6).

What the files alone cannot show (a threshold or a rate other than the inputs', a
balance brought forward other than balances.csv's, a tie broken against rule 5) is
`settle explain`'s to find, with the inputs.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import polars as pl
import pyarrow as pa
import pyarrow.csv as pa_csv

from contracts.loading import is_reference_name
from settlement.money import format_minor
from settlement.runfolder import LINE_KEY, Pinned, minor_units, output_problems

AMOUNTS = ["gross", "commission", "withholding", "net"]
LINE_COLUMNS = ["run_id", "period", *LINE_KEY, "right", "share", "currency", "units", *AMOUNTS]
WORK_KEY = ["contract_id", "work_id", "use_type", "split_version"]
SUSPENSE_KEY = ["contract_id", "work_key", "use_type", "reason"]
ROW_FATES = ("accepted", "duplicates", "quarantined", "suspense", "unlicensed")
# a file that is not as a run writes it: unparsable (polars, pyarrow's ArrowInvalid and JSON's errors are
# ValueErrors), missing, or a JSON object without a field a run writes (KeyError)
CANNOT_READ = (pl.exceptions.PolarsError, OSError, ValueError, KeyError)


@dataclass
class Findings:
    """Each invariant checked: a line saying what held (`passed`), or what did not (`failed`,
    one line per problem, `broken` invariants in all)."""

    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    broken: int = 0

    def add(self, name: str, check: Callable[[], tuple[str, list[str]]]) -> None:
        """Run `check` (what held, and the problems); a file it cannot read is a problem too."""
        try:
            holds, problems = check()
        except CANNOT_READ as error:
            problems = [f"{name}: cannot be checked, the files are not as a run writes them "
                        f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"]
        if problems:
            self.failed += problems
            self.broken += 1
        else:
            self.passed.append(holds)


# --------------------------------------------------------------------------- reading the files

def csv(out: Path, name: str) -> pl.LazyFrame:
    return pl.scan_csv(out / name, infer_schema=False, glob=False)


def lines_parquet(out: Path) -> pl.LazyFrame:
    """lines.parquet with its keys as text and amounts as Int128 minor units."""
    return pl.scan_parquet(out / "lines.parquet", glob=False).select(
        "run_id", "period", *(pl.col(c).cast(pl.String) for c in [*LINE_KEY, "right", "share", "currency"]),
        pl.col("units").cast(pl.Int128), *(pl.col(f"{a}_minor").cast(pl.Int128).alias(a) for a in AMOUNTS))


CSV_BLOCK = 1 << 26  # bytes of lines.csv read at once: polars' scan held all of a 10M-line file (4.4 GiB)


def csv_blocks(path: Path) -> Iterator[pl.DataFrame]:
    """A CSV file's rows, every column as text (empty: null), a block of bytes at a time."""
    header = pl.read_csv(path, n_rows=0, infer_schema=False).columns
    reader = pa_csv.open_csv(path, read_options=pa_csv.ReadOptions(block_size=CSV_BLOCK),
                             convert_options=pa_csv.ConvertOptions(
                                 column_types={name: pa.string() for name in header}, strings_can_be_null=True,
                                 quoted_strings_can_be_null=False))
    for batch in reader:
        yield pl.from_arrow(pa.Table.from_batches([batch]))


def unwritten(frame: pl.LazyFrame | pl.DataFrame, columns: list[str], read: str = "") -> pl.LazyFrame | pl.DataFrame:
    """The rows of `frame` with an amount of `columns` given but not written with its currency's
    digits (read by minor_units, or already read into the columns prefixed `read`)."""
    amount = (lambda c: pl.col(read + c)) if read else minor_units
    return frame.filter(pl.any_horizontal(pl.col(c).is_not_null() & amount(c).is_null() for c in columns))


@dataclass(frozen=True)
class LinesCsv:
    """lines.csv, read in one pass of blocks for both invariants that read it (each pass took
    65 s of parsing at 100M usage rows): its rows whose amounts are not written with their
    currency's digits, and how many lines it holds with the sum of a hash of each, as
    line_digest gives them for lines.parquet. A file whose lines cannot be hashed (a column
    missing) fails the second invariant only: `unhashed` holds why."""

    unwritten: pl.DataFrame
    lines: int
    digest: int
    unhashed: Exception | None

    @staticmethod
    def read(out: Path) -> "LinesCsv":
        bad, lines, digest, unhashed = [], 0, 0, None
        for rows in csv_blocks(out / "lines.csv"):
            read = rows.with_columns(*(minor_units(a).alias(f"minor units of {a}") for a in AMOUNTS))
            bad.append(unwritten(read, AMOUNTS, read="minor units of ").select(rows.columns))
            if unhashed is None:
                try:
                    count, total = line_digest(read.lazy().select(*LINE_COLUMNS[:-5], pl.col("units").cast(
                        pl.Int128, strict=False), *(pl.col(f"minor units of {a}").alias(a) for a in AMOUNTS)))
                    lines, digest = lines + count, digest + total
                except CANNOT_READ as error:
                    unhashed = error
        return LinesCsv(pl.concat(bad) if bad else pl.DataFrame(), lines, digest, unhashed)


def allocations(out: Path) -> pl.LazyFrame:
    return csv(out, "allocations.csv").select(
        "contract_id", "term_id", pl.col("work_key"), "use_type", pl.col("version").alias("split_version"),
        "status", "reason", "currency", minor_units("amount").alias("amount"))


STATEMENT_LINE = [*LINE_KEY, "right", "share", "currency", "units", *AMOUNTS]  # what a statement line shows
# a statement's rows per currency after its lines
FIGURES = ("total", "brought_forward", "threshold", "payable", "carried_forward")


def line_sums(lines: pl.LazyFrame) -> pl.LazyFrame:
    """Per holder and currency: how many lines, their amounts' sums, lines with an amount
    missing, and the sum of a hash of each line's every field (equal for the same lines)."""
    return lines.group_by("holder_id", "currency").agg(
        pl.len().alias("lines"), pl.struct(STATEMENT_LINE).hash().cast(pl.Int128).sum().alias("digest"),
        pl.any_horizontal(pl.col(a).is_null() for a in AMOUNTS).sum().alias("unwritten"),
        *(pl.col(a).sum() for a in AMOUNTS))


@dataclass(frozen=True)
class Statements:
    """The statements, read in one scan of their files: per holder and currency, their lines'
    line_sums, and their total, threshold, payable and carried-forward rows (`figures`: holder,
    record, currency and amounts in minor units)."""

    lines: pl.DataFrame
    figures: pl.DataFrame

    @staticmethod
    def read(out: Path) -> "Statements":
        paths = sorted((out / "statements").glob("*.csv"))
        parts = [statement_sums(tuple(paths[start:start + STATEMENT_BATCH]))
                 for start in range(0, len(paths), STATEMENT_BATCH)]
        if not parts:
            empty = lines_parquet(out).clear()
            return Statements(line_sums(empty).collect(), empty.select(
                "holder_id", pl.lit("").alias("record"), "currency", *AMOUNTS).collect())
        return Statements(pl.concat([lines for lines, _ in parts]), pl.concat([figures for _, figures in parts]))

    def figure(self, record: str) -> pl.DataFrame:
        """One row of each statement, per currency: holder, currency and its amount (`net`) as `record`."""
        return self.figures.filter(pl.col("record") == record).select("holder_id", "currency",
                                                                       pl.col("net").alias(record))


STATEMENT_BATCH = 2_000  # statements parsed at once: polars scanning 50,000 files one by one took 45 s and 5.6 GiB


def statement_rows(paths: tuple[Path, ...]) -> pl.LazyFrame:
    """The rows of these statements, with their holder (the file's name): the files' bodies
    parsed as one CSV (a loop over files, not rows), or, when a quoted line end or a missing
    last one makes the rows not the files' line counts, each file on its own."""
    header, bodies, holders, counts = b"", [], [], []
    for path in paths:
        header, _, body = path.read_bytes().partition(b"\n")
        bodies.append(body)
        holders.append(path.stem)
        counts.append(body.count(b"\n"))
    whole = all(body.endswith(b"\n") or not body for body in bodies)
    try:
        frame = pl.read_csv(b"\n".join([header, b"".join(bodies)]), infer_schema=False) if whole else None
    except pl.exceptions.PolarsError:  # a file's rows run into the next's: each file on its own says which
        frame = None
    if frame is not None and frame.height == sum(counts):
        holder = pl.Series("holder_id", holders).repeat_by(pl.Series(counts, dtype=pl.UInt32)).explode()
        return frame.lazy().with_columns(holder)
    return pl.concat([pl.read_csv(path, infer_schema=False).lazy().with_columns(pl.lit(path.stem).alias("holder_id"))
                      for path in paths], how="diagonal")


def statement_sums(paths: tuple[Path, ...]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Statements.read of a batch of statements."""
    rows = statement_rows(paths).select(
        "holder_id", "record", *LINE_KEY[:-1], "right", "share", "currency",
        pl.col("units").cast(pl.Int128, strict=False), *(minor_units(a).alias(a) for a in AMOUNTS))
    lines, figures = pl.collect_all([line_sums(rows.filter(pl.col("record") == "line")),
                                     rows.filter(pl.col("record") != "line").select("holder_id", "record", "currency",
                                                                                    *AMOUNTS)])
    return lines, figures


def invoice_terms(out: Path) -> pl.DataFrame:
    """Every invoiced term of the JSON invoices: contract, its currency and total, term, charged."""
    rows = []
    for path in sorted((out / "invoices").glob("*.json")):
        for contract in json.loads(path.read_text(encoding="utf-8"))["contracts"]:
            rows += [(path.stem, contract["contract_id"], contract["currency"], contract["total"], term["term_id"],
                      term["charged"]) for term in contract["terms"]]
    frame = pl.DataFrame(rows, schema={name: pl.String for name in ("licensee_id", "contract_id", "currency", "total",
                                                                    "term_id", "charged")}, orient="row")
    return frame.with_columns(minor_units("total"), minor_units("charged"))


def shown(minor: int, currency: str) -> str:
    return format_minor(minor, currency)


def examples(frame: pl.DataFrame, most: int = 3) -> str:
    """The first rows of a frame of problems, as text."""
    rows = [", ".join(f"{k}={v}" for k, v in row.items()) for row in frame.head(most).iter_rows(named=True)]
    return "; ".join(rows) + (f"; and {frame.height - most} more" if frame.height > most else "")


def mismatch(frame: pl.DataFrame, what: str) -> list[str]:
    return [f"{what} ({frame.height}): {examples(frame)}"] if frame.height else []


# --------------------------------------------------------------------------- the invariants

def amounts_written(out: Path, statements: Statements, lines: LinesCsv) -> tuple[str, list[str]]:
    """Every amount a decimal with its currency's digits; no line without a key or an amount."""
    problems = mismatch(lines.unwritten, "lines.csv: amounts not written with their currency's digits")
    files = {"allocations.csv": ["amount"], "suspense.csv": ["amount"]}
    if (out / "adjustments.csv").exists():
        files["adjustments.csv"] = [f"{side}{figure}" for figure in ("net", "payable", "carried_forward")
                                    for side in ("old_", "new_")] + [f"{f}_change" for f in
                                                                     ("net", "payable", "carried_forward")]
    for name, columns in files.items():
        problems += mismatch(unwritten(csv(out, name), columns).collect(),
                             f"{name}: amounts not written with their currency's digits")
    problems += mismatch(statements.lines.filter(pl.col("unwritten") > 0).select("holder_id", "currency", "unwritten"),
                         "statements: holders with line amounts missing or not written with their currency's digits")
    problems += mismatch(statements.figures.filter(pl.col("net").is_null()),
                         "statements: rows whose amount is missing or not written with its currency's digits")
    empty = lines_parquet(out).filter(pl.any_horizontal(pl.all().is_null())).collect()
    problems += mismatch(empty, "lines.parquet: lines with a key or an amount missing")
    return "every amount written with its currency's digits, no line missing a key or an amount", problems


def line_digest(frame: pl.LazyFrame) -> tuple:
    """How many lines, and the sum of a hash of each line's every field: equal for the same lines."""
    return frame.select(pl.len(), pl.struct(LINE_COLUMNS).hash().cast(pl.Int128).sum()).collect().row(0)


def csv_against_parquet(out: Path, lines: LinesCsv) -> tuple[str, list[str]]:
    if lines.unhashed is not None:
        raise lines.unhashed
    ours, theirs = (lines.lines, lines.digest), line_digest(lines_parquet(out))
    problems = [] if ours == theirs else [
        f"lines.csv ({ours[0]} lines) and lines.parquet ({theirs[0]} lines) do not hold the same lines"]
    return f"lines.csv and lines.parquet hold the same {theirs[0]} lines", problems


def invoices_agree(out: Path, terms: pl.DataFrame) -> tuple[str, list[str]]:
    """Each invoice's CSV charges what its JSON does; each contract's total is its terms' sum."""
    paths = sorted((out / "invoices").glob("*.csv"))
    listed = pl.scan_csv(paths, infer_schema=False, glob=False).select(
        "contract_id", "term_id", "currency", minor_units("charged").alias("charged")).collect() if paths else terms.clear()
    both = terms.select("contract_id", "term_id", "currency", "charged").join(
        listed, on=["contract_id", "term_id"], how="full", coalesce=True, suffix="_csv")
    problems = mismatch(both.filter((pl.col("charged") != pl.col("charged_csv"))
                                    | (pl.col("currency") != pl.col("currency_csv"))
                                    | pl.any_horizontal(pl.col("charged", "charged_csv").is_null())),
                        "invoices: terms whose CSV and JSON differ (charged in minor units)")
    totals = terms.group_by("contract_id", "total").agg(pl.col("charged").sum().alias("terms"))
    problems += mismatch(totals.filter((pl.col("total") != pl.col("terms")).fill_null(True)),
                         "invoices: contracts whose total is not the sum of their terms' charges")
    return f"invoices: CSV and JSON agree, each contract's total is its terms' ({terms.height} terms)", problems


def terms_against_invoices(out: Path, terms: pl.DataFrame) -> tuple[str, list[str]]:
    parts = allocations(out).group_by("contract_id", "term_id", "currency").agg(
        pl.col("amount").sum().alias("parts")).collect()
    both = terms.select("contract_id", "term_id", "currency", "charged").join(
        parts, on=["contract_id", "term_id"], how="full", coalesce=True, suffix="_parts")
    wrong = both.filter((pl.col("parts").fill_null(-1) != pl.col("charged").fill_null(-1))
                        | (pl.col("currency").fill_null("") != pl.col("currency_parts").fill_null("")))
    return (f"level 1: each term's parts in allocations.csv sum to its invoiced charge, in its currency "
            f"({terms.height} terms)",
            mismatch(wrong, "level 1: terms whose parts do not sum to what the invoice charges (minor units), or "
                            "are in another currency"))


def works_against_lines(out: Path) -> tuple[str, list[str]]:
    """Level 2: each work amount's holder lines sum to its level-1 amount. The two sides are
    summed by a 64-bit hash of each work amount's key, not by its five text columns: at
    100M usage rows (27.7M work amounts) the text keys held 12.4 GiB. The keys of sums that
    differ are then found by a second pass over those keys alone."""
    key = [*WORK_KEY, "currency"]
    level1 = allocations(out).filter(pl.col("status") == "accepted").rename({"work_key": "work_id"})
    holders = lines_parquet(out)
    hashed = lambda frame, amount, name: frame.select(pl.struct(key).hash().alias("_key"), pl.col(amount)).group_by(
        "_key").agg(pl.col(amount).sum().alias(name))
    both = hashed(level1, "amount", "level1").join(hashed(holders, "gross", "gross"), on="_key", how="full",
                                                   coalesce=True).collect()
    differ = both.filter(pl.col("level1").fill_null(-1) != pl.col("gross").fill_null(-1))["_key"].implode()
    named = lambda frame, amount, name: frame.filter(pl.struct(key).hash().is_in(differ)).group_by(key).agg(
        pl.col(amount).sum().alias(name))
    wrong = pl.DataFrame() if differ.list.len().item() == 0 else named(level1, "amount", "level1").join(
        named(holders, "gross", "gross"), on=key, how="full", coalesce=True).collect()  # the few that differ, by text
    return (f"level 2: each work amount's holder lines sum to its level-1 amount ({both.height} work amounts)",
            mismatch(wrong, "level 2: work amounts whose holders' gross is not the level-1 amount (minor units; "
                            "null: none there)"))


def suspense_against_level_one(out: Path) -> tuple[str, list[str]]:
    parts = allocations(out).filter(pl.col("status") == "suspense").group_by(*SUSPENSE_KEY, "currency").agg(
        pl.col("amount").sum().alias("parts"))
    held = csv(out, "suspense.csv").filter(pl.col("amount").is_not_null()).select(
        *SUSPENSE_KEY, "currency", minor_units("amount").alias("held"))
    both = parts.join(held, on=[*SUSPENSE_KEY, "currency"], how="full", coalesce=True).collect()
    wrong = both.filter(pl.col("parts").fill_null(0) != pl.col("held").fill_null(0))  # usage weighing nothing: 0
    return (f"suspense.csv holds level 1's suspense parts, key by key ({both.height} keys)",
            mismatch(wrong, "suspense: keys whose amount in suspense.csv is not their level-1 suspense parts' "
                            "(minor units)"))


def line_arithmetic(out: Path) -> tuple[str, list[str]]:
    lines = lines_parquet(out)
    wrong = lines.filter(((pl.col("net") != pl.col("gross") - pl.col("commission") - pl.col("withholding"))
                          | pl.any_horizontal(pl.col(a) < 0 for a in AMOUNTS)).fill_null(True)).select(
        *LINE_KEY, *AMOUNTS).collect()
    count = lines.select(pl.len()).collect().item()
    return (f"net = gross − commission − withholding on every line, none negative ({count} lines)",
            mismatch(wrong, "lines whose net is not gross − commission − withholding, or with an amount negative or "
                            "missing (minor units)"))


def statements_against_lines(out: Path, statements: Statements) -> tuple[str, list[str]]:
    """Each statement lists exactly its holder's lines (compared by line_sums per holder and
    currency), totals them, and pays the total plus the balance brought forward, or carries
    them forward, by its threshold."""
    key = ["holder_id", "currency"]
    ours = line_sums(lines_parquet(out)).collect()
    both = ours.join(statements.lines, on=key, how="full", coalesce=True, suffix="_statement")
    differ = pl.any_horizontal(pl.col(c).fill_null(-1) != pl.col(f"{c}_statement").fill_null(-1)
                               for c in ("lines", "digest", *AMOUNTS))
    problems = mismatch(both.filter(differ).select(*key, "lines", "lines_statement", "net", "net_statement"),
                        "statements: holders whose statement does not list exactly their lines of lines.parquet "
                        "(lines and net in minor units, there and on the statement)")
    balance = statements.figures.filter(pl.col("record") == "total").select(*key, *AMOUNTS)
    for record in FIGURES[1:]:
        balance = balance.join(statements.figure(record), on=key, how="full", coalesce=True)
    balance = balance.join(statements.lines.select(*key, *(pl.col(a).alias(f"{a}_lines") for a in AMOUNTS)),
                           on=key, how="full", coalesce=True)
    # a holder with only a balance brought forward has a statement of no lines, totalling 0
    problems += mismatch(balance.filter(pl.any_horizontal(pl.col(a).fill_null(-1) != pl.col(f"{a}_lines").fill_null(0)
                                                          for a in AMOUNTS)),
                         "statements: totals that are not the sums of the statement's lines (minor units)")
    owed = pl.col("net") + pl.col("brought_forward")
    paid = (owed >= pl.col("threshold")) & (owed > 0)
    wrong = balance.filter(pl.when(paid).then((pl.col("payable") != owed) | (pl.col("carried_forward") != 0))
                           .otherwise((pl.col("payable") != 0) | (pl.col("carried_forward") != owed))
                           .fill_null(True))
    problems += mismatch(wrong.select(*key, "net", "brought_forward", "threshold", "payable", "carried_forward"),
                         "statements: balances (net + brought forward) not paid at or above the threshold, or not "
                         "carried forward below it, or missing a total, brought-forward, threshold, payable or "
                         "carried-forward row (minor units)")
    return (f"statements: each lists exactly its holder's lines and totals them; net + brought forward payable or "
            f"carried forward by threshold ({balance['holder_id'].n_unique()} holders)", problems)


def conservation(out: Path, statements: Statements, terms: pl.DataFrame, summary: dict) -> tuple[str, list[str]]:
    """Per currency: charged + brought forward = payable + carried forward + commission +
    withholding + suspense, from the files, and as summary.json says."""
    suspense = csv(out, "suspense.csv").group_by("currency").agg(
        minor_units("amount").sum().alias("suspense")).collect()
    deductions = lines_parquet(out).group_by("currency").agg(pl.col("commission").sum(),
                                                              pl.col("withholding").sum()).collect()
    balances = statements.figures.group_by("currency").agg(
        pl.col("net").filter(pl.col("record") == "brought_forward").sum().alias("brought_forward"),
        pl.col("net").filter(pl.col("record") == "payable").sum().alias("payable"),
        pl.col("net").filter(pl.col("record") == "carried_forward").sum().alias("carried_forward"))
    charged = terms.group_by("currency").agg(pl.col("charged").sum())
    figures = (charged.join(balances, on="currency", how="full", coalesce=True)
               .join(deductions, on="currency", how="full", coalesce=True)
               .join(suspense, on="currency", how="full", coalesce=True)
               .filter(pl.col("currency").is_not_null()).fill_null(0).sort("currency"))
    problems, held = [], []
    parts = ("payable", "carried_forward", "commission", "withholding", "suspense")
    stated_totals = summary["currencies"]
    for row in figures.iter_rows(named=True):  # a row per currency
        currency = row["currency"]
        brought = f" + brought forward {shown(row['brought_forward'], currency)}" if row["brought_forward"] else ""
        equation = (f"{currency}: charged {shown(row['charged'], currency)}{brought} = " + " + ".join(
            f"{p.replace('_', ' ')} {shown(row[p], currency)}" for p in parts))
        if row["charged"] + row["brought_forward"] != sum(row[p] for p in parts):
            problems.append(f"conservation does not hold: {equation} = "
                            f"{shown(sum(row[p] for p in parts), currency)}")
        stated = stated_totals.get(currency, {})
        problems += [f"{currency}: {name} {stated.get(name)} in summary.json, {shown(row[name], currency)} in the files"
                     for name in ("charged", "brought_forward", *parts)
                     if stated.get(name) != shown(row[name], currency)]
        held.append(equation)
    problems += [f"{currency}: in summary.json, but in no file"
                 for currency in sorted(set(stated_totals) - set(figures["currency"].to_list()))]
    return "conservation, as summary.json states it: " + ("; ".join(held) or "no currency charged or brought "
                                                                           "forward"), problems


def summary_counts(out: Path, summary: dict) -> tuple[str, list[str]]:
    """summary.json's `lines` and `holders` are the files': lines.parquet's lines, and the
    statements (one per holder with a balance, lines or not)."""
    lines = lines_parquet(out).select(pl.len()).collect().item()
    statements = sum(1 for _ in (out / "statements").glob("*.csv"))
    problems = [f"summary.json counts {summary.get(name)} {name}, {where} {count}"
                for name, count, where in (("lines", lines, "lines.parquet holds"),
                                           ("holders", statements, "the statements are"))
                if summary.get(name) != count]
    return f"summary.json's counts are the files': {lines} lines, {statements} holders' statements", problems


def usage_logs(pinned: Pinned) -> list[str]:
    """The usage logs the manifest pins: its inputs but the reference files."""
    return sorted(entry["path"] for entry in pinned.manifest["inputs"] if not is_reference_name(entry["path"]))


def row_accounting(out: Path, pinned: Pinned) -> tuple[str, list[str]]:
    """Law 3: each usage log's rows, and all of them, add up; the reports hold the rows counted."""
    summary, problems = pinned.summary, []
    files, rows = summary["files"], summary["rows"]
    for entry in [*files, {"file": "all files", **rows}]:
        fates = sum(entry[fate] for fate in ROW_FATES)
        if entry["rows_read"] != fates:
            problems.append(f"rows of {entry['file']}: {entry['rows_read']} read, but "
                            + " + ".join(f"{entry[f]} {f}" for f in ROW_FATES) + f" = {fates}")
    problems += [f"rows: the files' {fate} do not sum to summary.json's {rows[fate]}"
                 for fate in ("rows_read", *ROW_FATES) if sum(entry[fate] for entry in files) != rows[fate]]
    named, pinned_logs = sorted(entry["file"] for entry in files), usage_logs(pinned)
    if named != pinned_logs:
        problems.append(f"rows: summary.json accounts for the usage logs {named}, the manifest pins {pinned_logs}")
    quarantined = csv(out, "quarantine.csv").group_by("file").agg(pl.len().cast(pl.Int64).alias("listed")).collect()
    counted = pl.DataFrame({"file": [e["file"] for e in files], "quarantined": [e["quarantined"] for e in files]},
                           schema={"file": pl.String, "quarantined": pl.Int64})
    problems += mismatch(counted.join(quarantined, on="file", how="full", coalesce=True).filter(
        pl.col("quarantined").fill_null(0) != pl.col("listed").fill_null(0)),
        "rows: files whose quarantined rows in summary.json are not quarantine.csv's")
    for fate, name in (("unlicensed", "unlicensed.csv"), ("suspense", "suspense.csv")):
        held = csv(out, name).select(pl.col("rows").cast(pl.Int64).sum()).collect().item()
        if held != rows[fate]:
            problems.append(f"rows: summary.json counts {rows[fate]} {fate}, {name} holds {held}")
    return (f"rows: {rows['rows_read']} read = " + " + ".join(f"{rows[f]} {f}" for f in ROW_FATES)
            + f", in each of the {len(files)} usage logs the manifest pins, as quarantine.csv, unlicensed.csv and "
              "suspense.csv hold them", problems)


def adjustment_figures(out: Path, statements: Statements, summary: dict) -> tuple[str, list[str]]:
    """Law 6: adjustments.csv's new figures are the statements', each change new − old; the
    summary's new totals are the run's and each change new − old."""
    figures = ("net", "payable", "carried_forward")
    table = csv(out, "adjustments.csv").select(
        "holder_id", "currency", *(minor_units(f"{side}_{f}").alias(f"{side}_{f}")
                                   for f in figures for side in ("old", "new")),
        *(minor_units(f"{f}_change").alias(f"{f}_change") for f in figures)).collect()
    problems = mismatch(table.filter(pl.any_horizontal(
        pl.col(f"{f}_change") != pl.col(f"new_{f}") - pl.col(f"old_{f}") for f in figures).fill_null(True)),
        "adjustments.csv: rows whose change is not new − old (minor units)")
    record = {"net": "total", "payable": "payable", "carried_forward": "carried_forward"}
    stated = pl.concat([statements.figure(record[f]).select(
        "holder_id", "currency", pl.lit(f).alias("figure"), pl.col(record[f]).alias("statement")) for f in figures])
    listed = table.unpivot([f"new_{f}" for f in figures], index=["holder_id", "currency"], variable_name="figure",
                           value_name="new").with_columns(pl.col("figure").str.strip_prefix("new_"))
    problems += mismatch(listed.join(stated, on=["holder_id", "currency", "figure"], how="left").filter(
        pl.col("new") != pl.col("statement").fill_null(0)),
        "adjustments.csv: new figures that are not the holder's statement's (minor units; a holder without a "
        "statement has 0)")
    for currency, totals in summary["adjustment"]["currencies"].items():
        run = summary["currencies"].get(currency, {})
        for name, figure in totals.items():
            old, new, change = (int(figure[k].replace(".", "")) for k in ("old", "new", "change"))
            if change != new - old or figure["new"] != run.get(name, shown(0, currency)):
                problems.append(f"summary.json: the adjustment's {currency} {name} is {figure}, the run's "
                                f"{run.get(name, 'none')}")
    return (f"adjustment: adjustments.csv's {table.height} rows are the statements' new figures, each change new − "
            f"old, as summary.json's totals are", problems)


def check(run_out: Path) -> tuple[Pinned, Findings]:
    """Every invariant of the run in `run_out`, from its files."""
    pinned = Pinned.read(run_out).require_run()
    findings = Findings()

    def manifest() -> tuple[str, list[str]]:
        count, _, problems = output_problems(pinned)
        return f"every output file is the one manifest.json pins ({count} files)", problems

    findings.add("the manifest", manifest)
    summary = pinned.summary
    terms, statements = functools.cache(lambda: invoice_terms(run_out)), functools.cache(lambda: Statements.read(run_out))
    lines_csv = functools.cache(lambda: LinesCsv.read(run_out))
    findings.add("amounts", lambda: amounts_written(run_out, statements(), lines_csv()))
    findings.add("lines.csv and lines.parquet", lambda: csv_against_parquet(run_out, lines_csv()))
    findings.add("invoices", lambda: invoices_agree(run_out, terms()))
    findings.add("level 1", lambda: terms_against_invoices(run_out, terms()))
    findings.add("level 2", lambda: works_against_lines(run_out))
    findings.add("suspense", lambda: suspense_against_level_one(run_out))
    findings.add("lines", lambda: line_arithmetic(run_out))
    findings.add("statements", lambda: statements_against_lines(run_out, statements()))
    findings.add("conservation", lambda: conservation(run_out, statements(), terms(), summary))
    findings.add("counts", lambda: summary_counts(run_out, summary))
    findings.add("rows", lambda: row_accounting(run_out, pinned))
    if "adjustment" in summary:
        findings.add("adjustment", lambda: adjustment_figures(run_out, statements(), summary))
    return pinned, findings
