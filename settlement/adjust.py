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

FIGURES = ("net", "payable", "carried_forward")  # the amounts an adjustment shows, old and new
KEY = ["holder_id", "currency"]


@dataclass(frozen=True)
class Adjustment:
    """The run an adjustment corrects, why, and that run's balances as posted."""

    corrects: str
    reason: str
    old: pl.DataFrame  # holder_id, currency and FIGURES (at least), in minor units


def changes(old: pl.DataFrame, new: pl.DataFrame) -> pl.DataFrame:
    """Per holder and currency whose net, payable or carried-forward amount differs between
    the `old` and `new` balances (a holder absent from one side has 0 there): old, new
    and change of each figure, in minor units, sorted by holder and currency."""
    pick = lambda frame, side: frame.select(*KEY, *(pl.col(f).cast(pl.Int64).alias(f"{side}_{f}") for f in FIGURES))
    both = pick(old, "old").join(pick(new, "new"), on=KEY, how="full", coalesce=True).fill_null(0)
    both = both.with_columns((pl.col(f"new_{f}") - pl.col(f"old_{f}")).alias(f"{f}_change") for f in FIGURES)
    changed = pl.any_horizontal(pl.col(f"{f}_change") != 0 for f in FIGURES)
    return both.filter(changed).select(
        *KEY, *(c for f in FIGURES for c in (f"old_{f}", f"new_{f}", f"{f}_change"))).sort(KEY)


def adjustment_table(adjustment: Adjustment, new: pl.DataFrame) -> pl.DataFrame:
    """adjustments.csv: `changes` with amounts as decimal strings of the currency's digits,
    and the run corrected and the reason on every row."""
    rows = changes(adjustment.old, new)
    listed = rows["currency"].unique().to_list()
    return rows.with_columns(
        minor_expr(pl.col(c), pl.col("currency"), listed, pl.Int64).alias(c) for c in rows.columns if c not in KEY
    ).with_columns(pl.lit(adjustment.corrects).alias("corrects"), pl.lit(adjustment.reason).alias("reason"))


def currency_changes(adjustment: Adjustment, new: pl.DataFrame) -> dict:
    """Per currency: old, new and change of the payable and carried-forward totals, as text."""
    total = lambda frame, currency, figure: int(frame.filter(pl.col("currency") == currency)[figure].sum())
    result = {}
    for currency in sorted(set(adjustment.old["currency"].to_list()) | set(new["currency"].to_list())):
        figures = {}
        for figure in ("payable", "carried_forward"):
            old, now = total(adjustment.old, currency, figure), total(new, currency, figure)
            figures[figure] = {"old": format_minor(old, currency), "new": format_minor(now, currency),
                               "change": format_minor(now - old, currency)}
        result[currency] = figures
    return result
