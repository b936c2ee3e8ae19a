"""A run's temporary files: how they are written, and frames written in partitions.

Spill files are read back once or twice by the same run, so they favour speed
over size: LZ4, and the validated rows uncompressed; and none has statistics,
which no read of them uses (each is read whole, or filtered on a column it is
not sorted by)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

# without statistics, writing a 10M-row month's lines and level 1 (21.2M rows) took 2.21-2.22 CPU
# seconds against 2.45-2.55; uncompressed, 1.71-1.73 but four times the bytes, and no less wall time
SPILL = {"compression": "lz4", "statistics": False}
# The validated usage rows, the largest spill (7 GB at 100M rows): uncompressed and without
# statistics, which no read of them uses, validation took 10% less time than with LZ4
ROWS_SPILL = {"compression": "uncompressed", "statistics": False}


def written_partitions(frame: pl.LazyFrame, partition: pl.Expr, folder: Path) -> dict[int, list[Path]]:
    """`frame` written to `folder` in one streaming pass, partitioned by the integer
    `partition`; the files of each partition, by its number (a partition no row fell in
    has none)."""
    frame.with_columns(partition.alias("_part")).sink_parquet(
        pl.PartitionBy(folder, key="_part", include_key=False), mkdir=True, **SPILL)
    if not folder.exists():
        return {}
    return {int(part.name.split("=", 1)[1]): sorted(part.glob("*.parquet")) for part in sorted(folder.iterdir())}
