"""Check: a run's invariants, checked independently from its output files alone (DESIGN.md,
"Who uses it", 3: the auditor "checks the invariants independently").

Nothing here calls the engine: every figure is read back from the files a run wrote,
as the README documents them, and summed again by frame operations (lines.parquet,
allocations.csv and the statements are scanned, never looped over). What is checked:

- every output file is the one the manifest pins;
- each term's level-1 parts sum to the amount its invoice charges (law 2, level 1);
- each (contract, work, use type, split version)'s holder lines sum to its level-1 amount,
  and every such amount has lines (law 2, level 2);
- net = gross − commission − withholding on every line, no amount negative (rule 4);
- each statement: its lines are the holder's lines, its total their sums, its payable and
  carried forward the total by its threshold (rule 4);
- per currency: charged = payable + carried forward + commission + withholding + suspense,
  each figure summed from the files, and as summary.json states it (law 2);
- the usage rows: read = accepted + duplicates + quarantined + suspense + unlicensed, per
  file and in all, with quarantine.csv, unlicensed.csv and suspense.csv holding the rows
  summary.json counts (law 3).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from contracts.errors import InputError
from settlement.money import format_minor
from settlement.replay import Pinned, output_problems

AMOUNTS = ["gross", "commission", "withholding", "net"]
WORK_KEY = ["contract_id", "work_id", "use_type", "split_version"]
ROW_FATES = ("accepted", "duplicates", "quarantined", "suspense", "unlicensed")


@dataclass
class Findings:
    """Each invariant checked: a line saying what held (`passed`) or what did not (`failed`)."""

    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def add(self, holds: str, problems: list[str]) -> None:
        if problems:
            self.failed += problems
        else:
            self.passed.append(holds)


def minor_units(column: str) -> pl.Expr:
    """A CSV amount, written with exactly its currency's digits, as integer minor units."""
    return pl.col(column).str.replace(".", "", literal=True).cast(pl.Int128)


def shown(minor: int, currency: str) -> str:
    return format_minor(minor, currency)


def examples(frame: pl.DataFrame, most: int = 3) -> str:
    """The first rows of a frame of problems, as text."""
    rows = [", ".join(f"{k}={v}" for k, v in row.items()) for row in frame.head(most).iter_rows(named=True)]
    return "; ".join(rows) + (f"; and {frame.height - most} more" if frame.height > most else "")


def invoice_terms(out: Path) -> pl.DataFrame:
    """Every invoiced term: contract, term, currency and charged amount in minor units."""
    rows = []
    for path in sorted((out / "invoices").glob("*.json")):
        for contract in json.loads(path.read_text(encoding="utf-8"))["contracts"]:
            rows += [{"contract_id": contract["contract_id"], "term_id": term["term_id"],
                      "currency": contract["currency"], "charged": term["charged"]} for term in contract["terms"]]
    schema = {"contract_id": pl.String, "term_id": pl.String, "currency": pl.String, "charged": pl.String}
    return pl.DataFrame(rows, schema=schema, orient="row").with_columns(minor_units("charged"))


def lines_frame(out: Path) -> pl.LazyFrame:
    return pl.scan_parquet(out / "lines.parquet", glob=False).select(
        pl.col("licensee_id", "contract_id", "use_type", "split_version", "currency").cast(pl.String),
        "work_id", "holder_id", *(pl.col(f"{a}_minor").cast(pl.Int128).alias(a) for a in AMOUNTS))


def allocations_frame(out: Path) -> pl.LazyFrame:
    return pl.scan_csv(out / "allocations.csv", infer_schema=False, glob=False).select(
        "contract_id", "term_id", pl.col("work_key").alias("work_id"), "use_type",
        pl.col("version").alias("split_version"), "status", "currency", minor_units("amount").alias("amount"))


def terms_against_invoices(allocations: pl.LazyFrame, terms: pl.DataFrame) -> tuple[str, list[str]]:
    parts = allocations.group_by("contract_id", "term_id").agg(pl.col("amount").sum().alias("parts")).collect()
    both = terms.join(parts, on=["contract_id", "term_id"], how="full", coalesce=True)
    wrong = both.filter(pl.col("parts").fill_null(0) != pl.col("charged").fill_null(0))
    problems = [f"level 1: the parts of {wrong.height} term(s) in allocations.csv do not sum to what the invoice "
                f"charges (in minor units): {examples(wrong.select('contract_id', 'term_id', 'charged', 'parts'))}"
                ] if wrong.height else []
    return f"level 1: each term's parts in allocations.csv sum to its invoiced charge ({terms.height} terms)", problems


def works_against_lines(allocations: pl.LazyFrame, lines: pl.LazyFrame) -> tuple[str, list[str]]:
    level1 = allocations.filter(pl.col("status") == "accepted").group_by(WORK_KEY).agg(
        pl.col("amount").sum().alias("level1"))
    holders = lines.group_by(WORK_KEY).agg(pl.col("gross").sum(), pl.len().alias("holder_lines"))
    both = level1.join(holders, on=WORK_KEY, how="full", coalesce=True).collect()
    wrong = both.filter(pl.col("level1").fill_null(-1) != pl.col("gross").fill_null(-1))
    problems = [f"level 2: the holders' gross of {wrong.height} work amount(s) is not the work's level-1 amount "
                f"(minor units; null: none there): {examples(wrong)}"] if wrong.height else []
    return (f"level 2: each work amount's holder lines sum to its level-1 amount ({both.height} work amounts)",
            problems)


def line_arithmetic(lines: pl.LazyFrame) -> tuple[str, list[str]]:
    wrong = lines.filter((pl.col("net") != pl.col("gross") - pl.col("commission") - pl.col("withholding"))
                         | pl.any_horizontal(pl.col(a) < 0 for a in AMOUNTS)).collect()
    count = lines.select(pl.len()).collect().item()
    problems = [f"{wrong.height} line(s) whose net is not gross − commission − withholding, or with a negative "
                f"amount: {examples(wrong)}"] if wrong.height else []
    return f"net = gross − commission − withholding on every line, none negative ({count} lines)", problems


LINE_TEXT = ["licensee_id", "contract_id", "work_id", "use_type", "split_version", "holder_id", "right", "share",
             "currency"]


def line_digest(frame: pl.LazyFrame, amounts: list[pl.Expr]) -> pl.LazyFrame:
    """The lines' count, and a sum of one hash per line of its keys and amounts: equal for the
    same lines, in any order."""
    row = pl.concat_str([*(pl.col(c).cast(pl.String) for c in LINE_TEXT), pl.col("units").cast(pl.String),
                         *(a.cast(pl.String) for a in amounts)], separator="|")
    return frame.select(pl.len().alias("lines"), row.hash().cast(pl.Int128).sum().alias("digest"))


def csv_against_parquet(out: Path) -> tuple[str, list[str]]:
    """lines.csv and lines.parquet hold the same lines (amounts: decimals and minor units)."""
    as_csv = line_digest(pl.scan_csv(out / "lines.csv", infer_schema=False, glob=False),
                         [minor_units(a) for a in AMOUNTS])
    as_parquet = line_digest(pl.scan_parquet(out / "lines.parquet", glob=False),
                             [pl.col(f"{a}_minor") for a in AMOUNTS])
    csv_row, parquet_row = (frame.collect().row(0) for frame in (as_csv, as_parquet))
    problems = [] if csv_row == parquet_row else [
        f"lines.csv ({csv_row[0]} lines) and lines.parquet ({parquet_row[0]} lines) do not hold the same lines"]
    return f"lines.csv and lines.parquet hold the same {parquet_row[0]} lines", problems


def statement_frame(out: Path) -> pl.DataFrame:
    paths = sorted((out / "statements").glob("*.csv"))  # one scan of every statement, by its literal path
    if not paths:
        return pl.DataFrame(schema={"holder_id": pl.String, "record": pl.String, "currency": pl.String,
                                    **{a: pl.Int128 for a in AMOUNTS}})
    statements = pl.scan_csv(paths, infer_schema=False, include_file_paths="path", glob=False)
    return statements.select(
        pl.col("path").str.extract(r"([^/\\]+)\.csv$").alias("holder_id"), "record", "currency",
        *(minor_units(a).alias(a) for a in AMOUNTS)).collect()


def statements_against_lines(statements: pl.DataFrame, lines: pl.LazyFrame) -> tuple[str, list[str]]:
    """Each statement's lines are its holder's; its total their sums; its payable or carried
    forward the whole net, by its threshold."""
    key = ["holder_id", "currency"]
    listed = statements.filter(pl.col("record") == "line").group_by(key).agg(pl.len().alias("listed"),
                                                                              *(pl.col(a).sum() for a in AMOUNTS))
    sums = lines.group_by(key).agg(pl.len().alias("listed"), *(pl.col(a).sum() for a in AMOUNTS)).collect()
    figure = lambda record: statements.filter(pl.col("record") == record).select(*key, pl.col("net").alias(record))
    totals = figure("total").join(statements.filter(pl.col("record") == "total").select(
        *key, *AMOUNTS[:3]), on=key)
    balance = figure("threshold").join(figure("payable"), on=key, how="full", coalesce=True).join(
        figure("carried_forward"), on=key, how="full", coalesce=True).join(totals, on=key, how="full", coalesce=True)
    problems = []
    unlike = sums.join(listed, on=key, how="full", coalesce=True, suffix="_statement").filter(pl.any_horizontal(
        pl.col(c).fill_null(-1) != pl.col(f"{c}_statement").fill_null(-1) for c in ("listed", *AMOUNTS)))
    if unlike.height:
        problems.append(f"statements: {unlike.height} holder(s) whose statement lines are not their lines in "
                        f"lines.parquet: {examples(unlike)}")
    stated = balance.join(sums.rename({a: f"{a}_lines" for a in AMOUNTS}), on=key, how="left")
    wrong_total = stated.filter(pl.any_horizontal(pl.col(c if c != "net" else "total").fill_null(-1)
                                                  != pl.col(f"{c}_lines").fill_null(-1) for c in AMOUNTS))
    if wrong_total.height:
        problems.append(f"statements: {wrong_total.height} total(s) that are not the sums of the holder's lines: "
                        f"{examples(wrong_total)}")
    paid = pl.col("total") >= pl.col("threshold")
    wrong_balance = stated.filter(
        pl.when(paid).then((pl.col("payable") != pl.col("total")) | (pl.col("carried_forward") != 0))
        .otherwise((pl.col("payable") != 0) | (pl.col("carried_forward") != pl.col("total"))).fill_null(True))
    if wrong_balance.height:
        problems.append(f"statements: {wrong_balance.height} balance(s) not paid when at least the threshold, or not "
                        f"carried forward below it: {examples(wrong_balance)}")
    holders = statements["holder_id"].n_unique()
    return (f"statements: lines, totals, and payable or carried forward by threshold ({holders} holders)", problems)


def conservation(statements: pl.DataFrame, lines: pl.LazyFrame, terms: pl.DataFrame, out: Path,
                 summary: dict) -> tuple[str, list[str]]:
    """Per currency: charged = payable + carried forward + commission + withholding + suspense,
    from the files, and as summary.json says."""
    suspense = pl.scan_csv(out / "suspense.csv", infer_schema=False, glob=False).group_by("currency").agg(
        minor_units("amount").sum().alias("suspense")).collect()
    deductions = lines.group_by("currency").agg(pl.col("commission").sum(), pl.col("withholding").sum()).collect()
    balances = statements.group_by("currency").agg(
        pl.col("net").filter(pl.col("record") == "payable").sum().alias("payable"),
        pl.col("net").filter(pl.col("record") == "carried_forward").sum().alias("carried_forward"))
    charged = terms.group_by("currency").agg(pl.col("charged").sum())
    figures = (charged.join(balances, on="currency", how="full", coalesce=True)
               .join(deductions, on="currency", how="full", coalesce=True)
               .join(suspense, on="currency", how="full", coalesce=True).fill_null(0).sort("currency"))
    problems, held = [], []
    parts = ("payable", "carried_forward", "commission", "withholding", "suspense")
    for row in figures.iter_rows(named=True):  # a row per currency
        currency = row["currency"]
        equation = (f"{currency}: charged {shown(row['charged'], currency)} = " + " + ".join(
            f"{p.replace('_', ' ')} {shown(row[p], currency)}" for p in parts))
        if row["charged"] != sum(row[p] for p in parts):
            problems.append(f"conservation does not hold: {equation} = "
                            f"{shown(sum(row[p] for p in parts), currency)}")
        stated = summary.get("currencies", {}).get(currency, {})
        differ = [f"{name} {stated.get(name)} in summary.json, {shown(row[name], currency)} in the files"
                  for name in ("charged", *parts) if stated.get(name) != shown(row[name], currency)]
        problems += [f"{currency}: {d}" for d in differ]
        held.append(equation)
    missing = sorted(set(summary.get("currencies", {})) - set(figures["currency"].to_list()))
    problems += [f"{currency}: in summary.json, but in no file" for currency in missing]
    return "conservation, as summary.json states it: " + "; ".join(held), problems


def row_accounting(out: Path, summary: dict) -> tuple[str, list[str]]:
    """Law 3: each file's rows, and all of them, add up, and the reports hold the rows counted."""
    problems = []
    files = summary.get("files", [])
    for entry in [*files, {"file": "all files", **summary.get("rows", {})}]:
        fates = sum(entry.get(fate, 0) for fate in ROW_FATES)
        if entry.get("rows_read") != fates:
            problems.append(f"rows of {entry['file']}: {entry.get('rows_read')} read, but "
                            + " + ".join(f"{entry.get(f, 0)} {f}" for f in ROW_FATES) + f" = {fates}")
    rows = summary.get("rows", {})
    for fate in ("rows_read", *ROW_FATES):
        if sum(entry.get(fate, 0) for entry in files) != rows.get(fate):
            problems.append(f"rows: the files' {fate} do not sum to summary.json's {rows.get(fate)}")
    reported = {
        "quarantined": pl.scan_csv(out / "quarantine.csv", infer_schema=False, glob=False).select(pl.len()).collect().item(),
        "unlicensed": rows_column(out / "unlicensed.csv"),
        "suspense": rows_column(out / "suspense.csv"),
    }
    problems += [f"rows: summary.json counts {rows.get(fate)} {fate}, {out / name} holds {count}"
                 for (fate, count), name in zip(reported.items(), ("quarantine.csv", "unlicensed.csv", "suspense.csv"))
                 if rows.get(fate) != count]
    return (f"rows: {rows.get('rows_read')} read = " + " + ".join(f"{rows.get(f)} {f}" for f in ROW_FATES)
            + f", in each of {len(files)} files, and as quarantine.csv, unlicensed.csv and suspense.csv hold them",
            problems)


def rows_column(path: Path) -> int:
    return int(pl.scan_csv(path, infer_schema=False, glob=False).select(pl.col("rows").cast(pl.Int64).sum()).collect().item())


def check(run_out: Path) -> tuple[Pinned, Findings]:
    """Every invariant of the run in `run_out`, from its files."""
    pinned = Pinned.read(run_out)
    if pinned.preview:
        raise InputError(str(run_out), "is a preview, which allocates nothing", expected="a run's output folder")
    findings = Findings()
    count, _, problems = output_problems(pinned)
    findings.add(f"every output file is the one manifest.json pins ({count} files)", problems)
    lines, allocations, terms = lines_frame(run_out), allocations_frame(run_out), invoice_terms(run_out)
    statements = statement_frame(run_out)
    for holds, problems in (csv_against_parquet(run_out), terms_against_invoices(allocations, terms), works_against_lines(allocations, lines),
                            line_arithmetic(lines), statements_against_lines(statements, lines),
                            conservation(statements, lines, terms, run_out, pinned.summary),
                            row_accounting(run_out, pinned.summary)):
        findings.add(holds, problems)
    return pinned, findings
