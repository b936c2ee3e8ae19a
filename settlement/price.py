"""Price: each contract's terms for the period, exact, then rounded once (rule 1).

Contracts and terms are few, so this is plain Python over them; the units it
prices are sums taken from the priced usage (run.Classified.priced).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import polars as pl

from contracts.licence import FlatFeeTerm, LicenceContract, PerUnitTerm, RevenueShareTerm
from contracts.numbers import fraction_text
from settlement.money import exponent, largest_remainder, to_minor

TOP_UP_TERM = "minimum-guarantee-top-up"


@dataclass
class TermCharge:
    """One priced term: everything a licensee needs to check the figure."""

    term_id: str
    term_type: str
    basis: str
    use_type: str | None = None
    unit: str | None = None
    units: int = 0
    rate: str | None = None
    per: int | None = None
    steps: list[dict] = field(default_factory=list)
    revenue: str | None = None
    exact: Fraction = Fraction(0)
    rounded_minor: int = 0
    amount_minor: int = 0  # after the cap, what is charged and allocated


@dataclass
class ContractCharge:
    contract: LicenceContract
    terms: list[TermCharge]
    minimum_guarantee_minor: int | None
    cap_minor: int | None
    warnings: list[str]

    @property
    def total_minor(self) -> int:
        return sum(term.amount_minor for term in self.terms)


def tier_steps(term: PerUnitTerm, units: int) -> tuple[Fraction, list[dict]]:
    """Graduated pricing over the period's units: each tier prices the units that fall in it."""
    exact, lower, steps = Fraction(0), 0, []
    for tier in term.steps():
        upper = units if tier.up_to is None else min(units, tier.up_to)
        in_tier = max(0, upper - lower)
        amount = in_tier * tier.rate / term.per
        steps.append({"from_units": lower, "up_to": tier.up_to, "units": in_tier,
                      "rate": fraction_text(tier.rate), "per": term.per, "exact": fraction_text(amount)})
        exact += amount
        lower = upper if tier.up_to is None else tier.up_to
        if units <= lower:
            break
    return exact, steps


def price_per_unit(term: PerUnitTerm, units_by_use: dict[tuple[str, str], int]) -> TermCharge:
    units = units_by_use.get((term.use_type, term.unit), 0)
    exact, steps = tier_steps(term, units)
    rate = fraction_text(term.rate) if term.rate is not None else None
    return TermCharge(term.id, "per_unit", "by_units", term.use_type, term.unit, units, rate, term.per, steps,
                      exact=exact)


def price_revenue_share(term: RevenueShareTerm, contract: LicenceContract, revenue, warnings: list[str]) -> TermCharge:
    charge = TermCharge(term.id, "revenue_share", term.allocation, rate=fraction_text(term.rate))
    if revenue is None:
        warnings.append(f"{contract.contract_id}: no revenue reported for term {term.id}; it is charged 0")
        return charge
    charge.revenue = fraction_text(revenue.amount)
    charge.exact = revenue.amount * term.rate
    return charge


def price_contract(contract: LicenceContract, units_by_use: dict, revenue) -> ContractCharge:
    warnings: list[str] = []
    terms = []
    for term in contract.terms:
        if isinstance(term, PerUnitTerm):
            terms.append(price_per_unit(term, units_by_use))
        elif isinstance(term, FlatFeeTerm):
            terms.append(TermCharge(term.id, "flat_fee", term.basis, term.use_type, exact=term.amount))
        elif isinstance(term, RevenueShareTerm):
            terms.append(price_revenue_share(term, contract, revenue, warnings))
    for charge in terms:
        charge.rounded_minor = charge.amount_minor = to_minor(charge.exact, contract.currency)
    guarantee = None if contract.minimum_guarantee is None else to_minor(contract.minimum_guarantee, contract.currency)
    if guarantee is not None:
        top_up = guarantee - sum(c.rounded_minor for c in terms)
        if top_up > 0:
            terms.append(TermCharge(TOP_UP_TERM, "minimum_guarantee_top_up", "by_usage",
                                    exact=Fraction(top_up, 10 ** exponent(contract.currency)),
                                    rounded_minor=top_up, amount_minor=top_up))
    cap = None if contract.cap is None else to_minor(contract.cap, contract.currency)
    if cap is not None and sum(c.rounded_minor for c in terms) > cap:
        apply_cap(terms, cap)
    return ContractCharge(contract, terms, guarantee, cap, warnings)


def apply_cap(terms: list[TermCharge], cap_minor: int) -> None:
    """Scale the terms down to sum to the cap, by largest remainder over the terms."""
    frame = pl.DataFrame({"term_id": [t.term_id for t in terms], "weight": [t.rounded_minor for t in terms],
                          "cap": [cap_minor] * len(terms), "g": [0] * len(terms)},
                         schema={"term_id": pl.String, "weight": pl.Int128, "cap": pl.Int128, "g": pl.Int8})
    scaled = largest_remainder(frame, group=["g"], total="cap", weight="weight", tie_break=["term_id"], out="amount")
    capped = dict(zip(scaled["term_id"].to_list(), scaled["amount"].to_list()))
    for term in terms:
        term.amount_minor = int(capped[term.term_id])


def units_by_contract(priced: pl.LazyFrame) -> dict[str, dict[tuple[str, str], int]]:
    totals = priced.group_by("contract_id", "use_type", "unit").agg(pl.col("units").sum()).collect()
    result: dict[str, dict[tuple[str, str], int]] = {}
    for contract_id, use_type, unit, units in totals.iter_rows():
        result.setdefault(contract_id, {})[(use_type, unit)] = int(units)
    return result


def price_all(contracts: list[LicenceContract], priced: pl.LazyFrame, revenue: list, period) -> list[ContractCharge]:
    """Price every contract that is in term during the period."""
    units = units_by_contract(priced)
    reports = {(r.licensee_id, r.contract_id, r.period): r for r in revenue}
    charges = []
    for contract in (c for c in contracts if in_period(c, period)):
        report = reports.get((contract.licensee_id, contract.contract_id, period.name))
        charges.append(price_contract(contract, units.get(contract.contract_id, {}), report))
    return charges


def in_period(contract: LicenceContract, period) -> bool:
    return contract.term.start < period.end.date() and contract.term.end >= period.start.date()


def charges_frame(charges: list[ContractCharge]) -> pl.DataFrame:
    """One row per (contract, term) with the amount to allocate."""
    rows = [{"licensee_id": c.contract.licensee_id, "contract_id": c.contract.contract_id,
             "currency": c.contract.currency, "term_id": t.term_id, "term_type": t.term_type, "basis": t.basis,
             "term_use_type": t.use_type, "term_unit": t.unit, "amount_minor": t.amount_minor}
            for c in charges for t in c.terms]
    schema = {"licensee_id": pl.String, "contract_id": pl.String, "currency": pl.String, "term_id": pl.String,
              "term_type": pl.String, "basis": pl.String, "term_use_type": pl.String, "term_unit": pl.String,
              "amount_minor": pl.Int128}
    return pl.DataFrame(rows, schema=schema)


def weight_scale(contract: LicenceContract) -> tuple[int, dict[str, int]]:
    """Use-type weights as integers over one common denominator."""
    weights = {use: Fraction(contract.weight(use)) for use in contract.use_types}
    scale = math.lcm(*(w.denominator for w in weights.values()))
    return scale, {use: int(w * scale) for use, w in weights.items()}
