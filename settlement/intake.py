"""Intake: read usage logs v1, validate every row, quarantine the bad, drop re-sends.

All of it is one polars lazy plan per run: rows are read as text, checked by
expressions in a fixed order of precedence (the first failing check names the
row's reason), typed, deduplicated on (licensee_id, record_id) and handed to
aggregation. No Python code runs per row.

A re-sent record counts once: of identical copies, the one in the first file by
name, then the first row, is kept and the others are counted as duplicates
(which copy is kept changes no amount, only which file's accounting shows the
duplicates). When the copies of a record differ, the licensee sent two different
facts under one record id: every copy is quarantined as `conflicting_resend`,
so that no copy is paid until the society hears which is right. Keeping the
first would make the amounts depend on the order of the rows (law 4).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa

from contracts.csv_faults import csv_fault, opened
from contracts.errors import InputError
from contracts.identifiers import EXPECTED as IDENTIFIER_EXPECTED
from contracts.identifiers import normalised_ref_expr
from contracts.usage import usage_format
from contracts.vocabulary import UNITS, USE_TYPES

REQUIRED_COLUMNS = ("record_id", "licensee_id", "model_id", "work_ref", "use_type", "units", "unit", "occurred_at")
OPTIONAL_COLUMNS = ("territory", "output_id", "attribution")
USAGE_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
CONTENT_COLUMNS = ("model_id", "work_ref", "use_type", "units_count", "unit", "occurred", "territory", "output_id",
                   "attribution_nanos")
UNITS_MAX = 999_999_999_999_999_999
ATTRIBUTION_DIGITS = 9  # attribution shares are exact to 1e-9; more digits are refused, not rounded
ATTRIBUTION_SCALE = 10**ATTRIBUTION_DIGITS
QUARANTINE_COLUMNS = ("file", "row", "record_id", "licensee_id", "reason", "field", "value", "expected")
VALUE_LENGTH_MAX = 200  # quarantine shows at most this much of a bad value
FOLD = 0x9E3779B97F4A7C15  # odd, 2**64 over the golden ratio: columns_hash's multiplier
ROW_NUMBER = "\x00row"  # rows are numbered under a name no file's header can hold, then renamed `row`


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


def scan_usage_file(path: Path, file_index: int, display: str,
                    window: tuple[int, int | None] | None = None) -> pl.LazyFrame:
    """One usage log as text columns (missing optional columns as nulls) plus
    `file`, `file_index`, the 1-based `row`, `header` (the required columns the
    file lacks, if any), and for JSON Lines `line` and `malformed`. `window`
    (first row from 0, number of rows or None for the rest): only those rows
    of a Parquet file, numbered as in the whole file.

    Files must be UTF-8: a lossy decoding could merge two distinct record ids.
    A CSV row with more fields than its header is an error, not silently cut.
    A file that cannot be read at all is an `InputError` naming it: here when its
    start shows it, else when the scan runs (validate_to_spill)."""
    kind = usage_format(path.name)
    json_lines = kind == "jsonl"
    try:
        if kind == "parquet":
            frame = scan_parquet_as_text(path, display, window)
        elif window is not None:
            raise ValueError(f"{display}: only Parquet files are read in windows")
        elif json_lines:
            frame = scan_ndjson_as_text(path)
        else:  # CSV; gzip and zstd are decompressed as they stream
            refuse_unreadable_text(path, display)
            frame = numbered(pl.scan_csv(path, infer_schema=False, raise_if_empty=False), 1)
        present = frame.collect_schema().names()
    except (pl.exceptions.PolarsError, OSError) as error:
        raise unreadable(display, error, path) from None
    known = [c for c in (*USAGE_COLUMNS, "line", "malformed") if c in present]
    frame = frame.select("row", *known)
    missing = [] if json_lines else [column for column in REQUIRED_COLUMNS if column not in present]
    frame = frame.with_columns(
        pl.lit(None, dtype=pl.String).alias(column) for column in (*USAGE_COLUMNS, "line", "malformed")
        if column not in known
    )
    return frame.select(
        "row", *(pl.col(column).cast(pl.String) for column in (*USAGE_COLUMNS, "line", "malformed")),
        pl.lit(",".join(missing) or None, dtype=pl.String).alias("header"),
    ).with_columns(pl.lit(display).alias("file"), pl.lit(file_index, dtype=pl.UInt32).alias("file_index"))


def refuse_unreadable_text(path: Path, display: str) -> None:
    """Refuse, by their first bytes, the CSVs polars would read as no rows at all:
    UTF-16 (a header of NUL-laced names) and bare-CR line ends (one long header line).
    A compressed file's first bytes are read decompressed."""
    head = first_bytes(path, 4096)
    unquoted = re.sub(rb'"[^"]*"', b"", head)  # a CR, LF or NUL inside a quoted field is data
    first_line = unquoted.split(b"\n", 1)[0]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or first_line.count(b"\x00") * 3 > len(first_line):
        raise InputError(display, "is not UTF-8 (it looks like UTF-16)", expected="a UTF-8 CSV with a header row")
    if b"\r" in unquoted.rstrip(b"\r") and b"\n" not in head:
        raise InputError(display, "ends its lines with a bare CR", expected="LF or CRLF line ends")


def first_bytes(path: Path, size: int) -> bytes:
    """The first `size` bytes of a CSV's text, decompressed when the file is gzip or zstd."""
    try:
        with opened(path) as stream:
            return stream.read(size)
    except pa.ArrowException as error:  # not what its name says, or cut short
        raise OSError(str(error)) from None


def unreadable(display: str, error: Exception, path: Path | None = None) -> InputError:
    """A usage file refused as a whole: for a CSV `path`, its first row polars refuses, where
    that can be found (csv_faults); else polars' words."""
    fault = csv_fault(path, display) if path is not None and is_csv(path) else None
    first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
    return fault or InputError(display, f"cannot be read ({first})",
                               expected="a UTF-8 CSV with a header row, JSON Lines, or Parquet file (docs/formats.md)")


def is_csv(path: Path) -> bool:
    """Read as CSV by scan_usage_file: any name but a Parquet or JSON Lines one."""
    return usage_format(path.name) not in ("parquet", "jsonl")


def scan_parquet_as_text(path: Path, display: str, window: tuple[int, int | None] | None = None) -> pl.LazyFrame:
    """Parquet columns as text, with the 1-based `row`; a float column for an exact number is
    refused outright. The window is cut from the scan itself: cut after the casts, it
    is not pushed down to the reader, which then reads the file up to the window's end
    for every window (5.5 times the file in windows of a tenth)."""
    frame = pl.scan_parquet(path)
    schema = frame.collect_schema()
    start, length = window or (0, None)
    if window is not None:
        frame = frame.slice(start, length)
    for column in ("units", "attribution"):
        if column in schema and type(schema[column]).__name__.startswith("Float"):  # binary floating point
            raise InputError(display, f"column {column} is stored as {schema[column]}", field=column,
                             expected="integers for units and decimal strings for attribution: floats are refused")
    return numbered(frame, start + 1).select("row", *(pl.col(c).cast(pl.String) for c in schema.names()
                                                     if c in USAGE_COLUMNS))


def numbered(frame: pl.LazyFrame, first: int) -> pl.LazyFrame:
    """The frame's usage-log columns (columns the format does not define are ignored,
    whatever their names, a `row` of the file's own too) after `row`, its rows numbered
    from `first`. Rows are numbered before any column is dropped: a frame left with no
    columns has no rows, and a file with none of the log's columns would lose them all."""
    names = frame.collect_schema().names()
    return frame.with_row_index(ROW_NUMBER, offset=first).select(
        pl.col(ROW_NUMBER).alias("row"), *(c for c in names if c in USAGE_COLUMNS))


def scan_ndjson_as_text(path: Path) -> pl.LazyFrame:
    """JSON Lines read as text lines, each line's fields taken from it as text, so a
    malformed line is one quarantined record (`malformed`), never a failed file. `row` is
    the line number; blank lines are not records. An attribution written as a
    JSON number is refused: it may already have been rounded by whoever wrote it.

    A line of the common form (plain_object) is parsed once, all of its fields
    together; any other line field by field, by JSON path, as every line once was.
    That was twelve parses a line: a 10M-row file took 128.1 s to validate, and
    18.2 s parsed once (the same rows as CSV: 7-8 s). Both give the same text for
    a plain line, which tests/test_intake.py checks on generated lines."""
    # whole lines, whatever bytes they hold (read as CSV with a separator no JSON holds raw,
    # 0x1F, a line was cut at that byte and what came before it could pass as valid), less
    # a byte-order mark before the first
    lines = pl.scan_lines(path, name="line").with_row_index("row", offset=1).with_columns(
        pl.when(pl.col("row") == 1).then(pl.col("line").str.strip_prefix("\ufeff")).otherwise(pl.col("line")))
    lines = lines.filter(pl.col("line").str.strip_chars() != "")
    line, plain, parsed = pl.col("line"), pl.col("_plain"), pl.col("_parsed")
    other = pl.when(~plain).then(line)  # null for a plain line, so that no JSON path is taken on it
    is_object = plain | (other.str.strip_chars().str.starts_with("{") & other.str.json_path_match("$").is_not_null())
    return lines.with_columns(plain_object(line).alias("_plain")).with_columns(
        pl.when(plain).then(line).str.json_decode(pl.Struct({c: pl.String for c in USAGE_COLUMNS})).alias("_parsed"),
    ).with_columns(
        *(pl.when(plain).then(parsed.struct.field(column)).otherwise(other.str.json_path_match(f"$.{column}"))
          .alias(column) for column in USAGE_COLUMNS),
        pl.when(~is_object).then(pl.lit("malformed_json"))
        .when(line.str.contains(r'"attribution"\s*:\s*[-0-9.]')).then(pl.lit("attribution_number"))
        .alias("malformed"),
    ).drop("_plain", "_parsed")


# A JSON line of the common form: one object, whose keys have no escapes and whose values are
# strings (escapes allowed, but no UTF-16 surrogate), integers of at most 18 digits (not -0),
# true, false or null. For such a line a parse of the whole object and a JSON path per field give
# the same text; for others (nested values, other numbers, surrogates) they can differ.
_WS = r"[ \t\r]*"
_STRING = r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u(?:[0-9a-cA-CefEF][0-9a-fA-F]{3}|[dD][0-7][0-9a-fA-F]{2}))*"'
_VALUE = rf"(?:{_STRING}|0|-?[1-9][0-9]{{0,17}}|true|false|null)"
_MEMBER = rf'{_WS}"[^"\\\x00-\x1f]*"{_WS}:{_WS}{_VALUE}{_WS}'
PLAIN_OBJECT = rf"^{_WS}\{{(?:{_MEMBER}(?:,{_MEMBER})*|{_WS})\}}{_WS}$"
# a usage column's name twice in a line, as a key or not (one pass: 0.4 s for 1M lines, against 0.8 s
# for a count per column)
REPEATED_KEY = "|".join(f'"{column}".*"{column}"' for column in USAGE_COLUMNS)


def plain_object(line: pl.Expr) -> pl.Expr:
    """A line of PLAIN_OBJECT's form in which no usage column is a key twice (a parse of the
    whole object keeps a repeated key's first value, a JSON path its last)."""
    return line.str.contains(PLAIN_OBJECT) & ~line.str.contains(REPEATED_KEY)


def empty_as(text: pl.Expr, instead: pl.Expr) -> pl.Expr:
    """`text`, with `instead` where it is "". Not `replace`: in polars 2.1 the streaming
    engine runs `replace` and `replace_strict` on the whole column at once, so one sink
    over a file held all of its rows (3.6 GiB for a 10M-row CSV)."""
    return pl.when(text == "").then(instead).otherwise(text)


def absent_if_empty(text: pl.Expr) -> pl.Expr:
    return empty_as(text, pl.lit(None, dtype=pl.String))


def blank(column: str) -> pl.Expr:
    """Absent: null or empty (text columns are stripped before the checks run)."""
    return pl.col(column).is_null() | (pl.col(column) == "")


def checks(period: Period, licensees: list[str]) -> list[tuple[str, str, pl.Expr, str]]:
    """(reason, field, failing-condition, expected) in order of precedence.

    The identifier checks come last and are not here: identifiers repeat
    across millions of rows, so they are normalised once per distinct value
    before pass 1 of aggregation (see `identifier_table`)."""
    units, parsed = pl.col("_units"), pl.col("_occurred")
    attribution, use_type = pl.col("attribution"), pl.col("use_type")
    return [
        ("missing_column", "header", pl.col("header").is_not_null(), "the usage log v1 columns " + ", ".join(REQUIRED_COLUMNS)),
        ("malformed_json", "line", pl.col("malformed") == "malformed_json", "one JSON object per line"),
        *((("missing_field", column, blank(column), "a value")) for column in REQUIRED_COLUMNS),
        ("unknown_licensee", "licensee_id", ~pl.col("licensee_id").is_in(licensees), "a licensee_id of licensees.csv"),
        ("invalid_use_type", "use_type", ~use_type.is_in(USE_TYPES), "one of " + ", ".join(USE_TYPES)),
        ("invalid_unit", "unit", ~pl.col("unit").is_in(UNITS), "one of " + ", ".join(UNITS)),
        ("negative_units", "units", units < 0, "an integer >= 0"),
        ("invalid_units", "units", units.is_null() | (units > UNITS_MAX) | pl.col("units").str.starts_with("+"),
         f"an integer from 0 to {UNITS_MAX}"),
        ("invalid_timestamp", "occurred_at", parsed.is_null(),
         "an RFC 3339 UTC timestamp such as 2026-10-05T14:03:00Z"),
        ("outside_period", "occurred_at", (parsed < period.start) | (parsed >= period.end),
         f"a time in period {period.name} [{period.start:%Y-%m-%d}, {period.end:%Y-%m-%d})"),
        ("invalid_territory", "territory", ~blank("territory") & ~pl.col("territory").str.contains(r"^[A-Za-z]{2}$"),
         "an ISO 3166-1 alpha-2 code such as SE"),
        ("invalid_attribution", "attribution", ~blank("attribution") & ~attribution.str.contains(
            rf"^(0(\.\d{{1,{ATTRIBUTION_DIGITS}}})?|1(\.0{{1,{ATTRIBUTION_DIGITS}}})?|\.\d{{1,{ATTRIBUTION_DIGITS}}})$"),
         f"a decimal in [0, 1] with at most {ATTRIBUTION_DIGITS} decimals"),
        ("invalid_attribution", "attribution", pl.col("malformed") == "attribution_number",
         'a decimal string such as "0.25" (a JSON number is refused)'),
        ("attribution_not_output", "attribution", ~blank("attribution") & (use_type != "output"),
         "attribution only on output rows"),
        ("missing_field", "output_id", ~blank("attribution") & blank("output_id"), "the output the attribution belongs to"),
    ]


def parse_timestamp(text: pl.Expr) -> pl.Expr:
    """RFC 3339 in UTC (`Z` or `+00:00`), null for anything else."""
    return timestamp_completed(text, common_timestamp(text))


def common_timestamp(text: pl.Expr) -> pl.Expr:
    """The common forms of RFC 3339 in UTC, whole seconds with `Z` or `+00:00` (20 or 25
    bytes), parsed from their first 19 characters by polars' fixed-format fast path; null
    for anything else (timestamp_completed parses the rest)."""
    length = text.str.len_bytes()
    common = ((length == 20) & text.str.ends_with("Z")) | ((length == 25) & text.str.ends_with("+00:00"))
    return pl.when(common).then(text.str.slice(0, 19)).str.to_datetime(
        "%Y-%m-%dT%H:%M:%S", strict=False, time_unit="us", time_zone="UTC", cache=False)


def timestamp_completed(text: pl.Expr, common: pl.Expr) -> pl.Expr:
    """`common` (common_timestamp of `text`), with what it left null parsed by the general
    parse with optional fractional seconds, `+00:00` made `Z`. Validation computes `common`
    as a column of its own first, so that both read it: for 5M rows of a generated month
    (5% with milliseconds), 0.44 CPU seconds against 0.94-0.97 s when every row was
    rewritten to `Z` and parsed with whole seconds, then what that refused with fractions.
    Neither parse caches: the cache hashes every string."""
    rest = pl.when(common.is_null()).then(text)
    zulu = pl.when(rest.str.ends_with("+00:00")).then(pl.concat_str(rest.str.head(-6), pl.lit("Z"))).otherwise(rest)
    general = zulu.str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", strict=False, time_unit="us", time_zone="UTC", cache=False)
    return pl.coalesce(common, general)


def attribution_nanos(text: pl.Expr) -> pl.Expr:
    """A validated attribution string as an exact integer of 1e-9 units."""
    parts = text.str.strip_chars().str.split_exact(".", 1)
    whole = empty_as(parts.struct.field("field_0"), pl.lit("0")).cast(pl.Int64)
    fraction = parts.struct.field("field_1").fill_null("").str.pad_end(ATTRIBUTION_DIGITS, "0").cast(pl.Int64)
    return whole * ATTRIBUTION_SCALE + fraction


SPILL_COLUMNS = ("file_index", "row", "record_id", "licensee_id", "model_id", "work_ref", "use_type", "unit",
                 "territory", "output_id", "units_count", "occurred", "attribution_nanos", "failed_check",
                 "value", "row_hash", "record_hash")
CHECK_TEXTS = ("reason", "field", "expected")  # what a failed check says, looked up by its index (described)


def checked(rows: pl.LazyFrame, period: Period, licensees: list[str]) -> pl.LazyFrame:
    """Every row, typed, with `failed_check` (the index in `checks` of the first check it
    fails, null when valid) and the failing `value`, `row_hash` (for the run's
    order-independent digest) and `record_hash` (for finding re-sends, computed here
    once); raw text columns are dropped. The reason, field and expected text of a failed
    check are looked up by its index where refused rows are read (described): with those
    three text columns stored on every row, a 10M-row Parquet file took 6.9-7.7 s to
    validate into the spill against 5.8-6.7 s, and every later pass read `reason` to find
    the valid rows."""
    table = checks(period, licensees)
    raw_hash = raw_row_hash()  # of the row as sent, before any cleaning
    stripped = [c for c in USAGE_COLUMNS if c != "header"]
    rows = rows.with_columns(raw_hash.alias("row_hash")).with_columns(
        pl.col(stripped).str.strip_chars()).with_columns(
        common_timestamp(pl.col("occurred_at")).alias("_occurred"),
        pl.col("units").cast(pl.Int64, strict=False).alias("_units")).with_columns(
        timestamp_completed(pl.col("occurred_at"), pl.col("_occurred")).alias("_occurred"))
    # Each check runs once: the index of the first failing one, then the value by it (null for a valid row).
    first = pl.coalesce(*(pl.when(bad).then(pl.lit(i, dtype=pl.UInt8)) for i, (_, _, bad, _) in enumerate(table)))
    value = pl.coalesce(*(pl.when(pl.col("failed_check") == i).then(pl.col(name).cast(pl.String))
                          for i, (_, name, _, _) in enumerate(table)))
    valid = pl.col("failed_check").is_null()
    return rows.with_columns(first.alias("failed_check")).with_columns(
        value.str.slice(0, VALUE_LENGTH_MAX).alias("value"),
        # blank and null are the same fact, whatever the file format wrote
        absent_if_empty(pl.col("territory").str.to_uppercase()).alias("territory"),
        absent_if_empty(pl.col("output_id")).alias("output_id"),
        pl.when(valid).then(pl.col("_units")).alias("units_count"),
        pl.when(valid).then(pl.col("_occurred")).alias("occurred"),
        pl.when(valid & ~blank("attribution")).then(attribution_nanos(pl.col("attribution"))).alias("attribution_nanos"),
        record_hash(),
    ).select(SPILL_COLUMNS)


def check_texts(period: Period, licensees: list[str]) -> pl.DataFrame:
    """Per check of `checks`, by its index: its reason, field and expected text."""
    return pl.DataFrame([(reason, field, expected) for reason, field, _, expected in checks(period, licensees)],
                        schema={name: pl.String for name in CHECK_TEXTS}, orient="row")


def described(texts: pl.DataFrame) -> list[pl.Expr]:
    """`reason`, `field` and `expected` of a row's `failed_check` (null for a valid row), from
    `texts` (check_texts)."""
    return [pl.lit(texts[name]).gather(pl.col("failed_check")).alias(name) for name in CHECK_TEXTS]


def identifier_table(work_refs: pl.Series, ambiguous: list[str], canonical: pl.Series | None = None) -> pl.DataFrame:
    """Each raw `work_ref` of `work_refs` (distinct; in their order: sorted when they
    are) with its normalised `ref`, or the reason it is refused (`ref_reason`,
    `ref_expected`): invalid, or naming several catalogue works.

    `canonical` (the catalogue's normalised identifiers, each once) lets references
    already spelled canonically skip normalisation: normalising is idempotent, so a
    canonical spelling is its own normal form. Millions of references are found
    among millions of identifiers by one join, and put back in order by their
    position (sorting them as text took seconds). Both are distinct already where
    they come from (group_codes, the catalogue), so they are not made so again:
    that took 0.6 s and 0.5 s for a 10M-row month's 2.3M references."""
    distinct = pl.DataFrame({"work_ref": work_refs}, schema={"work_ref": pl.String}).with_row_index("_position")
    if canonical is None:
        distinct = distinct.with_columns(pl.lit(False).alias("_spelled"))
    else:
        spelled = pl.DataFrame({"work_ref": canonical}, schema={"work_ref": pl.String})
        distinct = distinct.join(spelled.with_columns(pl.lit(True).alias("_spelled")), on="work_ref", how="left",
                                 maintain_order="left").with_columns(pl.col("_spelled").fill_null(False))
    known = distinct.filter(pl.col("_spelled")).select(
        "_position", "work_ref", pl.col("work_ref").alias("ref"), pl.lit(None, dtype=pl.String).alias("reason"))
    checked = (distinct.filter(~pl.col("_spelled"))
               .with_columns(normalised_ref_expr(pl.col("work_ref")).alias("_ref")).unnest("_ref"))
    checked = pl.concat([known, checked.select("_position", "work_ref", "ref", "reason")]).sort("_position")
    is_ambiguous = pl.col("ref").is_in(ambiguous)
    return checked.select(
        "work_ref",
        pl.when(is_ambiguous).then(None).otherwise(pl.col("ref")).alias("ref"),
        pl.when(is_ambiguous).then(pl.lit("ambiguous_identifier")).otherwise(pl.col("reason")).alias("ref_reason"),
        pl.when(is_ambiguous).then(pl.lit("an identifier that names one catalogue work"))
        .otherwise(pl.col("reason").replace_strict(IDENTIFIER_EXPECTED, default=None)).alias("ref_expected"),
    )


def with_identifier_reasons(rows: pl.DataFrame, identifiers: pl.DataFrame) -> pl.DataFrame:
    """Quarantine valid rows whose identifier was refused (the last check in precedence).
    The reasons are looked up, not joined: a join copies every column of the rows."""
    lookup = lambda column: pl.col("work_ref").replace_strict(identifiers["work_ref"], identifiers[column],
                                                              default=None, return_dtype=pl.String)
    refused = pl.col("reason").is_null() & pl.col("_ref_reason").is_not_null()
    return rows.with_columns(lookup("ref_reason").alias("_ref_reason")).with_columns(
        pl.when(refused).then(pl.col("_ref_reason")).otherwise("reason").alias("reason"),
        pl.when(refused).then(pl.lit("work_ref")).otherwise("field").alias("field"),
        pl.when(refused).then(pl.col("work_ref").str.slice(0, VALUE_LENGTH_MAX)).otherwise("value").alias("value"),
        pl.when(refused).then(lookup("ref_expected")).otherwise("expected").alias("expected"),
    ).drop("_ref_reason")


def place() -> pl.Expr:
    """A row's place in the usage, (file, row), as one integer that orders as the pair
    does (a file's rows are numbered below 2**40)."""
    return pl.col("file_index").cast(pl.Int64) * (1 << 40) + pl.col("row").cast(pl.Int64)


def deduplicated(rows: pl.LazyFrame) -> pl.LazyFrame:
    """Mark re-sends among valid rows: `copy` is `kept`, `duplicate` or, for every copy of a
    record whose copies differ, `conflicting_resend` (quarantined; see the module's docstring).

    Each valid row finds its record's first copy (first file by name, then first row) by
    a window over the record key, and is compared with it column by column; a record's
    copies differ when any differs from its first. (A group-by for the first copies
    joined back, with each row's content as one string, took three times the rows' own
    memory at 100M rows; sorting them by the key's text took a minute.)"""
    key = ["licensee_id", "record_id"]
    valid = pl.col("reason").is_null()
    position = pl.when(valid).then(place())
    is_first = pl.col("_position") == pl.col("_first")  # null for invalid rows
    same_content = pl.all_horizontal(pl.col(c).eq_missing(pl.col(c).gather(pl.col("_kept")))
                                     for c in CONTENT_COLUMNS)
    rows = (rows.with_columns(position.alias("_position"), pl.int_range(pl.len()).alias("_index"))
            .with_columns(pl.col("_position").min().over(key).alias("_first"))
            # each record's first row, by its row number (a window over one integer)
            .with_columns(pl.when(is_first).then(pl.col("_index")).max().over("_first").alias("_kept"))
            .with_columns(same_content.alias("_same"))  # by global row numbers: not inside the window
            .with_columns((valid & ~pl.col("_same")).any().over("_first").alias("_differ"))
            .with_columns(pl.when(~valid).then(pl.lit(None))
                          .when(pl.col("_differ")).then(pl.lit("conflicting_resend"))
                          .when(is_first).then(pl.lit("kept"))
                          .otherwise(pl.lit("duplicate")).alias("copy")))
    conflicting = pl.col("copy") == "conflicting_resend"
    return rows.with_columns(
        pl.when(conflicting).then(pl.lit("conflicting_resend")).otherwise("reason").alias("reason"),
        pl.when(conflicting).then(pl.lit("record_id")).otherwise("field").alias("field"),
        pl.when(conflicting).then(pl.col("record_id").str.slice(0, VALUE_LENGTH_MAX)).otherwise("value").alias("value"),
        pl.when(conflicting).then(pl.lit("copies of one record identical to each other")).otherwise("expected")
        .alias("expected"),
    ).drop("_position", "_index", "_first", "_kept", "_same", "_differ")


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


def raw_row_hash() -> pl.Expr:
    """A hash of one raw row; their wrapping sum is an order-independent digest of the usage."""
    return columns_hash(USAGE_COLUMNS, seed=20261)


def columns_hash(columns: tuple[str, ...] | list[str], seed: int) -> pl.Expr:
    """One 64-bit hash of a row's `columns`: each column hashed with a seed of its own (so
    a value hashes differently in another column, and null unlike ""), folded in order as
    h * K + next, wrapping. Hashing the columns where they lie took a quarter of the time
    of hashing them joined into one string, which had to be built first (0.14 s against
    0.6 s for 10M usage rows)."""
    hashes = [pl.col(column).hash(seed=seed + index) for index, column in enumerate(columns)]
    folded = hashes[0]
    for following in hashes[1:]:
        folded = folded * pl.lit(FOLD, dtype=pl.UInt64) + following
    return folded


def record_hash() -> pl.Expr:
    """A 64-bit hash of the record key; candidates only, confirmed on the real key later."""
    return columns_hash(["licensee_id", "record_id"], seed=7).alias("record_hash")
