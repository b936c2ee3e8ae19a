"""The ledger: a run's level-1 parts and holder lines, made in bounded memory.

Level 1 and level 2 split a contract's amounts over that contract's own usage,
so they run one contract at a time, on that contract's priced sums
(`PricedByContract`, written per contract in one streaming pass). Commission
and withholding are per holder across contracts (withholding is rounded once
on a holder's total and spread over all of the holder's lines), so they run
per partition of holders: contiguous ranges of holders with about
LINE_PARTITION_ROWS lines each. Every
piece is written to the ledger's folder before the next is made, so a run holds
one contract's or one partition's lines in memory, whatever the size of the
month (at 100M usage rows, allocating every contract at once needed more than
24 GB).

Conservation is checked on each piece as it is made: a contract's terms and
works, a partition's lines. What disagrees is kept in `problems`; the run
raises on it at the end (conservation.assert_conserved).

The files, which exports read back in their documented orders:
- `level1/NNNNNN.parquet`: one per contract, in contract order, each sorted by
  ALLOCATION_KEY (nulls last), so that read in file order level 1 is sorted;
- `lines/NNNNNN.parquet`: one per contract, in (licensee, contract) order, each
  sorted by LINE_KEY, so that read in file order the lines are in line order;
- `lines/NNNNNN-PPPPPP.parquet`: the lines of contract NNNNNN in partition PPPPPP,
  sorted by LINE_KEY, so that a partition's pieces read in (licensee, contract)
  order hold every line of its holders, each holder's in line order (statements
  read them: filtering the whole lines by a range of holders read all of them,
  once per partition).

Both steps that take a partition of holders read only that partition's rows. The
level-2 lines of a contract (`gross/NNNNNN.parquet`) are written sorted by holder in
row groups of GROSS_ROW_GROUP rows, whose statistics let the reader skip the row
groups outside a range (11 partitions of 55M lines at 100M usage rows each read
every row before).

Work and holder keys are stored as their codes (keys.Codes): a range of holder
codes is a range of holders in lexical order.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import polars as pl

from settlement import allocate, distribute, keys, price, resolve
from settlement.conservation import check_lines, check_terms, check_works, check_written
from settlement.keys import KeyTypes, decoded, encoded, grouped, sorted_by
from settlement.money import MONEY
from settlement.spill import SPILL, written_partitions

LINE_PARTITION_ROWS = 5_000_000  # holder lines given commission and withholding at once
GROSS_ROW_GROUP = 65_536  # rows per row group of the level-2 lines: what a range of holders skips by
ALLOCATION_KEY = ["contract_id", "term_id", "work_key", "use_type", "version"]
SUSPENSE_KEY = ["contract_id", "work_key", "use_type", "reason"]
LINE_KEY = distribute.LINE_KEY


def level1_schema(types: KeyTypes) -> dict:
    return {**allocate.base_schema(types), "amount_minor": MONEY}


def gross_schema(types: KeyTypes) -> dict:
    """A holder line before commission and withholding, as level 2 makes it."""
    return {column: types.dtype(column) for column in ("licensee_id", "contract_id", "work_id", "use_type",
                                                        "version", "holder_id", "right", "share", "currency")
            } | {"units": pl.Int64, "gross": MONEY}


def line_schema(types: KeyTypes) -> dict:
    return {**gross_schema(types), "commission": MONEY, "withholding": MONEY, "net": MONEY}


def scanned(files: list[Path], schema: dict) -> pl.LazyFrame:
    """The files read in their order (an empty frame of `schema` when there are none)."""
    return pl.scan_parquet(files) if files else pl.LazyFrame(schema=schema)


@dataclass(frozen=True)
class Ledger:
    """A run's level-1 parts and holder lines, on disk (see the module's docstring)."""

    folder: tempfile.TemporaryDirectory  # deleted with the ledger
    types: KeyTypes
    level1_files: list[Path]
    line_files: list[Path]
    holder_ranges: list[tuple[int, int]]  # holder codes (first, last) of each partition, in holder order
    holder_files: list[list[Path]]        # each partition's lines, per contract in (licensee, contract) order
    line_count: int
    suspense: pl.DataFrame  # level-1 suspense amounts per contract, work key, use type and reason
    balances: pl.DataFrame
    problems: list[str]

    @property
    def level1(self) -> pl.LazyFrame:
        """Level 1, sorted by ALLOCATION_KEY."""
        return scanned(self.level1_files, level1_schema(self.types))

    @property
    def lines(self) -> pl.LazyFrame:
        """The holder lines, sorted by LINE_KEY."""
        return scanned(self.line_files, line_schema(self.types))

    def holder_partitions(self) -> Iterator[pl.DataFrame]:
        """The lines of each partition of holders, partitions in holder order: every line of
        its holders, each holder's in line order."""
        for files in self.holder_files:
            yield pl.read_parquet(files) if files else pl.DataFrame(schema=line_schema(self.types))


@dataclass(frozen=True)
class PricedByContract:
    """The priced sums, encoded by the run's key types, in files per contract."""

    files: dict[str, list[Path]]
    schema: pl.Schema

    @staticmethod
    def written(priced: list[Path], work_keys: pl.Series, types: KeyTypes, folder: Path) -> "PricedByContract":
        """`priced` (files of run.priced_groups, whose work codes `work_keys` names) encoded
        and written again per contract, in one streaming pass: each work code becomes its
        work key's code by a gather, the Enums become the run's."""
        work = pl.lit(types.work.codes_of(work_keys)).gather(pl.col("work")).alias("work_key")
        scan = encoded(pl.scan_parquet(priced).with_columns(work).select(
            "contract_id", "licensee_id", "work_key", pl.when("resolved").then(pl.col("work_key")).alias("work_id"),
            pl.exclude("contract_id", "licensee_id", "work_key", "work", "resolved")), types)
        names = types.contract.categories.to_list()
        parts = written_partitions(scan, pl.col("contract_id").to_physical(), folder)
        return PricedByContract({names[code]: files for code, files in parts.items()}, scan.collect_schema())

    def of(self, contract_id: str) -> pl.DataFrame:
        files = self.files.get(contract_id)
        return pl.read_parquet(files) if files else pl.DataFrame(schema=self.schema)


def make_ledger(inputs, period, priced: PricedByContract, charges: list[price.ContractCharge],
                charge_rows: pl.DataFrame, types: KeyTypes) -> Ledger:
    """Allocate every charged term and distribute every holder line (see the module's docstring).
    `charge_rows` (`charges` as a frame) are encoded by `types`."""
    folder = tempfile.TemporaryDirectory(prefix="settle-ledger-")
    root = Path(folder.name)
    contracts = sorted(charges, key=lambda c: c.contract.contract_id)
    allocation = allocated_by_contract(inputs, period, contracts, charge_rows, priced, types, root)
    (root / "lines").mkdir()
    lines = distributed(allocation.gross_files, [c.contract.contract_id for c in contracts], inputs, types,
                        root / "lines")
    for path in allocation.gross_files:
        path.unlink()
    in_line_order = sorted(range(len(contracts)), key=lambda i: (contracts[i].contract.licensee_id,
                                                                 contracts[i].contract.contract_id))
    line_files = [sorted_lines(root / "lines", index, pieces) for index in in_line_order
                  if (pieces := [part[index] for part in lines.pieces if index in part])]
    holder_files = [[part[index] for index in in_line_order if index in part] for part in lines.pieces]
    written = check_written(scanned(line_files, line_schema(types)), lines.count, lines.totals,
                            scanned(allocation.level1_files, level1_schema(types)), charge_rows)
    return Ledger(folder, types, allocation.level1_files, line_files, lines.ranges, holder_files, lines.count,
                  allocation.suspense,
                  distribute.balances(lines.totals, inputs.holders, inputs.policy, types),
                  allocation.problems + lines.problems + written)


@dataclass(frozen=True)
class ContractAllocation:
    level1_files: list[Path]  # per contract, in contract order, sorted by ALLOCATION_KEY
    gross_files: list[Path]   # per contract: its holder lines before commission and withholding
    suspense: pl.DataFrame    # level-1 suspense amounts per contract, work key, use type and reason
    problems: list[str]


def allocated_by_contract(inputs, period, contracts: list[price.ContractCharge], charge_rows: pl.DataFrame,
                          priced: PricedByContract, types: KeyTypes, root: Path) -> ContractAllocation:
    """Level 1 and level 2 of each contract (in contract order), checked and written to
    `root/level1` and `root/gross` before the next contract is read."""
    for name in ("level1", "gross"):
        (root / name).mkdir()
    holders = allocate.SplitHolders.of(keys.encoded(inputs.catalogue.splits, types), types)
    level1_files, gross_files, suspense, problems = [], [], [], []
    for index, charge in enumerate(contracts):
        terms = charge_rows.filter(pl.col("contract_id") == charge.contract.contract_id)
        level1, gross, unequal = contract_parts(inputs, period, charge, terms, priced.of(charge.contract.contract_id),
                                                holders, types)
        problems += check_terms(terms, level1) + unequal
        suspense.append(grouped(level1.filter(pl.col("status") == "suspense"), SUSPENSE_KEY,
                                pl.col("amount_minor").sum()))
        level1_files.append(root / "level1" / f"{index:06d}.parquet")
        sorted_by(level1, ALLOCATION_KEY, nulls_last=True).write_parquet(level1_files[-1], **SPILL)
        gross_files.append(root / "gross" / f"{index:06d}.parquet")
        gross.sort("holder_id", maintain_order=True).write_parquet(gross_files[-1], row_group_size=GROSS_ROW_GROUP,
                                                                   **SPILL)
    schema = {**{c: types.dtype(c) for c in SUSPENSE_KEY}, "amount_minor": MONEY}
    return ContractAllocation(level1_files, gross_files, concatenated(suspense, schema), problems)


def concatenated(frames: list[pl.DataFrame], schema: dict) -> pl.DataFrame:
    return pl.concat(frames) if frames else pl.DataFrame(schema=schema)


def contract_parts(inputs, period, charge: price.ContractCharge, terms: pl.DataFrame, own: pl.DataFrame,
                   holders: allocate.SplitHolders, types: KeyTypes) -> tuple[pl.DataFrame, pl.DataFrame, list[str]]:
    """One contract's level-1 parts, its holder lines before commission (gross, `gross_schema`)
    and what disagrees between its work amounts and their holder parts (check_works).
    `own` (the contract's priced sums) is encoded by `types`."""
    contract = charge.contract
    covered, used = works_to_count(inputs, period, contract, own, types)
    level1 = allocate.level_one(terms, {contract.contract_id: contract}, own, covered, used, types)
    amounts = allocate.work_amounts(level1, own)
    level2 = allocate.level_two(amounts, holders)
    return level1, holder_lines(level2, contract, types), check_works(amounts, level2, types)


def works_to_count(inputs, period, contract, own: pl.DataFrame, types: KeyTypes) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The contract's covered and used works, found only for the terms that count them
    (per covered work, per used work): both read the catalogue's splits."""
    bases = {term.basis for term in contract.terms if hasattr(term, "basis")}
    catalogue, found = inputs.catalogue, []
    for basis, works in (("per_covered_work", lambda: resolve.covered_works(
                              [contract], catalogue, inputs.policy.consent_required, period)),
                         ("per_used_work", lambda: resolve.used_works(
                              decoded(own.select("contract_id", "work_key", "work_id"), types), catalogue, period))):
        found.append(encoded(works(), types) if basis in bases else pl.DataFrame(schema={
            column: types.dtype(column) for column in ("contract_id", "work_key", "version", "status", "reason")}))
    return found[0], found[1]


def holder_lines(level2: pl.DataFrame, contract, types: KeyTypes) -> pl.DataFrame:
    """Level 2's holder parts with the contract's licensee and currency (`gross_schema`)."""
    lines = level2.with_columns(pl.lit(contract.licensee_id).cast(types.licensee).alias("licensee_id"),
                                pl.lit(contract.currency).cast(types.currency).alias("currency"))
    return lines.select(pl.col(name).cast(dtype) for name, dtype in gross_schema(types).items())


def holder_ranges(gross: pl.LazyFrame) -> list[tuple[int, int]]:
    """Contiguous ranges of holder codes with about LINE_PARTITION_ROWS lines each: a
    holder is in the range its first line would fall in, so a holder's lines are never
    split and a range holds at most LINE_PARTITION_ROWS + its largest holder's lines."""
    counts = gross.group_by("holder_id").agg(pl.len().alias("lines")).sort("holder_id").collect()
    before = counts["lines"].cum_sum() - counts["lines"]
    ranges = (counts.with_columns((before // LINE_PARTITION_ROWS).alias("_part"))
              .group_by("_part").agg(pl.col("holder_id").min().alias("first"),
                                     pl.col("holder_id").max().alias("last"))
              .sort("_part"))
    return list(ranges.select("first", "last").iter_rows())


@dataclass(frozen=True)
class Distribution:
    ranges: list[tuple[int, int]]  # holder codes (first, last) of each partition
    pieces: list[dict[int, Path]]  # per partition, its lines' file by the contract's number
    totals: pl.DataFrame           # per holder and currency: gross, commission, withholding, net
    count: int                     # lines
    problems: list[str]


def distributed(gross_files: list[Path], contract_ids: list[str], inputs, types: KeyTypes,
                folder: Path) -> Distribution:
    """Commission, withholding and net on every line, one partition of holders at a time.
    Each partition's lines are written per contract, sorted by LINE_KEY, as
    `NNNNNN-PPPPPP.parquet` (the contract's number in `contract_ids`, the partition)."""
    gross = scanned(gross_files, gross_schema(types))
    number = {contract_id: index for index, contract_id in enumerate(contract_ids)}
    ranges, pieces, totals, count, problems = holder_ranges(gross), [], [], 0, []
    rates = distribute.Rates.of(inputs.policy, inputs.holders, types)
    for part, (first, last) in enumerate(ranges):
        lines = distribute.distribute(gross.filter(pl.col("holder_id").is_between(first, last)).collect(), rates)
        problems += check_lines(lines)
        totals.append(distribute.holder_totals(lines))
        count += lines.height
        pieces.append({})
        for (contract_id,), piece in sorted_by(lines, LINE_KEY).partition_by("contract_id", as_dict=True).items():
            path = pieces[-1][number[contract_id]] = folder / f"{number[contract_id]:06d}-{part:06d}.parquet"
            piece.write_parquet(path, **SPILL)
    schema = line_schema(types)
    return Distribution(ranges, pieces, concatenated(totals, {c: schema[c] for c in (
        "holder_id", "currency", "gross", "commission", "withholding", "net")}), count, problems)


def sorted_lines(folder: Path, index: int, pieces: list[Path]) -> Path:
    """Contract `index`'s lines, from its pieces in every partition (which stay, for the
    statements), sorted by LINE_KEY into one file."""
    target = folder / f"{index:06d}.parquet"
    sorted_by(pl.read_parquet(pieces), LINE_KEY).write_parquet(target, **SPILL)
    return target
