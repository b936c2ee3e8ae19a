"""One way to make a number: exact values from strings, never from floats.

Rates, shares and amounts arrive as decimal strings (`"0.40"`), percentages
(`"33.33%"`) or fractions (`"1/3"`, so three equal co-writers are exact) and
become `fractions.Fraction`. A float is refused at the boundary: once a value
has been binary floating point its exactness is already gone.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

EXACT_TEXT = 'a decimal string such as "0.40" (or a percentage "40%" or a fraction "2/5")'
"""What a number must be instead of a float, for messages that refuse one."""
_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_FRACTION = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_exact(text: str) -> Fraction:
    """A decimal, percentage or fraction string as an exact value; ValueError otherwise."""
    body = text.strip()
    if body.endswith("%"):
        return parse_exact(body[:-1]) / 100
    fraction = _FRACTION.match(body)
    if fraction:
        numerator, denominator = int(fraction[1]), int(fraction[2])
        if denominator == 0:
            raise ValueError(f"{text!r} divides by zero")
        return Fraction(numerator, denominator)
    if not _DECIMAL.match(body):
        raise ValueError(f"{text!r} is not a decimal, a percentage or a fraction")
    try:
        return Fraction(Decimal(body))
    except InvalidOperation as error:  # pragma: no cover - the pattern already guards
        raise ValueError(f"{text!r} is not a decimal") from error


def _from_text(value: Any) -> Fraction:
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError(
            f"{value!r} is a {type(value).__name__}; write exact numbers as strings, e.g. \"0.40\""
        )
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, Fraction):
        return value
    if isinstance(value, Decimal):
        return Fraction(value)
    if isinstance(value, str):
        return parse_exact(value)
    raise ValueError(f"{value!r} is not a number written as a string")


def fraction_text(value: Fraction) -> str:
    """Canonical text of an exact value: plain decimal when it terminates, else `n/d`."""
    denominator = value.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    if denominator != 1:
        return f"{value.numerator}/{value.denominator}"
    text = format(Decimal(value.numerator) / Decimal(value.denominator), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


_SCHEMA = WithJsonSchema(
    {"type": "string", "pattern": r"^\s*(\d+\s*/\s*\d+|[+-]?(\d+(\.\d*)?|\.\d+)%?)\s*$",
     "description": "exact number as a string: decimal, percentage or fraction"}
)
_SERIALIZE = PlainSerializer(fraction_text, return_type=str)


def _non_negative(value: Fraction) -> Fraction:
    if value < 0:
        raise ValueError(f"{fraction_text(value)} is negative; expected a value >= 0")
    return value


def _unit_interval(value: Fraction) -> Fraction:
    if not 0 <= value <= 1:
        raise ValueError(f"{fraction_text(value)} is outside [0, 1]")
    return value


Exact = Annotated[Fraction, BeforeValidator(_from_text), _SERIALIZE, _SCHEMA]
"""Any exact number (may be negative)."""
NonNegative = Annotated[
    Fraction, BeforeValidator(lambda v: _non_negative(_from_text(v))), _SERIALIZE, _SCHEMA
]
"""An amount or a rate: exact and >= 0."""
Share = Annotated[
    Fraction, BeforeValidator(lambda v: _unit_interval(_from_text(v))), _SERIALIZE, _SCHEMA
]
"""A share or a rate in [0, 1]."""
