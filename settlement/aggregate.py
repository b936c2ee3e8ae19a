"""Aggregation: kept usage rows → one row per usage group.

A group is (file, licensee, model, work reference, use type, unit, territory,
segment). A *segment* is a stretch of the period in which no split, consent
signal or contract starts or ends, so everything decided after aggregation
(which split is in force, whether consent holds, which contract covers the use)
is decided once per group and is exact for every row in it. `file` stays in
the key so that every file's rows can be accounted for.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from settlement.money import MONEY

GROUP_KEY = ["file", "licensee_id", "model_id", "ref", "use_type", "unit", "territory", "segment"]


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


def usage_groups(rows: pl.LazyFrame, cuts: list[dt.datetime]) -> pl.LazyFrame:
    """Sum the kept rows per group. Units are summed in Int128: Int64 sums wrap silently."""
    kept = rows.filter(pl.col("copy") == "kept").with_columns(segment_of(pl.col("occurred"), cuts).alias("segment"))
    attributed = pl.col("attribution_nanos").is_not_null()
    units = pl.col("units_count").cast(MONEY)
    return kept.group_by(GROUP_KEY).agg(
        pl.len().cast(pl.Int64).alias("rows"),
        units.sum().alias("units"),
        (units * pl.col("attribution_nanos").cast(MONEY)).filter(attributed).sum().alias("attributed_nanos"),
        units.filter(~attributed).sum().alias("unattributed_units"),
    )
