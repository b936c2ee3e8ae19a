"""The society's distribution policy and the licensees' revenue reports."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from contracts.numbers import NonNegative, Share
from contracts.parties import Model
from contracts.vocabulary import UseType


class DistributionPolicy(Model):
    """Commission, payout thresholds and consent default of one society."""

    society: str = Field(min_length=1)
    consent_required: bool = False
    commission: dict[UseType, Share]
    thresholds: dict[str, NonNegative] = Field(default_factory=dict)
    suspense_hold_months: int = Field(default=36, ge=0)

    @field_validator("thresholds")
    @classmethod
    def _currency_keys(cls, value: dict) -> dict:
        for code in value:
            if not re.fullmatch(r"[A-Z]{3}", code):
                raise ValueError(f"threshold currency {code!r} is not an ISO 4217 code")
        return value


class RevenueReport(Model):
    """Revenue a licensee reports for one contract and period."""

    licensee_id: str = Field(min_length=1)
    contract_id: str = Field(min_length=1)
    period: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    amount: NonNegative
    currency: str = Field(pattern=r"^[A-Z]{3}$")
