"""Property-based tests of the laws (DESIGN.md, "The laws" and "Apportionment rules, version 1").

Random small input folders (tests/strategies.py) are settled for October 2026
and the laws are checked on the engine's frames and on the exported files.
Each settlement costs about a second or more of fixed query planning, so the
example counts are small; set LAWS_EXAMPLES=10 (a multiplier) for a longer
search. A failure prints the falsifying example and a `@reproduce_failure`
blob to replay it.
"""

from __future__ import annotations

import ast
import io
import json
import os
import tempfile
from collections import defaultdict
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction
from pathlib import Path
from unittest import mock

import polars as pl
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

import strategies as gen
from builders import write_inputs
from contracts.errors import ConservationError
from contracts.loading import load_inputs
from settlement import allocate, distribute, ledger
from settlement import run as pipeline
from settlement.exports import export, export_preview
from settlement.intake import Period
from settlement.keys import decoded
from settlement.money import (SMALL_GROUP_PARTS, exact_type, format_minor, largest_remainder, leftover_units,
                              minor_expr, round_half_even, to_minor)
from settlement.run import Settlement, preview, settle

ROOT = Path(__file__).resolve().parent.parent
SCALE = float(os.environ.get("LAWS_EXAMPLES", "1"))


def laws(examples: int, **extra) -> settings:
    """Settings for one law: `examples` (times LAWS_EXAMPLES), no deadline, the replay blob printed."""
    return settings(max_examples=max(1, round(examples * SCALE)), deadline=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], **extra)


# --------------------------------------------------------------------------- helpers

def run(folder: Path, out: Path | None = None) -> Settlement:
    """Settle October 2026 from `folder`, exporting into `out` when given."""
    s = settle(load_inputs(folder), Period.parse(gen.PERIOD), gen.CLOCK)
    if out is not None:
        export(s, out)
    return s


def output_files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def without_run_id(data: bytes, run_id: str) -> bytes:
    return data.replace(run_id.encode(), b"<run-id>")


def quarantine_rows(data: bytes) -> list[dict]:
    """quarantine.csv without its file and row columns, as a sorted list (row numbers move with the rows)."""
    frame = pl.read_csv(data, infer_schema=False)
    return sorted((json.dumps(r, sort_keys=True) for r in frame.drop("file", "row").to_dicts()))


def all_rows(files: dict[str, list[dict]]) -> list[dict]:
    return [row for rows in files.values() for row in rows]


def split_shares(splits: list[dict]) -> dict[tuple[str, str], dict[str, Fraction]]:
    """(work_id, version) -> holder -> exact share, from the generated split rows."""
    result: dict[tuple[str, str], dict[str, Fraction]] = defaultdict(dict)
    for row in splits:
        result[(row["work_id"], row["valid_from"])][row["holder_id"]] = gen.exact(row["share"])
    return result


def minor_of(text: str, currency: str) -> int:
    """An exported amount string back to minor units, checking it has exactly the currency's digits."""
    digits = gen.EXPONENTS[currency]
    whole, _, part = text.partition(".")
    assert len(part) == digits, f"{text!r} should have {digits} decimals in {currency}"
    return int(Decimal(text).scaleb(digits))


# --------------------------------------------------------------------------- 1. largest remainder

def apportion(rows: list[dict]) -> dict[tuple[str, str, str], int]:
    frame = pl.DataFrame(rows, schema={"group": pl.String, "total": pl.Int64, "weight": pl.Int64,
                                       "key": pl.String, "use": pl.String})
    out = largest_remainder(frame, group=["group"], total="total", weight="weight", tie_break=["key", "use"],
                            out="part")
    return {(r["group"], r["key"], r["use"]): int(r["part"]) for r in out.iter_rows(named=True)}


def by_group(rows: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[row["group"]].append(row)
    return groups


@laws(150)
@given(rows=gen.apportionment_frames())
def test_largest_remainder_parts_sum_exactly_to_the_total(rows):
    """Law 2 / rule 5: largest-remainder parts always sum exactly to the group's total."""
    parts = apportion(rows)
    assert len(parts) == len(rows)
    for group, members in by_group(rows).items():
        assert sum(parts[(group, r["key"], r["use"])] for r in members) == members[0]["total"]


@laws(150)
@given(rows=gen.apportionment_frames())
def test_largest_remainder_parts_are_within_one_unit_of_the_exact_share(rows):
    """Rule 5: every part is its exact share rounded down or up, so it differs from it by less than one unit."""
    parts = apportion(rows)
    for group, members in by_group(rows).items():
        weight_sum = sum(r["weight"] for r in members)
        for r in members:
            share = Fraction(r["total"] * r["weight"], weight_sum)
            part = parts[(group, r["key"], r["use"])]
            assert abs(part - share) < 1
            assert part in (share.__floor__(), share.__ceil__())


@laws(100)
@given(rows=gen.apportionment_frames(), data=st.data())
def test_largest_remainder_does_not_depend_on_row_order(rows, data):
    """Law 2: no input order can change who gets the odd unit."""
    shuffled = data.draw(st.permutations(rows), label="shuffled rows")
    assert apportion(shuffled) == apportion(rows)


@laws(150)
@given(rows=gen.apportionment_frames())
def test_largest_remainder_gives_odd_units_by_remainder_then_smaller_key(rows):
    """Rule 5: leftover units go to the largest remainders, equal remainders to the smaller key by code point."""
    parts = apportion(rows)
    for group, members in by_group(rows).items():
        total, weight_sum = members[0]["total"], sum(r["weight"] for r in members)
        ranked = sorted(members, key=lambda r: (-((total * r["weight"]) % weight_sum), r["key"], r["use"]))
        leftover = total - sum(total * r["weight"] // weight_sum for r in members)
        expected = {(group, r["key"], r["use"]): total * r["weight"] // weight_sum + (rank < leftover)
                    for rank, r in enumerate(ranked)}
        assert {k: v for k, v in parts.items() if k[0] == group} == expected
        # the tie-break, stated pairwise: of two equal remainders, only the smaller key may be favoured
        for a in members:
            for b in members:
                same = (total * a["weight"]) % weight_sum == (total * b["weight"]) % weight_sum
                got_a = parts[(group, a["key"], a["use"])] > total * a["weight"] // weight_sum
                got_b = parts[(group, b["key"], b["use"])] > total * b["weight"] // weight_sum
                if same and got_a and not got_b:
                    assert (a["key"], a["use"]) < (b["key"], b["use"])


@laws(150)
@given(data=st.data(), most=st.sampled_from((SMALL_GROUP_PARTS, SMALL_GROUP_PARTS + 4)),
       largest=st.sampled_from((3, 10**6, 2**70)))
def test_leftover_units_go_by_remainder_then_row_with_or_without_a_sort(data, most, largest):
    """Rule 5's ranking, in both of leftover_units' ways (groups of up to SMALL_GROUP_PARTS parts
    are ranked among their neighbours, larger ones by a sort): a group's leftover units go
    to its largest remainders, equal remainders to the earlier row."""
    sizes = data.draw(st.lists(st.integers(1, most), min_size=1, max_size=12), label="group sizes")
    remainders = [data.draw(st.integers(0, largest)) for _ in range(sum(sizes))]
    lefts = [data.draw(st.integers(0, size)) for size in sizes]
    groups = [g for g, size in enumerate(sizes) for _ in range(size)]
    got = leftover_units(pl.Series(groups, dtype=pl.UInt32), pl.Series(remainders, dtype=pl.Int128),
                         pl.Series([lefts[g] for g in groups], dtype=pl.Int128)).to_list()
    expected, first = [], 0
    for g, size in enumerate(sizes):
        rows = range(first, first + size)
        ranked = sorted(rows, key=lambda row: (-remainders[row], row))
        expected += [int(ranked.index(row) < lefts[g]) for row in rows]
        first += size
    event("ranked among neighbours" if max(sizes) <= SMALL_GROUP_PARTS else "ranked by a sort")
    assert got == expected


# --------------------------------------------------------------------------- 2. rounding

def decimal_half_even(value: Fraction) -> int:
    """The reference: Python's decimal module, ROUND_HALF_EVEN to an integer."""
    with localcontext() as context:
        # truncating with this many digits keeps every value on its side of the half
        context.prec = len(str(abs(value.numerator))) + len(str(value.denominator)) + 10
        context.rounding = ROUND_DOWN
        quotient = Decimal(value.numerator) / Decimal(value.denominator)
        return int(quotient.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


halves = st.builds(lambda k, scale: Fraction(2 * k + 1, 2) * scale, st.integers(-10**6, 10**6),
                   st.sampled_from((1, -1)))


@laws(400)
@given(value=st.one_of(st.fractions(), halves,
                       st.builds(Fraction, st.integers(-10**30, 10**30), st.integers(1, 10**12))))
def test_round_half_even_matches_decimal(value):
    """Law 1: the engine's one rounding is half-even exactly as Python's decimal ROUND_HALF_EVEN."""
    assert round_half_even(value) == decimal_half_even(value)


@laws(200)
@given(rows=st.lists(st.tuples(st.integers(0, 10**20), st.integers(0, 10**6), st.integers(1, 10**6)),
                     min_size=1, max_size=20),
       small=st.booleans())
def test_commission_and_withholding_round_half_even_in_either_integer_type(rows, small):
    """Law 1: commission and withholding (amount × rate, rounded half-even) are exact whether
    they are formed in Int64, when nothing can reach 2**63, or in Int128."""
    if small:
        rows = [(amount % 10**12, numerator, denominator) for amount, numerator, denominator in rows]
    frame = pl.DataFrame(rows, schema={"amount": pl.Int128, "rate_num": pl.Int128, "rate_den": pl.Int128},
                         orient="row")
    exact = distribute.product_type(frame["amount"], frame, "rate")
    assert exact == (pl.Int64 if small else exact)
    got = frame.select(distribute.half_even_product(pl.col("amount"), pl.col("rate_num"), pl.col("rate_den"), exact)
                       ).to_series().to_list()
    assert got == [round_half_even(Fraction(a * n, d)) for a, n, d in rows]


@laws(100)
@given(rates=st.dictionaries(st.sampled_from(gen.USE_TYPES), gen.commission_rates()),
       lines=st.lists(st.tuples(st.sampled_from(gen.USE_TYPES), st.integers(0, 10**15)), min_size=1, max_size=20))
def test_commission_is_gross_times_the_lines_use_type_rate(rates, lines):
    """Rule 4: each line's commission is its gross × its own use type's rate, rounded
    half-even; a use type the policy gives no rate pays none (rates are looked up by the
    use type's code, so a rate in the wrong place would charge another use type's)."""
    from contracts.policy import DistributionPolicy
    from settlement.keys import Codes, KeyTypes, lexical_enum

    policy = DistributionPolicy.model_validate({"society": "S", "commission": rates})
    use_type = lexical_enum([*gen.USE_TYPES, ""])
    types = KeyTypes(work=Codes(pl.Series(["W"])), holder=Codes(pl.Series(["H"])), contract=lexical_enum(["C"]),
                     term=lexical_enum(["T"]), use_type=use_type, version=pl.Enum(["2020-01-01"]),
                     licensee=lexical_enum(["L"]), currency=lexical_enum(["EUR"]), share=pl.Enum(["1"]))
    frame = pl.DataFrame(lines, schema={"use_type": pl.String, "gross": pl.Int128}, orient="row").with_columns(
        pl.col("use_type").cast(use_type))
    got = distribute.with_commission(frame, distribute.Rates.of(policy, {}, types).commission)["commission"]
    wanted = {use: Fraction(rate) for use, rate in policy.commission.items()}
    assert got.to_list() == [round_half_even(gross * wanted.get(use, Fraction(0))) for use, gross in lines]


def spread_by_hand(lines: list[tuple], rates: list[Fraction]) -> dict[tuple, int]:
    """Rule 4's withholding per line, from the rule: per holder and currency, the total after
    commission × the holder's rate rounded half-even once, spread by largest remainder
    (larger remainder first, then the smaller line key). `lines`: (line key, holder index,
    currency, after commission)."""
    spread = {}
    for group in {(holder, currency) for _, holder, currency, _ in lines}:
        mine = [line for line in lines if (line[1], line[2]) == group]
        base = sum(after for *_, after in mine)
        total = round_half_even(base * rates[group[0]])
        shares = {key: divmod(total * after, base) if base else (0, 0) for key, _, _, after in mine}
        leftover = total - sum(floor for floor, _ in shares.values())
        ranked = sorted(shares, key=lambda key: (-shares[key][1], key))
        for rank, key in enumerate(ranked):
            spread[key] = shares[key][0] + (rank < leftover)
    return spread


@laws(60)
@given(lines=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3), st.integers(0, 3),
                                st.one_of(st.integers(0, 3), st.integers(0, 10**6)),  # small amounts tie
                                st.integers(0, 10**4)), min_size=1, max_size=30, unique_by=lambda line: line[:3]),
       rates=st.lists(gen.withholding_rates(), min_size=4, max_size=4),
       range_lines=st.sampled_from([1, 3, ledger.LINE_PARTITION_ROWS]))
# two lines of one holder tie in two contracts: the leftover cent goes to the smaller line key (C0 before C1,
# although its work W1 is after W0)
@example(lines=[(0, 1, 0, 1, 0), (1, 0, 0, 1, 0)], rates=["0.5", "0", "0", "0"], range_lines=1)
def test_withholding_is_spread_over_the_holders_lines_in_every_contract(lines, rates, range_lines):
    """Rule 4 across contracts: a holder's withholding is rounded once on the holder's total after
    commission over its lines in every contract of that currency, and spread over all of those lines
    by largest remainder, whatever the ranges of holders the spread runs in. Lines: (contract, work,
    holder, amount after commission, commission); contracts C0 and C1 are in EUR, C2 in SEK."""
    from types import SimpleNamespace

    from contracts.numbers import parse_exact
    from contracts.policy import DistributionPolicy
    from contracts.vocabulary import RIGHTS
    from settlement.keys import Codes, KeyTypes, lexical_enum

    currencies = ["EUR", "EUR", "SEK"]
    rates = [parse_exact(rate or "0") for rate in rates]  # an empty rate in holders.csv is none
    types = KeyTypes(work=Codes(pl.Series([f"W{i}" for i in range(4)])),
                     holder=Codes(pl.Series([f"H{i}" for i in range(4)])), contract=lexical_enum(["C0", "C1", "C2"]),
                     term=lexical_enum(["T"]), use_type=lexical_enum([*gen.USE_TYPES, ""]),
                     version=pl.Enum(["2020-01-01"]), licensee=lexical_enum(["L0", "L1", "L2"]),
                     currency=lexical_enum(currencies), share=pl.Enum(["1"]))
    policy = DistributionPolicy.model_validate({"society": "S", "commission": {}})
    holders = {f"H{i}": SimpleNamespace(withholding_rate=rate) for i, rate in enumerate(rates)}
    frame = pl.DataFrame([{"licensee_id": f"L{c}", "contract_id": f"C{c}", "work_id": w, "use_type": "train",
                           "version": "2020-01-01", "holder_id": h, "right": RIGHTS[0], "share": "1", "currency": currencies[c], "units": 1,
                           "gross": after + commission, "commission": commission}
                          for c, w, h, after, commission in lines])
    frame = frame.with_columns(pl.col(c).cast(types.dtype(c)) for c in ("licensee_id", "contract_id", "use_type",
                                                                         "version", "right", "share", "currency"))
    frame = frame.with_columns(pl.col("gross", "commission").cast(pl.Int128)).select(
        *ledger.gross_schema(types), "commission")
    frame = frame.with_columns(pl.col("work_id", "holder_id").cast(pl.UInt32)).sort(ledger.LINE_KEY)
    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(ledger, "LINE_PARTITION_ROWS", range_lines):
        files = []
        for (contract,), part in sorted(frame.partition_by("contract_id", as_dict=True).items()):
            files.append(Path(tmp) / f"{contract}.parquet")
            part.write_parquet(files[-1])
        made = ledger.distributed(files, distribute.holder_sums(frame), distribute.Rates.of(policy, holders, types),
                                  Path(tmp) / "lines")
        got = pl.read_parquet(made.files)
    wanted = spread_by_hand([((f"L{c}", f"C{c}", f"W{w}", f"H{h}"), h, currencies[c], after)
                             for c, w, h, after, _ in lines], rates)
    assert {(row["licensee_id"], row["contract_id"], f"W{row['work_id']}", f"H{row['holder_id']}"):
            row["withholding"] for row in got.with_columns(pl.col(pl.Enum).cast(pl.String)).to_dicts()} == wanted
    assert got.select((pl.col("gross") - pl.col("commission") - pl.col("withholding") == pl.col("net")).all()).item()


@laws(300)
@given(text=gen.decimal_strings(10**9, 6), currency=st.sampled_from(gen.CURRENCIES), negative=st.booleans())
def test_to_minor_and_format_minor_agree_with_decimal(text, currency, negative):
    """Law 1: money is made once, half-even to the currency's minor unit, and written with exactly its digits."""
    value = -Decimal(text) if negative else Decimal(text)
    quantum = Decimal(1).scaleb(-gen.EXPONENTS[currency])
    expected = value.quantize(quantum, rounding=ROUND_HALF_EVEN)
    minor = to_minor(value, currency)
    assert Decimal(minor).scaleb(-gen.EXPONENTS[currency]) == expected
    written = format_minor(minor, currency)
    assert Decimal(written) == expected and written != "-0" and "E" not in written
    assert len(written.partition(".")[2]) == gen.EXPONENTS[currency]


@laws(200)
@given(amounts=st.lists(st.integers(-10**30, 10**30), min_size=1, max_size=20),
       currency=st.sampled_from(gen.CURRENCIES), small=st.booleans())
def test_vectorised_formatting_agrees_with_format_minor_in_either_integer_type(amounts, currency, small):
    """Law 1: the exports' column formatting writes each amount as format_minor does, whether
    its digits are taken in Int64 (when the run's amounts fit) or in Int128, as text or as
    the CSV writer writes the column it gives the writer."""
    if small:
        amounts = [amount % 10**18 * (1 if amount >= 0 else -1) for amount in amounts]
    exact = exact_type((max(abs(amount) for amount in amounts),))
    if small:
        assert exact == pl.Int64
    frame = pl.DataFrame({"amount": amounts, "currency": currency}, schema={"amount": pl.Int128, "currency": pl.String})
    expected = [format_minor(amount, currency) for amount in amounts]
    written = frame.select(minor_expr(pl.col("amount"), pl.col("currency"), [currency], exact)).to_series()
    assert written.to_list() == expected
    for_writer = frame.select(minor_expr(pl.col("amount"), pl.col("currency"), [currency], exact, text=False))
    assert for_writer.write_csv(line_terminator="\n", include_header=False) == "".join(f"{e}\n" for e in expected)


def test_an_allocation_past_128_bit_integers_is_refused_not_wrapped():
    """Law 1: polars' Int128 products wrap around silently (2 × 10^12 × 10^27 comes out
    negative). An allocation whose amount times weight could reach 2^127 (an output of 10^18
    units without attribution weighs 10^27) is refused in one line; just below, it is exact."""
    from contracts.errors import SettlementError

    def allocated(total: int, weights: list[int], other_group: tuple[int, int] = (1, 1)) -> list[int]:
        """`weights` sharing `total`, and one other group of one part: (total, weight)."""
        frame = pl.DataFrame({"group": [1] * len(weights) + [2], "total": [total] * len(weights) + [other_group[0]],
                              "weight": [*weights, other_group[1]], "key": [f"W{i}" for i in range(len(weights) + 1)]},
                             schema={"group": pl.Int64, "total": pl.Int128, "weight": pl.Int128, "key": pl.String})
        return largest_remainder(frame, group=["group"], total="total", weight="weight", tie_break=["key"],
                                 out="part")["part"].to_list()[:-1]

    for total in (2 * 10**12, -2 * 10**12):  # a negative total's product wraps too
        with pytest.raises(SettlementError, match=r"^an amount of 2000000000000 × 10{27} .* reaches 2\^127, past "
                                                  r"the exact 128-bit integers"):
            allocated(total, [10**27, 3])
    total, weights = (1 << 127) // 10**27 // 2, [10**27, 10**27 - 1]
    assert allocated(total, weights) == [total - total // 2, total // 2]
    # the largest total and the largest weight in different groups: no product reaches 2^127
    assert allocated(2 * 10**12, [5, 3], other_group=(1, 10**27)) == [1250000000000, 750000000000]
    with pytest.raises(SettlementError, match="reaches 2\\^127"):
        allocated(2 * 10**12, [5, 3], other_group=(10**12, 10**27))


# --------------------------------------------------------------------------- 3. conservation

@laws(30)
@given(data=gen.input_folders())
def test_conservation_to_the_minor_unit(data):
    """Law 2: per currency charged + brought forward = payable + carried forward + commission +
    withholding + suspense, per (contract, work, use type, version) the holders' gross sums to
    the level-1 amount, and on every line gross = commission + withholding + net, all
    recomputed from the frames and the exported files."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_inputs(Path(tmp) / "in", **data)
        s = run(folder, Path(tmp) / "out")
        summary = json.loads((Path(tmp) / "out" / "summary.json").read_text(encoding="utf-8"))
        lines_csv = pl.read_csv(Path(tmp) / "out" / "lines.csv", infer_schema=False)

    currency_of = {c.contract.contract_id: c.contract.currency for c in s.charges}
    for charge in s.charges:
        event(f"terms: {sorted({t.term_type for t in charge.terms})}")
        event("cap applied" if any(t.amount_minor != t.rounded_minor for t in charge.terms) else "no cap applied")
    lines = s.lines.collect()
    event(f"split versions on lines: {lines['version'].n_unique() if lines.height else 0}")
    charged, suspense = defaultdict(int), defaultdict(int)
    for charge in s.charges:
        charged[charge.contract.currency] += sum(t.amount_minor for t in charge.terms)
        assert all(t.amount_minor >= 0 for t in charge.terms)
    level1 = s.level1.collect().to_dicts()
    per_term, per_work = defaultdict(int), defaultdict(int)
    for part in level1:
        assert part["amount_minor"] >= 0
        per_term[(part["contract_id"], part["term_id"])] += part["amount_minor"]
        if part["status"] == "suspense":
            suspense[currency_of[part["contract_id"]]] += part["amount_minor"]
        elif part["status"] == "accepted":
            per_work[(part["contract_id"], part["work_key"], part["use_type"], part["version"])] += part["amount_minor"]
        else:
            raise AssertionError(f"level-1 part with status {part['status']!r}")
    for charge in s.charges:  # level 1 conserves every term
        for term in charge.terms:
            assert per_term.pop((charge.contract.contract_id, term.term_id), 0) == term.amount_minor
    assert not per_term, f"level-1 parts of terms that were not charged: {per_term}"

    paid = defaultdict(lambda: defaultdict(int))
    holders_gross = defaultdict(int)
    for line in lines.to_dicts():
        assert line["currency"] == currency_of[line["contract_id"]]
        assert min(line["gross"], line["commission"], line["withholding"], line["net"]) >= 0
        assert line["gross"] == line["commission"] + line["withholding"] + line["net"]
        holders_gross[(line["contract_id"], line["work_id"], line["use_type"], line["version"])] += line["gross"]
        for name in ("gross", "commission", "withholding", "net"):
            paid[line["currency"]][name] += line[name]
    assert dict(holders_gross) == dict(per_work)

    brought, holder_brought = defaultdict(int), {}
    for row in data["balances"] or []:
        if minor_of(row["amount"], row["currency"]):  # a zero balance is no balance
            holder_brought[(row["holder_id"], row["currency"])] = minor_of(row["amount"], row["currency"])
            brought[row["currency"]] += holder_brought[(row["holder_id"], row["currency"])]
    balances = decoded(s.ledger.balances, s.ledger.types).to_dicts()
    assert {(b["holder_id"], b["currency"]) for b in balances} >= set(holder_brought)
    for b in balances:  # rule 4's threshold: net and the balance brought forward, paid together or carried
        owed = b["net"] + b["brought_forward"]
        pays = owed >= b["threshold"] and owed > 0
        assert (b["payable"], b["carried_forward"]) == ((owed, 0) if pays else (0, owed)), b
        assert b["brought_forward"] == holder_brought.get((b["holder_id"], b["currency"]), 0)
        event("a balance brought forward paid" if pays and b["brought_forward"] else "no balance brought and paid")
    assert set(s.totals) == set(charged) | set(brought)
    for currency, total in s.totals.items():
        mine = paid[currency]
        assert charged[currency] == mine["net"] + mine["commission"] + mine["withholding"] + suspense[currency]
        assert total["charged"] == charged[currency] and total["suspense"] == suspense[currency]
        assert total["commission"] == mine["commission"] and total["withholding"] == mine["withholding"]
        assert total["brought_forward"] == brought[currency]
        assert total["payable"] + total["carried_forward"] == mine["net"] + brought[currency]
        assert min(v for k, v in total.items() if k not in ("brought_forward", "carried_forward")) >= 0
        assert (total["charged"] + total["brought_forward"] == total["payable"] + total["carried_forward"]
                + total["commission"] + total["withholding"] + total["suspense"])
        for name in ("suspense", "withholding", "commission", "brought_forward", "carried_forward", "payable"):
            event(f"{currency} {name} {'> 0' if total[name] else '= 0'}")
        # the exported figures say the same, in the currency's own digits
        exported = {name: minor_of(text, currency) for name, text in summary["currencies"][currency].items()}
        assert exported == total
        rows = lines_csv.filter(pl.col("currency") == currency).to_dicts()
        for name in ("gross", "commission", "withholding", "net"):
            assert sum(minor_of(r[name], currency) for r in rows) == mine[name]


def off_by_one(function, column: str, delta: int):
    """`function`, with `delta` added to `column` of the first row it returns."""
    def wrapper(*args, **kwargs):
        frame = function(*args, **kwargs)
        first = pl.int_range(pl.len()) == 0
        return frame.with_columns(pl.when(first).then(pl.col(column) + delta).otherwise(pl.col(column))
                                  .cast(frame.schema[column]).alias(column))
    return wrapper


@pytest.mark.parametrize("module, function, column, delta, figure", [
    (allocate, "level_one", "amount_minor", -1, r"(?<!written level 1, )term \S+/\S+: charged \d+ != allocated \d+"),
    (allocate, "level_two", "gross", 1, r"work \S+: allocated \d+ != holders' gross \d+"),
    (distribute, "with_net", "net", 1, r"1 lines where gross != commission \+ withholding \+ net"),
])
def test_a_breach_of_conservation_aborts_the_run_with_its_figures(monkeypatch, module, function, column, delta,
                                                                  figure):
    """Law 2 is checked in every run: one minor unit lost or made at level 1, at level 2 or on a holder
    line raises ConservationError naming the figures that disagree, before anything is exported."""
    monkeypatch.setattr(module, function, off_by_one(getattr(module, function), column, delta))
    with pytest.raises(ConservationError, match=figure) as raised:
        settle(load_inputs(ROOT / "fixtures"), Period.parse(gen.PERIOD), gen.CLOCK)
    assert str(raised.value).startswith("conservation violated, run aborted: ")


@pytest.mark.parametrize("step", [settle, preview], ids=["run", "preview"])
def test_a_row_lost_from_the_accounting_aborts_the_run_and_the_preview(monkeypatch, step):
    """Law 3 is checked at the end of every run and every preview: a file whose rows read
    do not add up to where they went raises ConservationError naming the file and its counts."""
    monkeypatch.setattr(pipeline, "file_accounting", off_by_one(pipeline.file_accounting, "accepted", 1))
    with pytest.raises(ConservationError, match=r"usage/\S+: rows read (\d+) != accepted \d+ \+ duplicates"):
        step(load_inputs(ROOT / "fixtures"), Period.parse(gen.PERIOD), gen.CLOCK)


def test_a_line_lost_between_distribution_and_the_files_aborts_the_run(monkeypatch):
    """Law 2 holds for what the exports read: a line dropped from a contract's file (after
    its lines were checked in memory) raises ConservationError with the counts that disagree."""
    def dropping_a_line(lines, path):
        return written_lines(lines.slice(1) if path.name == "000000.parquet" else lines, path)

    written_lines = ledger.written_lines
    monkeypatch.setattr(ledger, "written_lines", dropping_a_line)
    with pytest.raises(ConservationError, match=r"the lines' files hold (\d+) lines, distribution made (?!\1)\d+"):
        settle(load_inputs(ROOT / "fixtures"), Period.parse(gen.PERIOD), gen.CLOCK)


# --------------------------------------------------------------------------- 4. fair share

@laws(30)
@given(data=gen.input_folders())
def test_each_holder_gets_the_exact_share_to_within_one_minor_unit(data):
    """Rule 3: each holder's gross on a work differs from the work's amount × the holder's exact share
    by less than one minor unit, and every holder of the split in force has a line."""
    with tempfile.TemporaryDirectory() as tmp:
        s = run(write_inputs(Path(tmp) / "in", **data))
    shares = split_shares(data["splits"])
    amounts = defaultdict(int)
    for part in s.level1.filter(pl.col("status") == "accepted").collect().to_dicts():
        amounts[(part["contract_id"], part["work_key"], part["use_type"], part["version"])] += part["amount_minor"]
    seen = defaultdict(set)
    for line in s.lines.collect().to_dicts():
        key = (line["contract_id"], line["work_id"], line["use_type"], line["version"])
        share = shares[(line["work_id"], line["version"])][line["holder_id"]]
        assert abs(line["gross"] - amounts[key] * share) < 1, (key, line["holder_id"], line["gross"], share)
        seen[key].add(line["holder_id"])
    for key, amount in amounts.items():
        assert seen[key] == set(shares[(key[1], key[3])]), f"{key}: holders {seen[key]}"


# --------------------------------------------------------------------------- 5. permutation invariance

@laws(15)
@given(data=gen.input_folders(), extra=st.data())
def test_row_and_file_order_do_not_change_the_outputs(data, extra):
    """Law 4: shuffling usage rows and splitting, merging and renaming usage files, and distributing
    in other ranges of holders, leaves every output byte-identical, except manifest.json (it lists each input file's name and hash, which changed by
    construction), summary.json's per-file `files` counts (they name the files) and quarantine.csv's
    file and row columns (they locate rows that moved)."""
    rows = all_rows(data["usage_files"])
    extension = extra.draw(st.sampled_from(gen.USAGE_FORMATS), label="format")
    shuffled = extra.draw(st.permutations(rows), label="shuffled rows")
    before = extra.draw(gen.usage_files(rows, formats=(extension,), max_files=3, prefix="log"), label="files A")
    after = extra.draw(gen.usage_files(shuffled, formats=(extension,), max_files=4, prefix="z-resent"),
                       label="files B")
    line_rows = extra.draw(st.sampled_from([1, 2, 5, ledger.LINE_PARTITION_ROWS]), label="lines per partition B")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        a = run(write_inputs(tmp / "a", **(data | {"usage_files": before})), tmp / "out-a")
        with mock.patch.object(ledger, "LINE_PARTITION_ROWS", line_rows):  # B in ranges of holders
            b = run(write_inputs(tmp / "b", **(data | {"usage_files": after})), tmp / "out-b")
        files_a, files_b = output_files(tmp / "out-a"), output_files(tmp / "out-b")
    assert a.run_id == b.run_id
    assert sorted(files_a) == sorted(files_b)
    for name in files_a:
        if name == "manifest.json":
            continue
        if name == "summary.json":
            summary_a, summary_b = json.loads(files_a[name]), json.loads(files_b[name])
            assert summary_a.pop("files") != [] and summary_b.pop("files") != []
            assert summary_a == summary_b
        elif name == "quarantine.csv":
            assert quarantine_rows(files_a[name]) == quarantine_rows(files_b[name])
        else:
            assert files_a[name] == files_b[name], f"{name} differs"


# --------------------------------------------------------------------------- 6. re-sent rows

MONEY_OUTPUTS = ("lines.csv", "lines.parquet", "allocations.csv", "suspense.csv", "unlicensed.csv")


@laws(15)
@given(data=gen.input_folders(resends=False), extra=st.data())
def test_resent_rows_change_nothing_but_the_duplicate_count(data, extra):
    """Law 3: exact copies of rows, re-sent in the same or another file, change no money output
    (byte for byte, once the run id — a hash of the rows read — is masked) and add one duplicate each."""
    new_file = f"again.{extra.draw(st.sampled_from(gen.USAGE_FORMATS), label='new file format')}"
    files, copies = extra.draw(gen.with_resends(data["usage_files"], max_copies=5, new_files=(new_file,)),
                               label="re-sent")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        a = run(write_inputs(tmp / "a", **data), tmp / "out-a")
        b = run(write_inputs(tmp / "b", **(data | {"usage_files": files})), tmp / "out-b")
        files_a, files_b = output_files(tmp / "out-a"), output_files(tmp / "out-b")
    if copies:
        assert a.run_id != b.run_id  # different rows were read; the run id says so
    assert sorted(files_a) == sorted(files_b)
    money = [n for n in files_a if n in MONEY_OUTPUTS or n.startswith(("statements/", "invoices/"))]
    for name in money:
        if name == "lines.parquet":
            left, right = pl.read_parquet(io.BytesIO(files_a[name])), pl.read_parquet(io.BytesIO(files_b[name]))
            assert left.drop("run_id").equals(right.drop("run_id")), name
        else:
            assert without_run_id(files_a[name], a.run_id) == without_run_id(files_b[name], b.run_id), name
    assert files_a["quarantine.csv"] == files_b["quarantine.csv"]
    summary_a, summary_b = json.loads(files_a["summary.json"]), json.loads(files_b["summary.json"])
    assert summary_b["rows"]["duplicates"] == summary_a["rows"]["duplicates"] + copies
    assert summary_b["rows"]["rows_read"] == summary_a["rows"]["rows_read"] + copies
    for key in ("accepted", "quarantined", "suspense", "unlicensed"):
        assert summary_b["rows"][key] == summary_a["rows"][key], key
    for key in ("currencies", "holders", "lines", "warnings"):
        assert summary_b[key] == summary_a[key], key


# --------------------------------------------------------------------------- 7. determinism

@laws(10)
@given(data=gen.input_folders())
def test_two_runs_of_the_same_inputs_are_byte_identical(data):
    """Law 4: two runs of the same input folder write byte-identical files, manifest.json and run id included."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = write_inputs(tmp / "in", **data)
        first = run(folder, tmp / "first")
        second = run(folder, tmp / "second")
        files_first, files_second = output_files(tmp / "first"), output_files(tmp / "second")
    assert first.run_id == second.run_id
    assert json.loads(files_first["manifest.json"])["run_id"] == first.run_id
    assert sorted(files_first) == sorted(files_second)
    for name, content in files_first.items():
        assert content == files_second[name], f"{name} differs"


# --------------------------------------------------------------------------- 7b. one code path

@laws(6)
@given(data=gen.input_folders())
def test_a_preview_charges_what_the_run_charges_to_the_byte(data):
    """Law 7: `preview` is the run's own pipeline stopped after pricing. Its invoices,
    quarantine.csv and unlicensed.csv are the run's byte for byte, its summary has the
    run's id, row accounting (in all and per file), unattributed outputs, warnings and
    charged totals, and it writes nothing that allocation would."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = write_inputs(tmp / "in", **data)
        settled = run(folder, tmp / "run")
        previewed = preview(load_inputs(folder), Period.parse(gen.PERIOD), gen.CLOCK)
        export_preview(previewed, tmp / "preview")
        run_files, preview_files = output_files(tmp / "run"), output_files(tmp / "preview")
    shared = sorted(name for name in preview_files if name not in ("summary.json", "manifest.json"))
    assert shared == sorted(name for name in run_files
                            if name.startswith("invoices/") or name in ("quarantine.csv", "unlicensed.csv"))
    for name in shared:
        assert preview_files[name] == run_files[name], f"{name} differs"
    summary, run_summary = (json.loads(files["summary.json"]) for files in (preview_files, run_files))
    assert summary["preview"] is True and "preview" not in run_summary
    assert previewed.run_id == settled.run_id == summary["run_id"]
    for key in ("period", "clock", "rules_version", "rows", "files", "unattributed_outputs", "warnings"):
        assert summary[key] == run_summary[key], key
    contracted = {spec["currency"] for spec in data["contracts"]}  # the run's may also hold balances' currencies
    assert summary["currencies"] == {currency: {"charged": totals["charged"]}
                                     for currency, totals in run_summary["currencies"].items() if currency in contracted}
    manifest = json.loads(preview_files["manifest.json"])
    assert manifest["preview"] is True and "preview" not in json.loads(run_files["manifest.json"])
    assert [entry["path"] for entry in manifest["outputs"]] == sorted(
        (name for name in preview_files if name != "manifest.json"), key=lambda name: name.split("/"))


# --------------------------------------------------------------------------- 8. no float

FLOAT_NAMES = {"float", "Float32", "Float64", "Float16"}


def float_uses(path: Path) -> list[str]:
    """Calls of float() and polars Float dtypes in one module (a float literal such as a progress bar's
    1e-9 seconds is not money, so literals are not flagged)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "float":
            found.append(f"{where}: float(...)")
        elif isinstance(node, ast.Attribute) and node.attr.startswith("Float"):
            found.append(f"{where}: .{node.attr}")
        elif isinstance(node, ast.Name) and node.id in FLOAT_NAMES - {"float"}:
            found.append(f"{where}: {node.id}")
        elif isinstance(node, ast.alias) and node.name.startswith("Float"):
            found.append(f"{where}: import {node.name}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "pl.Float" in node.value:
            found.append(f"{where}: 'pl.Float' in a string")
    return found


def test_no_float_in_the_engine():
    """Law 1: no module in contracts/ or settlement/ calls float() or names a polars Float dtype."""
    modules = sorted([*(ROOT / "contracts").rglob("*.py"), *(ROOT / "settlement").rglob("*.py")])
    assert len(modules) > 10
    problems = [problem for path in modules for problem in float_uses(path)]
    # a text scan as well, so that code the AST walk would miss (exec'd strings) is still caught
    for path in modules:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if "float(" in line or "pl.Float" in line:
                problems.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert problems == []


def test_no_float_scan_catches_floats(tmp_path):
    """Law 1 (the scan itself): the float scan flags float(), pl.Float64 and an imported Float32."""
    sample = tmp_path / "sample.py"
    sample.write_text("import polars as pl\nfrom polars import Float32\nx = float('1')\ny = pl.Float64\n",
                      encoding="utf-8")
    assert len(float_uses(sample)) == 3  # the import, float(), pl.Float64


# --------------------------------------------------------------------------- an auditor's view of any run

@laws(15)
@given(data=gen.input_folders())
def test_every_run_passes_the_auditors_check_and_explains_line_by_line(data):
    """Laws 2 and 3, seen from the output files alone (`settle check`: both allocation levels,
    every line, the statements, conservation, the rows) and rule by rule for every line
    (`settle explain`, which works each figure out again by the written rules, largest
    remainder ranks and half-even rounding included): neither uses the engine's code."""
    from settlement.check import check
    from settlement.explain import explain

    with tempfile.TemporaryDirectory() as tmp:
        folder = write_inputs(Path(tmp) / "in", **data)
        out = Path(tmp) / "out"
        run(folder, out).close()
        assert check(out)[1].failed == []
        lines = pl.read_parquet(out / "lines.parquet").with_columns(pl.col("contract_id", "use_type").cast(pl.String))
        event(f"lines: {'none' if lines.is_empty() else 'some'}")
        for holder, contract, use_type, work in lines.select("holder_id", "contract_id", "use_type", "work_id").unique(
                ).sort(pl.all()).iter_rows():
            result = explain(out, folder, holder, work=work, contract=contract, use_type=use_type)
            assert result.mismatches == 0, "\n".join(result.lines)
