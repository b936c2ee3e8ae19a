"""Distribute: holder lines → commission, withholding, net, payable (rule 4).

Commission is per line, gross × the use type's rate, rounded half-even.
Withholding is per holder and currency on the total after commission, rounded
half-even once and spread over the holder's lines by largest remainder so each
line shows its part. A holder's net and its balance brought forward from earlier
runs are paid together once they reach the payout threshold; below it, both are
carried forward instead of paid.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import polars as pl

from settlement.keys import KeyTypes, encoded, grouped, joined
from settlement.money import MONEY, exact_type, largest_remainder, refuse_past_int128, to_minor

LINE_KEY = ["licensee_id", "contract_id", "work_id", "use_type", "version", "holder_id"]


def half_even_product(amount: pl.Expr, numerator: pl.Expr, denominator: pl.Expr, exact: pl.DataType = MONEY) -> pl.Expr:
    """round_half_even(amount × numerator / denominator) for amounts >= 0, in `exact`
    (Int128 unless the caller knows that no product nor twice a denominator reaches 2**63)."""
    product, denominator = amount.cast(exact) * numerator.cast(exact), denominator.cast(exact)
    quotient, remainder = product // denominator, product % denominator
    twice = remainder * 2
    up = (twice > denominator) | ((twice == denominator) & (quotient % 2 == 1))
    return (quotient + up.cast(exact)).cast(MONEY)


def rate_columns(rates: dict[str, Fraction], key: str, prefix: str, types: KeyTypes) -> pl.DataFrame:
    """Rates by `key` as exact numerator and denominator columns, the key encoded by `types`."""
    return encoded(pl.DataFrame({key: list(rates), f"{prefix}_num": [r.numerator for r in rates.values()],
                                 f"{prefix}_den": [r.denominator for r in rates.values()]},
                                schema={key: pl.String, f"{prefix}_num": MONEY, f"{prefix}_den": MONEY}), types)


@dataclass(frozen=True)
class Rates:
    """The commission rate of each use type and the withholding rate of each holder, as
    exact numerator and denominator columns: built once per run and used by every contract
    (commission) and every holder's total (withholding); 50,000 holders' rates took 0.5 s
    to 0.7 s to build."""

    commission: pl.DataFrame  # use_type, commission_num, commission_den: a row per use type, in code order
    withholding: pl.DataFrame  # holder_id, withholding_num, withholding_den

    @staticmethod
    def of(policy, holders: dict, types: KeyTypes) -> "Rates":
        rates = {use: Fraction(rate) for use, rate in dict(policy.commission).items()}
        every = {use: rates.get(use, Fraction(0)) for use in types.use_type.categories}  # no rate: none
        return Rates(
            rate_columns(every, "use_type", "commission", types),
            rate_columns({h: Fraction(holder.withholding_rate) for h, holder in holders.items()}, "holder_id",
                         "withholding", types))


def product_type(amounts: pl.Series, rates: pl.DataFrame, prefix: str) -> pl.DataType:
    """The type for half_even_product of these amounts and rates: its products, and twice
    a remainder (below twice the denominator)."""
    products = ((amounts.cast(MONEY).abs().max(), rates[f"{prefix}_num"].max()), (2, rates[f"{prefix}_den"].max()))
    refuse_past_int128(*(factors for factors in products if None not in factors))
    return exact_type(*products)


def with_commission(lines: pl.DataFrame, rates: pl.DataFrame) -> pl.DataFrame:
    """Commission on each line. `rates` (Rates.commission) has a row per use type in code
    order, so each line's rate is gathered by its use type's code, not joined: 0.9 s
    against 1.2 s for a 10M-row month's 9.6M lines, in one profiled run each."""
    exact = product_type(lines["gross"], rates, "commission")
    rate = lambda part: pl.lit(rates[f"commission_{part}"]).gather(pl.col("use_type").to_physical())
    return lines.with_columns(
        half_even_product(pl.col("gross"), rate("num"), rate("den"), exact).alias("commission"))


def after_commission() -> pl.Expr:
    return (pl.col("gross") - pl.col("commission")).alias("after_commission")


def holder_sums(lines: pl.DataFrame) -> pl.DataFrame:
    """Per holder and currency of lines with commission: their total after commission and
    how many they are (summed again over contracts: `withholding_totals` takes the sum)."""
    return grouped(lines, ["holder_id", "currency"], after_commission().sum(), pl.len().cast(pl.Int64).alias("lines"))


def withholding_totals(sums: pl.DataFrame, rates: pl.DataFrame) -> pl.DataFrame:
    """`sums` (holder_sums over all of the holders' lines, a row per holder and currency)
    with the withholding on each total after commission, rounded half-even once
    (`withholding_total`)."""
    exact = product_type(sums["after_commission"], rates, "withholding")
    return sums.join(rates, on="holder_id", how="left").with_columns(half_even_product(
        pl.col("after_commission"), pl.col("withholding_num"), pl.col("withholding_den"), exact
    ).alias("withholding_total")).drop("withholding_num", "withholding_den")


def spread_withholding(lines: pl.DataFrame, totals: pl.DataFrame) -> pl.DataFrame:
    """Every line of `lines` (with commission) whose holder owes withholding in `totals`
    (withholding_totals, > 0), with its part of it (`withholding`), spread over the holder's
    lines by largest remainder of their amounts after commission. `lines` must hold every
    line of their holders."""
    group = ["holder_id", "currency"]
    taxed = joined(lines.with_columns(after_commission()), totals.filter(pl.col("withholding_total") > 0), on=group)
    return largest_remainder(taxed, group=group, total="withholding_total", weight="after_commission",
                             tie_break=LINE_KEY, out="withholding")


def with_net(lines: pl.DataFrame, withholding: pl.Series) -> pl.DataFrame:
    """Lines with commission, with their `withholding` (a value per line) and net."""
    return lines.with_columns(withholding.cast(MONEY).alias("withholding")).with_columns(
        (pl.col("gross") - pl.col("commission") - pl.col("withholding")).alias("net"))


def thresholds(holders: dict, policy, currencies: list[str], types: KeyTypes) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The policy's threshold per currency, and the few holders' own (in their payout currency)."""
    policy_rows = pl.DataFrame({"currency": currencies,
                                "policy_threshold": [to_minor(policy.thresholds.get(c, 0), c) for c in currencies]},
                               schema={"currency": types.currency, "policy_threshold": MONEY})
    own = [(h.holder_id, h.payout_currency, to_minor(h.payout_threshold, h.payout_currency))
           for h in holders.values() if h.payout_threshold is not None and h.payout_currency in currencies]
    own_rows = encoded(pl.DataFrame(own, schema={"holder_id": pl.String, "currency": pl.String,
                                                 "own_threshold": MONEY}, orient="row"), types)
    return policy_rows, own_rows


def holder_totals(lines: pl.DataFrame) -> pl.DataFrame:
    """Per holder and currency: the lines' gross, commission, withholding and net."""
    return grouped(lines, ["holder_id", "currency"], pl.col("gross").sum(), pl.col("commission").sum(),
                   pl.col("withholding").sum(), pl.col("net").sum())


def balances(totals: pl.DataFrame, holders: dict, policy, types: KeyTypes,
             brought_forward: pl.DataFrame) -> pl.DataFrame:
    """Per holder and currency (`totals`, from holder_totals, and every balance of
    `brought_forward`, Inputs.brought_forward, with no lines this period): the balance
    brought forward, threshold, payable and carried forward. The net and the balance
    brought forward are paid together once they reach the threshold (and are more than
    zero: a debt is carried forward, never paid); below it, both are carried forward."""
    brought = encoded(brought_forward.select("holder_id", "currency", pl.col("amount_minor").cast(MONEY)
                                             .alias("brought_forward")), types)
    amounts = ["gross", "commission", "withholding", "net", "brought_forward"]
    totals = totals.join(brought, on=["holder_id", "currency"], how="full", coalesce=True).with_columns(
        pl.col(amounts).fill_null(0).cast(MONEY))
    policy_rows, own_rows = thresholds(holders, policy, sorted(totals["currency"].unique().to_list()), types)
    totals = (totals.join(policy_rows, on="currency", how="left").join(own_rows, on=["holder_id", "currency"],
                                                                        how="left")
              .with_columns(pl.coalesce("own_threshold", "policy_threshold").alias("threshold"))
              .drop("own_threshold", "policy_threshold"))
    balance = pl.col("net") + pl.col("brought_forward")
    paid = (balance >= pl.col("threshold")) & (balance > 0)
    return totals.with_columns(
        pl.when(paid).then(balance).otherwise(0).cast(MONEY).alias("payable"),
        pl.when(paid).then(0).otherwise(balance).cast(MONEY).alias("carried_forward"),
    ).sort("holder_id", "currency")
