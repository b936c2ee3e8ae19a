"""Intake: read usage logs v1, validate every row, quarantine the bad, drop re-sends.

All of it is one polars lazy plan per run: rows are read as text, checked by
expressions in a fixed order of precedence (the first failing check names the
row's reason), typed, deduplicated on (licensee_id, record_id) and handed to
aggregation. No Python code runs per row.

A re-sent record counts once. Which copy counts must not depend on the order
files are given in, so the copy kept is the one in the first file by name, then
the first row. A re-send whose content differs from the kept copy is
quarantined as `conflicting_resend`: the licensee sent two different facts
under one record id and the society must hear about it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from contracts.identifiers import EXPECTED as IDENTIFIER_EXPECTED
from contracts.identifiers import normalised_ref_expr
from contracts.vocabulary import UNITS, USE_TYPES

REQUIRED_COLUMNS = ("record_id", "licensee_id", "model_id", "work_ref", "use_type", "units", "unit", "occurred_at")
OPTIONAL_COLUMNS = ("territory", "output_id", "attribution")
USAGE_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
CONTENT_COLUMNS = ("model_id", "work_ref", "use_type", "units", "unit", "occurred_at", *OPTIONAL_COLUMNS)
ATTRIBUTION_DIGITS = 9  # attribution shares are exact to 1e-9; more digits are refused, not rounded
ATTRIBUTION_SCALE = 10**ATTRIBUTION_DIGITS
TIMESTAMP = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|\+00:00)$"
QUARANTINE_COLUMNS = ("file", "row", "record_id", "licensee_id", "reason", "field", "value", "expected")
VALUE_LENGTH_MAX = 200  # quarantine shows at most this much of a bad value


@dataclass(frozen=True)
class Period:
    """A settlement period: a calendar month, [start, end) in UTC."""

    name: str
    start: dt.datetime
    end: dt.datetime

    @classmethod
    def parse(cls, text: str) -> "Period":
        year, month = (int(part) for part in text.split("-"))
        start = dt.datetime(year, month, 1, tzinfo=dt.timezone.utc)
        end = dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=dt.timezone.utc)
        return cls(f"{year:04d}-{month:02d}", start, end)


def scan_usage_file(path: Path, file_index: int, display: str) -> pl.LazyFrame:
    """One usage log as text columns (missing optional columns as nulls) plus
    `file`, `file_index` and the 1-based data `row`. Missing required columns
    come back as the literal column `header` naming them."""
    name = path.name
    if name.endswith(".parquet"):
        frame = pl.scan_parquet(path)
        frame = frame.with_columns(pl.all().cast(pl.String))
    elif name.endswith((".jsonl", ".ndjson")):
        frame = scan_ndjson_as_text(path)
    elif name.endswith((".csv.gz", ".csv.zst")):
        frame = pl.read_csv(path, infer_schema=False, encoding="utf8-lossy", raise_if_empty=False).lazy()
    else:
        frame = pl.scan_csv(path, infer_schema=False, encoding="utf8-lossy", raise_if_empty=False,
                            truncate_ragged_lines=True)
    present = frame.collect_schema().names()
    missing = [column for column in REQUIRED_COLUMNS if column not in present]
    frame = frame.with_columns(
        pl.lit(None, dtype=pl.String).alias(column) for column in USAGE_COLUMNS if column not in present
    )
    return frame.select(
        *(pl.col(column).cast(pl.String) for column in USAGE_COLUMNS),
        pl.lit(",".join(missing) or None, dtype=pl.String).alias("header"),
    ).with_row_index("row", offset=1).with_columns(
        pl.lit(display).alias("file"), pl.lit(file_index, dtype=pl.UInt32).alias("file_index")
    )


def scan_ndjson_as_text(path: Path) -> pl.LazyFrame:
    if path.stat().st_size == 0:
        return pl.LazyFrame(schema={column: pl.String for column in USAGE_COLUMNS})
    keys = pl.read_ndjson(path, infer_schema_length=1000, n_rows=1000).columns
    schema = {key: pl.String for key in dict.fromkeys([*keys, *USAGE_COLUMNS])}
    return pl.scan_ndjson(path, schema=schema)


def blank(column: str) -> pl.Expr:
    return pl.col(column).is_null() | (pl.col(column).str.strip_chars() == "")


def checks(period: Period, licensees: list[str], ambiguous: list[str]) -> list[tuple[str, str, pl.Expr, str]]:
    """(reason, field, failing-condition, expected) in order of precedence."""
    units = pl.col("units").str.strip_chars()
    stamp, parsed = pl.col("occurred_at").str.strip_chars(), pl.col("_occurred")
    attribution = pl.col("attribution").str.strip_chars()
    use_type = pl.col("use_type").str.strip_chars()
    territory = pl.col("territory").str.strip_chars()
    table = [
        ("missing_column", "header", pl.col("header").is_not_null(), "the usage log v1 columns " + ", ".join(REQUIRED_COLUMNS)),
        *((("missing_field", column, blank(column), "a value")) for column in REQUIRED_COLUMNS if column != "work_ref"),
        ("unknown_licensee", "licensee_id", ~pl.col("licensee_id").str.strip_chars().is_in(licensees), "a licensee_id of licensees.csv"),
        ("invalid_use_type", "use_type", ~use_type.is_in(USE_TYPES), "one of " + ", ".join(USE_TYPES)),
        ("invalid_unit", "unit", ~pl.col("unit").str.strip_chars().is_in(UNITS), "one of " + ", ".join(UNITS)),
        ("negative_units", "units", units.str.contains(r"^-\d+$"), "an integer >= 0"),
        ("invalid_units", "units", ~units.str.contains(r"^\d{1,18}$"), "an integer from 0 to 999999999999999999"),
        ("invalid_timestamp", "occurred_at", ~stamp.str.contains(TIMESTAMP) | parsed.is_null(),
         "an RFC 3339 UTC timestamp such as 2026-10-05T14:03:00Z"),
        ("outside_period", "occurred_at", (parsed < period.start) | (parsed >= period.end),
         f"a time in period {period.name} [{period.start:%Y-%m-%d}, {period.end:%Y-%m-%d})"),
        ("invalid_territory", "territory", ~blank("territory") & ~territory.str.contains(r"^[A-Za-z]{2}$"),
         "an ISO 3166-1 alpha-2 code such as SE"),
        ("invalid_attribution", "attribution", ~blank("attribution") & ~attribution.str.contains(
            rf"^(0(\.\d{{1,{ATTRIBUTION_DIGITS}}})?|1(\.0{{1,{ATTRIBUTION_DIGITS}}})?|\.\d{{1,{ATTRIBUTION_DIGITS}}})$"),
         f"a decimal in [0, 1] with at most {ATTRIBUTION_DIGITS} decimals"),
        ("attribution_not_output", "attribution", ~blank("attribution") & (use_type != "output"),
         "attribution only on output rows"),
        ("missing_field", "output_id", ~blank("attribution") & blank("output_id"), "the output the attribution belongs to"),
    ]
    ref = pl.col("_ref").struct.field("ref")
    return table + [
        (None, "work_ref", pl.col("_ref").struct.field("reason").is_not_null(), None),
        ("ambiguous_identifier", "work_ref", ref.is_in(ambiguous), "an identifier that names one catalogue work"),
    ]


def parse_timestamp(text: pl.Expr) -> pl.Expr:
    normalised = text.str.replace(r"\+00:00$", "Z")
    return normalised.str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", strict=False, time_unit="us", time_zone="UTC")


def attribution_nanos(text: pl.Expr) -> pl.Expr:
    """A validated attribution string as an exact integer of 1e-9 units."""
    parts = text.str.strip_chars().str.split_exact(".", 1)
    whole = parts.struct.field("field_0").replace("", "0").cast(pl.Int64)
    fraction = parts.struct.field("field_1").fill_null("").str.pad_end(ATTRIBUTION_DIGITS, "0").cast(pl.Int64)
    return whole * ATTRIBUTION_SCALE + fraction


def validated(rows: pl.LazyFrame, period: Period, licensees: list[str], ambiguous: list[str]) -> pl.LazyFrame:
    """Every row with `reason`, `field`, `value`, `expected` (null when valid) and typed columns."""
    table = checks(period, licensees, ambiguous)
    rows = rows.with_columns(normalised_ref_expr(pl.col("work_ref")).alias("_ref"),
                             parse_timestamp(pl.col("occurred_at").str.strip_chars()).alias("_occurred"))
    ref_reason = pl.col("_ref").struct.field("reason")
    reason = pl.coalesce(*(pl.when(bad).then(pl.lit(code) if code else ref_reason) for code, _, bad, _ in table))
    field = pl.coalesce(*(pl.when(bad).then(pl.lit(name)) for _, name, bad, _ in table))
    value = pl.coalesce(*(pl.when(bad).then(pl.col(name).cast(pl.String)) for _, name, bad, _ in table))
    identifier_expected = ref_reason.replace_strict(IDENTIFIER_EXPECTED, default="a valid identifier")
    expected = pl.coalesce(*(pl.when(bad).then(pl.lit(text) if text else identifier_expected)
                             for _, _, bad, text in table))
    return rows.with_columns(
        reason.alias("reason"), field.alias("field"), value.str.slice(0, VALUE_LENGTH_MAX).alias("value"),
        expected.alias("expected"),
    ).with_columns(
        pl.col("_ref").struct.field("ref").alias("ref"),
        pl.col(["record_id", "licensee_id", "model_id", "use_type", "unit", "output_id"]).str.strip_chars(),
        pl.col("territory").str.strip_chars().str.to_uppercase().replace("", None),
        pl.when(pl.col("reason").is_null()).then(pl.col("units").str.strip_chars().cast(pl.Int64, strict=False))
        .alias("units_count"),
        pl.when(pl.col("reason").is_null()).then(pl.col("_occurred")).alias("occurred"),
        pl.when(pl.col("reason").is_null() & ~blank("attribution")).then(attribution_nanos(pl.col("attribution")))
        .alias("attribution_nanos"),
    ).drop("_ref", "_occurred")


def deduplicated(rows: pl.LazyFrame) -> pl.LazyFrame:
    """Mark re-sends among valid rows: `copy` is `kept`, `duplicate` or (content differs) quarantined."""
    key = ["licensee_id", "record_id"]
    position = pl.col("file_index").cast(pl.Int64) * (1 << 40) + pl.col("row").cast(pl.Int64)
    content = pl.concat_str([pl.col(c).fill_null("\x00") for c in CONTENT_COLUMNS], separator="\x1f")
    valid = pl.col("reason").is_null()
    first = position == position.filter(valid).min().over(key)
    kept_content = content.filter(valid & first).first().over(key)
    return rows.with_columns(
        pl.when(~valid).then(pl.lit(None))
        .when(first).then(pl.lit("kept"))
        .when(content == kept_content).then(pl.lit("duplicate"))
        .otherwise(pl.lit("conflicting_resend")).alias("copy")
    ).with_columns(
        pl.when(pl.col("copy") == "conflicting_resend").then(pl.lit("conflicting_resend")).otherwise("reason").alias("reason"),
        pl.when(pl.col("copy") == "conflicting_resend").then(pl.lit("record_id")).otherwise("field").alias("field"),
        pl.when(pl.col("copy") == "conflicting_resend").then(pl.col("record_id")).otherwise("value").alias("value"),
        pl.when(pl.col("copy") == "conflicting_resend").then(pl.lit("a re-send identical to the copy first sent"))
        .otherwise("expected").alias("expected"),
    )


def attribution_checked(rows: pl.LazyFrame) -> pl.LazyFrame:
    """Quarantine every row of an output whose attribution shares sum to more than 1."""
    key = ["licensee_id", "output_id"]
    counted = (pl.col("copy") == "kept") & pl.col("attribution_nanos").is_not_null()
    total = pl.col("attribution_nanos").filter(counted).sum().over(key)
    over = counted & (total > ATTRIBUTION_SCALE)
    shown = pl.concat_str(pl.lit("shares of output "), pl.col("output_id"), pl.lit(" sum to "),
                          (total // ATTRIBUTION_SCALE).cast(pl.String), pl.lit("."),
                          (total % ATTRIBUTION_SCALE).cast(pl.String).str.zfill(ATTRIBUTION_DIGITS).str.strip_chars_end("0"))
    return rows.with_columns(
        pl.when(over).then(pl.lit("attribution_over_one")).otherwise("reason").alias("reason"),
        pl.when(over).then(pl.lit("attribution")).otherwise("field").alias("field"),
        pl.when(over).then(shown).otherwise("value").alias("value"),
        pl.when(over).then(pl.lit("attribution shares of one output summing to at most 1")).otherwise("expected").alias("expected"),
        pl.when(over).then(pl.lit("quarantined")).otherwise("copy").alias("copy"),
    )


def raw_digest(rows: pl.LazyFrame) -> pl.Expr:
    """An order-independent digest of the raw rows: the wrapping sum of each row's hash."""
    text = pl.concat_str([pl.col(c).fill_null("\x00") for c in USAGE_COLUMNS], separator="\x1f")
    return text.hash(seed=20261).sum()


def display_name(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def record_hash() -> pl.Expr:
    """A 64-bit hash of the record key; candidates only, confirmed on the real key later."""
    return pl.concat_str(["licensee_id", "record_id"], separator="\x1f").hash(seed=7).alias("record_hash")


def output_hash() -> pl.Expr:
    return pl.concat_str(["licensee_id", "output_id"], separator="\x1f").hash(seed=11).alias("output_hash")
