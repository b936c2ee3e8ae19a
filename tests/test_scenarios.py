"""Small settlements computed by hand, compared to the engine's outputs to the minor unit.

Each scenario writes a tiny input folder, settles October 2026, exports, and
compares exact amounts as the strings the outputs carry (lines.csv,
allocations.csv, invoices, summary.json). The arithmetic is in the comments so
that a reader can check every figure with pencil and paper (DESIGN.md,
"Apportionment rules, version 1").
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from builders import POLICY, contract, holder, split, usage, work, write_inputs
from contracts.loading import load_inputs
from settlement.exports import export
from settlement.intake import Period
from settlement.run import settle

CLOCK = "2026-11-05T09:00:00Z"
ROW_FATES = ("accepted", "duplicates", "quarantined", "suspense", "unlicensed")
TOTAL_PARTS = ("payable", "carried_forward", "commission", "withholding", "suspense")


@dataclass(frozen=True)
class Outputs:
    folder: Path

    def table(self, name: str) -> list[dict[str, str]]:
        with (self.folder / name).open(encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle))

    def json(self, name: str) -> dict:
        return json.loads((self.folder / name).read_text(encoding="utf-8"))

    @property
    def summary(self) -> dict:
        return self.json("summary.json")

    def lines(self, *columns: str) -> list[tuple[str, ...]]:
        """lines.csv as tuples of the given columns, in the file's own order."""
        return [tuple(row[c] for c in columns) for row in self.table("lines.csv")]

    def allocations(self) -> list[tuple[str, ...]]:
        return [(r["term_id"], r["work_key"], r["use_type"], r["version"], r["status"], r["amount"])
                for r in self.table("allocations.csv")]

    def invoice_terms(self, licensee_id: str = "ai") -> dict[str, dict]:
        contracts = self.json(f"invoices/{licensee_id}.json")["contracts"]
        return {term["term_id"]: term for c in contracts for term in c["terms"]}

    def statement(self, holder_id: str) -> dict[str, str]:
        """The statement's balance records: record -> net (total, threshold, carried_forward, payable)."""
        return {r["record"]: r["net"] for r in self.table(f"statements/{holder_id}.csv") if r["record"] != "line"}


def run(tmp_path: Path, raw: dict[str, str] | None = None, **inputs) -> Outputs:
    """Write the inputs (then any `raw` file texts over them), settle 2026-10, export, and check
    the two bookkeeping laws on the way."""
    folder = write_inputs(tmp_path / "in", **inputs)
    for name, text in (raw or {}).items():
        (folder / name).write_text(text, encoding="utf-8")
    settlement = settle(load_inputs(folder), Period.parse("2026-10"), CLOCK)
    out = tmp_path / "out"
    export(settlement, out)
    outputs = Outputs(out)
    assert_balanced(outputs.summary)
    return outputs


def assert_balanced(summary: dict) -> None:
    """Law 2 and law 3 as the summary reports them (Decimal from strings is exact)."""
    for currency, t in summary["currencies"].items():
        parts = sum(Decimal(t[name]) for name in TOTAL_PARTS)
        assert Decimal(t["charged"]) == parts, f"{currency}: {t}"
    rows = summary["rows"]
    assert rows["rows_read"] == sum(rows[fate] for fate in ROW_FATES), rows
    for entry in summary["files"]:
        assert entry["rows_read"] == sum(entry[fate] for fate in ROW_FATES), entry


def per_unit(term_id: str, rate: str, *, use_type: str = "train", unit: str = "token", per: int = 1) -> dict:
    return {"id": term_id, "type": "per_unit", "use_type": use_type, "unit": unit, "rate": rate, "per": per}


def test_flat_fee_per_covered_work_gives_the_odd_cent_to_the_smallest_work_id(tmp_path):
    """A flat fee split equally over three covered works gives the leftover cent to the smallest work id."""
    # 100.00 EUR = 10000 cents over 3 works: 3333 each, remainder 1/3 each (a tie),
    # leftover 10000 - 3 × 3333 = 1 cent -> the smallest work id, "W1" (listed last on purpose).
    # Only W2 has usage: the fee is per covered work, so unused W1 and W3 share it too.
    out = run(tmp_path,
              holders=[holder("h1"), holder("h2"), holder("h3")],
              works=[work("W3"), work("W2"), work("W1")],
              splits=split("W1", {"h1": "1"}) + split("W2", {"h2": "1"}) + split("W3", {"h3": "1"}),
              contracts=[contract([{"id": "fee", "type": "flat_fee", "amount": "100.00",
                                    "basis": "per_covered_work", "use_type": "train"}])],
              usage_files={"u.csv": [usage("r1", "WORK:W2", 7)]})
    assert out.allocations() == [
        ("fee", "W1", "train", "2020-01-01", "accepted", "33.34"),
        ("fee", "W2", "train", "2020-01-01", "accepted", "33.33"),
        ("fee", "W3", "train", "2020-01-01", "accepted", "33.33"),
    ]
    assert out.lines("work_id", "holder_id", "units", "gross", "net") == [
        ("W1", "h1", "0", "33.34", "33.34"),
        ("W2", "h2", "7", "33.33", "33.33"),
        ("W3", "h3", "0", "33.33", "33.33"),
    ]
    assert out.summary["currencies"]["EUR"]["charged"] == "100.00"
    assert out.summary["currencies"]["EUR"]["payable"] == "100.00"


def test_equal_thirds_of_a_work_give_the_odd_cent_to_the_smallest_holder_id(tmp_path):
    """A 1/3-1/3-1/3 split of 1.00 gives the leftover cent to the smallest holder id by code point."""
    # per_unit: 100 tokens × 0.01 = 1.00 EUR = 100 cents, all on W1.
    # Level 2: 100 × 1/3 = 33 1/3 for each holder: floors 33 + 33 + 33 = 99, leftover 1,
    # remainders tie (1/3 each) -> the smallest holder id by Unicode code point:
    # "Zed" (Z = U+005A) < "amy" (a = U+0061) < "bob", so "Zed" gets 34 although a
    # case-insensitive or locale sort would put "amy" first.
    out = run(tmp_path,
              holders=[holder("amy"), holder("bob"), holder("Zed")],
              works=[work("W1")],
              splits=split("W1", {"bob": "1/3", "amy": "1/3", "Zed": "1/3"}),
              contracts=[contract([per_unit("tokens", "0.01")])],
              usage_files={"u.csv": [usage("r1", "WORK:W1", 100)]})
    assert out.lines("holder_id", "share", "gross") == [
        ("Zed", "1/3", "0.34"),
        ("amy", "1/3", "0.33"),
        ("bob", "1/3", "0.33"),
    ]
    assert out.summary["currencies"]["EUR"]["charged"] == "1.00"


def test_graduated_tiers_price_each_step_and_allocate_by_units(tmp_path):
    """Graduated per-1000-page tiers price 1,000 pages at 2.50 and the rest at 1.75, rounded once."""
    # Pages in the period: W1 1000 + 500 = 1500, W2 845; total 2345.
    # Tier 1: pages 0..1000 -> 1000 × 2.50 / 1000 = 2.50
    # Tier 2: pages 1000..2345 -> 1345 × 1.75 / 1000 = 2.35375
    # Exact 4.85375 -> rounded once, half-even, to 4.85 (485 cents).
    # Level 1 by units: W1 485 × 1500 / 2345 = 310 rem 550; W2 485 × 845 / 2345 = 174 rem 1795;
    # floors 484, leftover 1 -> W2 (larger remainder): W1 3.10, W2 1.75.
    tiers = [{"up_to": 1000, "rate": "2.50"}, {"up_to": None, "rate": "1.75"}]
    out = run(tmp_path,
              holders=[holder("h1"), holder("h2")],
              works=[work("W1", "text"), work("W2", "text")],
              splits=split("W1", {"h1": "1"}, right="text") + split("W2", {"h2": "1"}, right="text"),
              contracts=[contract([{"id": "pages", "type": "per_unit", "use_type": "crawl", "unit": "page",
                                    "per": 1000, "tiers": tiers}], use_types=["crawl"])],
              usage_files={"u.csv": [usage("r1", "WORK:W1", 1000, use_type="crawl", unit="page"),
                                     usage("r2", "WORK:W1", 500, use_type="crawl", unit="page"),
                                     usage("r3", "WORK:W2", 845, use_type="crawl", unit="page")]})
    term = out.invoice_terms()["pages"]
    assert (term["units"], term["per"], term["exact"], term["rounded"], term["charged"]) == \
        (2345, 1000, "4.85375", "4.85", "4.85")
    assert term["tiers"] == [
        {"from_units": 0, "up_to": 1000, "units": 1000, "rate": "2.5", "per": 1000, "exact": "2.5"},
        {"from_units": 1000, "up_to": None, "units": 1345, "rate": "1.75", "per": 1000, "exact": "2.35375"},
    ]
    assert out.lines("work_id", "use_type", "holder_id", "units", "gross") == [
        ("W1", "crawl", "h1", "1500", "3.10"),
        ("W2", "crawl", "h2", "845", "1.75"),
    ]
    assert out.summary["currencies"]["EUR"]["charged"] == "4.85"


def test_minimum_guarantee_tops_up_a_small_revenue_share_allocated_by_weighted_usage(tmp_path):
    """A revenue share below the minimum guarantee gets a top-up term, allocated by weighted usage."""
    # Revenue share: 1234.56 × 15% = 185.184 -> 185.18 (half-even).
    # Top-up: 200.00 - 185.18 = 14.82. Invoice total 200.00.
    # Weighted usage: W1 train 100 × 1 = 100; W2 fine_tune 100 × 1.5 = 150; sum 250.
    # Revenue share 18518 cents: W1 18518 × 100/250 = 7407.2 -> 7407; W2 11110.8 -> 11110;
    #   leftover 1 -> W2 (remainder .8 > .2): W1 74.07, W2 111.11.
    # Top-up 1482 cents: W1 1482 × 100/250 = 592.8 -> 592; W2 889.2 -> 889;
    #   leftover 1 -> W1 (remainder .8 > .2): W1 5.93, W2 8.89.
    # Lines (terms summed per work and use): W1 74.07 + 5.93 = 80.00; W2 111.11 + 8.89 = 120.00.
    terms = [{"id": "share", "type": "revenue_share", "rate": "15%", "allocation": "by_usage"}]
    out = run(tmp_path,
              holders=[holder("h1"), holder("h2")],
              works=[work("W1"), work("W2")],
              splits=split("W1", {"h1": "1"}) + split("W2", {"h2": "1"}),
              contracts=[contract(terms, use_types=["train", "fine_tune"], weights={"train": "1", "fine_tune": "1.5"},
                                  minimum_guarantee="200.00")],
              revenue=[{"licensee_id": "ai", "contract_id": "C1", "period": "2026-10", "amount": "1234.56",
                        "currency": "EUR"}],
              usage_files={"u.csv": [usage("r1", "WORK:W1", 100),
                                     usage("r2", "WORK:W2", 100, use_type="fine_tune")]})
    invoice = out.json("invoices/ai.json")["contracts"][0]
    assert [(t["term_id"], t["type"], t["exact"], t["charged"]) for t in invoice["terms"]] == [
        ("share", "revenue_share", "185.184", "185.18"),
        ("minimum-guarantee-top-up", "minimum_guarantee_top_up", "14.82", "14.82"),
    ]
    assert (invoice["minimum_guarantee"], invoice["total"]) == ("200.00", "200.00")
    assert out.allocations() == [
        ("minimum-guarantee-top-up", "W1", "train", "2020-01-01", "accepted", "5.93"),
        ("minimum-guarantee-top-up", "W2", "fine_tune", "2020-01-01", "accepted", "8.89"),
        ("share", "W1", "train", "2020-01-01", "accepted", "74.07"),
        ("share", "W2", "fine_tune", "2020-01-01", "accepted", "111.11"),
    ]
    assert out.lines("work_id", "use_type", "holder_id", "gross") == [
        ("W1", "train", "h1", "80.00"),
        ("W2", "fine_tune", "h2", "120.00"),
    ]
    assert out.summary["currencies"]["EUR"]["charged"] == "200.00"


def test_split_change_mid_month_keys_lines_by_split_version(tmp_path):
    """A split replaced on the 16th pays usage before it by version 1 and usage from it by version 2."""
    # Version 2020-01-01 (h1 alone) is in force until 2026-10-16 00:00 UTC (exclusive);
    # version 2026-10-16 (h1 1/2, h2 1/2) from that instant on.
    # Before: 100 (10th) + 50 (15th 23:59:59) = 150 tokens; from: 25 (16th 00:00:00) + 225 (20th) = 250.
    # 400 tokens × 0.01 = 4.00; level 1 by units: version 1 1.50, version 2 2.50.
    # Level 2: version 1 -> h1 1.50; version 2 -> 250 / 2 = 125 each: h1 1.25, h2 1.25.
    # (lines.csv writes a share in canonical form: "1/2" as "0.5", "1/3" stays "1/3".)
    out = run(tmp_path,
              holders=[holder("h1"), holder("h2")],
              works=[work("W1")],
              splits=split("W1", {"h1": "1"}, valid_to="2026-10-16")
              + split("W1", {"h1": "1/2", "h2": "1/2"}, valid_from="2026-10-16"),
              contracts=[contract([per_unit("tokens", "0.01")])],
              usage_files={"u.csv": [usage("r1", "WORK:W1", 100, occurred_at="2026-10-10T12:00:00Z"),
                                     usage("r2", "WORK:W1", 50, occurred_at="2026-10-15T23:59:59Z"),
                                     usage("r3", "WORK:W1", 25, occurred_at="2026-10-16T00:00:00Z"),
                                     usage("r4", "WORK:W1", 225, occurred_at="2026-10-20T08:30:00Z")]})
    assert out.lines("work_id", "split_version", "holder_id", "share", "units", "gross") == [
        ("W1", "2020-01-01", "h1", "1", "150", "1.50"),
        ("W1", "2026-10-16", "h1", "0.5", "250", "1.25"),
        ("W1", "2026-10-16", "h2", "0.5", "250", "1.25"),
    ]
    assert out.allocations() == [
        ("tokens", "W1", "train", "2020-01-01", "accepted", "1.50"),
        ("tokens", "W1", "train", "2026-10-16", "accepted", "2.50"),
    ]
    assert out.summary["currencies"]["EUR"]["charged"] == "4.00"


def test_jpy_amounts_have_no_minor_digits(tmp_path):
    """A JPY licence rounds to whole yen, half-even, and writes amounts without a decimal point."""
    # 1235 tokens × 1.5 JPY = 1852.5 -> half-even -> 1852 (even).
    # Split 1/3, 2/3: h1 1852/3 = 617 rem 1/3; h2 3704/3 = 1234 rem 2/3; leftover 1 -> h2: 617, 1235.
    out = run(tmp_path,
              holders=[holder("h1", payout_currency="JPY"), holder("h2", payout_currency="JPY")],
              works=[work("W1")],
              splits=split("W1", {"h1": "1/3", "h2": "2/3"}),
              contracts=[contract([per_unit("tokens", "1.5")], currency="JPY")],
              usage_files={"u.csv": [usage("r1", "WORK:W1", 1235)]})
    assert out.lines("holder_id", "currency", "gross", "commission", "withholding", "net") == [
        ("h1", "JPY", "617", "0", "0", "617"),
        ("h2", "JPY", "1235", "0", "0", "1235"),
    ]
    term = out.invoice_terms()["tokens"]
    assert (term["exact"], term["rounded"], term["charged"]) == ("1852.5", "1852", "1852")
    assert out.summary["currencies"] == {"JPY": {
        "charged": "1852", "brought_forward": "0", "suspense": "0", "commission": "0", "withholding": "0", "payable": "1852",
        "carried_forward": "0"}}


def test_bhd_amounts_have_three_minor_digits(tmp_path):
    """A BHD licence rounds to the fils (3 digits), half-even, and writes three decimals."""
    # 12345 tokens × 0.0001 BHD = 1.2345 BHD = 1234.5 fils -> half-even -> 1234 fils = 1.234.
    # Split 1/2, 1/2: 617 fils each = 0.617.
    out = run(tmp_path,
              holders=[holder("h1", payout_currency="BHD"), holder("h2", payout_currency="BHD")],
              works=[work("W1")],
              splits=split("W1", {"h1": "1/2", "h2": "1/2"}),
              contracts=[contract([per_unit("tokens", "0.0001")], currency="BHD")],
              usage_files={"u.csv": [usage("r1", "WORK:W1", 12345)]})
    assert out.lines("holder_id", "currency", "gross", "net") == [
        ("h1", "BHD", "0.617", "0.617"),
        ("h2", "BHD", "0.617", "0.617"),
    ]
    assert out.invoice_terms()["tokens"]["charged"] == "1.234"
    assert out.summary["currencies"]["BHD"]["charged"] == "1.234"
    assert out.summary["currencies"]["BHD"]["payable"] == "1.234"


def test_commission_withholding_and_threshold(tmp_path):
    """Commission per line half-even, withholding on the holder's total after commission spread by
    largest remainder, net = gross - commission - withholding, and a small balance carried forward."""
    # Charges: train 1235 + 1000 = 2235 tokens × 0.01 = 22.35; ground 1030 requests × 0.01 = 10.30.
    # Level 1 by units: train W1 12.35, W2 10.00; ground W1 10.30.
    # Level 2: W1 -> h1 alone; W2 -> h1 5.00, h2 5.00.
    # Commission (train 10 %, ground 15 %), per line, half-even:
    #   h1 W1 train  12.35 × 0.10 = 1.235  -> 1.24 (tie, 123 is odd -> up)
    #   h1 W1 ground 10.30 × 0.15 = 1.545  -> 1.54 (tie, 154 is even -> stays)
    #   h1 W2 train   5.00 × 0.10 = 0.50;  h2 W2 train 0.50
    # h1 after commission: 11.11 + 8.76 + 4.50 = 24.37; withholding 30 % = 7.311 -> 7.31 (731 cents),
    # spread over 1111 : 876 : 450 (sum 2437):
    #   W1 train  731 × 1111 / 2437 = 333 rem  620
    #   W1 ground 731 ×  876 / 2437 = 262 rem 1862
    #   W2 train  731 ×  450 / 2437 = 134 rem 2392
    #   floors 729, leftover 2 -> W2 train (2392), then W1 ground (1862): 3.33, 2.63, 1.35.
    # Net: 12.35 - 1.24 - 3.33 = 7.78; 10.30 - 1.54 - 2.63 = 6.13; 5.00 - 0.50 - 1.35 = 3.15.
    # h1 net 17.06 >= threshold 10.00 -> payable; h2 net 4.50 < 10.00 -> carried forward.
    # Totals: charged 32.65 = payable 17.06 + carried 4.50 + commission 3.78 + withholding 7.31 + suspense 0.
    policy = POLICY | {"commission": {**POLICY["commission"], "train": "0.10", "ground": "0.15"},
                       "thresholds": {"EUR": "10.00"}}
    out = run(tmp_path,
              policy=policy,
              holders=[holder("h1", withholding_rate="0.30"), holder("h2")],
              works=[work("W1"), work("W2")],
              splits=split("W1", {"h1": "1"}) + split("W2", {"h1": "0.5", "h2": "0.5"}),
              contracts=[contract([per_unit("tokens", "0.01"),
                                   per_unit("requests", "0.01", use_type="ground", unit="request")],
                                  use_types=["train", "ground"])],
              usage_files={"u.csv": [usage("r1", "WORK:W1", 1235),
                                     usage("r2", "WORK:W2", 1000),
                                     usage("r3", "WORK:W1", 1030, use_type="ground", unit="request")]})
    lines = out.lines("work_id", "use_type", "holder_id", "gross", "commission", "withholding", "net")
    assert lines == [
        ("W1", "ground", "h1", "10.30", "1.54", "2.63", "6.13"),
        ("W1", "train", "h1", "12.35", "1.24", "3.33", "7.78"),
        ("W2", "train", "h1", "5.00", "0.50", "1.35", "3.15"),
        ("W2", "train", "h2", "5.00", "0.50", "0.00", "4.50"),
    ]
    for _, _, _, gross, commission, withholding, net in lines:
        assert Decimal(net) == Decimal(gross) - Decimal(commission) - Decimal(withholding)
    assert out.summary["currencies"]["EUR"] == {
        "charged": "32.65", "brought_forward": "0.00", "suspense": "0.00", "commission": "3.78", "withholding": "7.31",
        "payable": "17.06", "carried_forward": "4.50"}
    assert out.statement("h1") == {"total": "17.06", "brought_forward": "0.00", "threshold": "10.00",
                                   "carried_forward": "0.00", "payable": "17.06"}
    assert out.statement("h2") == {"total": "4.50", "brought_forward": "0.00", "threshold": "10.00",
                                   "carried_forward": "4.50", "payable": "0.00"}


def test_cap_scales_terms_down_by_largest_remainder(tmp_path):
    """A cap below the terms' sum scales them to the cap, the odd cent to the smaller term id on a tie."""
    # Terms: fee-b 33.33, fee-a 33.33, fee-c 33.34 (sum 100.00), cap 50.00 = 5000 cents.
    #   fee-b 5000 × 3333 / 10000 = 1666.5 -> 1666 rem .5
    #   fee-a 5000 × 3333 / 10000 = 1666.5 -> 1666 rem .5
    #   fee-c 5000 × 3334 / 10000 = 1667   -> 1667 rem 0
    # floors 4999, leftover 1, tie fee-a / fee-b -> the smaller id "fee-a" (though listed second).
    # Charged: fee-a 16.67, fee-b 16.66, fee-c 16.67 = 50.00; each by usage onto W1 alone (h1).
    fees = [{"id": term_id, "type": "flat_fee", "amount": amount, "basis": "by_usage", "use_type": "train"}
            for term_id, amount in (("fee-b", "33.33"), ("fee-a", "33.33"), ("fee-c", "33.34"))]
    out = run(tmp_path,
              holders=[holder("h1")],
              works=[work("W1")],
              splits=split("W1", {"h1": "1"}),
              contracts=[contract(fees, cap="50.00")],
              usage_files={"u.csv": [usage("r1", "WORK:W1", 10)]})
    invoice = out.json("invoices/ai.json")["contracts"][0]
    assert [(t["term_id"], t["rounded"], t["charged"]) for t in invoice["terms"]] == [
        ("fee-b", "33.33", "16.66"),
        ("fee-a", "33.33", "16.67"),
        ("fee-c", "33.34", "16.67"),
    ]
    assert (invoice["cap"], invoice["total"]) == ("50.00", "50.00")
    assert out.allocations() == [
        ("fee-a", "W1", "train", "2020-01-01", "accepted", "16.67"),
        ("fee-b", "W1", "train", "2020-01-01", "accepted", "16.66"),
        ("fee-c", "W1", "train", "2020-01-01", "accepted", "16.67"),
    ]
    assert out.lines("work_id", "holder_id", "gross") == [("W1", "h1", "50.00")]
    assert out.summary["currencies"]["EUR"]["charged"] == "50.00"


def consent_run(tmp_path, consent: str, rows: list, consent_required: bool = False):
    """Works W1–W3, each wholly held by h1–h3, under one contract licensing train tokens and
    ground requests at 0.01, with the given consent.csv and usage rows."""
    return run(tmp_path, policy={**POLICY, "consent_required": consent_required},
               holders=[holder("h1"), holder("h2"), holder("h3")],
               works=[work("W1"), work("W2"), work("W3")],
               splits=split("W1", {"h1": "1"}) + split("W2", {"h2": "1"}) + split("W3", {"h3": "1"}),
               raw={"consent.csv": consent},
               contracts=[contract([per_unit("tokens", "0.01"),
                                    per_unit("requests", "0.01", use_type="ground", unit="request")],
                                   use_types=["train", "ground"])],
               usage_files={"u.csv": rows})


@pytest.mark.parametrize("empty", ["", '""'], ids=["empty-cells", "quoted-empty-cells"])
def test_holder_opt_out_and_use_type_opt_out_make_usage_unlicensed_and_uncharged(tmp_path, empty):
    """A holder's opt-out blocks all use of its works; a work's ground-only opt-out blocks only ground use."""
    # h2 opts out of everything: W2 (h2's) train 200 -> unlicensed, not charged.
    # W3 opts out of `ground` only: W3 ground 400 -> unlicensed; W3 train 300 stays licensed.
    # Charged: train W1 100 + W3 300 = 400 tokens × 0.01 = 4.00; ground W1 50 × 0.01 = 0.50; total 4.50.
    # Rows: 5 read = 3 accepted + 2 unlicensed.
    # The empty licensee_id ("every licensee") and valid_to ("open-ended") cells are written both
    # bare and as "" (RFC 4180 quoted empty, as polars and builders.write_csv write them): same meaning.
    consent = ("subject,subject_id,use_type,licensee_id,signal,valid_from,valid_to\n"
               f"holder,h2,*,{empty},opt_out,2026-01-01,{empty}\n"
               f"work,W3,ground,{empty},opt_out,2026-01-01,{empty}\n")
    out = consent_run(tmp_path, consent, [usage("r1", "WORK:W1", 100), usage("r2", "WORK:W2", 200),
                                          usage("r3", "WORK:W3", 300),
                                          usage("r4", "WORK:W3", 400, use_type="ground", unit="request"),
                                          usage("r5", "WORK:W1", 50, use_type="ground", unit="request")])
    assert [(r["work_ref"], r["work_id"], r["use_type"], r["reason"], r["rows"], r["units"])
            for r in out.table("unlicensed.csv")] == [
        ("WORK:W2", "W2", "train", "opted_out", "1", "200"),
        ("WORK:W3", "W3", "ground", "opted_out", "1", "400"),
    ]
    terms = out.invoice_terms()
    assert (terms["tokens"]["units"], terms["tokens"]["charged"]) == (400, "4.00")
    assert (terms["requests"]["units"], terms["requests"]["charged"]) == (50, "0.50")
    assert out.lines("work_id", "use_type", "holder_id", "gross") == [
        ("W1", "ground", "h1", "0.50"),
        ("W1", "train", "h1", "1.00"),
        ("W3", "train", "h3", "3.00"),
    ]
    rows = out.summary["rows"]
    assert (rows["rows_read"], rows["accepted"], rows["unlicensed"], rows["quarantined"]) == (5, 3, 2, 0)
    assert out.summary["currencies"]["EUR"]["charged"] == "4.50"


def test_opt_in_requirement_and_repertoire_wide_opt_out_decide_every_work(tmp_path):
    """With consent required, only opted-in use is licensed; an opt-out for the whole repertoire
    blocks its use type for every work. (Neither may take the shortcut that decides only works
    a signal names.)"""
    # Opt-in by W1 (work) and by h3 (W3's only holder); W2 has no opt-in -> no_opt_in.
    # `all` opts out of ground: W1 ground 50 -> opted_out, although W1 opted in.
    # Charged: train W1 100 + W3 300 = 400 tokens × 0.01 = 4.00. Rows: 4 read = 2 accepted + 2 unlicensed.
    consent = ("subject,subject_id,use_type,licensee_id,signal,valid_from,valid_to\n"
               "work,W1,*,,opt_in,2026-01-01,\n"
               "holder,h3,*,,opt_in,2026-01-01,\n"
               "all,,ground,,opt_out,2026-01-01,\n")
    out = consent_run(tmp_path, consent, [usage("r1", "WORK:W1", 100), usage("r2", "WORK:W2", 200),
                                          usage("r3", "WORK:W3", 300),
                                          usage("r4", "WORK:W1", 50, use_type="ground", unit="request")],
                      consent_required=True)
    assert [(r["work_id"], r["use_type"], r["reason"], r["units"]) for r in out.table("unlicensed.csv")] == [
        ("W1", "ground", "opted_out", "50"),
        ("W2", "train", "no_opt_in", "200"),
    ]
    assert out.lines("work_id", "use_type", "holder_id", "gross") == [
        ("W1", "train", "h1", "1.00"),
        ("W3", "train", "h3", "3.00"),
    ]
    rows = out.summary["rows"]
    assert (rows["rows_read"], rows["accepted"], rows["unlicensed"]) == (4, 2, 2)
    assert out.summary["currencies"]["EUR"]["charged"] == "4.00"


def test_unknown_work_is_charged_and_held_in_suspense(tmp_path):
    """Usage of a work not in the catalogue takes its level-1 part, which is held in suspense."""
    # 300 tokens × 0.01 = 3.00: W1 100 -> 1.00 to h1; ISRC:USRC17607839 (not catalogued) 200 -> 2.00 suspense.
    # Totals: charged 3.00 = payable 1.00 + suspense 2.00.
    out = run(tmp_path,
              holders=[holder("h1")],
              works=[work("W1")],
              splits=split("W1", {"h1": "1"}),
              contracts=[contract([per_unit("tokens", "0.01")])],
              usage_files={"u.csv": [usage("r1", "WORK:W1", 100), usage("r2", "ISRC:US-RC1-76-07839", 200)]})
    assert [(r["work_key"], r["reason"], r["rows"], r["units"], r["amount"]) for r in out.table("suspense.csv")] == [
        ("ISRC:USRC17607839", "unknown_work", "1", "200", "2.00")]
    assert out.lines("work_id", "holder_id", "gross") == [("W1", "h1", "1.00")]
    totals = out.summary["currencies"]["EUR"]
    assert (totals["charged"], totals["payable"], totals["suspense"]) == ("3.00", "1.00", "2.00")
    assert (out.summary["rows"]["accepted"], out.summary["rows"]["suspense"]) == (1, 1)


def test_suspense_of_a_work_named_by_two_identifiers_is_one_row_in_any_partitions(tmp_path, monkeypatch):
    """A work without a split, used under two identifiers and two models, and an unknown work
    in two spellings: whatever the partitions of the group sums, suspense.csv has one row for
    each, and every output equals the unpartitioned run's."""
    from settlement import aggregate
    inputs = dict(holders=[holder("h1")],
                  works=[work("W1"), work("W2", identifiers="ISWC:T-034.524.680-1")],
                  splits=split("W1", {"h1": "1"}),
                  contracts=[contract([per_unit("tokens", "0.01")])],
                  usage_files={"u.csv": [usage(f"r{i}", ref, 10 * (i + 1), model_id=f"m{i % 2}") for i, ref in
                                         enumerate(["WORK:W1", "WORK:W2", "ISWC:T0345246801", "ISWC:T-034.524.680-1",
                                                    "ISRC:US-RC1-76-07839", "ISRC:USRC17607839", "WORK:W2"])]})
    whole = run(tmp_path / "whole", **inputs)
    monkeypatch.setattr(aggregate, "PARTITION_ROWS", 1)
    parted = run(tmp_path / "parted", **inputs)
    assert [(r["work_key"], r["reason"], r["rows"], r["units"]) for r in parted.table("suspense.csv")] == [
        ("ISRC:USRC17607839", "unknown_work", "2", "110"), ("W2", "no_split", "4", "160")]
    files = lambda out: {p.relative_to(out.folder): p.read_bytes() for p in out.folder.rglob("*")
                         if p.is_file() and p.name != "manifest.json"}
    assert files(parted) == files(whole)
