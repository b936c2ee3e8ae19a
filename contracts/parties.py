"""Licensees and rights holders."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from contracts.numbers import NonNegative, Share

_COUNTRY = r"^[A-Z]{2}$"
# Holder and licensee ids name their statement and invoice files: no path separators.
FILE_SAFE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"


class Model(BaseModel):
    """Base of every domain model: strict about unknown fields, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Licensee(Model):
    """An AI firm that holds one or more licences."""

    licensee_id: str = Field(pattern=FILE_SAFE_ID)
    name: str = Field(min_length=1)
    country: str = Field(pattern=_COUNTRY)


class RightsHolder(Model):
    """A payee: author, composer, performer, publisher, label."""

    holder_id: str = Field(pattern=FILE_SAFE_ID)
    name: str = Field(min_length=1)
    country: str = Field(pattern=_COUNTRY)
    ipi: str | None = Field(default=None, pattern=r"^\d{9,11}$")
    isni: str | None = None
    payout_currency: str = Field(pattern=r"^[A-Z]{3}$")
    withholding_rate: Share = Field(default=0)
    payout_threshold: NonNegative | None = None

    @field_validator("isni")
    @classmethod
    def _isni(cls, value: str | None) -> str | None:
        if value is None:
            return None
        compact = value.replace(" ", "").upper()
        if not re.fullmatch(r"\d{15}[\dX]", compact):
            raise ValueError(f"{value!r} is not an ISNI: expected 16 characters, digits and a final X")
        return compact


class BalanceBroughtForward(Model):
    """A holder's balance in one currency carried forward by earlier runs, in major units:
    paid with this period's net once the two reach the holder's threshold. Negative (a
    debt) when a correction paid the holder what a later run had already carried on."""

    holder_id: str = Field(pattern=FILE_SAFE_ID)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    amount: str = Field(pattern=r"^-?[0-9]+(\.[0-9]+)?$", description="a plain decimal, e.g. 4.20 or -1.50")
