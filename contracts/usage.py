"""The usage log v1 record: the published shape of one usage row.

Intake validates rows as frames (settlement/intake.py), not through this model;
this model is what `settle schema usage` prints for AI firms to build against.
"""

from __future__ import annotations

from pydantic import Field

from contracts.parties import Model
from contracts.vocabulary import Unit, UseType

# A usage log's format is known by its name. The reader chooses Parquet and JSON Lines by these
# lower-case suffixes and reads any other file as CSV, gzip and zstd known by their first bytes,
# so a CSV's suffix may be in any case.
PARQUET_SUFFIX = ".parquet"
JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")
CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.zst")


def usage_format(name: str) -> str | None:
    """"parquet", "jsonl" or "csv" for a usage log's file name; None for a name that is none of them."""
    if name.endswith(PARQUET_SUFFIX):
        return "parquet"
    if name.endswith(JSON_LINES_SUFFIXES):
        return "jsonl"
    return "csv" if name.lower().endswith(CSV_SUFFIXES) else None


class UsageRecord(Model):
    """One line of an AI firm's usage log, version 1."""

    record_id: str = Field(min_length=1, description="unique per licensee; re-sent rows are deduplicated")
    licensee_id: str = Field(min_length=1)
    model_id: str = Field(min_length=1)
    work_ref: str = Field(description="scheme-prefixed identifier: ISRC:, ISWC:, ISBN:, DOI:, ISCC:, URL:, WORK:")
    use_type: UseType
    units: int = Field(ge=0, le=999_999_999_999_999_999)
    unit: Unit
    occurred_at: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|\+00:00)$",
                             description="RFC 3339 timestamp in UTC")
    territory: str | None = Field(default=None, pattern=r"^[A-Za-z]{2}$")
    output_id: str | None = None
    attribution: str | None = Field(default=None, pattern=r"^(0(\.\d{1,9})?|1(\.0{1,9})?|\.\d{1,9})$",
                                    description="attribution share of one output, a decimal in [0, 1]")
