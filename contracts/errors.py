"""Every exception the engine raises, in one tree.

    SettlementError                 base; the CLI prints its message on one line, no traceback
    ├── InputError                  a user's file is wrong: names file, row, field, value, expectation
    │   ├── UnknownCurrency         a currency code that is not ISO 4217
    │   └── MissingInput            a required input file is absent
    ├── ConservationError           the run's figures do not add up; the run is aborted
    └── RunConflict                 the same period was settled with different inputs

Bad usage rows are not exceptions: they are quarantine records (data).
Programmer errors stay ordinary Python exceptions and keep their tracebacks.
"""

from __future__ import annotations


class SettlementError(Exception):
    """Base of every error the engine reports to a user."""


class InputError(SettlementError):
    """A user's input is wrong; the message says where and what was expected."""

    def __init__(self, file: str, problem: str, *, row: int | None = None,
                 field: str | None = None, value: object = None, expected: str | None = None):
        self.file, self.row, self.field, self.value, self.expected = file, row, field, value, expected
        where = file + (f", row {row}" if row is not None else "")
        what = f"field {field!r}" if field else ""
        shown = f" = {value!r}" if value is not None else ""
        wanted = f"; expected {expected}" if expected else ""
        super().__init__(f"{where}: {what}{shown}: {problem}{wanted}".replace(": : ", ": "))


class UnknownCurrency(InputError):
    """A currency code that is not an active ISO 4217 code."""

    def __init__(self, currency: str, file: str = "<input>", field: str = "currency", row: int | None = None):
        super().__init__(file, "unknown currency", row=row, field=field, value=currency,
                         expected="an ISO 4217 code such as EUR, USD, JPY")


class MissingInput(InputError):
    """A required input file is absent."""


class ConservationError(SettlementError):
    """The figures of a run disagree; the message lists each disagreeing figure."""


class RunConflict(SettlementError):
    """A period already settled with other inputs; a second set of payments is refused."""
