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

from contracts.vocabulary import USE_TYPES

NO_BASE = "(no allocation base)"  # the work key of a term with nothing to split over


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

    def of(self, column: str) -> pl.Enum | None:
        return {"work_key": self.work, "work_id": self.work, "holder_id": self.holder,
                "contract_id": self.contract, "term_id": self.term, "use_type": self.use_type,
                "version": self.version, "licensee_id": self.licensee}.get(column)


def key_types(work_ids: pl.Series, unresolved: pl.Series, holder_ids, contracts, term_ids,
              versions: pl.Series, licensee_ids) -> KeyTypes:
    works = pl.concat([work_ids.cast(pl.String), unresolved.cast(pl.String),
                       pl.Series([NO_BASE], dtype=pl.String)]).unique().sort()
    return KeyTypes(
        work=pl.Enum(works.drop_nulls()),
        holder=lexical_enum(holder_ids),
        contract=lexical_enum(c.contract_id for c in contracts),
        term=lexical_enum(term_ids),
        use_type=lexical_enum([*USE_TYPES, ""]),
        version=pl.Enum(versions.drop_nulls().unique().sort()),
        licensee=lexical_enum(licensee_ids),
    )


def encoded(frame: pl.DataFrame, types: KeyTypes) -> pl.DataFrame:
    """Cast every key column the frame has to its Enum."""
    return frame.with_columns(pl.col(c).cast(types.of(c)) for c in frame.columns if types.of(c) is not None)


def decoded(frame: pl.DataFrame) -> pl.DataFrame:
    """Enum columns back to strings (for outputs)."""
    return frame.with_columns(cs.enum().cast(pl.String))
