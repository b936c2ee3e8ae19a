"""The catalogue: works and their identifiers, effective-dated splits, consent.

The catalogue can hold millions of works, so its tables are validated as
polars frames, not row by row in Python. The pydantic records below are the
published shape of one row (for `settle schema`); the frame checks enforce the
same rules. The first failing row aborts loading with an `InputError` that
names file, row, field, value and what was expected.
"""

from __future__ import annotations

import datetime as dt
import math
from fractions import Fraction
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import polars as pl
from pydantic import Field

from contracts.csv_faults import csv_fault
from contracts.errors import InputError
from contracts.identifiers import EXPECTED, WORK_ID_PATTERN, normalised_ref_expr
from contracts.numbers import EXACT_TEXT, Share, fraction_text, parse_exact
from contracts.parties import Licensee, Model, RightsHolder
from contracts.policy import RevenueReport
from contracts.vocabulary import RIGHTS, USE_TYPES, WORK_KINDS, ConsentSubject, Right, Signal, WorkKind

# Splits are held as integers over one common denominator so that level-2
# allocation is integer arithmetic in Int128. Refuse catalogues whose share
# denominators would push that past what Int128 products can carry.
SHARE_SCALE_MAX = 10**18
DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
WORK_COLUMNS = ["work_id", "kind", "title", "identifiers"]
SPLIT_COLUMNS = ["work_id", "right", "holder_id", "share", "valid_from", "valid_to"]
CONSENT_COLUMNS = ["subject", "subject_id", "use_type", "licensee_id", "signal", "valid_from", "valid_to"]
# The header of each reference table, by file name: `read_table` has only the path (loading.load_rows
# calls it for the small tables), and a file without a header is told which one it lacks.
HEADERS = {"works.csv": WORK_COLUMNS, "splits.csv": SPLIT_COLUMNS, "consent.csv": CONSENT_COLUMNS,
           "holders.csv": list(RightsHolder.model_fields), "licensees.csv": list(Licensee.model_fields),
           "revenue.csv": list(RevenueReport.model_fields)}
# docs/formats.md lets these have no rows, so a 0-byte one is read as its header alone. Any other
# table without even a header is a file cut short (a failed export), not an empty catalogue.
MAY_HAVE_NO_ROWS = ("consent.csv", "revenue.csv")


class WorkRecord(Model):
    """One row of works.csv."""

    work_id: str = Field(min_length=1, max_length=128, pattern=r"^\S+$")
    kind: WorkKind
    title: str
    identifiers: str = Field(default="", description="space-separated scheme-prefixed identifiers")


class SplitRecord(Model):
    """One row of splits.csv: one holder's share of one split version."""

    work_id: str
    right: Right
    holder_id: str
    share: Share
    valid_from: dt.date
    valid_to: dt.date | None = None


class ConsentSignal(Model):
    """One row of consent.csv."""

    subject: ConsentSubject
    subject_id: str | None = None
    use_type: str = Field(description="a use type or '*'")
    licensee_id: str | None = None
    signal: Signal
    valid_from: dt.date
    valid_to: dt.date | None = None


@dataclass(frozen=True)
class Catalogue:
    """The validated catalogue as frames.

    works:   work_id, kind, title
    refs:    ref (normalised, scheme-prefixed), work_id — one row per identifier, in no order
    ambiguous: ref, works — identifiers that name several works (usage of them is quarantined)
    splits:  work_id, version, right, holder_id, share_scaled, share, valid_from, valid_to
             (share_scaled / share_scale is the holder's exact share)
    consent: subject, subject_id, use_type, licensee_id, signal, valid_from, valid_to
    """

    works: pl.DataFrame
    refs: pl.DataFrame
    ambiguous: pl.DataFrame
    splits: pl.DataFrame
    share_scale: int
    consent: pl.DataFrame

    @cached_property
    def versions(self) -> pl.DataFrame:
        """Each split version once: work_id, version, valid_from, valid_to (built once: a
        version has a row per holder, and classification looks versions up per partition)."""
        return self.splits.select("work_id", "version", "valid_from", "valid_to").unique()

    @cached_property
    def version_type(self) -> pl.Enum:
        """Every split version as an Enum, in order: classification groups and packs it as an integer."""
        return pl.Enum(self.versions["version"].unique().sort())


def read_table(path: Path) -> pl.DataFrame:
    """A CSV or Parquet table with every column as text and a 1-based `_row`. A file that
    cannot be read as a table is refused with one `InputError` naming it (and the row, in a CSV)."""
    frame = read_parquet_text(path) if path.suffix == ".parquet" else read_csv_text(path)
    # A quoted empty cell ("") reads as an empty string, a bare one as null:
    # both mean "not given".
    text = pl.col(pl.String).str.strip_chars()
    frame = frame.with_columns(pl.when(text == "").then(None).otherwise(text).name.keep())
    return frame.with_row_index("_row", offset=1)


def read_parquet_text(path: Path) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(path)
    except pl.exceptions.PolarsError as error:
        raise InputError(str(path), f"not a readable Parquet file ({first_line(error)})",
                         expected="a Parquet file with the columns of docs/formats.md") from None
    refuse_float_columns(frame, path)
    return frame.with_columns(pl.all().cast(pl.String))


def refuse_float_columns(frame: pl.DataFrame, path: Path) -> None:
    """A float column is refused, as a float is everywhere: its value has lost exactness before it
    is read (0.7 is 0.6999999999999999555910790149937…), so a share or amount in it is unknowable."""
    for name, dtype in frame.schema.items():
        # a numeric type that is neither integer nor decimal is binary floating point (the engine
        # names no float type, so that a scan for them, test_no_float_in_the_engine, stays exact)
        inexact = dtype.is_numeric() and not (dtype.is_integer() or dtype.is_decimal())
        given = frame[name].is_not_null() if inexact else None
        if given is not None and given.any():  # a float column of nulls only holds no number
            index = given.arg_max()
            raise InputError(str(path), f"a {dtype} column: a float is not exact", row=index + 1, field=name,
                             value=frame[name][index], expected=EXACT_TEXT)


def read_csv_text(path: Path) -> pl.DataFrame:
    try:
        return pl.read_csv(path, infer_schema=False, encoding="utf8")
    except pl.exceptions.NoDataError:
        return header_alone(path)
    except pl.exceptions.PolarsError as error:
        raise unreadable_csv(path, error) from None


def header_alone(path: Path) -> pl.DataFrame:
    """The table of a CSV with no header (0 bytes or blank lines): no rows, if its table may have none."""
    columns = HEADERS.get(path.name)
    if path.name in MAY_HAVE_NO_ROWS:
        return pl.DataFrame(schema=dict.fromkeys(columns, pl.String))
    header = f"a header row with columns {', '.join(columns)}" if columns else "a header row"
    raise InputError(str(path), "empty file", expected=header)


def unreadable_csv(path: Path, error: pl.exceptions.PolarsError) -> InputError:
    """Why polars could not read a CSV: its first bad row (csv_faults), else polars' words."""
    return csv_fault(path, str(path)) or InputError(
        str(path), f"not a readable CSV file ({first_line(error)})", expected="UTF-8 comma-separated text")


def first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0]


def require_columns(frame: pl.DataFrame, path: Path, columns: list[str]) -> None:
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise InputError(str(path), f"missing column(s) {', '.join(missing)}",
                         expected=f"a header with {', '.join(columns)}")


def fail_first(frame: pl.DataFrame, bad: pl.Expr, path: Path, field: str, expected: str,
               problem: str = "invalid value") -> None:
    """Raise for the first row where `bad` holds, saying how many more rows fail."""
    failing = frame.filter(bad)
    if failing.height:
        first = failing.row(0, named=True)
        more = f" ({failing.height - 1} more rows fail the same way)" if failing.height > 1 else ""
        value = first.get(field)
        if isinstance(value, dt.datetime):  # dates are parsed to instants; show them as written
            value = value.date().isoformat()
        raise InputError(str(path), problem + more, row=first["_row"], field=field, value=value, expected=expected)


def fail_if_outside(frame: pl.DataFrame, path: Path, field: str, allowed: tuple[str, ...]) -> None:
    fail_first(frame, pl.col(field).is_null() | ~pl.col(field).is_in(allowed), path, field,
               "one of " + ", ".join(allowed))


def parse_dates(frame: pl.DataFrame, path: Path, field: str, *, optional: bool) -> pl.DataFrame:
    """Parse a YYYY-MM-DD column to a UTC datetime at 00:00 (the validity boundary)."""
    text = pl.col(field)
    parsed = text.str.strptime(pl.Date, "%Y-%m-%d", strict=False)
    bad = (text.is_not_null() & (text != "") & (parsed.is_null() | ~text.str.contains(DATE_PATTERN)))
    if not optional:
        bad = bad | text.is_null() | (text == "")
    fail_first(frame, bad, path, field, "a date YYYY-MM-DD")
    return frame.with_columns(
        parsed.cast(pl.Datetime("us", "UTC")).alias(field)
    )


def load_works(path: Path) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """works.csv → (works, refs, ambiguous). Identifiers are normalised; a
    duplicate work id is an error; an identifier naming several works goes to
    `ambiguous` (ref, works) instead of `refs`."""
    frame = read_table(path)
    require_columns(frame, path, WORK_COLUMNS)
    # the same rule as a WORK: reference, so every catalogue identifier is in its normal form
    fail_first(frame, pl.col("work_id").is_null() | ~pl.col("work_id").str.contains(WORK_ID_PATTERN),
               path, "work_id", EXPECTED["invalid_work_id"])
    fail_first(frame, pl.col("work_id").is_duplicated(), path, "work_id", "each work_id once",
               "duplicate work id")
    fail_if_outside(frame, path, "kind", WORK_KINDS)
    refs = (
        frame.select("_row", "work_id",
                     pl.col("identifiers").fill_null("").str.split(" ").alias("raw"))
        .explode("raw")
        .filter(pl.col("raw") != "")
        .with_columns(normalised_ref_expr(pl.col("raw")).alias("_ref"))
        .unnest("_ref")
    )
    bad = refs.filter(pl.col("reason").is_not_null())
    if bad.height:
        first = bad.row(0, named=True)
        raise InputError(str(path), f"invalid identifier ({first['reason']})", row=first["_row"],
                         field="identifiers", value=first["raw"],
                         expected=EXPECTED.get(first["reason"], "a valid identifier"))
    own = frame.select("_row", "work_id", pl.concat_str(pl.lit("WORK:"), "work_id").alias("ref"))
    refs = pl.concat([refs.select("_row", "work_id", "ref"), own]).unique(["ref", "work_id"])
    # An identifier on two works is the catalogue's known ambiguity: usage of it
    # is quarantined as ambiguous, never guessed, and the catalogue still loads.
    clash = pl.col("ref").is_duplicated()
    ambiguous = (refs.filter(clash).group_by("ref").agg(pl.col("work_id").sort().str.join(" ").alias("works"))
                 .sort("ref"))
    works = frame.select("work_id", "kind", pl.col("title").fill_null(""))
    # refs are only joined on, never read in order: sorting 2M identifiers took 1.4 s
    return works.sort("work_id"), refs.filter(~clash).select("ref", "work_id"), ambiguous


def share_fractions(texts: list[str], path: Path, frame: pl.DataFrame) -> dict[str, tuple[int, int]]:
    """Parse each distinct share text once (there are few) into (numerator, denominator)."""
    parsed: dict[str, tuple[int, int]] = {}
    for text in texts:
        try:
            value = parse_exact(text)
        except ValueError:
            value = None
        if value is None or not 0 < value <= 1:
            row = frame.filter(pl.col("share") == text).row(0, named=True)["_row"]
            raise InputError(str(path), "invalid share", row=row, field="share", value=text,
                             expected="a share in (0, 1] as a decimal, a percentage or a fraction (0.25, 25%, 1/4)")
        parsed[text] = (value.numerator, value.denominator)
    return parsed


def load_splits(path: Path, works: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """splits.csv → (splits, share_scale), each version checked to sum to exactly 1."""
    frame = read_table(path)
    require_columns(frame, path, SPLIT_COLUMNS)
    fail_first(frame, ~pl.col("work_id").is_in(works["work_id"].implode()), path, "work_id",
               "a work_id of works.csv", "split for an unknown work")
    fail_first(frame, pl.col("holder_id").is_null(), path, "holder_id", "a holder id")
    fail_if_outside(frame, path, "right", RIGHTS)
    fail_first(frame, pl.col("share").is_null(), path, "share", "a share")
    if frame.height == 0:  # no splits at all: every work's money goes to suspense
        return empty_splits(), 1
    fractions = share_fractions(sorted(frame["share"].unique().to_list()), path, frame)
    share_scale = math.lcm(*(denominator for _, denominator in fractions.values())) if fractions else 1
    if share_scale > SHARE_SCALE_MAX:
        raise InputError(str(path), f"share denominators have a common multiple of {share_scale}",
                         field="share", expected=f"denominators whose common multiple is at most {SHARE_SCALE_MAX}")
    scaled = {text: numerator * (share_scale // denominator) for text, (numerator, denominator) in fractions.items()}
    frame = parse_dates(frame, path, "valid_from", optional=False)
    frame = parse_dates(frame, path, "valid_to", optional=True)
    canonical = {text: fraction_text(Fraction(n, d)) for text, (n, d) in fractions.items()}
    frame = frame.with_columns(
        pl.col("share").replace_strict(scaled, return_dtype=pl.Int128).alias("share_scaled"),
        pl.col("share").replace_strict(canonical, return_dtype=pl.String),
        pl.col("valid_from").dt.strftime("%Y-%m-%d").alias("version"),
    )
    check_versions(frame, path, share_scale)
    return frame.select(
        "work_id", "version", "right", "holder_id", "share_scaled", "share", "valid_from", "valid_to"
    ).sort("work_id", "version", "holder_id"), share_scale


def empty_splits() -> pl.DataFrame:
    utc = pl.Datetime("us", "UTC")
    return pl.DataFrame(schema={"work_id": pl.String, "version": pl.String, "right": pl.String,
                                "holder_id": pl.String, "share_scaled": pl.Int128, "share": pl.String,
                                "valid_from": utc, "valid_to": utc})


def check_versions(frame: pl.DataFrame, path: Path, share_scale: int) -> None:
    """Each version sums to exactly 1, names a holder once, has one right; versions don't overlap.

    One pass over the versions finds whether any rule is broken; only then are the
    rows searched for the first one that breaks it (catalogues have millions of rows)."""
    versions = frame.group_by("work_id", "version").agg(
        pl.len().alias("rows"), pl.col("holder_id").n_unique().alias("holders"),
        pl.col("right").n_unique().alias("rights"), pl.col("share_scaled").sum().alias("total"),
        (pl.col("valid_to") <= pl.col("valid_from")).any().alias("backwards"),
        pl.col("valid_from").first(), pl.col("valid_to").first(), pl.col("_row").min())
    if (versions["holders"] < versions["rows"]).any():
        fail_first(frame, pl.struct("work_id", "version", "holder_id").is_duplicated(), path, "holder_id",
                   "each holder once per split version", "holder listed twice in one split version")
    if (versions["rights"] > 1).any():
        fail_first(frame, pl.col("right").n_unique().over("work_id", "version") > 1, path, "right",
                   "one right per split version", "split version mixes rights")
    if versions["backwards"].any():
        fail_first(frame, pl.col("valid_to").is_not_null() & (pl.col("valid_to") <= pl.col("valid_from")),
                   path, "valid_to", "a date after valid_from", "split version ends before it starts")
    sums = versions.filter(pl.col("total") != share_scale).sort("_row")
    if sums.height:
        first = sums.row(0, named=True)
        total = parse_exact(f"{first['total']}/{share_scale}")
        raise InputError(str(path), f"shares of work {first['work_id']} from {first['version']} sum to "
                         f"{fraction_text(total)}", row=first["_row"], field="share", expected="shares summing to exactly 1")
    # only works with several versions can overlap: sorting every version took 1.6 s for 1M works
    several = versions.filter(pl.col("work_id").is_duplicated())
    ordered = several.sort("work_id", "valid_from").with_columns(
        pl.col("valid_from").shift(-1).over("work_id").alias("next_from"))
    fail_first(ordered, pl.col("next_from").is_not_null()
               & (pl.col("valid_to").is_null() | (pl.col("valid_to") > pl.col("next_from"))),
               path, "valid_to", "versions of one work that do not overlap", "split versions overlap")


def load_consent(path: Path, works: pl.DataFrame, holder_ids: list[str] | None = None,
                 licensee_ids: list[str] | None = None) -> pl.DataFrame:
    """consent.csv → frame of signals, each checked; a holder or licensee it names is checked
    against `holder_ids` / `licensee_ids` when they are given."""
    frame = read_table(path)
    require_columns(frame, path, CONSENT_COLUMNS)
    fail_if_outside(frame, path, "subject", ("work", "holder", "all"))
    fail_if_outside(frame, path, "use_type", (*USE_TYPES, "*"))
    fail_if_outside(frame, path, "signal", ("opt_in", "opt_out"))
    fail_first(frame, (pl.col("subject") != "all") & pl.col("subject_id").is_null(), path, "subject_id",
               "the id of the work or holder")
    # a signal from `all` covers the whole repertoire: an id beside it was meant to narrow it, and does not
    fail_first(frame, (pl.col("subject") == "all") & pl.col("subject_id").is_not_null(), path, "subject_id",
               "empty for subject all", "subject_id given for the whole repertoire")
    fail_first(frame, (pl.col("subject") == "work") & ~pl.col("subject_id").is_in(works["work_id"].implode()),
               path, "subject_id", "a work_id of works.csv", "consent for an unknown work")
    if holder_ids is not None:
        fail_first(frame, (pl.col("subject") == "holder") & ~pl.col("subject_id").is_in(holder_ids),
                   path, "subject_id", "a holder_id of holders.csv", "consent for an unknown holder")
    if licensee_ids is not None:
        fail_first(frame, pl.col("licensee_id").is_not_null() & ~pl.col("licensee_id").is_in(licensee_ids),
                   path, "licensee_id", "a licensee_id of licensees.csv", "consent for an unknown licensee")
    frame = parse_dates(frame, path, "valid_from", optional=False)
    frame = parse_dates(frame, path, "valid_to", optional=True)
    # as in splits.csv: [valid_from, valid_to) is empty or backwards, a signal never in force
    fail_first(frame, pl.col("valid_to") <= pl.col("valid_from"), path, "valid_to", "a date after valid_from",
               "signal ends before it starts")
    return frame.select(CONSENT_COLUMNS).sort(CONSENT_COLUMNS, nulls_last=True)


def empty_like_consent() -> pl.DataFrame:
    return pl.DataFrame(schema={"subject": pl.String, "subject_id": pl.String, "use_type": pl.String,
                                "licensee_id": pl.String, "signal": pl.String,
                                "valid_from": pl.Datetime("us", "UTC"), "valid_to": pl.Datetime("us", "UTC")})
