"""Dictionary-encoded keys for the frames after aggregation.

Allocation groups, joins and sorts millions of lines by work, holder, contract,
term, use type and split version. As strings those keys are slow to hash and
slower to sort; as `pl.Enum`s whose categories are in lexical order they are
small integers that group and sort as fast as integers, and still sort exactly
as the strings do (the tie-break of rule 5 compares strings by code point).
Exports cast them back to strings, so no output depends on the encoding.

The categories are built per run: work keys include the identifiers of
unresolved works (suspense), which only the usage names.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import polars.selectors as cs

from contracts.vocabulary import RIGHTS, USE_TYPES
from settlement.resolve import SCOPE_REASONS

NO_BASE = "(no allocation base)"  # the work key of a term with nothing to split over
STATUSES = ("accepted", "suspense", "unlicensed")
REASONS = (*SCOPE_REASONS, "no_licence", "opted_out", "no_opt_in", "unknown_work", "no_split", "no_allocation_base")


def lexical_enum(values) -> pl.Enum:
    """An Enum whose category order is the code-point order of its strings (Python's
    and polars' string order), so that sorting by it sorts as the strings."""
    return pl.Enum(sorted({value for value in values if value is not None}))


@dataclass(frozen=True)
class KeyTypes:
    """The Enum type of each key column after aggregation."""

    work: pl.Enum      # catalogue work ids, unresolved references and NO_BASE
    holder: pl.Enum
    contract: pl.Enum
    term: pl.Enum
    use_type: pl.Enum  # the use types and "" (a no-base term without a use type)
    version: pl.Enum   # split versions (valid_from dates)
    licensee: pl.Enum
    currency: pl.Enum  # the contracts' currencies
    share: pl.Enum     # the canonical share texts of splits.csv
    status: pl.Enum = lexical_enum(STATUSES)
    reason: pl.Enum = lexical_enum(REASONS)
    right: pl.Enum = lexical_enum(RIGHTS)

    def of(self, column: str) -> pl.Enum | None:
        return {"work_key": self.work, "work_id": self.work, "holder_id": self.holder,
                "contract_id": self.contract, "term_id": self.term, "use_type": self.use_type,
                "version": self.version, "licensee_id": self.licensee, "currency": self.currency,
                "share": self.share, "status": self.status, "reason": self.reason, "right": self.right}.get(column)


def key_types(work_ids: pl.Series, unresolved: pl.Series, holder_ids, contracts, term_ids,
              splits: pl.DataFrame, licensee_ids) -> KeyTypes:
    works = pl.concat([work_ids.cast(pl.String), unresolved.cast(pl.String),
                       pl.Series([NO_BASE], dtype=pl.String)]).unique().sort()
    return KeyTypes(
        work=pl.Enum(works.drop_nulls()),
        holder=lexical_enum(holder_ids),
        contract=lexical_enum(c.contract_id for c in contracts),
        term=lexical_enum(term_ids),
        use_type=lexical_enum([*USE_TYPES, ""]),
        version=pl.Enum(splits["version"].drop_nulls().unique().sort()),
        licensee=lexical_enum(licensee_ids),
        currency=lexical_enum(c.currency for c in contracts),
        share=pl.Enum(splits["share"].drop_nulls().unique().sort()),
    )


def encoded(frame: pl.DataFrame, types: KeyTypes) -> pl.DataFrame:
    """Cast every key column the frame has to its Enum."""
    return frame.with_columns(pl.col(c).cast(types.of(c)) for c in frame.columns if types.of(c) is not None)


def decoded(frame: pl.DataFrame) -> pl.DataFrame:
    """Enum columns back to strings (for outputs)."""
    return frame.with_columns(cs.enum().cast(pl.String))


def packed_key(frame: pl.DataFrame, columns: list[str], nulls_last: bool = False) -> pl.Expr | None:
    """One UInt64 that orders rows exactly as sorting by `columns` does (nulls first, or
    last), or None when the columns are not all Enums or do not fit in 64 bits together.

    Sorting millions of rows by one integer is several times faster than by six
    columns; each Enum's code (its lexical rank) gets the bits it needs."""
    bits, parts = 0, []
    for column in reversed(columns):
        dtype = frame.schema[column]
        if not isinstance(dtype, pl.Enum):
            return None
        size = len(dtype.categories)
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
    return frame.sort(key, maintain_order=True)


def grouped(frame: pl.DataFrame, columns: list[str], *aggregations: pl.Expr) -> pl.DataFrame:
    """`frame.group_by(columns).agg(*aggregations)`, grouping on one packed integer when it fits."""
    key = packed_key(frame, columns)
    if key is None:
        return frame.group_by(columns).agg(*aggregations)
    return frame.group_by(key.alias("_key")).agg(pl.col(columns).first(), *aggregations).drop("_key")


def joined(left: pl.DataFrame, right: pl.DataFrame, on: list[str], how: str = "inner") -> pl.DataFrame:
    """`left.join(right, on=on, how=how, nulls_equal=True)`, on one packed integer when both sides
    have the same Enum key columns. A null key matches a null key."""
    left_key, right_key = packed_key(left, on), packed_key(right, on)
    same = all(left.schema[c] == right.schema[c] for c in on)
    if left_key is None or right_key is None or not same:
        return left.join(right, on=on, how=how, nulls_equal=True, coalesce=True)
    left, right = left.with_columns(left_key.alias("_key")), right.with_columns(right_key.alias("_key"))
    if how != "full":
        return left.join(right.drop(on), on="_key", how=how).drop("_key")
    both = left.join(right.rename({c: f"{c}_right" for c in on}), on="_key", how="full", coalesce=True)
    return both.with_columns(pl.coalesce(c, f"{c}_right").alias(c) for c in on).drop(
        "_key", *(f"{c}_right" for c in on))
