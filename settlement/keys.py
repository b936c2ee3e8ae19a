"""Dictionary-encoded keys for the frames after aggregation.

Allocation groups, joins and sorts millions of lines by work, holder, contract,
term, use type and split version. As strings those keys are slow to hash and
slower to sort. As integers that are each value's rank in code-point order
they group and sort as fast as integers, and still sort exactly as the strings
do (the tie-break of rule 5 compares strings by code point). The small key sets
(contracts, terms, use types, versions...) are `pl.Enum`s whose categories are
in lexical order. Works and holders, a million of them or more, are `Codes`:
plain UInt32 ranks, because polars rebuilds an Enum's million categories each
time a frame's schema is read (0.6 s with a million works), and allocation
reads schemas thousands of times. Exports decode both (`decoded`), so no output
depends on the encoding.

The categories are built per run: work keys include the identifiers of
unresolved works (suspense), which only the usage names.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import polars.selectors as cs

from contracts.vocabulary import REASONS, RIGHTS, STATUSES, USE_TYPES

NO_BASE = "(no allocation base)"  # the work key of a term with nothing to split over


def lexical_enum(values) -> pl.Enum:
    """An Enum whose category order is the code-point order of its strings (Python's
    and polars' string order), so that sorting by it sorts as the strings."""
    return pl.Enum(sorted({value for value in values if value is not None}))


STATUS = lexical_enum(STATUSES)
REASON = lexical_enum(REASONS)


class Codes:
    """A large key set as UInt32 codes: each value's rank among `values` (unique, in
    code-point order), so codes sort, group and join as the strings do."""

    dtype = pl.UInt32

    def __init__(self, values: pl.Series):
        self.values = values.cast(pl.String).drop_nulls().unique().sort()
        self.enum = pl.Enum(self.values)  # built once: the cast through it is how strings are ranked

    def encode(self, column: str) -> pl.Expr:
        """A string column (every value among `values`) as its codes."""
        return pl.col(column).cast(pl.String).cast(self.enum).to_physical().cast(pl.UInt32).alias(column)

    def decode(self, column: str) -> pl.Expr:
        """A code column as its strings."""
        return pl.lit(self.values).gather(pl.col(column)).alias(column)

    def codes_of(self, values: pl.Series) -> pl.Series:
        """The code of each of `values`, null for one not among them (by a join: the
        Enum cast `encode` streams builds a million-category table for every query)."""
        codes = pl.DataFrame({"value": self.values}).with_row_index("code")
        return pl.DataFrame({"value": values.cast(pl.String)}).join(
            codes, on="value", how="left", maintain_order="left")["code"]

    def code_of(self, value: str) -> int:
        code = self.values.search_sorted(value)
        if code >= len(self.values) or self.values[code] != value:
            raise KeyError(value)
        return code


@dataclass(frozen=True)
class KeyTypes:
    """The Enum type of each key column after aggregation."""

    work: Codes        # catalogue work ids, unresolved references and NO_BASE
    holder: Codes
    contract: pl.Enum
    term: pl.Enum
    use_type: pl.Enum  # the use types and "" (a no-base term without a use type)
    version: pl.Enum   # split versions (valid_from dates)
    licensee: pl.Enum
    currency: pl.Enum  # the contracts' currencies, and those of balances brought forward
    share: pl.Enum     # the canonical share texts of splits.csv
    status: pl.Enum = STATUS
    reason: pl.Enum = REASON
    right: pl.Enum = lexical_enum(RIGHTS)

    def dtype(self, column: str) -> pl.DataType:
        """The type a key column is stored as."""
        kind = self.of(column)
        return kind.dtype if isinstance(kind, Codes) else kind

    def of(self, column: str) -> pl.Enum | Codes | None:
        return {"work_key": self.work, "work_id": self.work, "holder_id": self.holder,
                "contract_id": self.contract, "term_id": self.term, "use_type": self.use_type,
                "version": self.version, "licensee_id": self.licensee, "currency": self.currency,
                "share": self.share, "status": self.status, "reason": self.reason, "right": self.right}.get(column)


def key_types(work_ids: pl.Series, unresolved: pl.Series, holder_ids, contracts, term_ids,
              splits: pl.DataFrame, licensee_ids, balance_currencies: pl.Series) -> KeyTypes:
    works = pl.concat([work_ids.cast(pl.String), unresolved.cast(pl.String),
                       pl.Series([NO_BASE], dtype=pl.String)]).unique().sort()
    return KeyTypes(
        work=Codes(works),
        holder=Codes(pl.Series(list(holder_ids), dtype=pl.String)),
        contract=lexical_enum(c.contract_id for c in contracts),
        term=lexical_enum(term_ids),
        use_type=lexical_enum([*USE_TYPES, ""]),
        version=pl.Enum(splits["version"].drop_nulls().unique().sort()),
        licensee=lexical_enum(licensee_ids),
        currency=lexical_enum([*(c.currency for c in contracts), *balance_currencies]),
        share=pl.Enum(splits["share"].drop_nulls().unique().sort()),
    )


def encoded(frame: pl.DataFrame | pl.LazyFrame, types: KeyTypes) -> pl.DataFrame | pl.LazyFrame:
    """Every text key column the frame has as its Enum or its codes. A column already
    encoded is left as it is (a code read as text and ranked again would be another value)."""
    schema = frame.collect_schema()
    kinds = {c: kind for c in schema.names() if (kind := types.of(c)) is not None and schema[c] != types.dtype(c)}
    return frame.with_columns(kind.encode(c) if isinstance(kind, Codes) else pl.col(c).cast(kind)
                              for c, kind in kinds.items())


def decoded(frame: pl.DataFrame | pl.LazyFrame, types: KeyTypes,
            enums: bool = False) -> pl.DataFrame | pl.LazyFrame:
    """Enum and code columns back to strings (for outputs); with `enums`, code columns
    only, Enums left as they are for a writer that takes them: CSV writes an Enum as its
    text, Parquet as a dictionary-encoded string."""
    codes = [kind.decode(c) for c in frame.collect_schema().names() if isinstance(kind := types.of(c), Codes)]
    return frame.with_columns(*codes) if enums else frame.with_columns(cs.enum().cast(pl.String), *codes)


def key_sizes(frames: list[pl.DataFrame], columns: list[str]) -> dict[str, int] | None:
    """How many codes each key column can hold: an Enum's categories, or for an unsigned
    integer column (Codes, row indexes) its largest value + 1 over `frames`; None when
    a column is neither."""
    sizes = {}
    schemas = [frame.select(list(dict.fromkeys(columns))).schema for frame in frames]  # not all: see Codes
    for column in columns:
        dtypes = {schema[column] for schema in schemas}
        dtype = dtypes.pop() if len(dtypes) == 1 else None
        if isinstance(dtype, pl.Enum):
            sizes[column] = len(dtype.categories)
        elif dtype in (pl.UInt8, pl.UInt16, pl.UInt32):
            sizes[column] = max((int(frame[column].max() or 0) for frame in frames), default=0) + 1
        else:
            return None
    return sizes


def packed_key(frame: pl.DataFrame, columns: list[str], nulls_last: bool = False,
               sizes: dict[str, int] | None = None) -> pl.Expr | None:
    """One UInt64 that orders rows exactly as sorting by `columns` does (nulls first, or
    last), or None when the columns are not all Enums or codes, or do not fit in 64 bits
    together. `sizes` (key_sizes), when frames are to be packed alike.

    Sorting millions of rows by one integer is several times faster than by six
    columns; each column's code (its lexical rank) gets the bits it needs."""
    sizes = sizes or key_sizes([frame], columns)
    if sizes is None:
        return None
    bits, parts = 0, []
    for column in reversed(columns):
        size = sizes[column]
        code = (pl.col(column).to_physical().cast(pl.UInt64) + 1).fill_null(size + 1 if nulls_last else 0)
        parts.append(code * (1 << bits))
        bits += (size + 1).bit_length()
    return pl.sum_horizontal(parts) if bits <= 64 else None


def sorted_by(frame: pl.DataFrame, columns: list[str], nulls_last: bool = False) -> pl.DataFrame:
    """`frame.sort(columns, nulls_last=nulls_last, maintain_order=True)`, through one packed
    integer key when it fits."""
    key = packed_key(frame, columns, nulls_last)
    if key is None:
        return frame.sort(columns, nulls_last=nulls_last, maintain_order=True)
    if frame.select(key.is_sorted(descending=False)).item():  # linear; level 2's parts come sorted from their join
        return frame
    return frame.sort(key, maintain_order=True)


def grouped(frame: pl.DataFrame, columns: list[str], *aggregations: pl.Expr) -> pl.DataFrame:
    """`frame.group_by(columns).agg(*aggregations)`, grouping on one packed integer when it fits."""
    key = packed_key(frame, columns)
    if key is None:
        return frame.group_by(columns).agg(*aggregations)
    return frame.group_by(key.alias("_key")).agg(pl.col(columns).first(), *aggregations).drop("_key")


def run_sums(frame: pl.DataFrame, columns: list[str], **sums: pl.Expr) -> pl.DataFrame:
    """`frame.group_by(columns, maintain_order=True).agg(value.sum().alias(name) for each of
    `sums`)`, in Int128, for a frame sorted by `columns` (as sorted_by sorts): each run of
    equal keys is summed as the difference of running sums at its last row, with no
    hashing (allocation's usage bases of a 10M-row month took 0.3 CPU seconds against
    0.9). Grouped by hashing when the key does not pack into one integer, or when the
    frame is not sorted after all."""
    key = packed_key(frame, columns)
    if key is None or not frame.select(key.is_sorted()).item():
        return frame.group_by(columns, maintain_order=True).agg(
            value.cast(pl.Int128).sum().alias(name) for name, value in sums.items())
    rows = frame.select(*columns, key.alias("_key"), *(value.cast(pl.Int128).cum_sum().alias(name)
                                                        for name, value in sums.items()))
    last = (pl.col("_key") != pl.col("_key").shift(-1)).fill_null(True)
    return rows.filter(last).select(*columns, *(pl.col(name) - pl.col(name).shift(1, fill_value=0)
                                                for name in sums))


def joined(left: pl.DataFrame, right: pl.DataFrame, on: list[str], how: str = "inner") -> pl.DataFrame:
    """`left.join(right, on=on, how=how, nulls_equal=True)`, on one packed integer when both sides
    have the same Enum key columns. A null key matches a null key."""
    sizes = key_sizes([left, right], on)
    if sizes is None:
        return left.join(right, on=on, how=how, nulls_equal=True, coalesce=True)
    left_key, right_key = packed_key(left, on, sizes=sizes), packed_key(right, on, sizes=sizes)
    if left_key is None:
        return left.join(right, on=on, how=how, nulls_equal=True, coalesce=True)
    left, right = left.with_columns(left_key.alias("_key")), right.with_columns(right_key.alias("_key"))
    if how != "full":
        return left.join(right.drop(on), on="_key", how=how).drop("_key")
    both = left.join(right.rename({c: f"{c}_right" for c in on}), on="_key", how="full", coalesce=True)
    return both.with_columns(pl.coalesce(c, f"{c}_right").alias(c) for c in on).drop(
        "_key", *(f"{c}_right" for c in on))
