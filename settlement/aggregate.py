"""Aggregation: usage rows → one row per usage group, streaming, in bounded memory.

A group is (file, licensee, model, normalised work reference, use type, unit,
territory, segment). A *segment* is a stretch of the period in which no split,
consent signal or contract starts or ends, so everything decided after
aggregation (which split is in force, whether consent holds, which contract
covers the use) is decided once per group and is exact for every row in it.
`file` stays in the key so that every file's rows can be accounted for.

Only this module and intake see raw rows, and they never hold them all:

1. validate: one streaming pass over the usage files writes every row, typed
   and with its quarantine reason, to Parquet spill parts of at most SLICE_ROWS
   rows, in a folder per file (validation is the expensive part and runs once);
2. codes: the distinct values of the key's text columns among valid rows, and
   each distinct raw `work_ref` normalised once (there are far fewer than
   rows); refused references make their rows candidates (step 4);
3. pass 1 over the spill: count rows per file, collect the quarantined rows,
   and find *candidates*: record keys whose 64-bit hash (computed once, in
   validation) occurs twice (possible re-sends) and outputs whose attribution
   sums past 1 while re-sends still count (the hashes are searched in
   partitions of their values, one per RECORD_PARTITION_ROWS rows read);
4. pass 2: read only the candidates' rows (a few percent) and settle them
   exactly on the real keys in memory: which of them do not count (re-sends,
   conflicting re-sends, refused identifiers, over-attributed outputs);
5. the group sums: the valid rows, less those that do not count (left out by
   their file and row), aggregated by their coded group key, one partition of
   works at a time when there are more than PARTITION_ROWS of them, and each
   partition's groups handed to the caller's `reduce` (classification and its
   sums), so that no more than one partition's groups is ever held.

A hash collision can only make a row a candidate, never a duplicate: pass 2
decides on the real keys.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import closing, contextmanager
from fractions import Fraction
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable, Generic, Iterator, TypeVar

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from contracts.usage import usage_format
from settlement import intake
from settlement.money import MONEY
from settlement.progress import SILENT, Progress
from settlement.spill import ROWS_SPILL, written_partitions

GROUP_KEY = ["file_index", "licensee_id", "model_id", "ref", "use_type", "unit", "territory", "segment"]
SUMS = ["rows", "units", "attributed_nanos", "unattributed_units", "attribution_nanos"]
TEXT_KEY = ["licensee_id", "model_id", "work_ref", "use_type", "unit", "territory"]
SLICE_ROWS = 1_000_000  # Parquet rows validated at once, and rows per spill part (see validate_to_spill)
PROGRESS_SECONDS = 0.25  # how often a whole file's finished parts are counted while it is read
KEY_BITS = 64  # the packed group key (see GroupCodes)
# counted rows per partition of the group sums (see group_partitions): at 100M rows, in 40
# partitions, classification peaked at 3.92 GiB against 4.49 GiB in 20, in the same time
PARTITION_ROWS = 2_500_000
NOT_COUNTED_COLUMNS = ["file_index", "row", "record_id", "licensee_id", "output_id", "reason", "field", "value",
                       "expected", "copy"]
FEW_VALUES = [c for c in TEXT_KEY if c != "work_ref"]  # the key's text with a few distinct values
# what pass 2 reads of its candidates: their place, record key and content (valid rows:
# their reason columns are null)
CANDIDATE_COLUMNS = ["file_index", "row", "record_id", "licensee_id", *intake.CONTENT_COLUMNS]
RECORD_PARTITION_ROWS = 25_000_000  # rows read per partition of the re-send search (see resent_hashes)
NOT_KEPT = pl.col("copy").fill_null("quarantined") != "kept"  # a valid row that does not count
CANDIDATE_PARTITION_ROWS = 1_000_000  # candidate rows per partition of pass 2's re-sends (see not_counted)
REF_HASH_SEED = 31  # any fixed seed: the hashes only have to differ within one run (see ref_hash)
T = TypeVar("T")


@dataclass(frozen=True)
class UsageAggregate(Generic[T]):
    """What intake and aggregation hand to the pure steps."""

    partials: list[T]          # reduce(groups) per partition; groups: GROUP_KEY (file for file_index;
                               # text columns as Enums), the work_id the ref names (or null), `work` (a
                               # code per work key: GroupCodes.work_codes) and SUMS of the counted rows,
                               # disjoint between partitions
    unattributed: pl.DataFrame # licensee_id, outputs (with attribution), unattributed_nanos
    quarantine: pl.DataFrame   # intake.QUARANTINE_COLUMNS, sorted by file, row
    files: pl.DataFrame        # file, rows_read, duplicates, quarantined
    rows_read: int
    digest: int                # order-independent digest of every raw row
    work_keys: pl.Series       # the text of each `work` code of the groups (GroupCodes.work_keys)


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


def sums() -> list[pl.Expr]:
    """A group's sums. Units are summed in Int128: Int64 sums wrap silently.

    Each is an elementwise expression summed, never a filter inside the
    aggregation: the streaming group-by reduces the former as rows arrive but
    keeps every row of a group for the latter (21 GB at 100M rows)."""
    attributed = pl.col("attribution_nanos").is_not_null()
    units = pl.col("units_count").cast(MONEY)
    return [
        pl.len().cast(pl.Int64).alias("rows"),
        units.sum().alias("units"),
        (units * pl.col("attribution_nanos").cast(MONEY)).sum().alias("attributed_nanos"),
        pl.when(~attributed).then(units).sum().alias("unattributed_units"),
        pl.col("attribution_nanos").cast(MONEY).sum().alias("attribution_nanos"),
    ]


@dataclass(frozen=True)
class GroupCodes:
    """Small-integer codes for the group key, so that the group sums hash one integer per
    row instead of six columns of text and two integers (most of their time and memory).

    Each text column's code is 1 + the index of its value among `values[column]`
    (0 for null); the reference's code is that of its normalised form, so spellings
    of one identifier share a group, and refused references share code 0 (none of
    their rows counts: pass 2 settles them all). The codes are packed into one UInt64 when they
    fit, and grouped on side by side when they do not."""

    values: dict[str, pl.Series]  # text column → its distinct values among valid rows
    identifiers: pl.DataFrame     # intake.identifier_table of the valid rows' references, sorted
    work_ids: pl.Series           # per value of values["ref"]: the catalogue work it names, or null
    files: int
    cuts: list[dt.datetime]

    def widths(self) -> dict[str, int]:
        counts = {"file_index": self.files, "segment": len(self.cuts) + 1}
        return {column: max((counts[column] - 1).bit_length(), 1) if column in counts
                else len(self.values[column]).bit_length() for column in GROUP_KEY}

    def packed(self) -> bool:
        return sum(self.widths().values()) <= KEY_BITS

    def code(self, column: str) -> pl.Expr:
        """A key column's code. Text becomes a code by an Enum cast, which streams;
        `replace_strict` with a large mapping made the streaming engine hold every row.
        The reference's code is found before, by `with_ref_codes`."""
        if column == "file_index":
            return pl.col("file_index").cast(pl.UInt64)
        if column == "segment":
            return segment_of(pl.col("occurred"), self.cuts).cast(pl.UInt64)
        if column == "ref":
            return pl.col("_ref_code").fill_null(0)
        return (pl.col(column).cast(pl.Enum(self.values[column])).to_physical().cast(pl.UInt64) + 1).fill_null(0)

    def with_ref_codes(self, rows: pl.LazyFrame) -> pl.LazyFrame:
        """Valid rows with `_ref_code`, the code of their reference's normalised form.

        Every valid row's reference is one of `identifiers`, so when their 64-bit hashes
        all differ (`ref_hashes`), a row's hash names its reference exactly, and the code
        is found by a join on that integer: at 10M rows, writing the keyed rows took
        1.9-2.0 s (3.7-3.9 CPU seconds) against 2.4-2.6 s (4.6-4.9) by an Enum cast of
        the text to the references (millions of categories), and 1.0 s with no code at
        all. When two references share a hash, the Enum cast."""
        if self.ref_hashes is None:
            raw = pl.col("work_ref").cast(pl.Enum(self.identifiers["work_ref"])).to_physical()
            return rows.with_columns(pl.lit(self.ref_codes).gather(raw).alias("_ref_code"))
        return (rows.with_columns(ref_hash().alias("_ref_hash"))
                .join(self.ref_hashes.lazy(), on="_ref_hash", how="left").drop("_ref_hash"))

    @cached_property
    def ref_hashes(self) -> pl.DataFrame | None:
        """Per reference of `identifiers`: its hash (`_ref_hash`) and `_ref_code`; None when
        two references share a hash."""
        table = self.identifiers.select(ref_hash().alias("_ref_hash"), pl.lit(self.ref_codes).alias("_ref_code"))
        return table if table["_ref_hash"].n_unique() == table.height else None

    @cached_property
    def ref_codes(self) -> pl.Series:
        """Per row of `identifiers`: the code of its normalised reference (0 when refused),
        found by a join (an Enum cast of millions of references took several times longer)."""
        codes = pl.DataFrame({"ref": self.values["ref"]}).with_row_index("code", offset=1)
        found = self.identifiers.select("ref").join(codes, on="ref", how="left", maintain_order="left")
        return found["code"].cast(pl.UInt64).fill_null(0)

    def key(self) -> list[pl.Expr]:
        if not self.packed():
            return [self.code(column).alias(f"_{column}") for column in GROUP_KEY]
        shift, parts = 0, []
        for column, width in reversed(self.widths().items()):
            parts.append(self.code(column) * (1 << shift))
            shift += width
        return [pl.sum_horizontal(parts).alias("_key")]

    def key_columns(self) -> list[str]:
        return ["_key"] if self.packed() else [f"_{column}" for column in GROUP_KEY]

    def unpacked(self) -> dict[str, pl.Expr]:
        """Each key column's code, from the key columns."""
        if not self.packed():
            return {column: pl.col(f"_{column}") for column in GROUP_KEY}
        fields, shift = {}, 0
        for column, width in reversed(self.widths().items()):
            fields[column] = (pl.col("_key") // (1 << shift)) % (1 << width)
            shift += width
        return fields

    def partition(self, parts: int) -> pl.Expr:
        """A row's partition: by the catalogue work its reference names, or by the
        reference when it names none, so that every group of one work, whichever
        identifiers name it, falls in one partition (its work code, modulo `parts`)."""
        return pl.lit(self.work_codes % parts).gather(self.unpacked()["ref"]).cast(pl.UInt32)

    @cached_property
    def by_code(self) -> dict[str, pl.Series]:
        """Per text column, and for `work_id`: the value of each code, null for code 0
        first, so that a code is its value's index. Text columns' values as an Enum of
        themselves, built once: a million references took a second to cast, per partition."""
        with_null = lambda values: pl.concat([pl.Series([None], dtype=values.dtype), values])
        tables = {column: with_null(values.cast(pl.Enum(values))) for column, values in self.values.items()}
        return tables | {"work_id": with_null(self.work_ids)}

    def decoded(self, groups: pl.DataFrame) -> pl.DataFrame:
        """The groups with their key columns as values again: text columns as Enums of
        their sorted distinct values, so they sort as the text does and group and join
        as integers (steps after aggregation cast them where they meet plain text);
        and the catalogue work each reference names (`work_id`, null when none).
        Each column is a gather by its code, all in one query, so that they are made side
        by side: the four partitions of a 10M-row month, decoded twice each, took 1.21 s
        (1.99 CPU seconds) against 1.93 s (2.32) one column at a time."""
        codes = self.unpacked()
        columns = [codes[c].cast(pl.UInt32).alias(c) for c in ("file_index", "segment")]
        columns += [pl.lit(self.by_code[c]).gather(codes[c]).alias(c) for c in GROUP_KEY if c in self.values]
        columns.append(pl.lit(self.by_code["work_id"]).gather(codes["ref"]).alias("work_id"))
        columns.append(pl.lit(self.work_codes).gather(codes["ref"]).alias("work"))
        return groups.with_columns(columns).select(*GROUP_KEY, "work_id", "work", *SUMS)

    @cached_property
    def ref_work_keys(self) -> pl.Series:
        """Per value of values["ref"]: its work key, the catalogue work it names or else itself."""
        return pl.DataFrame({"ref": self.values["ref"], "work_id": self.work_ids}).select(
            pl.coalesce("work_id", "ref")).to_series()

    @cached_property
    def work_codes(self) -> pl.Series:
        """Per reference code (0 for refused): a UInt32 code of the work key, the catalogue
        work the reference names or else the reference itself, so that the steps after
        aggregation group and join by work on one integer instead of text."""
        keys = self.ref_work_keys.rank("dense").cast(pl.UInt32)
        return pl.concat([pl.Series([0], dtype=pl.UInt32), keys])

    @cached_property
    def work_keys(self) -> pl.Series:
        """Per work code (`work_codes`): its work key as text (null for code 0), so that
        the steps after aggregation can carry a work by its code and name it at the end.
        Put in place by the codes themselves, so the two cannot disagree."""
        names = pl.repeat(None, int(self.work_codes.max()) + 1, dtype=pl.String, eager=True)
        return names.scatter(self.work_codes[1:], self.ref_work_keys)


def ref_hash() -> pl.Expr:
    """A raw reference's 64-bit hash, by which valid rows find its code (GroupCodes.with_ref_codes)."""
    return pl.col("work_ref").hash(seed=REF_HASH_SEED)


def group_codes(spill: list[Path], files: int, ambiguous: list[str], cuts: list[dt.datetime],
                catalogue_refs: pl.DataFrame, passed: Callable[[], None] = lambda: None) -> GroupCodes:
    """The distinct values of the valid rows' text key columns, the identifier table, and
    the work each normalised reference names in `catalogue_refs` (ref, work_id). `passed`
    is called after each pass over the spill (Passes).

    Each column is its own query: queries collected together share one scan,
    which buffers what the slowest has not consumed (13 GB at 100M rows)."""
    valid = pl.scan_parquet(spill).filter(pl.col("failed_check").is_null())
    values = {c: one_pass(valid.select(c).unique(), passed)[c].drop_nulls().sort() for c in TEXT_KEY}
    identifiers = intake.identifier_table(values.pop("work_ref"), ambiguous, catalogue_refs["ref"])  # sorted
    values["ref"] = identifiers["ref"].drop_nulls().unique().sort()
    work_ids = pl.DataFrame({"ref": values["ref"]}).join(catalogue_refs, on="ref", how="left", maintain_order="left")
    return GroupCodes(values, identifiers, work_ids["work_id"], files, cuts)



def validate_to_spill(files: list[Path], names: list[str], period, licensees: list[str], spill: Path,
                      progress: Progress = SILENT) -> tuple[list[Path], int]:
    """The one pass that reads and validates raw rows, streamed to typed Parquet parts in `spill`
    (at most SLICE_ROWS rows each); returns the parts and their rows (every row read).
    `progress` is told the files and rows read after each Parquet window, and while a whole
    file is read, whenever more of its parts are written.

    Parquet input is validated SLICE_ROWS rows at a time: the streaming
    engine reads Parquet faster than it validates and writes, and what it has
    read waits in memory (one sink over a whole 10M-row file peaked at 0.6 and
    1.2 GiB, in slices of 1M at 0.45 GiB). A CSV or JSON Lines file is validated
    in one query (a window of it would re-read the file up to its start), written
    in parts as it goes (`whole_file_parts`)."""
    parts, rows_before, rows = [], 0, 0
    for index, path in enumerate(files):
        name = names[index]
        folder = spill / f"{index:06d}"
        with read_as(name, path):
            file_windows = windows(path)
        for number, window in enumerate(file_windows):
            with read_as(name, path):
                query = validation(path, index, name, window, period, licensees)
            reports = (whole_file_parts(query, folder) if window is None
                       else window_part(query, folder / f"{number:08d}.parquet"))
            with closing(reports):  # a listener's failure waits for the file's query (whole_file_parts)
                for rows, written in read_steps(reports, name, path):
                    progress.reading(index + Fraction(number + written, len(file_windows)), len(files),
                                     rows_before + rows)
            rows_before += rows  # the last report's: every row of the window or file
        parts += file_parts(folder)
    return parts, rows_before


def read_steps(steps: Iterator[T], name: str, path: Path) -> Iterator[T]:
    """`steps`, each one taken as a read of file `name` at `path` (read_as), then handed out
    of it, so that a listener failing on one is not taken for the file failing."""
    while True:
        with read_as(name, path):
            step = next(steps, None)
        if step is None:
            return
        yield step


def window_part(query: pl.LazyFrame, part: Path) -> Iterator[tuple[int, bool]]:
    """A window of a Parquet file validated into `part`; yields (its rows, True: written)."""
    part.parent.mkdir(exist_ok=True)
    query.sink_parquet(part, **ROWS_SPILL)
    yield spilled_rows(part), True


def whole_file_parts(query: pl.LazyFrame, folder: Path) -> Iterator[tuple[int, bool]]:
    """A whole file's validation written to `folder` in parts of at most SLICE_ROWS rows, in
    a thread, while this one yields (rows in the parts written so far, False) whenever more
    are written, so that a terminal shows the rows of a 10 GB CSV as they are read, and
    then (all of its rows, True). Closed before the end (a listener failed, or Ctrl-C), it
    waits for the query to end, so that nothing writes to the spill once it is deleted:
    polars 2.1 does not cancel a streaming sink (cancelled after 1 s, a 10M-row CSV's
    validation ran on to its end at 7.7 s)."""
    counted: dict[Path, int] = {}
    with ThreadPoolExecutor(1) as pool:  # its exit waits for the query
        sinking = pool.submit(query.sink_parquet, pl.PartitionBy(folder, max_rows_per_file=SLICE_ROWS),
                              mkdir=True, **ROWS_SPILL)
        while not wait([sinking], timeout=PROGRESS_SECONDS).done:
            written = {part: rows for part in file_parts(folder) if part not in counted
                       and (rows := finished_rows(part)) is not None}
            if written:
                counted |= written
                yield sum(counted.values()), False
        sinking.result()
    yield sum(spilled_rows(part) for part in file_parts(folder)), True  # every part read again, once written


def finished_rows(part: Path) -> int | None:
    """The rows of a spill part that is written, or None while it is being written (polars
    writes several parts at once, and a part's footer, with its rows, comes last).
    Any failure means not yet: these counts are only shown, and the file's last count
    reads every part again once the query is done."""
    try:
        return spilled_rows(part)
    except (pa.ArrowException, OSError):
        return None


def file_parts(folder: Path) -> list[Path]:
    """The spill parts written so far of one file's rows, in order."""
    return sorted(folder.glob("*.parquet")) if folder.exists() else []


@contextmanager
def read_as(name: str, path: Path) -> Iterator[None]:
    """A failure to read or write inside, reported as file `name` (at `path`) unreadable
    (intake.unreadable). Only the reading is inside: a listener's failure (a closed
    terminal) is not the file's."""
    try:
        yield
    except (pl.exceptions.PolarsError, OSError) as error:
        raise intake.unreadable(name, error, path) from None


def spilled_rows(part: Path) -> int:
    """The rows of a spill part: every row read, valid or not, from its footer. Read by
    pyarrow, not by a polars query, which would wait for the pool that a file's sink keeps
    busy while its parts are counted (finished_rows)."""
    return pq.read_metadata(part).num_rows


def validation(path: Path, index: int, name: str, window: tuple[int, int | None] | None, period,
               licensees: list[str]) -> pl.LazyFrame:
    """The query that validates one window of one usage file (validate_to_spill). Every step
    of it streams, none needs a whole column (intake.empty_as), so a CSV or JSON Lines
    file of any size is validated in bounded memory."""
    return intake.checked(intake.scan_usage_file(path, index, name, window), period, licensees)


def windows(path: Path) -> list[tuple[int, int | None] | None]:
    """The file's rows in windows (first row, rows) of at most SLICE_ROWS for Parquet (whose
    row count is in its metadata); other formats whole (None), one file at a time (a
    window of a CSV re-reads the file up to its start, so reading one large file in
    windows would be quadratic). The last window is open-ended, so a miscount could
    never drop a row."""
    if usage_format(path.name) != "parquet":
        return [None]
    rows = pl.scan_parquet(path).select(pl.len()).collect().item()
    starts = range(0, rows, SLICE_ROWS)
    return [(start, SLICE_ROWS) for start in starts[:-1]] + [(starts[-1] if starts else 0, None)]


def first_pass(spill: list[Path], rows_read: int, texts: pl.DataFrame,
               passed: Callable[[], None] = lambda: None) -> list[pl.DataFrame]:
    """Re-send candidates, attribution per output, per-file counts, quarantined rows (each
    with its failed check's text from `texts`, intake.check_texts): one query each, so no
    query's unread input waits in memory for another (see group_codes). `rows_read`: the
    spill's rows; `passed` is called after each pass over the spill (Passes)."""
    rows = pl.scan_parquet(spill)
    valid = rows.filter(pl.col("failed_check").is_null())
    by_output = (valid.filter(pl.col("attribution_nanos").is_not_null())
                 .group_by("licensee_id", "output_id").agg(pl.col("attribution_nanos").sum()))
    per_file = rows.group_by("file_index").agg(
        pl.len().cast(pl.Int64).alias("rows_read"),
        pl.col("failed_check").is_not_null().sum().cast(pl.Int64).alias("quarantined"),
        pl.col("row_hash").sum().alias("digest"))
    quarantined = rows.filter(pl.col("failed_check").is_not_null()).with_columns(intake.described(texts)).select(
        "file_index", *[c for c in intake.QUARANTINE_COLUMNS if c != "file"])
    per_file, by_output, quarantined = (one_pass(plan, passed) for plan in (per_file, by_output, quarantined))
    # the quarantined rows are kept until the run ends
    return [resent_hashes(valid, rows_read, passed), by_output, per_file, compacted(quarantined)]


def valid_rows(per_file: pl.DataFrame) -> int:
    return int(per_file["rows_read"].sum() - per_file["quarantined"].sum())


def partitions_for(count: int, rows_per_partition: int) -> int:
    return max(1, -(-count // rows_per_partition))


def resent_hashes(valid: pl.LazyFrame, rows_read: int, passed: Callable[[], None] = lambda: None) -> pl.DataFrame:
    """The record hashes that occur more than once among the valid rows of `rows_read`, found
    in partitions of the hash's values (`record_partitions`): a group-by over 100M hashes at
    once peaks at 7 GB, in four partitions at 2.4 GB (and is faster), since each partition
    reads one column. `passed` is called after each partition."""
    parts = record_partitions(rows_read)
    hashes = valid.select("record_hash")
    return pl.concat([one_pass(hashes.filter(pl.col("record_hash") % parts == part).group_by("record_hash")
                               .agg(pl.len()).filter(pl.col("len") > 1).select("record_hash"), passed)
                      for part in range(parts)])


def record_partitions(rows_read: int) -> int:
    """The partitions of the re-send search: by the rows read, which bound the valid rows
    searched, and are known before the search (Passes counts its passes in advance)."""
    return partitions_for(rows_read, RECORD_PARTITION_ROWS)


def one_pass(query: pl.LazyFrame, passed: Callable[[], None]) -> pl.DataFrame:
    """`query`, one pass over the spill, collected; then `passed` is called (Passes)."""
    frame = query.collect()
    passed()
    return frame


class Passes:
    """Tells `progress` each pass over the spill done while identifiers and re-sent rows are
    checked: one per text key column (group_codes), pass 1's three queries and its
    partitions of the re-send search (first_pass), and pass 2 (not_counted), which reads
    its candidates and settles them. Each reads the spill once (about 45 s in all at
    100M rows)."""

    def __init__(self, progress: Progress, rows_read: int):
        self.progress, self.done = progress, 0
        self.total = len(TEXT_KEY) + 3 + record_partitions(rows_read) + 1  # first_pass: three queries

    def __call__(self) -> None:
        self.done += 1
        self.progress.step(self.done, self.total, "passes over the rows")


def counted_rows(spill: list[Path], codes: GroupCodes, not_counting: pl.DataFrame) -> pl.LazyFrame:
    """The valid rows that count, as their coded key and what is summed: the rows pass 2
    settled as not counting are left out by their (file, row), so no group is ever summed
    and then corrected (that took a second copy of every group). They are left out by
    their place as one integer in a set, not by an anti-join: at 100M rows the join's
    rows waited in memory for the key's codes, and writing the keyed rows peaked 1.1 GiB
    higher."""
    valid = pl.scan_parquet(spill).filter(pl.col("failed_check").is_null())
    places = not_counting.select(intake.place()).to_series()
    counting = valid.filter(~intake.place().is_in(places.implode()))
    return codes.with_ref_codes(counting).select(*codes.key(), "units_count", "attribution_nanos")


def group_partitions(rows: pl.LazyFrame, codes: GroupCodes, count: int, folder: Path,
                     progress: Progress = SILENT) -> Iterator[pl.DataFrame]:
    """The group sums of `rows` (`count` of them), one partition at a time, each read
    whole before it is yielded (the partition files are deleted with the spill);
    `progress` is told each partition done, once the caller has asked for the next.

    A streaming group-by holds every group it has seen, and a 100M-row month has
    over 50M groups (21 GB). Past PARTITION_ROWS rows, the keyed rows are first
    written to disk partitioned by work (GroupCodes.partition), so every group
    lies in one partition, and each partition is then summed alone."""
    summed = lambda keyed: keyed.group_by(codes.key_columns()).agg(sums()).collect()
    parts = partitions_for(count, PARTITION_ROWS)
    if parts == 1:
        yield summed(rows)
        progress.step(1, 1, "partitions")
        return
    partitions = written_partitions(rows, codes.partition(parts), folder / "keyed")
    for done, (_, files) in enumerate(sorted(partitions.items()), start=1):
        yield summed(pl.scan_parquet(files, hive_partitioning=False))
        progress.step(done, len(partitions), "partitions")


def copied(column: str) -> pl.Expr:
    """A text column's values copied out of the buffers they were read into. Rows filtered
    from a scan are views into the whole row groups' text: reading 4M candidate rows of
    100M raised the process's memory by 2.7 GiB, and by 1.3 GiB with their text copied."""
    return pl.concat_str(pl.col(column), pl.lit("")).alias(column)


def compacted(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with its text columns copied (see `copied`): for results kept while later stages run."""
    return frame.select(copied(c) if dtype == pl.String else c for c, dtype in frame.schema.items())


def not_counted(spill: list[Path], by_record: pl.DataFrame, over_outputs: pl.DataFrame,
                identifiers: pl.DataFrame, passed: Callable[[], None] = lambda: None) -> pl.DataFrame:
    """The candidates' rows, settled exactly: every valid row that does not count, by file and row.

    Candidates are found by a filter on stored columns only, which the Parquet
    reader applies before decoding the rest of a row (a computed hash or a join
    in the filter decoded every column of every row first: 5 GB at 100M rows).
    Over-attributed outputs are matched by licensee and by output id separately,
    so an output of another over-attributing licensee with the same id may come
    along: it is settled exactly too, since all of its rows come along with it.

    Re-sends are settled in partitions of the record hash (every copy of a record
    has its hash), CANDIDATE_PARTITION_ROWS candidates each: comparing each copy
    with its kept copy gathers every content column, and at 100M rows settling all
    3.9M candidates at once took 2.8 GiB. Attribution is checked after, across
    partitions, on what each kept: its rows that do not count and every row of
    a possibly over-attributed output. `passed` is called once they are settled (Passes)."""
    refused = identifiers.filter(pl.col("ref_reason").is_not_null())
    over = (pl.col("licensee_id").is_in(over_outputs["licensee_id"].unique().implode())
            & pl.col("output_id").is_in(over_outputs["output_id"].unique().implode()))
    scan = pl.scan_parquet(spill)
    schema = scan.collect_schema()
    candidates = (scan
                  .filter(pl.col("failed_check").is_null()
                          & (pl.col("record_hash").is_in(by_record["record_hash"].implode()) | over
                             | pl.col("work_ref").is_in(refused["work_ref"].implode())))
                  .select(*(candidate(c, schema[c]) for c in CANDIDATE_COLUMNS), "record_hash")
                  .collect())
    parts = partitions_for(candidates.height, CANDIDATE_PARTITION_ROWS)
    settled = pl.concat([resends_settled(candidates.filter(pl.col("record_hash") % parts == part), refused, over)
                         for part in range(parts)])
    del candidates
    checked = intake.attribution_checked(settled.lazy()).filter(NOT_KEPT)
    # only what the rest of the run reads of them: held until the end (a few million rows at 100M)
    not_counting = compacted(checked.select(NOT_COUNTED_COLUMNS).sort("file_index", "row")
                             .with_columns(pl.col("licensee_id").cast(pl.String)).collect())
    passed()
    return not_counting


def candidate(column: str, dtype: pl.DataType) -> pl.Expr:
    """A candidate's column as pass 2 holds it: text copied out of the scan's buffers (see
    `copied`), and the key's few-valued text as Categoricals, 4 bytes a row instead of 16."""
    if column in FEW_VALUES:
        return pl.col(column).cast(pl.Categorical)
    return copied(column) if dtype == pl.String else pl.col(column)


def resends_settled(candidates: pl.DataFrame, refused: pl.DataFrame, over: pl.Expr) -> pl.DataFrame:
    """Candidates holding every copy of their records, with refused identifiers and re-sends
    settled: the rows that do not count, and every row of a possibly over-attributed output
    (whose kept copies its attribution check sums)."""
    reasons = [pl.lit(None, dtype=pl.String).alias(c) for c in ("reason", "field", "value", "expected")]
    # only the refused identifiers are looked up: all of them (millions) took three to five times as long
    checked = intake.with_identifier_reasons(candidates.with_columns(reasons), refused)
    return (intake.deduplicated(checked.lazy())
            .filter(NOT_KEPT | over.fill_null(False))
            .select(*NOT_COUNTED_COLUMNS, "attribution_nanos").collect())


def aggregate_usage(files: list[Path], names: list[str], period, licensees: list[str], ambiguous: list[str],
                    cuts: list[dt.datetime], catalogue_refs: pl.DataFrame,
                    reduce: Callable[[pl.DataFrame], T] = lambda groups: groups,
                    progress: Progress = SILENT) -> UsageAggregate[T]:
    """Intake and aggregation of every usage file (see the module's docstring).
    `catalogue_refs` (ref, work_id): the catalogue's normalised identifiers, which skip
    normalisation, resolve each group's work and keep each work's groups in one partition.
    `progress` is told the files and rows read while they are read, then each stage of
    the aggregation, each pass over the rows that checks identifiers and re-sends, and
    each partition of groups done."""
    file_names = pl.DataFrame({"file_index": range(len(files)), "file": names},
                              schema={"file_index": pl.UInt32, "file": pl.String})
    with tempfile.TemporaryDirectory(prefix="settle-spill-") as folder:
        spill, rows_read = validate_to_spill(files, names, period, licensees, Path(folder), progress)
        progress.stage("checking identifiers and re-sent rows")
        passed = Passes(progress, rows_read)
        codes = group_codes(spill, len(files), ambiguous, cuts, catalogue_refs, passed)
        texts = intake.check_texts(period, licensees)
        by_record, by_output, per_file, quarantined = first_pass(spill, rows_read, texts, passed)
        over = by_output.filter(pl.col("attribution_nanos") > intake.ATTRIBUTION_SCALE)
        # per licensee only, from here on: one row per output (5.8M at 100M rows) is not held
        outputs = by_output.group_by("licensee_id").agg(pl.len().cast(pl.Int64).alias("outputs"))
        del by_output
        extra = not_counted(spill, by_record, over, codes.identifiers, passed)
        del by_record
        counting = valid_rows(per_file) - extra.height
        partials, shares = [], []
        rows = counted_rows(spill, codes, extra)
        progress.stage("summing and classifying the usage groups")
        for sums_of_part in group_partitions(rows, codes, counting, Path(folder), progress):
            # the file's name put in place by its index: a join copied every column of the groups
            groups = codes.decoded(sums_of_part).with_columns(
                pl.lit(file_names["file"]).gather(pl.col("file_index")).alias("file")).drop("file_index")
            del sums_of_part
            shares.append(groups.group_by(pl.col("licensee_id").cast(pl.String))
                          .agg(pl.col("attribution_nanos").sum().alias("shares")))
            partials.append(reduce(groups))
    late = extra.filter(pl.col("reason").is_not_null())
    quarantine = (pl.concat([quarantined, late.select(quarantined.columns)]).join(file_names, on="file_index")
                  .select(intake.QUARANTINE_COLUMNS).sort("file", "row"))
    extra_counts = extra.group_by("file_index").agg(
        (pl.col("copy") == "duplicate").sum().cast(pl.Int64).alias("duplicates"),
        pl.col("reason").is_not_null().sum().cast(pl.Int64).alias("quarantined_late"))
    counts = (file_names.join(per_file, on="file_index", how="left").join(extra_counts, on="file_index", how="left")
              .with_columns(pl.col("rows_read", "quarantined", "duplicates", "quarantined_late").fill_null(0))
              .with_columns((pl.col("quarantined") + pl.col("quarantined_late")).alias("quarantined")))
    digest = int(counts["digest"].fill_null(0).sum()) % (1 << 64)
    unattributed = unattributed_remainder(pl.concat(shares), outputs, extra)
    return UsageAggregate(partials, unattributed, quarantine, counts.select("file", "rows_read", "duplicates",
                                                                           "quarantined").sort("file"),
                          int(counts["rows_read"].sum()), digest, codes.work_keys)


def unattributed_remainder(shares: pl.DataFrame, outputs: pl.DataFrame, extra: pl.DataFrame) -> pl.DataFrame:
    """Per licensee: outputs carrying attribution, and the part of them no work was attributed
    (outputs − the sum of their counted shares, in 1e-9 units). Quarantined outputs drop out.
    `outputs`: per licensee, how many of its outputs carry attribution; `shares`: counted
    attribution per licensee, one row per licensee and partition."""
    dropped = (extra.filter(pl.col("reason") == "attribution_over_one").group_by("licensee_id")
               .agg(pl.col("output_id").n_unique().cast(pl.Int64).alias("dropped")))
    shares = shares.group_by("licensee_id").agg(pl.col("shares").sum())
    return (outputs.join(dropped, on="licensee_id", how="left").join(shares, on="licensee_id", how="left")
            .fill_null(0)
            .select("licensee_id", (pl.col("outputs") - pl.col("dropped")).alias("outputs"),
                    ((pl.col("outputs") - pl.col("dropped")).cast(MONEY) * intake.ATTRIBUTION_SCALE
                     - pl.col("shares")).alias("unattributed_nanos"))
            .filter(pl.col("outputs") > 0).sort("licensee_id"))
