"""Allocate: term amounts → (work, use type, split version) → holders.

Level 1 (rule 2) splits each term's rounded amount over its base; level 2
(rule 3) splits each (work, use type, version) amount over the holders of that
split version by their exact shares. Both are `largest_remainder` over frames.
Parts that cannot reach a holder (unknown work, no split in force, or a term
with no base to split over) take their share at level 1 and go to suspense
(rule 6).
"""

from __future__ import annotations

import polars as pl

from settlement.intake import ATTRIBUTION_SCALE
from settlement.money import MONEY, largest_remainder
from settlement.price import weight_scale

NO_BASE = "(no allocation base)"
BASE_KEY = ["contract_id", "work_key", "use_type", "version", "status", "reason"]
BASE_SCHEMA = {"contract_id": pl.String, "term_id": pl.String, "work_key": pl.String, "use_type": pl.String,
               "version": pl.String, "status": pl.String, "reason": pl.String, "weight": MONEY}


def usage_base(priced: pl.DataFrame, contract) -> pl.DataFrame:
    """Weighted usage units per (work, use type, version): units × the contract's use-type weight."""
    _, weights = weight_scale(contract)
    rows = priced.filter(pl.col("contract_id") == contract.contract_id)
    return rows.group_by(BASE_KEY).agg(
        (pl.col("units") * pl.col("use_type").replace_strict(weights, default=0, return_dtype=MONEY)).sum()
        .alias("weight"))


def attribution_base(priced: pl.DataFrame, contract) -> pl.DataFrame:
    """Output use by attribution share; outputs without attribution count at their weighted units."""
    _, weights = weight_scale(contract)
    fallback = weights.get("output", 0)
    rows = priced.filter((pl.col("contract_id") == contract.contract_id) & (pl.col("use_type") == "output"))
    return rows.group_by(BASE_KEY).agg(
        (pl.col("attributed_nanos").fill_null(0) * fallback
         + pl.col("unattributed_units").fill_null(0) * ATTRIBUTION_SCALE * fallback).sum().alias("weight"))


def per_unit_base(priced: pl.DataFrame, contract, use_type: str, unit: str) -> pl.DataFrame:
    rows = priced.filter((pl.col("contract_id") == contract.contract_id) & (pl.col("use_type") == use_type)
                         & (pl.col("unit") == unit))
    return rows.group_by(BASE_KEY).agg(pl.col("units").sum().alias("weight"))


def equal_base(works: pl.DataFrame, contract, use_type: str) -> pl.DataFrame:
    """One equal part per work, booked under the term's use type."""
    return works.select(pl.lit(contract.contract_id).alias("contract_id"), "work_key",
                        pl.lit(use_type).alias("use_type"), "version", "status", "reason",
                        pl.lit(1, dtype=MONEY).alias("weight"))


def term_base(term: dict, contract, priced: pl.DataFrame, covered: pl.DataFrame, used: pl.DataFrame) -> pl.DataFrame:
    """The rows a term's amount is split over, with integer weights."""
    basis = term["basis"]
    if basis == "by_units":
        base = per_unit_base(priced, contract, term["term_use_type"], term["term_unit"])
    elif basis == "by_attribution":
        base = attribution_base(priced, contract)
    elif basis == "per_covered_work":
        base = equal_base(covered.filter(pl.col("contract_id") == contract.contract_id), contract, term["term_use_type"])
    elif basis == "per_used_work":
        base = equal_base(used.filter(pl.col("contract_id") == contract.contract_id), contract, term["term_use_type"])
    else:
        base = usage_base(priced, contract)
    return base.with_columns(pl.lit(term["term_id"]).alias("term_id")).select(BASE_SCHEMA.keys()).cast(BASE_SCHEMA)


def no_base_row(term: dict) -> pl.DataFrame:
    return pl.DataFrame([{"contract_id": term["contract_id"], "term_id": term["term_id"], "work_key": NO_BASE,
                          "use_type": term["term_use_type"] or "", "version": None, "status": "suspense",
                          "reason": "no_allocation_base", "weight": 1}], schema=BASE_SCHEMA)


def level_one(charges: pl.DataFrame, contracts: dict, priced: pl.DataFrame, covered: pl.DataFrame,
              used: pl.DataFrame) -> pl.DataFrame:
    """Every term's amount over its base (loop over terms, frames inside)."""
    bases = []
    for term in charges.iter_rows(named=True):
        base = term_base(term, contracts[term["contract_id"]], priced, covered, used).filter(pl.col("weight") > 0)
        bases.append(base if base.height else no_base_row(term))
    if not bases:
        return pl.DataFrame(schema={**BASE_SCHEMA, "amount_minor": MONEY})
    parts = pl.concat(bases).join(charges.select("contract_id", "term_id", "amount_minor"),
                                  on=["contract_id", "term_id"])
    split = largest_remainder(parts, group=["contract_id", "term_id"], total="amount_minor", weight="weight",
                              tie_break=["work_key", "use_type", "version"], out="allocated_minor")
    return split.drop("amount_minor").rename({"allocated_minor": "amount_minor"})


def level_two(allocated: pl.DataFrame, splits: pl.DataFrame) -> pl.DataFrame:
    """Each accepted (contract, work, use type, version) amount over the holders of the version."""
    key = ["contract_id", "work_key", "use_type", "version"]
    amounts = (allocated.filter(pl.col("status") == "accepted").group_by(key)
               .agg(pl.col("amount_minor").sum().alias("work_amount_minor")))
    holders = amounts.join(splits.select(pl.col("work_id").alias("work_key"), "version", "right", "holder_id",
                                         "share", "share_scaled"), on=["work_key", "version"])
    split = largest_remainder(holders, group=key, total="work_amount_minor", weight="share_scaled",
                              tie_break=["holder_id"], out="gross")
    return split.rename({"work_key": "work_id"})
