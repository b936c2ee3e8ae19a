"""Explain: why did holder H get this amount for work W? (DESIGN.md, "Who uses it", 3.)

An auditor's answer, step by step, for each holder line asked about: the contract's
terms as invoiced, each term's part for the work by largest remainder (rule 2), the
work's amount over the split's holders by their shares (rule 3), commission,
withholding spread over the holder's lines, net (rule 4), and whether the holder's
balance, with what earlier runs carried forward (balances.csv), is paid or carried
forward.

Every step is worked out again from the run's own files (allocations.csv, lines.parquet,
the invoices and statements, checked against the manifest first) and the inputs that
hold rates and balances (the policy's commission and thresholds, the holders' withholding
and thresholds, balances.csv), by the published rules
(README, "Apportionment rules"), not by the engine's code: so the explanation is also a
check. A figure the rules do not give is marked; `Explanation.mismatches` counts them.

The parts a largest-remainder step is ranked among (a term's parts over a million works,
a holder's lines) are frames, ranked by frame operations; only the few lines explained,
and the holders of their splits, are worked out one by one, as exact fractions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from math import lcm
from pathlib import Path

import polars as pl

from contracts.errors import InputError
from contracts.loading import BALANCE_SCHEMA, load_balances, load_rows, load_yaml, sha256_file
from contracts.numbers import parse_exact
from contracts.parties import RightsHolder
from contracts.policy import DistributionPolicy
from settlement.money import exponent, format_minor, round_half_even
from settlement.runfolder import LINE_KEY, Pinned, minor_units

TIE_BREAK = ["work_key", "use_type", "version"]  # level 1's tie-break (rule 5)
MOST_LINES = 20  # lines explained at once; more are counted, and the options narrow them


@dataclass(frozen=True)
class Share:
    """One part of a largest-remainder split (rule 5), worked out again: `total` units over
    parts weighing `weight_sum`, this part weighing `weight`, ranked `rank` (from 0) by
    remainder, largest first, ties to the smaller key."""

    total: int
    weight: int
    weight_sum: int
    parts: int
    floor: int
    leftover: int
    rank: int

    @property
    def amount(self) -> int:
        return self.floor + (1 if self.rank < self.leftover else 0)

    @property
    def exact(self) -> Fraction:
        return Fraction(self.total * self.weight, self.weight_sum)


def key_before(key: list[str], values: tuple) -> pl.Expr:
    """Rows whose `key` comes before `values` (values, or another row's columns as
    expressions), column by column (strings by code point)."""
    first, rest = pl.col(key[0]), key[1:]
    before = first < values[0]
    return before if not rest else before | ((first == values[0]) & key_before(rest, values[1:]))


def recomputed_share(parts: pl.DataFrame, total: int, target: pl.Expr, key: list[str]) -> Share:
    """The part of `total` that the row `target` of `parts` (with an integer `weight` and the
    string columns `key`, the tie-break) gets by rule 5."""
    parts = parts.with_columns(pl.col("weight").cast(pl.Int128), *(pl.col(k).fill_null("") for k in key))
    weight_sum = int(parts["weight"].sum())
    parts = with_floor_and_remainder(parts.with_columns(pl.lit(total, dtype=pl.Int128).alias("total"),
                                                       pl.lit(weight_sum, dtype=pl.Int128).alias("weight_sum")))
    mine = parts.filter(target)
    remainder, values = mine["remainder"][0], mine.select(key).row(0)
    ahead = parts.filter((pl.col("remainder") > remainder) | ((pl.col("remainder") == remainder)
                                                            & key_before(key, values))).height
    return Share(total, int(mine["weight"][0]), weight_sum, parts.height, int(mine["floor"][0]),
                 total - int(parts["floor"].sum()), ahead)


def exact_text(value: Fraction, currency: str) -> str:
    """An exact amount in major units: its digits to four places past the currency's, and `…`
    when it goes on."""
    places = exponent(currency) + 4
    scaled = value * 10**places
    whole = scaled.numerator // scaled.denominator
    text = format(Decimal(whole).scaleb(-places), "f")
    if whole != scaled:
        return text + "…"
    keep = len(text) - 4 if exponent(currency) else len(text) - 5  # the currency's digits, and its point
    return text[:keep] + text[keep:].rstrip("0").rstrip(".")


def share_text(share: Share, currency: str, what: str, money_weights: bool = False) -> str:
    """How a largest-remainder share comes about, in words; `money_weights`: the weights are
    amounts of the currency, shown as such."""
    money = lambda minor: format_minor(minor, currency)
    unit = format_minor(1, currency)
    units = f"{share.leftover} leftover unit{'s' if share.leftover != 1 else ''} of {unit}"
    extra = (f"ranks {share.rank + 1} of {share.parts} by remainder, and {units} "
             + ("go to the first " + str(share.leftover) if share.leftover != 1 else "goes to the first"))
    if share.leftover == 0:
        extra = "no leftover units"
    weight, weight_sum = ((money(share.weight), money(share.weight_sum)) if money_weights
                          else (share.weight, share.weight_sum))
    return (f"{money(share.total)} × {weight} / {weight_sum} ({what}) = "
            f"{exact_text(share.exact / 10**exponent(currency), currency)} → floor {money(share.floor)}; {extra} "
            f"→ {money(share.amount)}")


def half_even_text(amount: int, rate: Fraction, currency: str) -> tuple[int, str]:
    """amount × rate, rounded half-even, and how."""
    exact = amount * rate
    rounded = round_half_even(exact)
    return rounded, (f"{format_minor(amount, currency)} × {rate_text(rate)} = "
                     f"{exact_text(exact / 10**exponent(currency), currency)} → half-even {format_minor(rounded, currency)}")


def rate_text(rate: Fraction) -> str:
    """A rate as a decimal when it terminates (0.15), else as a fraction (1/3)."""
    denominator = rate.denominator
    for factor in (2, 5):
        while denominator % factor == 0:
            denominator //= factor
    return str(rate) if denominator != 1 else format(Decimal(rate.numerator) / Decimal(rate.denominator), "f")


@dataclass
class Explanation:
    """What `explain` says: its lines of text, how many figures the rules do not give, and
    how many holder lines matched (of which at most MOST_LINES are explained)."""

    lines: list[str] = field(default_factory=list)
    mismatches: int = 0
    matched: int = 0

    def check(self, text: str, written: int, expected: int, currency: str, indent: str = "     ") -> None:
        """A step: `text`, then whether the run wrote what the rules give."""
        self.claim(f"{indent}{text}", written == expected, f"the run wrote {format_minor(written, currency)}")

    def claim(self, text: str, holds: bool, otherwise: str) -> None:
        """`text`, marked ✓ if it `holds`, else ✗ and what the run did `otherwise`."""
        self.mismatches += not holds
        self.lines.append(f"{text}  ✓" if holds else f"{text}  ✗ {otherwise}")


@dataclass(frozen=True)
class RunFiles:
    """The files of a run an explanation reads, checked against its manifest."""

    pinned: Pinned
    policy: DistributionPolicy
    holders: dict[str, RightsHolder]
    pins: dict[str, str]  # the SHA-256 of every file the manifest names, by its name
    brought_forward: dict[tuple[str, str], int]  # balances.csv's, by holder and currency, in minor units

    @property
    def folder(self) -> Path:
        return self.pinned.folder

    def lines(self) -> pl.LazyFrame:
        enums = ["licensee_id", "contract_id", "use_type", "split_version", "right", "share", "currency"]
        return pl.scan_parquet(self.folder / "lines.parquet", glob=False).with_columns(pl.col(enums).cast(pl.String))

    def allocations(self) -> pl.LazyFrame:
        # Int128: usage units reach 10^18, and an output without attribution weighs 10^9 of them
        return pl.scan_csv(self.folder / "allocations.csv", infer_schema=False, glob=False).with_columns(
            pl.col("weight").cast(pl.Int128), minor_units("amount").alias("amount_minor"))

    def invoice_term(self, licensee: str, contract: str, term: str) -> dict:
        name = f"invoices/{licensee}.json"
        checked(self.folder, self.pins, [name])
        invoice = json.loads((self.folder / name).read_text(encoding="utf-8"))
        terms = next((c["terms"] for c in invoice["contracts"] if c["contract_id"] == contract), [])
        found = next((t for t in terms if t["term_id"] == term), None)
        if found is None:
            raise InputError(str(self.folder / name), f"has no term {term} of contract {contract}, which "
                                                      "allocations.csv allocates", expected="the run's invoice")
        return found

    @staticmethod
    def read(run_out: Path, inputs: Path) -> "RunFiles":
        pinned = Pinned.read(run_out).require_run()
        pins = pinned.pins
        policy_name = "policy.yaml" if "policy.yaml" in pins else "policy.json"
        checked(run_out, pins, ["lines.parquet", "allocations.csv"])
        balances = ["balances.csv"] if "balances.csv" in pins else []
        checked(inputs, pins, [policy_name, "holders.csv", *balances])
        holders = {h.holder_id: h for h in load_rows(inputs / "holders.csv", RightsHolder)}
        brought = load_balances(inputs / "balances.csv", holders) if balances else pl.DataFrame(schema=BALANCE_SCHEMA)
        return RunFiles(pinned, load_yaml(inputs / policy_name, DistributionPolicy), holders, pins,
                        {(h, c): amount for h, c, amount in brought.iter_rows()})


WORK_AMOUNT = ["licensee_id", "contract_id", "work_id", "use_type", "split_version"]  # a level-2 amount's key
PART = ["contract_id", "work_key", "use_type", "version"]  # a work amount's key in allocations.csv
TERM = ["contract_id", "term_id"]


@dataclass(frozen=True)
class Bases:
    """What the explained lines are ranked among, summed in a few streaming passes over each
    file and never held: a term that pays an explained line's work can have a part for
    every work of the catalogue (68M parts of 20 contracts' terms at 100M usage rows, which
    took 12.5 GiB to hold), but rule 5 needs only its sums and, for each explained part, how
    many parts rank ahead of it. (A scan of allocations.csv per line took minutes for 20
    lines at 100M usage rows, so every line's parts are ranked in the same passes.)"""

    parts: pl.DataFrame    # the explained lines' parts, with their terms' sums (parts, total, weight_sum,
    #                        floor_sum) and their own weight, amount_minor, floor and rank
    holders: pl.DataFrame  # lines.parquet's lines of every explained line's work amount

    @staticmethod
    def read(files: RunFiles, lines: pl.DataFrame) -> "Bases":
        keys = lines.select(pl.col("contract_id"), pl.col("work_id").alias("work_key"), "use_type",
                            pl.col("split_version").alias("version")).unique()
        holders = files.lines().join(lines.select(WORK_AMOUNT).unique().lazy(), on=WORK_AMOUNT, how="semi")
        return Bases(explained_parts(files.allocations(), keys), holders.collect())


def explained_parts(allocations: pl.LazyFrame, keys: pl.DataFrame) -> pl.DataFrame:
    """The accepted parts of `allocations` whose key (PART) is one of `keys`, each with its
    term's sums and its rank by rule 5 among the term's parts. The parts and their terms' sums
    come from one query: two collected together share one scan of allocations.csv, which held
    what the slower had not read (9.1 GiB at 100M usage rows)."""
    keys = keys.with_row_index("target").with_columns(pl.lit("accepted").alias("status"))
    groups = (allocations.join(keys.lazy(), on=[*PART, "status"], how="left")
              .group_by(*TERM, "target").agg(pl.len().alias("parts"), pl.col("amount_minor").sum(),
                                             pl.col("weight").sum()).collect())
    sums = groups.group_by(TERM).agg(pl.col("parts").sum(), pl.col("amount_minor").sum().alias("total"),
                                     pl.col("weight").sum().alias("weight_sum"))
    parts = groups.filter(pl.col("target").is_not_null()).drop("parts").join(keys, on="target").select(
        *TERM, *TIE_BREAK, "weight", "amount_minor")
    terms = sums.join(parts.select(TERM).unique(), on=TERM, how="semi").sort(TERM).with_row_index("term")
    return ranked(allocations, terms, parts)


def with_floor_and_remainder(parts: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame | pl.LazyFrame:
    """Rule 5's floor and remainder of each part (`weight`) of its term's `total` over its `weight_sum`."""
    product = pl.col("total") * pl.col("weight")
    return parts.with_columns((product // pl.col("weight_sum")).alias("floor"),
                              (product % pl.col("weight_sum")).alias("remainder"))


def ranked(allocations: pl.LazyFrame, terms: pl.DataFrame, parts: pl.DataFrame) -> pl.DataFrame:
    """The explained `parts` with their terms' sums, each term's floors summed (`floor_sum`), and
    each part's `rank`: how many parts of its term come before it by rule 5 (a larger
    remainder, or an equal one and a smaller key), counted in one streaming pass. Each part
    counts the explained remainders of its term below its own (`above`); the parts counted
    by that give each explained part the parts with a larger remainder, and the parts with an
    equal remainder are compared key by key."""
    parts = with_floor_and_remainder(parts.join(terms, on=TERM)).with_row_index("target")
    thresholds = parts.group_by("term").agg(pl.col("remainder").unique().sort())
    above = pl.lit(0, dtype=pl.UInt32)  # by comparisons, row by row: polars runs search_sorted on a whole column
    for term, remainders in thresholds.iter_rows():
        below = pl.sum_horizontal(pl.col("remainder") > pl.lit(r, dtype=pl.Int128) for r in remainders)
        above = pl.when(pl.col("term") == term).then(below.cast(pl.UInt32)).otherwise(above)
    scored = (with_floor_and_remainder(allocations.join(terms.lazy().select(*TERM, "term", "total", "weight_sum"),
                                                        on=TERM))
              .with_columns(pl.col(TIE_BREAK).fill_null(""))
              .with_columns(pl.when(pl.col("remainder").is_not_null()).then(above).alias("above")))
    by_place = scored.group_by("term", "above").agg(pl.len().alias("count"), pl.col("floor").sum().alias("floor_sum"))
    mine = parts.select("target", "term", "remainder", *(pl.col(k).alias(f"{k}_target") for k in TIE_BREAK))
    ties = (scored.join(mine.lazy(), on=["term", "remainder"])
            .filter(key_before(TIE_BREAK, tuple(pl.col(f"{k}_target") for k in TIE_BREAK)))
            .group_by("target").agg(pl.len().alias("ties_ahead")))
    by_place, ties = pl.collect_all([by_place, ties])
    floor_sums = by_place.group_by("term").agg(pl.col("floor_sum").sum())
    place = parts.join(thresholds.explode("remainder").with_columns(
        pl.int_range(1, pl.len() + 1, dtype=pl.UInt32).over("term").alias("place")), on=["term", "remainder"])
    larger = place.join(by_place.filter(pl.col("above").is_not_null()), on="term").filter(
        pl.col("above") >= pl.col("place")).group_by("target").agg(pl.col("count").sum().alias("larger"))
    rank = (pl.col("larger").fill_null(0) + pl.col("ties_ahead").fill_null(0)).alias("rank")
    return (parts.join(floor_sums, on="term", how="left").join(larger, on="target", how="left")
            .join(ties, on="target", how="left").with_columns(rank).drop("larger", "ties_ahead", "target"))


def checked(folder: Path, pins: dict[str, str], names: list[str]) -> None:
    """Refuse a file of `folder` that is not the one the manifest pins: it would explain another run."""
    for name in names:
        path = folder / name
        if name not in pins:
            raise InputError(str(path), "is not a file the run's manifest.json names",
                             expected="the folder the run read, or the run's output folder")
        if not path.is_file():
            raise InputError(str(path), "is missing", expected="the file the run's manifest.json names")
        if sha256_file(path) != pins[name]:
            raise InputError(str(path), "is not the file the run's manifest.json pins (its SHA-256 differs)",
                             expected="the run's own file: `settle replay` shows what else differs")


def explain(run_out: Path, inputs: Path, holder: str, work: str | None = None, contract: str | None = None,
            use_type: str | None = None) -> Explanation:
    """Explain holder `holder`'s lines in the run in `run_out` (narrowed to a work, a contract, a
    use type), with the rates of the run's `inputs` folder."""
    files = RunFiles.read(run_out, inputs)
    holder_lines = files.lines().filter(pl.col("holder_id") == holder).collect()
    wanted = [pl.col(column) == value for column, value in
              (("work_id", work), ("contract_id", contract), ("use_type", use_type)) if value is not None]
    chosen = holder_lines.filter(*wanted) if wanted else holder_lines
    balance_currencies = [] if wanted else [currency for (h, currency) in files.brought_forward if h == holder]
    if chosen.is_empty() and not balance_currencies:
        asked = ", ".join(f"{c} {v}" for c, v in (("work", work), ("contract", contract), ("use type", use_type)) if v)
        raise InputError(str(run_out), f"holder {holder} has no line in run {files.pinned.run_id}"
                         + (f" for {asked}" if asked else ""),
                         expected="a holder with lines in lines.csv (on that work, contract or use type), or "
                                  "with a balance brought forward (balances.csv)")
    result = Explanation(matched=chosen.height)
    shown = chosen.sort(LINE_KEY).head(MOST_LINES)
    bases = Bases.read(files, shown)
    for line in shown.iter_rows(named=True):
        explain_line(result, files, bases, line, holder_lines)
    if chosen.height > MOST_LINES:
        result.lines.append(f"({chosen.height - MOST_LINES} more lines of {holder} match: narrow them with --work, "
                            "--contract or --use-type)")
    for currency in sorted({*chosen["currency"].unique().to_list(), *balance_currencies}):  # a balance alone too
        explain_balance(result, files, holder, currency, holder_lines.filter(pl.col("currency") == currency))
    return result


def explain_line(result: Explanation, files: RunFiles, bases: Bases, line: dict, holder_lines: pl.DataFrame) -> None:
    currency = line["currency"]
    result.lines.append(
        f"{line['holder_id']} on {line['work_id']} ({line['use_type']}, split {line['split_version']}) under "
        f"{line['contract_id']} of {line['licensee_id']}, {currency}, run {files.pinned.run_id}:")
    work_amount = explain_level_one(result, files, bases, line)
    gross = explain_level_two(result, bases, line, work_amount)
    commission = explain_commission(result, files, line, gross)
    withholding = explain_withholding(result, files, line, holder_lines)
    net = gross - commission - withholding
    result.check(f"5. net = {format_minor(gross, currency)} − {format_minor(commission, currency)} − "
                 f"{format_minor(withholding, currency)} = {format_minor(net, currency)} (lines.parquet)",
                 line["net_minor"], net, currency, indent="  ")


def explain_level_one(result: Explanation, files: RunFiles, bases: Bases, line: dict) -> int:
    """Rule 2: each term's part for the line's (work, use type, version); returns the work's amount."""
    currency, contract = line["currency"], line["contract_id"]
    mine = bases.parts.filter(pl.col("contract_id") == contract, pl.col("work_key") == line["work_id"],
                              pl.col("use_type") == line["use_type"], pl.col("version") == line["split_version"])
    result.lines.append("  1. each term of the contract as invoiced, allocated over its base by largest remainder "
                        "(allocations.csv):")
    work_amount = 0
    for part in mine.sort("term_id").iter_rows(named=True):
        term_id, total = part["term_id"], int(part["total"])
        term = files.invoice_term(line["licensee_id"], contract, term_id)
        result.check(f"{term_id} ({term['type']}{', ' + term['basis'] if term.get('basis') else ''}): exact "
                     f"{term['exact']}, rounded {term['rounded']}, charged {term['charged']}; its parts sum to "
                     f"{format_minor(total, currency)}", total, round_half_even(parse_exact(term['charged'])
                                                                                 * 10**exponent(currency)), currency)
        share = Share(total, int(part["weight"]), int(part["weight_sum"]), part["parts"], int(part["floor"]),
                      total - int(part["floor_sum"]), part["rank"])
        written = int(part["amount_minor"])
        result.check("   " + share_text(share, currency, "this work's weight of the term's"), written, share.amount,
                     currency)
        work_amount += written
    result.lines.append(f"     the work's amount under the contract: {format_minor(work_amount, currency)}")
    return work_amount


def explain_level_two(result: Explanation, bases: Bases, line: dict, work_amount: int) -> int:
    """Rule 3: the work's amount over the holders of its split by their shares; returns the gross."""
    currency = line["currency"]
    holders = bases.holders.filter(*(pl.col(k) == line[k] for k in WORK_AMOUNT)).select(
        "holder_id", "share", "gross_minor").sort("holder_id")
    shares = [parse_exact(text) for text in holders["share"]]
    scale = lcm(*(s.denominator for s in shares))
    parts = holders.with_columns(pl.Series("weight", [int(s * scale) for s in shares], dtype=pl.Int128))
    gross_sum = int(holders["gross_minor"].sum())
    listed = ", ".join(f"{h} {s}" for h, s in zip(holders["holder_id"], holders["share"]))
    result.claim(f"  2. the holders of split {line['split_version']} and their shares: {listed}", sum(shares) == 1,
                 f"the shares sum to {sum(shares)}, not 1: a holder's line is missing or a share is wrong")
    result.check(f"their gross sums to the work's amount: {format_minor(gross_sum, currency)}", gross_sum,
                 work_amount, currency)
    share = recomputed_share(parts, work_amount, pl.col("holder_id") == line["holder_id"], ["holder_id"])
    result.check(share_text(share, currency, f"{line['holder_id']}'s share, {line['share']}") + " gross",
                 line["gross_minor"], share.amount, currency)
    return share.amount


def explain_commission(result: Explanation, files: RunFiles, line: dict, gross: int) -> int:
    """Rule 4: commission on the line, gross × the use type's rate, half-even."""
    rate = Fraction(dict(files.policy.commission).get(line["use_type"], 0))
    commission, text = half_even_text(gross, rate, line["currency"])
    result.check(f"3. commission at the policy's {line['use_type']} rate: {text}", line["commission_minor"],
                 commission, line["currency"], indent="  ")
    return commission


def explain_withholding(result: Explanation, files: RunFiles, line: dict, holder_lines: pl.DataFrame) -> int:
    """Rule 4: the holder's withholding in the currency, on its total after commission, and
    this line's part of it by largest remainder over the holder's lines."""
    currency, holder = line["currency"], line["holder_id"]
    lines = holder_lines.filter(pl.col("currency") == currency).with_columns(
        (pl.col("gross_minor") - pl.col("commission_minor")).alias("weight"))
    after = int(lines["weight"].sum())
    rate = Fraction(files.holders[holder].withholding_rate)
    total, text = half_even_text(after, rate, currency)
    result.lines.append(f"  4. withholding at {holder}'s rate on its {currency} total after commission over "
                        f"{lines.height} line{'s' if lines.height != 1 else ''}: {text}")
    if total == 0:
        result.check("nothing to spread over the lines: 0", line["withholding_minor"], 0, currency)
        return 0
    this = pl.all_horizontal(pl.col(k) == line[k] for k in LINE_KEY)
    share = recomputed_share(lines, total, this, LINE_KEY)
    result.check(share_text(share, currency, "this line's gross − commission of the holder's", money_weights=True),
                 line["withholding_minor"], share.amount, currency)
    return share.amount


def explain_balance(result: Explanation, files: RunFiles, holder: str, currency: str, lines: pl.DataFrame) -> None:
    """Rule 4's threshold: the holder's net in the currency and the balance brought forward
    (balances.csv), paid together or carried forward, as its statement shows them (brought
    forward, threshold, payable and carried forward)."""
    net = int(lines["net_minor"].sum())
    brought = files.brought_forward.get((holder, currency), 0)
    owed = net + brought
    own = files.holders[holder]
    major = (own.payout_threshold if own.payout_threshold is not None and own.payout_currency == currency
             else files.policy.thresholds.get(currency, 0))
    threshold = round_half_even(Fraction(major) * 10**exponent(currency))
    paid = owed >= threshold and owed > 0
    expected = {"brought_forward": brought, "threshold": threshold, "payable": owed if paid else 0,
                "carried_forward": 0 if paid else owed}
    checked(files.folder, files.pins, [f"statements/{holder}.csv"])
    statement = pl.read_csv(files.folder / "statements" / f"{holder}.csv", infer_schema=False, glob=False).filter(
        (pl.col("currency") == currency) & pl.col("record").is_in(list(expected)))
    written = {row["record"]: round_half_even(parse_exact(row["net"]) * 10**exponent(currency))
               for row in statement.iter_rows(named=True)}
    differ = [f"{name.replace('_', ' ')} {format_minor(written[name], currency) if name in written else 'missing'}"
              for name in expected if written.get(name) != expected[name]]
    money = lambda name: format_minor(expected[name], currency)
    verdict = (f"at least the threshold {money('threshold')}" if paid else
               f"below the threshold {money('threshold')}" if owed < threshold else
               f"not above 0 (a debt is carried, never paid; the threshold is {money('threshold')})")
    result.claim(f"{holder}'s {currency} net over all its lines is {format_minor(net, currency)}, and with "
                 f"{money('brought_forward')} brought forward (balances.csv) {format_minor(owed, currency)}, "
                 f"{verdict}: payable {money('payable')}, "
                 f"carried forward {money('carried_forward')} (statements/{holder}.csv)", not differ,
                 "the statement shows " + ", ".join(differ))
