"""Adjustments: what a correcting run changes for each holder (DESIGN.md, law 6).

A posted run never changes; new inputs for its period are settled as an
adjustment run, which names the run it corrects and why. Its adjustments.csv
shows, per holder and currency whose balance changed, the old amount (the
corrected run's, as the ledger holds it), the new amount and the difference,
with the reason. Pure frames in and out: the ledger is read by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from settlement.money import format_minor, minor_expr
from settlement.run import Correction

FIGURES = ("net", "payable", "carried_forward")  # a holder's amounts an adjustment shows, old and new
TOTALS = ("charged", "brought_forward", "commission", "withholding", "payable", "carried_forward",
          "suspense")  # a run's, per currency
KEY = ["holder_id", "currency"]


@dataclass(frozen=True)
class Adjustment:
    """The run an adjustment corrects and why (`correction`), and that run's figures as posted."""

    correction: Correction
    old: pl.DataFrame        # its balances: holder_id, currency and FIGURES (at least), in minor units
    old_totals: list[dict]   # its totals: per currency, every figure of summary.json's, in minor units


def changes(old: pl.DataFrame, new: pl.DataFrame) -> pl.DataFrame:
    """Per holder and currency whose net, payable or carried-forward amount differs between
    the `old` and `new` balances (a holder absent from one side has 0 there): old, new
    and change of each figure, in minor units, sorted by holder and currency."""
    both = sides(old, "old").join(sides(new, "new"), on=KEY, how="full", coalesce=True).fill_null(0)
    both = both.with_columns((pl.col(f"new_{f}") - pl.col(f"old_{f}")).alias(f"{f}_change") for f in FIGURES)
    changed = pl.any_horizontal(pl.col(f"{f}_change") != 0 for f in FIGURES)
    return both.filter(changed).select(
        *KEY, *(c for f in FIGURES for c in (f"old_{f}", f"new_{f}", f"{f}_change"))).sort(KEY)


def sides(balances: pl.DataFrame, side: str) -> pl.DataFrame:
    """The key and FIGURES of `balances`, named `<side>_<figure>`."""
    # Int128: a balance brought forward may take a figure past Int64 (posting refuses it, with one line)
    return balances.select(*KEY, *(pl.col(f).cast(pl.Int128).alias(f"{side}_{f}") for f in FIGURES))


def adjustment_table(adjustment: Adjustment, new: pl.DataFrame) -> pl.DataFrame:
    """adjustments.csv: `changes` with amounts as decimal strings of the currency's digits,
    and the run corrected and the reason on every row."""
    rows = changes(adjustment.old, new)
    listed = rows["currency"].unique().to_list()
    return rows.with_columns(
        minor_expr(pl.col(c), pl.col("currency"), listed, pl.Int128).alias(c) for c in rows.columns if c not in KEY
    ).with_columns(pl.lit(adjustment.correction.corrects).alias("corrects"),
                   pl.lit(adjustment.correction.reason).alias("reason"))


def currency_changes(adjustment: Adjustment, new_totals: dict[str, dict[str, int]]) -> dict:
    """Per currency and figure of the run's totals (charged, payable, ...): old (the
    corrected run's, as posted), new and change, as decimal text."""
    old_totals = {row["currency"]: row for row in adjustment.old_totals}
    result = {}
    for currency in sorted(old_totals.keys() | new_totals.keys()):
        old, new = old_totals.get(currency, {}), new_totals.get(currency, {})
        result[currency] = {figure: {"old": format_minor(old.get(figure, 0), currency),
                                     "new": format_minor(new.get(figure, 0), currency),
                                     "change": format_minor(new.get(figure, 0) - old.get(figure, 0), currency)}
                            for figure in TOTALS}
    return result
