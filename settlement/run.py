"""A settlement run: intake → aggregate and classify (per partition of works) → price →
allocate (per contract) → distribute (per partition of holders).

`settle` reads the input files and writes only temporary files: it returns a
`Settlement` with everything the exports write, level 1 and the holder lines
in the ledger's files (settlement/ledger.py). The run id is a hash of everything the run
read (reference files, an order-independent digest of the usage rows, the
period, the clock and the rules version), so the same inputs give the same id.

`preview` is the same pipeline stopped after pricing (law 7, one code path): what
an AI firm's licences will charge it for a month, with the usage it sent
accounted for row by row, and nothing allocated or distributed. Its `Priced` is
the part of a `Settlement` that pricing decides, to the byte.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from contracts.loading import Inputs, sha256_file
from contracts.vocabulary import STATUSES
from settlement import aggregate, keys, price, resolve
from settlement.conservation import assert_conserved
from settlement.intake import Period
from settlement.ledger import Ledger, PricedByContract, make_ledger
from settlement.progress import SILENT, Progress
from settlement.spill import SPILL

RULES_VERSION = "1"
ENGINE_VERSION = "0.2.0"


@dataclass(frozen=True)
class Correction:
    """What an adjustment run corrects (a posted run's id) and why."""

    corrects: str
    reason: str


@dataclass(frozen=True)
class Priced:
    """What intake, aggregation and pricing decide: the charges and where every usage row
    went. A preview is this; a settlement adds the ledger."""

    run_id: str
    period: Period
    clock: str
    inputs: Inputs
    charges: list[price.ContractCharge]
    quarantine: pl.DataFrame
    suspense_usage: pl.DataFrame  # rows and units in suspense per contract, work key, use type, reason
    unlicensed: pl.DataFrame      # unlicensed use, as unlicensed.csv shows it
    accounting: pl.DataFrame
    unattributed: pl.DataFrame
    warnings: list[str]


@dataclass(frozen=True)
class Settlement(Priced):
    """Everything one run computed; exports only format it."""

    ledger: Ledger  # level 1 and the holder lines, on disk, and the balances
    totals: dict[str, dict[str, int]]

    # level1 and lines read the ledger's temporary files: they can be collected until
    # close() (or until the Settlement is freed, which deletes the files too).

    @property
    def level1(self) -> pl.LazyFrame:
        """Level 1 with its keys as text, sorted by contract, term, work key, use type and version."""
        return keys.decoded(self.ledger.level1, self.ledger.types)

    @property
    def lines(self) -> pl.LazyFrame:
        """The holder lines with their keys as text, in line order."""
        return keys.decoded(self.ledger.lines, self.ledger.types)

    def close(self) -> None:
        """Delete the ledger's files (a run's lines and level 1: gigabytes at 100M usage rows)."""
        self.ledger.folder.cleanup()

    def __enter__(self) -> "Settlement":
        return self

    def __exit__(self, *error) -> None:
        self.close()


PRICED_KEY = ["contract_id", "licensee_id", "work", "resolved", "use_type", "unit", "version", "status", "reason"]
SUSPENSE_KEY = ["contract_id", "work_key", "use_type", "reason"]
UNLICENSED_KEY = ["licensee_id", "model_id", "ref", "work_id", "use_type", "unit", "territory", "reason"]


def rows_and_units(frame: pl.DataFrame, key: list[str]) -> pl.DataFrame:
    """Rows and units summed per `key` (the reported suspense and unlicensed usage)."""
    return frame.group_by(key).agg(pl.col("rows").sum(), pl.col("units").sum())


def priced_groups(groups: pl.DataFrame) -> pl.DataFrame:
    """Charged usage (accepted and suspense) summed per contract, work, use, unit and version,
    kept in codes: a work by its `work` code (UsageAggregate.work_keys names it) and whether
    it is a catalogue work (`resolved`), the rest as Enums.

    Grouped on the codes, packed into one integer when they fit: grouping on the text of
    nine columns took twice as long. Written as text and encoded again per run, the sums
    of a 10M-row month took 3.6 s (the million-work code table, most of it). The groups
    without a contract (unlicensed) are summed too and dropped from the sums: filtered out
    first, the groups that remain were copied whole."""
    codes = ["contract_id", "licensee_id", "work", "use_type", "unit", "version", "status", "reason"]
    summed = keys.grouped(groups, codes, pl.col("work_id").first().is_not_null().alias("resolved"),
                          pl.col("rows").sum(), pl.col("units").sum(), pl.col("attributed_nanos").sum(),
                          pl.col("unattributed_units").sum())
    return summed.filter(pl.col("contract_id").is_not_null()).select(
        *PRICED_KEY, "rows", "units", "attributed_nanos", "unattributed_units")


def rows_by_status(groups: pl.DataFrame) -> pl.DataFrame:
    """Per file: the counted rows of each status."""
    return groups.group_by("file").agg(
        *(pl.col("rows").filter(pl.col("status") == s).sum().cast(pl.Int64).alias(s) for s in STATUSES))


def file_accounting(files: pl.DataFrame, statuses: pl.DataFrame) -> pl.DataFrame:
    """Per file: rows read, and where each went."""
    return files.join(statuses, on="file", how="left").fill_null(0).select(
        "file", "rows_read", "accepted", "duplicates", "quarantined", "suspense", "unlicensed").sort("file")


def currency_totals(charges: pl.DataFrame, ledger: Ledger) -> dict[str, dict[str, int]]:
    """Each figure of conservation (law 2), for every currency charged or brought forward."""
    currency_of = charges.select("contract_id", "currency").unique()
    balance_sum = lambda name: ledger.balances.group_by("currency").agg(pl.col(name).sum().alias("amount_minor"))
    figures = {
        "charged": charges.group_by("currency").agg(pl.col("amount_minor").sum()),
        "brought_forward": balance_sum("brought_forward"),
        "suspense": ledger.suspense.join(currency_of, on="contract_id").group_by("currency").agg(
            pl.col("amount_minor").sum()),
        **{name: balance_sum(name) for name in ("commission", "withholding", "payable", "carried_forward")},
    }
    totals: dict[str, dict[str, int]] = {}
    for currency in sorted({*charges["currency"].cast(pl.String), *ledger.balances["currency"].cast(pl.String)}):
        totals[currency] = {name: int(frame.filter(pl.col("currency") == currency)["amount_minor"].sum())
                            for name, frame in figures.items()}
    return totals


def run_identity(inputs: Inputs, usage_digest: int, rows_read: int, period: Period, clock: str,
                 correction: Correction | None = None) -> str:
    """A hash of everything read; usage enters as an order-independent digest of its rows.
    An adjustment's `correction` is part of what it read: the same inputs correcting
    another run, or for another reason, are another run (and the inputs of a run that was
    corrected can be posted again, as a correction of its correction)."""
    reference = sorted((path.relative_to(inputs.folder).as_posix(), sha256_file(path))
                       for path in inputs.reference_files)
    identity = {"rules_version": RULES_VERSION, "period": period.name, "clock": clock, "reference": reference,
                "usage_rows": rows_read, "usage_digest": usage_digest,
                **({} if correction is None else {"corrects": correction.corrects, "reason": correction.reason})}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return f"run-{period.name}-{digest[:16]}"


@dataclass(frozen=True)
class Classified:
    """What the steps after classification need of the usage groups: their sums by
    what is priced (in files: 32.5M rows at 100M usage rows), reported in suspense,
    reported as unlicensed and accounted per file (for one partition of the groups, or
    all of them: see `combined`)."""

    priced: list[Path]  # Parquet files of the priced sums, keys as codes (priced_groups)
    statuses: pl.DataFrame
    suspense_usage: pl.DataFrame
    unlicensed: pl.DataFrame

    @staticmethod
    def of(groups: pl.DataFrame, priced: Path) -> "Classified":
        """The sums of classified groups, the priced ones written to `priced`."""
        priced_groups(groups).write_parquet(priced, **SPILL)
        return Classified(
            [priced], rows_by_status(groups),
            rows_and_units(groups.filter(pl.col("status") == "suspense").with_columns(resolve.work_key()),
                           SUSPENSE_KEY),
            rows_and_units(groups.filter(pl.col("status") == "unlicensed"), UNLICENSED_KEY))


def classified_partition(groups: pl.DataFrame, inputs: Inputs, segments: pl.DataFrame, priced: Path) -> Classified:
    """One partition of the usage groups, classified and summed (the groups are then released)."""
    return Classified.of(resolve.classify(groups, inputs.catalogue, inputs.contracts,
                                          inputs.policy.consent_required, segments), priced)


def combined(partials: list[Classified]) -> Classified:
    """The partitions' sums together. Priced sums stay in their partitions' files, not
    summed again: every group of a work lies in one partition (aggregate.GroupCodes.partition),
    so partitions share no priced key, and every step that reads them sums by its own key
    anyway (summing again took a copy of every priced row at 100M rows). The reported
    frames, a few rows per unknown reference at most, are summed again so that their
    rows are unique whatever the partitions."""
    statuses, suspense, unlicensed = (pl.concat(frames) for frames in zip(*(
        (p.statuses, p.suspense_usage, p.unlicensed) for p in partials)))
    return Classified([path for p in partials for path in p.priced],
                      statuses.group_by("file").agg(pl.col(STATUSES).sum()),
                      resolve.as_text(rows_and_units(suspense, SUSPENSE_KEY)),
                      resolve.as_text(rows_and_units(unlicensed, UNLICENSED_KEY)))


def allocated(inputs: Inputs, period: Period, sums: list[Path], work_keys: pl.Series,
              charges: list[price.ContractCharge], folder: Path,
              progress: Progress = SILENT) -> tuple[pl.DataFrame, Ledger]:
    """The charged terms as a frame, and the ledger that allocates and distributes them.
    `sums`: the priced sums' files; `work_keys`: the text of their work codes; `progress`
    is told each stage and each contract done."""
    charge_rows = price.charges_frame(charges)
    unresolved = work_keys.gather(pl.scan_parquet(sums).filter(~pl.col("resolved")).select("work").unique()
                                  .collect()["work"])
    types = keys.key_types(inputs.catalogue.works["work_id"], unresolved, inputs.holders, inputs.contracts,
                           charge_rows["term_id"], inputs.catalogue.splits, inputs.licensees,
                           inputs.brought_forward["currency"])
    charge_rows = keys.encoded(charge_rows, types)
    by_contract = PricedByContract.written(sums, work_keys, types, folder / "by-contract")
    return charge_rows, make_ledger(inputs, period, by_contract, charges, charge_rows, types, progress)


@dataclass(frozen=True)
class PricedUsage:
    """Usage aggregated and priced (`priced_usage`), with the priced sums for allocation."""

    priced: Priced
    sums: list[Path]  # Parquet files of the priced sums (run.priced_groups), in a temporary folder
    work_keys: pl.Series  # the text of their work codes


def priced_usage(inputs: Inputs, period: Period, clock: str, folder: Path, progress: Progress,
                 correction: Correction | None = None) -> PricedUsage:
    """Intake, aggregation and classification of the usage, and pricing: the priced sums
    are written to `folder`. `correction`: an adjustment's, part of its run id."""
    catalogue, contracts = inputs.catalogue, inputs.contracts
    cuts = aggregate.breakpoints(catalogue, contracts, period)
    count = len(inputs.usage_files)
    progress.stage(f"reading {count} usage file{'s' if count != 1 else ''}")
    segments = aggregate.segment_starts(period, cuts)
    numbers = itertools.count()
    usage = aggregate.aggregate_usage(
        inputs.usage_files, [inputs.name(path) for path in inputs.usage_files], period, list(inputs.licensees), catalogue.ambiguous["ref"].to_list(),
        cuts, catalogue.refs, reduce=lambda groups: classified_partition(
            groups, inputs, segments, folder / f"{next(numbers):06d}.parquet"), progress=progress)
    progress.stage("pricing")
    classified = combined(usage.partials)
    run_id = run_identity(inputs, usage.digest, usage.rows_read, period, clock, correction)
    accounting = file_accounting(usage.files, classified.statuses)
    quarantine, unattributed, work_keys = usage.quarantine, usage.unattributed, usage.work_keys
    del usage  # its partials are in `classified` now
    charges = price.price_all(contracts, pl.scan_parquet(classified.priced), inputs.revenue, period)
    priced = Priced(run_id, period, clock, inputs, charges, quarantine, classified.suspense_usage,
                    classified.unlicensed, accounting, unattributed, [w for c in charges for w in c.warnings])
    return PricedUsage(priced, classified.priced, work_keys)


def preview(inputs: Inputs, period: Period, clock: str,
            progress: Progress = SILENT) -> Priced:
    """What settling the period would charge, without allocating it. Raises
    ConservationError if the usage rows do not add up (law 3)."""
    with tempfile.TemporaryDirectory(prefix="settle-priced-") as folder:
        priced = priced_usage(inputs, period, clock, Path(folder), progress).priced
    assert_conserved([], {}, priced.accounting)  # nothing allocated: only the rows to account for
    return priced


def settle(inputs: Inputs, period: Period, clock: str,
           progress: Progress = SILENT, correction: Correction | None = None) -> Settlement:
    """Settle one period (as an adjustment: with its `correction`). Raises ConservationError
    if any figure fails to add up. `progress` is told when each stage starts, the files and
    rows read while they are read, and the parts done of the stages that go a part at a time."""
    with tempfile.TemporaryDirectory(prefix="settle-priced-") as folder:
        usage = priced_usage(inputs, period, clock, Path(folder), progress, correction)
        progress.stage("preparing the allocation")
        charge_rows, ledger = allocated(inputs, period, usage.sums, usage.work_keys, usage.priced.charges,
                                        Path(folder), progress)
    totals = currency_totals(charge_rows, ledger)
    assert_conserved(ledger.problems, totals, usage.priced.accounting)
    return Settlement(**vars(usage.priced), ledger=ledger, totals=totals)
