"""The ledger: a run's level-1 parts and holder lines, made in bounded memory.

Level 1 and level 2 split a contract's amounts over that contract's own usage,
so they run per contract, on that contract's priced sums (`PricedByContract`,
written per contract in one streaming pass), two contracts at a time; so does
commission, which is per line. Withholding is per holder across contracts: it
is rounded once on a holder's total after commission and spread over all of the
holder's lines. The totals are summed as the contracts are allocated; the
spread then reads only the lines of holders who owe withholding, in ranges of
holders with about LINE_PARTITION_ROWS lines each, and each contract's lines
are finished in a last pass. Every piece is written to the ledger's folder
before the next is made, so a run holds two contracts' or one range's lines in
memory, whatever the size of the month (at 100M usage rows, allocating every
contract at once needed more than 24 GB).

Conservation is checked on each piece as it is made: a contract's terms, works
and lines. What disagrees is kept in `problems`; the run raises on it at the
end (conservation.assert_conserved).

The files, which exports read back in their documented orders:
- `level1/NNNNNN.parquet`: one per contract, in contract order, each sorted by
  ALLOCATION_KEY (nulls last), so that read in file order level 1 is sorted;
- `lines/NNNNNN.parquet`: one per contract, NNNNNN its place in (licensee, contract)
  order, each sorted by LINE_KEY, so that read in file order the lines are in line order;
- `lines/NNNNNN-PPPPPP.parquet`: the lines of contract NNNNNN in range PPPPPP of
  holders (ranges of about LINE_PARTITION_ROWS lines), sorted by LINE_KEY, so that
  a range's pieces read in (licensee, contract) order hold every line of its
  holders, each holder's in line order (statements read them: filtering the whole
  lines by a range of holders read all of them, once per range);
- `gross/NNNNNN.parquet` (NNNNNN in contract order): a contract's lines before
  withholding, and `lines/withholding-NNNNNN-PPPPPP.parquet` (NNNNNN in line order):
  the withholding of its lines whose holders, in range PPPPPP of those who owe some,
  owe it; both deleted once the contract's lines are finished.

A contract's lines come out of level 2 in LINE_KEY order, because its work amounts
are sorted by work and a work's holder parts by holder: they are written once, in
the order every later step reads them (sorting them by holder for the ranges, then
by line key per range, then again per contract, took 13 s of a 10M-row month).

Work and holder keys are stored as their codes (keys.Codes): a range of holder
codes is a range of holders in lexical order.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import polars as pl

from settlement import allocate, distribute, keys, price, resolve
from settlement.conservation import check_lines, check_terms, check_works, check_written
from settlement.keys import KeyTypes, decoded, encoded, grouped, sorted_by
from settlement.money import MONEY
from settlement.progress import SILENT, Progress
from settlement.spill import SPILL, written_partitions

LINE_PARTITION_ROWS = 5_000_000  # lines per range of holders: withholding's spread and the statements
# contracts allocated at once: one contract's steps use less than the two cores (1.4 of them on average
# for a 10M-row month), and contracts are independent until withholding
ALLOCATION_THREADS = 2
# a contract with more priced rows than this is allocated alone, before the others: at 100M rows
# level 1 of the largest contract (4M priced rows) took 2.4 GiB, and beside the next one 3.2 GiB
SHARED_CONTRACT_ROWS = 2_000_000
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


def line_columns(types: KeyTypes) -> list[str]:
    return list(line_schema(types))


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

    def rows(self, contract_id: str) -> int:
        """The contract's priced rows, from its files' metadata."""
        files = self.files.get(contract_id)
        return pl.scan_parquet(files).select(pl.len()).collect().item() if files else 0

    def of(self, contract_id: str) -> pl.DataFrame:
        files = self.files.get(contract_id)
        return pl.read_parquet(files) if files else pl.DataFrame(schema=self.schema)


def make_ledger(inputs, period, priced: PricedByContract, charges: list[price.ContractCharge],
                charge_rows: pl.DataFrame, types: KeyTypes, progress: Progress = SILENT) -> Ledger:
    """Allocate every charged term and distribute every holder line (see the module's docstring).
    `charge_rows` (`charges` as a frame) are encoded by `types`; `progress` is told each
    stage and each contract done."""
    folder = tempfile.TemporaryDirectory(prefix="settle-ledger-")
    root = Path(folder.name)
    contracts = sorted(charges, key=lambda c: c.contract.contract_id)
    rates = distribute.Rates.of(inputs.policy, inputs.holders, types)
    progress.stage("allocating each contract's terms to holders")
    allocation = allocated_by_contract(inputs, period, contracts, charge_rows, priced, types, rates, root, progress)
    progress.stage("withholding and net on every line")
    in_line_order = sorted(range(len(contracts)), key=lambda i: (contracts[i].contract.licensee_id,
                                                                 contracts[i].contract.contract_id))
    lines = distributed([allocation.gross_files[i] for i in in_line_order], allocation.holder_sums, rates,
                        root / "lines", progress)
    written = check_written(scanned(lines.files, line_schema(types)), lines.count, lines.totals,
                            scanned(allocation.level1_files, level1_schema(types)), charge_rows)
    return Ledger(folder, types, allocation.level1_files, lines.files, lines.ranges, lines.pieces, lines.count,
                  allocation.suspense,
                  distribute.balances(lines.totals, inputs.holders, inputs.policy, types, inputs.brought_forward),
                  allocation.problems + lines.problems + written)


@dataclass(frozen=True)
class ContractAllocation:
    level1_files: list[Path]  # per contract, in contract order, sorted by ALLOCATION_KEY
    gross_files: list[Path]   # per contract: its holder lines with commission, sorted by LINE_KEY
    holder_sums: pl.DataFrame # per holder and currency: lines and their total after commission
    suspense: pl.DataFrame    # level-1 suspense amounts per contract, work key, use type and reason
    problems: list[str]


def allocated_by_contract(inputs, period, contracts: list[price.ContractCharge], charge_rows: pl.DataFrame,
                          priced: PricedByContract, types: KeyTypes, rates: distribute.Rates,
                          root: Path, progress: Progress = SILENT) -> ContractAllocation:
    """Level 1, level 2 and commission of each contract (`allocated_contract`), written to
    `root/level1` and `root/gross`: contracts with more than SHARED_CONTRACT_ROWS priced
    rows one at a time, then the others ALLOCATION_THREADS at a time, the largest first;
    gathered in contract order. `progress` is told each contract done."""
    for name in ("level1", "gross"):
        (root / name).mkdir()
    holders = allocate.SplitHolders.of(keys.encoded(inputs.catalogue.splits, types), types)
    allocated = lambda index: allocated_contract(
        index, contracts[index], charge_rows.filter(pl.col("contract_id") == contracts[index].contract.contract_id),
        inputs, period, priced, holders, types, rates, root)
    rows = [priced.rows(charge.contract.contract_id) for charge in contracts]
    large = [index for index in range(len(contracts)) if rows[index] > SHARED_CONTRACT_ROWS]
    # the largest first, so that the last contracts to start are the shortest and neither thread
    # is left alone long at the end (results do not depend on the order: each has its own files)
    shared = sorted((index for index in range(len(contracts)) if rows[index] <= SHARED_CONTRACT_ROWS),
                    key=lambda index: -rows[index])
    done = {}

    def finished(index: int, allocation: AllocatedContract) -> None:
        done[index] = allocation
        progress.step(len(done), len(contracts), "contracts")

    for index in large:
        finished(index, allocated(index))
    with ThreadPoolExecutor(ALLOCATION_THREADS) as pool:
        for index, allocation in zip(shared, pool.map(allocated, shared)):
            finished(index, allocation)
    done = [done[index] for index in range(len(contracts))]
    schema = {**{c: types.dtype(c) for c in SUSPENSE_KEY}, "amount_minor": MONEY}
    sums_schema = {"holder_id": types.holder.dtype, "currency": types.currency, "after_commission": MONEY,
                   "lines": pl.Int64}
    holder_sums = concatenated([c.sums for c in done], sums_schema).group_by("holder_id", "currency").agg(
        pl.col("after_commission", "lines").sum())
    return ContractAllocation([c.level1_file for c in done], [c.gross_file for c in done], holder_sums,
                              concatenated([c.suspense for c in done], schema),
                              [problem for c in done for problem in c.problems])


@dataclass(frozen=True)
class AllocatedContract:
    level1_file: Path
    gross_file: Path
    sums: pl.DataFrame      # its lines' distribute.holder_sums
    suspense: pl.DataFrame  # its level-1 suspense amounts per work key, use type and reason
    problems: list[str]


def allocated_contract(index: int, charge: price.ContractCharge, terms: pl.DataFrame, inputs, period,
                       priced: PricedByContract, holders: allocate.SplitHolders, types: KeyTypes,
                       rates: distribute.Rates, root: Path) -> AllocatedContract:
    """One contract's level 1 (written sorted by ALLOCATION_KEY) and holder lines with
    commission (written in LINE_KEY order, which level 2 makes them in), checked; its
    `index` (in contract order) names its files. `terms`: its rows of the charges."""
    level1, gross, unequal = contract_parts(inputs, period, charge, terms, priced.of(charge.contract.contract_id),
                                            holders, types)
    problems = check_terms(terms, level1) + unequal
    suspense = grouped(level1.filter(pl.col("status") == "suspense"), SUSPENSE_KEY, pl.col("amount_minor").sum())
    level1_file = root / "level1" / f"{index:06d}.parquet"
    sorted_by(level1, ALLOCATION_KEY, nulls_last=True).write_parquet(level1_file, **SPILL)
    del level1
    lines = sorted_by(distribute.with_commission(gross, rates.commission), LINE_KEY)
    gross_file = root / "gross" / f"{index:06d}.parquet"
    lines.write_parquet(gross_file, **SPILL)
    return AllocatedContract(level1_file, gross_file, distribute.holder_sums(lines), suspense, problems)


def concatenated(frames: list[pl.DataFrame], schema: dict) -> pl.DataFrame:
    return pl.concat(frames) if frames else pl.DataFrame(schema=schema)


def contract_parts(inputs, period, charge: price.ContractCharge, terms: pl.DataFrame, own: pl.DataFrame,
                   holders: allocate.SplitHolders, types: KeyTypes) -> tuple[pl.DataFrame, pl.DataFrame, list[str]]:
    """One contract's level-1 parts, its holder lines before commission (gross, `gross_schema`)
    and what disagrees between its work amounts and their holder parts (check_works).
    `own` (the contract's priced sums) is encoded by `types`."""
    contract = charge.contract
    own = sorted_by(own, allocate.BASE_KEY)  # as level 1 and work_amounts take it
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


def holder_ranges(counts: pl.DataFrame) -> list[tuple[int, int]]:
    """Contiguous ranges of holder codes with about LINE_PARTITION_ROWS lines each, from
    `counts` (holder_id, lines; a holder once): a holder is in the range its first line
    would fall in, so a holder's lines are never split and a range holds at most
    LINE_PARTITION_ROWS + its largest holder's lines."""
    counts = counts.sort("holder_id")
    before = counts["lines"].cum_sum() - counts["lines"]
    ranges = (counts.with_columns((before // LINE_PARTITION_ROWS).alias("_part"))
              .group_by("_part").agg(pl.col("holder_id").min().alias("first"),
                                     pl.col("holder_id").max().alias("last"))
              .sort("_part"))
    return list(ranges.select("first", "last").iter_rows())


@dataclass(frozen=True)
class Distribution:
    files: list[Path]              # per contract, in the order given: its lines, sorted by LINE_KEY
    ranges: list[tuple[int, int]]  # holder codes (first, last) of each range
    pieces: list[list[Path]]       # per range, its lines per contract, in the order given
    totals: pl.DataFrame           # per holder and currency: gross, commission, withholding, net
    count: int                     # lines
    problems: list[str]


def distributed(gross_files: list[Path], holder_sums: pl.DataFrame, rates: distribute.Rates,
                folder: Path, progress: Progress = SILENT) -> Distribution:
    """Withholding and net on every line of `gross_files` (per contract, with commission,
    sorted by LINE_KEY; `holder_sums` over all of them). Each contract's lines are written
    to `folder` as NNNNNN.parquet (NNNNNN: its place in `gross_files`), and its lines in
    each range of holders as NNNNNN-PPPPPP.parquet. `progress` is told each contract done."""
    folder.mkdir()
    owed = distribute.withholding_totals(holder_sums, rates.withholding).filter(pl.col("withholding_total") > 0)
    spread = withholding_spread(gross_files, owed, folder)
    ranges = holder_ranges(holder_sums.group_by("holder_id").agg(pl.col("lines").sum()))
    starts = pl.Series([first for first, _ in ranges], dtype=holder_sums["holder_id"].dtype)
    files, pieces, totals, count, problems = [], [[] for _ in ranges], [], 0, []
    for index, path in enumerate(gross_files):
        lines = finished(pl.read_parquet(path), spread.get(index, []))
        for done in [path, *spread.get(index, [])]:
            done.unlink()
        problems += check_lines(lines)
        totals.append(distribute.holder_totals(lines))
        count += lines.height
        files.append(written_lines(lines, folder / f"{index:06d}.parquet"))
        part = (starts.search_sorted(lines["holder_id"], side="right") - 1).alias("_range")
        for (number,), piece in lines.with_columns(part).partition_by("_range", as_dict=True).items():
            pieces[number].append(folder / f"{index:06d}-{number:06d}.parquet")
            piece.drop("_range").write_parquet(pieces[number][-1], **SPILL)
        progress.step(index + 1, len(gross_files), "contracts")
    schema = {"holder_id": holder_sums["holder_id"].dtype, "currency": holder_sums["currency"].dtype,
              **{amount: MONEY for amount in ("gross", "commission", "withholding", "net")}}
    totals = concatenated(totals, schema).group_by("holder_id", "currency").agg(
        pl.exclude("holder_id", "currency").sum())
    return Distribution(files, ranges, pieces, totals, count, problems)


def withholding_spread(gross_files: list[Path], owed: pl.DataFrame, folder: Path) -> dict[int, list[Path]]:
    """Each line's withholding where its holder owes some (`owed`: withholding_totals
    > 0, with the holder's lines), spread over the holder's lines in every contract, a
    range of such holders at a time. Returns per contract (its index in `gross_files`)
    the files of its withheld lines: their row in its file (`_row`) and `withholding`."""
    if owed.height == 0:
        return {}
    lines = pl.concat([pl.scan_parquet(path).with_row_index("_row").with_columns(
        pl.lit(index, dtype=pl.UInt32).alias("_contract")) for index, path in enumerate(gross_files)])
    found: dict[int, list[Path]] = {}
    for part, (first, last) in enumerate(holder_ranges(owed.group_by("holder_id").agg(pl.col("lines").sum()))):
        holders = owed.filter(pl.col("holder_id").is_between(first, last))
        taxed = lines.filter(pl.col("holder_id").is_in(holders["holder_id"].implode())).collect()
        spread = distribute.spread_withholding(taxed, holders.select("holder_id", "currency", "withholding_total"))
        for (contract,), rows in spread.select("_contract", "_row", "withholding").partition_by(
                "_contract", as_dict=True).items():
            found.setdefault(contract, []).append(folder / f"withholding-{contract:06d}-{part:06d}.parquet")
            rows.drop("_contract").write_parquet(found[contract][-1], **SPILL)
    return found


def finished(lines: pl.DataFrame, withheld: list[Path]) -> pl.DataFrame:
    """A contract's lines with commission, with withholding (`withheld`: files of its lines'
    rows and withholding, none for lines whose holder owes none) and net."""
    withholding = pl.zeros(lines.height, dtype=MONEY, eager=True)
    if withheld:
        rows = pl.read_parquet(withheld)
        withholding = withholding.scatter(rows["_row"], rows["withholding"])
    return distribute.with_net(lines, withholding)


def written_lines(lines: pl.DataFrame, path: Path) -> Path:
    """A contract's finished lines, written to `path`."""
    lines.write_parquet(path, **SPILL)
    return path
