"""Money and rounding primitives: the only place amounts are made or split.

Amounts that someone pays or receives are integers in the currency's minor unit
(ISO 4217 exponent). Exact intermediate values are `fractions.Fraction`; they
become money once, by `round_half_even`. Splitting money over parts is always
`largest_remainder` (apportionment rule 5), which is a frame operation so that
millions of lines split in one pass.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import polars as pl

from contracts.currencies import CURRENCY_EXPONENTS
from contracts.errors import SettlementError, UnknownCurrency
from settlement.keys import sorted_by

# polars sums of Int64 wrap silently on overflow (DESIGN.md, "Traps"); every
# product of an amount and a weight is formed in Int128.
MONEY = pl.Int128


def exponent(currency: str) -> int:
    """The ISO 4217 minor-unit exponent of `currency` (EUR 2, JPY 0, BHD 3)."""
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        raise UnknownCurrency(currency) from None


def round_half_even(value: Fraction) -> int:
    """Round an exact value to the nearest integer, ties to even."""
    floor, remainder = divmod(value.numerator, value.denominator)
    twice = 2 * remainder
    if twice > value.denominator or (twice == value.denominator and floor % 2 == 1):
        return floor + 1
    return floor


def to_minor(major: Fraction | Decimal, currency: str) -> int:
    """An exact major-unit value as minor units, rounded once, half-even."""
    return round_half_even(Fraction(major) * 10 ** exponent(currency))


def format_minor(amount_minor: int, currency: str) -> str:
    """Minor units as a plain decimal string with exactly the currency's digits."""
    digits = exponent(currency)
    sign = "-" if amount_minor < 0 else ""
    whole, part = divmod(abs(amount_minor), 10**digits)
    return f"{sign}{whole}.{part:0{digits}d}" if digits else f"{sign}{whole}"


def format_fraction(value: Fraction, places: int = 12) -> str:
    """An exact value in plain notation: exact when it terminates within `places`
    decimals, otherwise rounded half-even to `places` and marked with `~`."""
    scaled = value * 10**places
    rounded = round_half_even(scaled)
    text = format(Decimal(rounded).scaleb(-places), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    return text if scaled == rounded else "~" + text


def currency_digits(currency: pl.Expr) -> pl.Expr:
    """ISO 4217's minor digits of each currency code (text); null for a code that is not one.
    By is_in per number of digits, not replace_strict with a dict, which polars cannot
    stream: summing a 100M-row run's allocations.csv by term held 8.4 GiB that way, 0.4 GiB
    this way."""
    codes: dict[int, list[str]] = {}
    for code, digits in sorted(CURRENCY_EXPONENTS.items()):
        codes.setdefault(digits, []).append(code)
    expression = pl.when(False).then(pl.lit(None, dtype=pl.Int32))
    for digits, listed in sorted(codes.items()):
        expression = expression.when(currency.is_in(listed)).then(pl.lit(digits, dtype=pl.Int32))
    return expression.otherwise(pl.lit(None, dtype=pl.Int32))


def minor_expr(amount: pl.Expr, currency: pl.Expr, currencies: list[str] | None = None,
               exact: pl.DataType = MONEY, text: bool = True) -> pl.Expr:
    """Vectorised `format_minor` over a frame whose rows may mix currencies. `currencies`
    (those that can occur) narrows the work to their exponents: with one exponent there
    is no per-row lookup. `exact`: Int64 when the caller knows every amount fits in it.
    Such amounts are rendered as Decimals (minor units times 10**-digits, exactly: the
    product has the scale `digits`), which polars writes as text in half the time of
    the integer arithmetic below (writing 38M amounts to CSV took 1.9 s against 5.1 s);
    the product, below 2**63 in magnitude, is far inside a Decimal's 38 digits. Larger
    amounts take the integer arithmetic, in Int128.

    `text=False`, for a CSV writer: where every row has the same exponent and `exact` is
    Int64, the amount as that Decimal, or integer, which the writer writes as the same
    text; formatted there, not cast to a column of strings first, 10M rows' four amounts
    took 1.6-1.8 CPU seconds to write against 3.1-3.2."""
    exponents = sorted({exponent(c) for c in currencies} if currencies else set(CURRENCY_EXPONENTS.values()))
    as_written = not text and len(exponents) == 1  # one column type for every row: the writer's own

    def formatted(digits: int) -> pl.Expr:
        if digits == 0:
            return amount.cast(exact) if as_written else amount.cast(exact).cast(pl.String)
        if exact == pl.Int64:
            unit = pl.lit(f"0.{'0' * (digits - 1)}1").str.to_decimal(scale=digits)  # 10**-digits
            decimal = amount.cast(exact).cast(pl.Decimal(38, 0)) * unit
            return decimal if as_written else decimal.cast(pl.String)
        magnitude, scale = amount.cast(exact).abs(), pl.lit(10**digits, dtype=exact)
        sign = pl.when(amount < 0).then(pl.lit("-")).otherwise(pl.lit(""))
        return pl.concat_str(sign, (magnitude // scale).cast(pl.String), pl.lit("."),
                             (magnitude % scale).cast(pl.String).str.zfill(digits))

    if len(exponents) == 1:
        return formatted(exponents[0])
    digits = currency_digits(currency.cast(pl.String))
    expr = pl.when(digits == exponents[0]).then(formatted(exponents[0]))
    for other in exponents[1:]:
        expr = expr.when(digits == other).then(formatted(other))
    return expr


def largest_remainder(
    parts: pl.DataFrame,
    *,
    group: list[str],
    total: str,
    weight: str,
    tie_break: list[str],
    out: str,
) -> pl.DataFrame:
    """Split each group's integer `total` over its parts in proportion to `weight`.

    Rule 5 of the apportionment rules: each part gets the floor of its exact
    share; the leftover units go one each to the parts with the largest
    remainders; equal remainders go to the smaller `tie_break` key (strings
    compare as Unicode code points, so string keys must be strings or lexically
    ordered Enums). Parts always sum to the group's total.
    `total` must be the same on every row of a group and weights must be >= 0
    with a positive sum; groups with a zero weight sum are the caller's to
    route elsewhere (they have no base to split over).

    Returns the parts sorted by group, then by tie-break key: the frame is sorted
    once, and stays in that order (level 1 is written in it). What follows works on
    its columns, by a group id that counts up from 0: group sums are differences of
    running sums, and the parts that get a leftover unit are found by sorting one
    integer key, not the frame.
    """
    # a tie-break column that is also a group column is the same on every part of a group
    # (withholding's line key holds its group's holder): left out, the key fits one integer
    tie_break = [column for column in tie_break if column not in group]
    ordered = sorted_by(parts, [*group, *tie_break])
    groups = ordered.select(pl.struct(group).rle_id()).to_series()
    exact = arithmetic_type(ordered, total, weight)
    weights, totals = ordered[weight].cast(exact), ordered[total].cast(exact)
    products = totals * weights
    weight_sums = group_sums(weights, groups)
    floors, remainders = products // weight_sums, products % weight_sums
    leftovers = ordered[total].cast(MONEY) - group_sums(floors.cast(MONEY), groups)
    return ordered.with_columns((floors.cast(MONEY) + leftover_units(groups, remainders, leftovers)).alias(out))


def group_sums(values: pl.Series, groups: pl.Series) -> pl.Series:
    """Each row's group total of `values`, for `groups` that count up from 0 in row order
    (the total of every group must fit in `values`' type, and so must their running sum:
    arithmetic_type sees to it for weights, Int128 for amounts)."""
    if values.is_empty():
        return values
    ends = (groups != groups.shift(-1)).fill_null(True)
    running = values.cum_sum().filter(ends)
    return (running - running.shift(1, fill_value=0)).gather(groups)


def leftover_units(groups: pl.Series, remainders: pl.Series, leftovers: pl.Series) -> pl.Series:
    """1 for the parts that get one of their group's leftover units, else 0: the first
    `leftovers` of each group when its parts are ordered by remainder, largest first, equal
    remainders in row order (the tie-break order).

    Groups of at most SMALL_GROUP_PARTS parts are ranked without sorting (small_group_units).
    Otherwise the row numbers in that order keep each group's rows where the group's rows
    are, so the i-th of them is a part of row i's group, ranked i less the group's first row."""
    units = pl.zeros(len(groups), dtype=MONEY, eager=True)
    if groups.is_empty():
        return units
    largest = remainders.max()
    if largest < 1 << 63:
        remainders = remainders.cast(pl.Int64)  # sorts much faster than Int128
    index = pl.int_range(len(groups), dtype=pl.Int64, eager=True)
    starts = index.filter((groups != groups.shift(1)).fill_null(True))
    most_parts = int((starts.shift(-1, fill_value=len(groups)) - starts).max())
    if most_parts <= SMALL_GROUP_PARTS:
        return small_group_units(groups, remainders, leftovers, most_parts)
    order = remainder_order(groups, remainders, largest)
    return units.scatter(order.filter(index - starts.gather(groups) < leftovers), 1)


# Groups of at most this many parts (level 2's holders of a work) are ranked by comparing each part
# with its neighbours in the group, not by sorting: for 10M parts in groups of 1-3, 0.13-0.24 s against
# 0.50-0.64 s for the sort and what follows it. Each further part costs one more pass of comparisons:
# 0.23-0.24 s for groups of up to 8, 0.36 s for up to 12.
SMALL_GROUP_PARTS = 8


def small_group_units(groups: pl.Series, remainders: pl.Series, leftovers: pl.Series, most_parts: int) -> pl.Series:
    """leftover_units for groups of at most `most_parts` parts: a part's rank in its group
    is the number of parts that come before it in the remainder order (a larger remainder,
    or an equal one in an earlier row), counted among the rows at most `most_parts` - 1
    away that are in its group; it gets a unit when its rank is below the leftovers."""
    group, remainder = pl.col("_group"), pl.col("_remainder")
    ahead = []
    for distance in range(1, most_parts):
        ahead.append(((group.shift(distance) == group) & (remainder.shift(distance) >= remainder)).fill_null(False))
        ahead.append(((group.shift(-distance) == group) & (remainder.shift(-distance) > remainder)).fill_null(False))
    rank = pl.sum_horizontal(pl.lit(0, dtype=pl.UInt32), *(before.cast(pl.UInt32) for before in ahead))
    return pl.DataFrame({"_group": groups, "_remainder": remainders, "_leftovers": leftovers}).select(
        (rank < pl.col("_leftovers")).cast(MONEY)).to_series()


def remainder_order(groups: pl.Series, remainders: pl.Series, largest: int) -> pl.Series:
    """The row numbers in order of group, then remainder descending, stably: by one packed
    integer when both fit in 64 bits."""
    frame = pl.DataFrame({"_group": groups, "_remainder": remainders})
    group_bits, remainder_bits = int(groups.max()).bit_length() + 1, max(largest, 1).bit_length()
    if group_bits + remainder_bits > 64:
        return frame.select(pl.arg_sort_by("_group", "_remainder", descending=[False, True],
                                           maintain_order=True)).to_series()
    shift = pl.lit(1 << remainder_bits, dtype=pl.UInt64)
    key = pl.col("_group").cast(pl.UInt64) * shift + (shift - 1 - pl.col("_remainder").cast(pl.UInt64))
    return frame.select(pl.arg_sort_by(key, maintain_order=True)).to_series()


def arithmetic_type(parts: pl.DataFrame, total: str, weight: str) -> pl.DataType:
    """The type for a split's products of a total and a weight, and its weight sums; refused
    (refuse_past_int128) where one could reach 2**127. When the largest total and the
    largest weight, perhaps of different groups, could reach it together, each part's own
    product is bounded (by a division, which cannot wrap)."""
    largest_total, largest_weight = parts.select(pl.col(total).cast(MONEY).abs().max(),
                                                 pl.col(weight).cast(MONEY).max()).row(0)
    if largest_total is not None and largest_weight is not None:
        refuse_past_int128((largest_weight, parts.height))
        if largest_total * largest_weight >= 1 << 127:
            limit = pl.lit((1 << 127) - 1, dtype=MONEY) // pl.col(total).cast(MONEY).abs().clip(lower_bound=1)
            beyond = parts.filter(pl.col(weight).cast(MONEY) > limit).select(pl.col(total).cast(MONEY).abs(),
                                                                              weight).head(1)
            if beyond.height:
                refuse_past_int128(beyond.row(0))
    return exact_type((largest_total, largest_weight), (largest_weight, parts.height))


class BeyondExactArithmetic(SettlementError):
    """Amounts and weights whose products the engine's 128-bit integers cannot hold."""


def refuse_past_int128(*products: tuple[int, ...]) -> None:
    """Refuse products (of the given magnitudes) that could reach 2**127: polars' Int128
    arithmetic wraps around silently (2 × 10^12 × 10^27 came out negative), and a wrapped
    product would round money wrongly."""
    for factors in products:
        if math.prod(max(value, 1) for value in factors) >= 1 << 127:
            shown = " × ".join(str(value) for value in factors)
            raise BeyondExactArithmetic(f"an amount of {shown} (the largest amount, weight or count of an allocation) "
                                        "reaches 2^127, past the exact 128-bit integers the engine rounds money in; "
                                        "nothing was written (usage units or amounts this large are beyond what the "
                                        "engine settles)")


def exact_type(*products: tuple[int | None, ...]) -> pl.DataType:
    """Int64 when no product of the given largest magnitudes reaches 2**63 (Int64 division
    is several times faster than Int128's), else Int128; None (the largest value of an
    empty column) counts as unknown, so Int128."""
    if any(value is None for factors in products for value in factors):
        return MONEY
    fits = all(math.prod(max(value, 1) for value in factors) < 1 << 63 for factors in products)
    return pl.Int64 if fits else MONEY
