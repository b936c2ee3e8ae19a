"""Aggregation: usage rows → one row per usage group, streaming.

A group is (file, licensee, model, work reference, use type, unit, territory,
segment). A *segment* is a stretch of the period in which no split, consent
signal or contract starts or ends, so everything decided after aggregation
(which split is in force, whether consent holds, which contract covers the use)
is decided once per group and is exact for every row in it. `file` stays in
the key so that every file's rows can be accounted for.

Only this module and intake see raw rows, and they never hold them all:

- pass 1, one streaming read: validate, aggregate every valid row, collect the
  quarantined rows, count rows per file, and find *candidate* re-sends (record
  keys whose 64-bit hash occurs twice) and candidate over-attributed outputs
  (attribution summing past 1 when re-sends are still counted);
- pass 2, a read of only the candidates' rows (a few percent): settle them
  exactly on the real keys in memory, then subtract every copy that does not
  count (re-sends, conflicting re-sends, over-attributed outputs) from its group.

A hash collision can only make a row a candidate, never a duplicate: pass 2
decides on the real keys.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from settlement import intake
from settlement.money import MONEY

GROUP_KEY = ["file", "licensee_id", "model_id", "ref", "use_type", "unit", "territory", "segment"]
SUMS = ["rows", "units", "attributed_nanos", "unattributed_units", "attribution_nanos"]


@dataclass(frozen=True)
class UsageAggregate:
    """What intake and aggregation hand to the pure steps."""

    groups: pl.DataFrame       # GROUP_KEY + SUMS, kept copies only
    unattributed: pl.DataFrame # licensee_id, outputs (with attribution), unattributed_nanos
    quarantine: pl.DataFrame   # intake.QUARANTINE_COLUMNS, sorted by file, row
    files: pl.DataFrame        # file, rows_read, duplicates, quarantined
    rows_read: int
    digest: int                # order-independent digest of every raw row


def breakpoints(catalogue, contracts, period) -> list[dt.datetime]:
    """Instants strictly inside the period where a split, a consent signal or a contract starts or ends."""
    instants: set[dt.datetime] = set()
    for frame in (catalogue.splits, catalogue.consent):
        for column in ("valid_from", "valid_to"):
            instants.update(value for value in frame[column].unique().to_list() if value is not None)
    for contract in contracts:
        instants.add(dt.datetime.combine(contract.term.start, dt.time(), dt.timezone.utc))
        instants.add(dt.datetime.combine(contract.term.end + dt.timedelta(days=1), dt.time(), dt.timezone.utc))
    return sorted(instant for instant in instants if period.start < instant < period.end)


def segment_starts(period, cuts: list[dt.datetime]) -> pl.DataFrame:
    return pl.DataFrame({"segment": list(range(len(cuts) + 1)), "segment_start": [period.start, *cuts]},
                        schema={"segment": pl.UInt32, "segment_start": pl.Datetime("us", "UTC")})


def segment_of(occurred: pl.Expr, cuts: list[dt.datetime]) -> pl.Expr:
    """The index of the segment an instant falls in: how many cuts are at or before it."""
    if not cuts:
        return pl.lit(0, dtype=pl.UInt32)
    return pl.sum_horizontal([(occurred >= pl.lit(cut)).cast(pl.UInt32) for cut in cuts]).cast(pl.UInt32)


def group_sums(rows: pl.LazyFrame, cuts: list[dt.datetime]) -> pl.LazyFrame:
    """Sum rows per group. Units are summed in Int128: Int64 sums wrap silently."""
    attributed = pl.col("attribution_nanos").is_not_null()
    units = pl.col("units_count").cast(MONEY)
    return rows.with_columns(segment_of(pl.col("occurred"), cuts).alias("segment")).group_by(GROUP_KEY).agg(
        pl.len().cast(pl.Int64).alias("rows"),
        units.sum().alias("units"),
        (units * pl.col("attribution_nanos").cast(MONEY)).filter(attributed).sum().alias("attributed_nanos"),
        units.filter(~attributed).sum().alias("unattributed_units"),
        pl.col("attribution_nanos").cast(MONEY).sum().alias("attribution_nanos"),
    )


def first_pass(rows: pl.LazyFrame, cuts: list[dt.datetime]) -> list[pl.DataFrame]:
    valid = rows.filter(pl.col("reason").is_null())
    candidates_by_record = (valid.select(intake.record_hash()).group_by("record_hash").agg(pl.len())
                            .filter(pl.col("len") > 1).select("record_hash"))
    candidates_by_output = (valid.filter(pl.col("attribution_nanos").is_not_null())
                            .select(intake.output_hash(), "attribution_nanos").group_by("output_hash")
                            .agg(pl.col("attribution_nanos").sum()).filter(
                                pl.col("attribution_nanos") > intake.ATTRIBUTION_SCALE).select("output_hash"))
    per_file = rows.group_by("file").agg(
        pl.len().cast(pl.Int64).alias("rows_read"),
        pl.col("reason").is_not_null().sum().cast(pl.Int64).alias("quarantined"))
    digest = rows.select(intake.raw_digest(rows))
    quarantined = rows.filter(pl.col("reason").is_not_null()).select(intake.QUARANTINE_COLUMNS)
    outputs = (valid.filter(pl.col("attribution_nanos").is_not_null()).group_by("licensee_id")
               .agg(pl.col("output_id").n_unique().cast(pl.Int64).alias("outputs")))
    return pl.collect_all([group_sums(valid, cuts), candidates_by_record, candidates_by_output, per_file,
                           digest, quarantined, outputs])


def not_counted(rows: pl.LazyFrame, by_record: pl.DataFrame, by_output: pl.DataFrame) -> pl.DataFrame:
    """The candidates' rows, settled exactly: every valid row whose copy is not `kept`."""
    candidates = rows.filter(pl.col("reason").is_null()).with_columns(intake.record_hash(), intake.output_hash())
    candidates = candidates.filter(pl.col("record_hash").is_in(by_record["record_hash"].implode())
                                   | pl.col("output_hash").is_in(by_output["output_hash"].implode())).collect()
    settled = intake.attribution_checked(intake.deduplicated(candidates.lazy())).collect()
    return settled.filter(pl.col("copy") != "kept")


def subtract(groups: pl.DataFrame, removed: pl.DataFrame) -> pl.DataFrame:
    """Groups less the rows that do not count; groups left with no rows disappear."""
    if removed.height == 0:
        return groups
    joined = groups.join(removed, on=GROUP_KEY, how="left", nulls_equal=True, suffix="_removed")
    return joined.with_columns(
        (pl.col(s) - pl.col(f"{s}_removed").fill_null(0)).alias(s) for s in SUMS
    ).drop([f"{s}_removed" for s in SUMS]).filter(pl.col("rows") > 0)


def aggregate_usage(files: list[Path], root: Path, period, licensees: list[str], ambiguous: list[str],
                    cuts: list[dt.datetime]) -> UsageAggregate:
    """Intake and aggregation of every usage file, in two streaming passes."""
    scans = [intake.scan_usage_file(path, index, intake.display_name(path, root)) for index, path in enumerate(files)]
    rows = intake.validated(pl.concat(scans, how="vertical"), period, licensees, ambiguous)
    groups, by_record, by_output, per_file, digest, quarantined, outputs = first_pass(rows, cuts)
    extra = not_counted(rows, by_record, by_output)
    groups = subtract(groups, group_sums(extra.lazy(), cuts).collect())
    newly_quarantined = extra.filter(pl.col("reason").is_not_null())
    quarantine = pl.concat([quarantined, newly_quarantined.select(intake.QUARANTINE_COLUMNS)]).sort("file", "row")
    extra_counts = extra.group_by("file").agg(
        (pl.col("copy") == "duplicate").sum().cast(pl.Int64).alias("duplicates"),
        pl.col("reason").is_not_null().sum().cast(pl.Int64).alias("quarantined_late"))
    every = pl.DataFrame({"file": [intake.display_name(p, root) for p in files]}, schema={"file": pl.String})
    counts = (every.join(per_file, on="file", how="left").join(extra_counts, on="file", how="left").fill_null(0)
              .with_columns((pl.col("quarantined") + pl.col("quarantined_late")).alias("quarantined"))
              .select("file", "rows_read", "duplicates", "quarantined"))
    unattributed = unattributed_remainder(groups, outputs, extra)
    return UsageAggregate(groups, unattributed, quarantine, counts, int(counts["rows_read"].sum()),
                          int(digest[0, 0] or 0))


def unattributed_remainder(groups: pl.DataFrame, outputs: pl.DataFrame, extra: pl.DataFrame) -> pl.DataFrame:
    """Per licensee: outputs carrying attribution, and the part of them no work was attributed
    (outputs − the sum of their counted shares, in 1e-9 units). Quarantined outputs drop out."""
    dropped = (extra.filter(pl.col("reason") == "attribution_over_one").group_by("licensee_id")
               .agg(pl.col("output_id").n_unique().cast(pl.Int64).alias("dropped")))
    shares = groups.group_by("licensee_id").agg(pl.col("attribution_nanos").sum().alias("shares"))
    return (outputs.join(dropped, on="licensee_id", how="left").join(shares, on="licensee_id", how="left")
            .fill_null(0)
            .select("licensee_id", (pl.col("outputs") - pl.col("dropped")).alias("outputs"),
                    ((pl.col("outputs") - pl.col("dropped")).cast(MONEY) * intake.ATTRIBUTION_SCALE
                     - pl.col("shares")).alias("unattributed_nanos"))
            .filter(pl.col("outputs") > 0).sort("licensee_id"))
