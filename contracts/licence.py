"""Licence contracts and their pricing terms."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from contracts.numbers import NonNegative, Share
from contracts.parties import Model
from contracts.vocabulary import Unit, UseType, WorkKind


class Term(Model):
    """Common fields of every pricing term."""

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")


class Tier(Model):
    """One step of a graduated rate: units up to `up_to` (inclusive, cumulative) at `rate`."""

    up_to: int | None = Field(default=None, gt=0)
    rate: NonNegative


class PerUnitTerm(Term):
    """Units × rate per `per` units, optionally graduated over the period's units."""

    type: Literal["per_unit"]
    use_type: UseType
    unit: Unit
    rate: NonNegative | None = None
    per: int = Field(default=1, gt=0)
    tiers: list[Tier] | None = None

    @model_validator(mode="after")
    def _rate_or_tiers(self) -> "PerUnitTerm":
        if (self.rate is None) == (not self.tiers):
            raise ValueError("give exactly one of `rate` and `tiers`")
        if self.tiers:
            bounds = [tier.up_to for tier in self.tiers]
            if bounds[-1] is not None or any(b is None for b in bounds[:-1]):
                raise ValueError("only the last tier may (and must) have up_to: null")
            if bounds[:-1] != sorted(set(bounds[:-1])):
                raise ValueError(f"tier bounds must increase strictly, found {bounds[:-1]}")
        return self

    def steps(self) -> list[Tier]:
        """The rate schedule as tiers (a flat rate is one open tier)."""
        return list(self.tiers) if self.tiers else [Tier(up_to=None, rate=self.rate)]


class FlatFeeTerm(Term):
    """A fixed fee per period, booked under one use type."""

    type: Literal["flat_fee"]
    amount: NonNegative
    basis: Literal["per_covered_work", "per_used_work", "by_usage"]
    use_type: UseType


class RevenueShareTerm(Term):
    """A percentage of the revenue the licensee reports for the period."""

    type: Literal["revenue_share"]
    rate: Share
    allocation: Literal["by_usage", "by_attribution"] = "by_usage"


PricingTerm = Annotated[Union[PerUnitTerm, FlatFeeTerm, RevenueShareTerm], Field(discriminator="type")]


class ContractTerm(Model):
    """The contract's validity, inclusive dates."""

    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> "ContractTerm":
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class Repertoire(Model):
    """What the licence covers: all works, a list of works, or works of some kinds."""

    all: bool = False
    works: list[str] | None = None
    kinds: list[WorkKind] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "Repertoire":
        given = [self.all, self.works is not None, self.kinds is not None]
        if sum(given) != 1:
            raise ValueError("give exactly one of `all: true`, `works: [...]`, `kinds: [...]`")
        return self


class LicenceContract(Model):
    """One version of a licence contract between a licensee and the society."""

    contract_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    version: int = Field(ge=1)
    licensee_id: str = Field(min_length=1)
    licensor: str = Field(min_length=1)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    term: ContractTerm
    territories: list[str] = Field(min_length=1)
    repertoire: Repertoire
    use_types: list[UseType] = Field(min_length=1)
    models: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    weights: dict[UseType, NonNegative] = Field(default_factory=dict)
    minimum_guarantee: NonNegative | None = None
    cap: NonNegative | None = None
    terms: list[PricingTerm] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> "LicenceContract":
        ids = [term.id for term in self.terms]
        if len(ids) != len(set(ids)):
            raise ValueError(f"term ids must be unique, found {ids}")
        for territory in self.territories:
            if territory != "*" and not (len(territory) == 2 and territory.isupper() and territory.isalpha()):
                raise ValueError(f"territory {territory!r} is not '*' or an ISO 3166-1 alpha-2 code")
        for term in self.terms:
            use_type = getattr(term, "use_type", None)
            if use_type is not None and use_type not in self.use_types:
                raise ValueError(f"term {term.id!r} prices use type {use_type!r}, not among use_types {self.use_types}")
        if self.cap is not None and self.minimum_guarantee is not None and self.cap < self.minimum_guarantee:
            raise ValueError("cap is below the minimum guarantee")
        return self

    def weight(self, use_type: str):
        """The use type's weight for usage-based allocation (1 when not given)."""
        return self.weights.get(use_type, 1)
