"""Allocate: term amounts → (work, use type, split version) → holders.

Level 1 (rule 2) splits each term's rounded amount over its base; level 2
(rule 3) splits each (work, use type, version) amount over the holders of that
split version by their exact shares. Both are `largest_remainder` over frames
whose keys are lexically ordered Enums (settlement/keys.py). Parts that cannot
reach a holder (unknown work, no split in force, or a term with no base to
split over) take their share at level 1 and go to suspense (rule 6).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import polars as pl

from settlement.intake import ATTRIBUTION_SCALE
from settlement.keys import NO_BASE, KeyTypes, joined, run_sums, sorted_by
from settlement.money import MONEY, largest_remainder
from settlement.price import weight_scale

BASE_KEY = ["contract_id", "work_key", "use_type", "version", "status", "reason"]
BASE_COLUMNS = ["contract_id", "term_id", "work_key", "use_type", "version", "status", "reason", "weight"]


def usage_base(rows: pl.DataFrame, contract) -> pl.DataFrame:
    """Weighted usage units per (work, use type, version): units × the contract's use-type weight.
    `rows`, and so each base below, is sorted by BASE_KEY (level_one)."""
    _, weights = weight_scale(contract)
    weight = pl.col("use_type").replace_strict(weights, default=0, return_dtype=MONEY)
    return run_sums(rows, BASE_KEY, weight=pl.col("units") * weight)


def attribution_base(rows: pl.DataFrame, contract) -> pl.DataFrame:
    """Output use by attribution share; outputs without attribution count at their weighted units."""
    _, weights = weight_scale(contract)
    fallback = weights.get("output", 0)
    return run_sums(rows.filter(pl.col("use_type") == "output"), BASE_KEY, weight=(
        pl.col("attributed_nanos").fill_null(0) * fallback
        + pl.col("unattributed_units").fill_null(0) * ATTRIBUTION_SCALE * fallback))


def per_unit_base(rows: pl.DataFrame, use_type: str, unit: str) -> pl.DataFrame:
    rows = rows.filter((pl.col("use_type") == use_type) & (pl.col("unit") == unit))
    return run_sums(rows, BASE_KEY, weight=pl.col("units"))


def equal_base(works: pl.DataFrame, use_type: str, types: KeyTypes) -> pl.DataFrame:
    """One equal part per work, booked under the term's use type."""
    return works.select("contract_id", "work_key", pl.lit(use_type).cast(types.use_type).alias("use_type"),
                        "version", "status", "reason", pl.lit(1, dtype=MONEY).alias("weight"))


def term_base(term: dict, contract, rows: pl.DataFrame, covered: pl.DataFrame, used: pl.DataFrame,
              types: KeyTypes, usage: Callable[[], pl.DataFrame]) -> pl.DataFrame:
    """The rows a term's amount is split over, with integer weights and the term's amount,
    sorted by work key, use type and version. `rows` (sorted by BASE_KEY, which the bases
    made from them keep), `covered` and `used` are the contract's own; `usage()` is its
    usage base, which all of its by-usage terms share."""
    basis = term["basis"]
    if basis == "by_units":
        base = per_unit_base(rows, term["term_use_type"], term["term_unit"])
    elif basis == "by_attribution":
        base = attribution_base(rows, contract)
    elif basis == "per_covered_work":
        base = equal_base(covered, term["term_use_type"], types)
    elif basis == "per_used_work":
        base = equal_base(used, term["term_use_type"], types)
    else:
        base = usage()
    base = base.with_columns(pl.lit(term["term_id"]).cast(types.term).alias("term_id"), pl.col("weight").cast(MONEY),
                             pl.lit(term["amount_minor"], dtype=MONEY).alias("amount_minor"))
    return sorted_by(base.select(*BASE_COLUMNS, "amount_minor"), ["work_key", "use_type", "version"])


def base_schema(types: KeyTypes) -> dict:
    return {"contract_id": types.contract, "term_id": types.term, "work_key": types.dtype("work_key"),
            "use_type": types.use_type, "version": types.version, "status": types.status, "reason": types.reason,
            "weight": MONEY}


def no_base_row(term: dict, types: KeyTypes) -> pl.DataFrame:
    return pl.DataFrame([{"contract_id": term["contract_id"], "term_id": term["term_id"],
                          "work_key": types.work.code_of(NO_BASE),
                          "use_type": term["term_use_type"] or "", "version": None, "status": "suspense",
                          "reason": "no_allocation_base", "weight": 1, "amount_minor": term["amount_minor"]}],
                        schema={**base_schema(types), "amount_minor": MONEY})


def by_contract(frame: pl.DataFrame) -> dict[str, pl.DataFrame]:
    return {str(key[0]): part for key, part in frame.partition_by("contract_id", as_dict=True).items()}


def level_one(charges: pl.DataFrame, contracts: dict, priced: pl.DataFrame, covered: pl.DataFrame,
              used: pl.DataFrame, types: KeyTypes) -> pl.DataFrame:
    """Every term's amount over its base (loop over terms, frames inside; each
    contract's rows are cut out of the priced usage once).

    The bases are made sorted (each contract's rows are sorted once, and grouped in
    that order) and put together in (contract, term) order, so that largest remainder
    finds them in its order and does not sort them: 11.6M parts for a 10M-row month."""
    schema = base_schema(types)
    empty = lambda frame: frame.clear()
    rows_of, covered_of, used_of = by_contract(priced), by_contract(covered), by_contract(used)
    rows_of = {contract_id: sorted_by(rows_of.get(contract_id, empty(priced)), BASE_KEY)
               for contract_id in map(str, charges["contract_id"].unique().to_list())}
    usage_of = {contract_id: functools.cache(functools.partial(usage_base, rows, contracts[contract_id]))
                for contract_id, rows in rows_of.items()}
    bases = []
    for term in charges.sort("contract_id", "term_id").iter_rows(named=True):
        contract_id = str(term["contract_id"])
        base = term_base(term, contracts[contract_id], rows_of[contract_id], covered_of.get(contract_id, empty(covered)),
                         used_of.get(contract_id, empty(used)), types, usage_of[contract_id]
                         ).filter(pl.col("weight") > 0)
        bases.append(base if base.height else no_base_row(term, types))
    if not bases:
        return pl.DataFrame(schema={**schema, "amount_minor": MONEY})
    parts = pl.concat(bases)
    split = largest_remainder(parts, group=["contract_id", "term_id"], total="amount_minor", weight="weight",
                              tie_break=["work_key", "use_type", "version"], out="allocated_minor")
    return split.drop("amount_minor").rename({"allocated_minor": "amount_minor"})


WORK_KEY = ["contract_id", "work_key", "use_type", "version"]  # what level 2 splits over holders


def work_amounts(level1: pl.DataFrame, priced: pl.DataFrame) -> pl.DataFrame:
    """Per accepted (contract, work, use type, version) of level 1: its amount
    (`work_amount_minor`), the accepted units of the contract's priced usage on it (0 when
    none), and `_part`, its row number, which level 2 splits by. Sorted by WORK_KEY, so
    that level 2's parts, each work amount's in holder order, come out in line order.
    `priced` comes sorted by BASE_KEY, which begins with WORK_KEY, so its units are summed
    by runs (0.24-0.27 against 0.55-0.57 CPU seconds hashed, for a 10M-row month); level 1
    is sorted by WORK_KEY and summed by runs too, and its sums come out in WORK_KEY order
    (for the largest contract of a 10.5M-row month, 0.21-0.23 s against 0.29-0.30 s
    grouped by hashing, then sorted)."""
    accepted = sorted_by(level1.filter(pl.col("status") == "accepted").select(*WORK_KEY, "amount_minor"), WORK_KEY)
    amounts = run_sums(accepted, WORK_KEY, work_amount_minor=pl.col("amount_minor"))
    units = run_sums(priced.filter(pl.col("status") == "accepted"), WORK_KEY, units=pl.col("units")
                     ).with_columns(pl.col("units").cast(pl.Int64))
    both = joined(amounts, units, on=WORK_KEY, how="left").with_columns(pl.col("units").fill_null(0))
    return sorted_by(both, WORK_KEY).with_row_index("_part")


@dataclass(frozen=True)
class SplitHolders:
    """The catalogue's split rows, keyed once per run for level 2: `_split` is one integer
    per (work, version), and the rows are sorted by it, then by holder, so that joined to
    a contract's work amounts they come out grouped by work amount, in holder order."""

    rows: pl.DataFrame  # _split, right, holder_id, share, share_scaled
    versions: int

    @staticmethod
    def of(splits: pl.DataFrame, types: KeyTypes) -> "SplitHolders":
        """`splits` encoded by `types` (work codes in `work_id`)."""
        versions = len(types.version.categories)
        rows = splits.select(split_key("work_id", versions), "right", "holder_id", "share", "share_scaled")
        return SplitHolders(rows.sort("_split", "holder_id", maintain_order=True), versions)

    def key(self, work: str) -> pl.Expr:
        """`_split` of the rows of a frame with a work code column `work` and a `version`."""
        return split_key(work, self.versions)


def split_key(work: str, versions: int) -> pl.Expr:
    version = pl.col("version").to_physical().cast(pl.UInt64) + 1
    return (pl.col(work).cast(pl.UInt64) * (versions + 1) + version.fill_null(0)).alias("_split")


def level_two(amounts: pl.DataFrame, holders: SplitHolders) -> pl.DataFrame:
    """Each work amount (`work_amounts`) over the holders of its split version: the holder
    parts (`gross`), with their work amount's `_part`, the work key as `work_id`."""
    parts = amounts.with_columns(holders.key("work_key")).join(holders.rows, on="_split", maintain_order="left_right")
    split = largest_remainder(parts.drop("_split"), group=["_part"], total="work_amount_minor",
                              weight="share_scaled", tie_break=["holder_id"], out="gross")
    return split.rename({"work_key": "work_id"})
