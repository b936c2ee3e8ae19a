"""Where a CSV file that polars refused goes wrong: the row, the field and the value.

Polars reads a CSV fast but, when it cannot, says only what (`found more fields
than defined in 'Schema'`, `invalid utf-8 sequence`), not where. On that
failure path only, the file is read again with Python's csv module, streamed
(a usage log may be gigabytes, gzip- or zstd-compressed), to find the first
row with a field too many, a quote that does not pair up, or bytes that are
not UTF-8. Both the reference tables (contracts/catalogue.py) and the usage
logs (settlement/intake.py) report through it.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Iterable, Iterator

import pyarrow as pa

from contracts.errors import InputError

COMPRESSION_MAGIC = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd"}
# Python's csv module cannot say a field was never closed: it reads on to the end of the file, or to
# its field size limit, first.
UNCLOSED_QUOTE = ("unexpected end of data", "field larger than field limit")
# `surrogateescape` decodes each byte that is not UTF-8 to one of these, found nowhere in real text
NOT_UTF8 = re.compile("[\udc80-\udcff]")


def opened(path: Path) -> io.BufferedIOBase:
    """A CSV file's bytes, decompressed when it is gzip or zstd: known by its first bytes, not
    its name, as polars' reader knows it. A compressed stream that is cut short or is not
    what it says raises pyarrow's error when read."""
    with path.open("rb") as handle:
        head = handle.read(4)
    compression = next((name for magic, name in COMPRESSION_MAGIC.items() if head.startswith(magic)), None)
    if compression is None:
        return path.open("rb")
    return io.BufferedReader(pa.input_stream(str(path), compression=compression))


# polars reads a value of any length; the csv module stops at 128 KiB unless told otherwise
FIELD_SIZE_LIMIT = (1 << 31) - 1


def csv_fault(path: Path, name: str) -> InputError | None:
    """The first row of the CSV at `path` (called `name` in the error) that polars refuses,
    numbered as data rows from 1 (a blank line is a row too); None if none is found, or if
    the file cannot be read this way either (the caller then reports polars' words)."""
    limit = csv.field_size_limit(FIELD_SIZE_LIMIT)
    try:
        with opened(path) as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape",
                                                   newline="") as text:
            return first_bad_row(name, text)
    except (OSError, pa.ArrowException, csv.Error):
        return None
    finally:
        csv.field_size_limit(limit)


class Tape:
    """A CSV's lines as csv.reader takes them, keeping those of the record being read:
    the reader takes lines one at a time and none past the record it returns."""

    def __init__(self, lines: Iterable[str]):
        self.lines, self.taken = iter(lines), []

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = next(self.lines)
        self.taken.append(line)
        return line

    def record(self) -> list[str]:
        """The lines taken since the last call: one record's."""
        taken, self.taken = self.taken, []
        return taken


def first_bad_row(name: str, lines: Iterable[str]) -> InputError | None:
    """The first row of `lines` (a CSV's, header first) that polars refuses."""
    tape = Tape(lines)
    reader = csv.reader(tape, strict=True)
    try:
        header = [shown(column) for column in next(reader, [])]
    except csv.Error as error:
        return quoting_error(name, [], tape.record()[0], None, error)
    tape.record()
    row = 0
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return None
        except csv.Error as error:
            return quoting_error(name, header, tape.record()[0], row + 1, error)
        row += 1
        problem = row_problem(name, header, record, tape.record(), row)
        if problem:
            return problem


def row_problem(name: str, header: list[str], record: list[str], raw: list[str], row: int) -> InputError | None:
    """What polars refuses in `record`, read from the lines `raw`, if anything."""
    if len(record) > len(header):
        extra = shown(",".join(record[len(header):]))
        return InputError(name, f"{len(record)} fields where the header names {len(header)} (extra: {extra[:200]!r})",
                          row=row, expected=f"{len(header)} fields: {', '.join(header)} "
                                            f'(a value holding a comma in quotes: "a, b")')
    for field, cell in zip(header, record):
        if NOT_UTF8.search(cell):
            return InputError(name, "not UTF-8 text", row=row, field=field,
                              value=cell.encode("utf-8", "surrogateescape"), expected="a file saved as UTF-8")
        # polars takes a quote inside an unquoted value as text, unless the quotes do not pair up
        if cell.count('"') % 2 and '"' + cell.replace('"', '""') + '"' not in "".join(raw):
            return InputError(name, "a quote inside an unquoted value", row=row, field=field, value=cell,
                              expected='a value with quotes in quotes, each of its own doubled ("say ""hi""")')
    return None


def quoting_error(name: str, header: list[str], line: str, row: int | None, error: csv.Error) -> InputError:
    """The row starting at `line` has a quote the csv module could not pair up."""
    if not str(error).startswith(UNCLOSED_QUOTE):
        return InputError(name, f"malformed quoting in {shown(line.rstrip()):.200}: {error}", row=row,
                          expected="a quoted value closed by a quote, then a comma or the line end")
    # closed at the end of its line, the quote shows which field it opened
    cells = next(csv.reader([line.rstrip("\r\n") + '"']))
    value = shown('"' + cells[-1])
    expected = "a closing quote before the end of the value"
    if len(cells) > len(header):  # in the header itself, or past its last column
        return InputError(name, f"unclosed quote at {value:.200}", row=row, expected=expected)
    return InputError(name, "unclosed quote", row=row, field=header[len(cells) - 1], value=value, expected=expected)


def shown(text: str) -> str:
    """`text` fit to print: a byte that is not UTF-8 (see NOT_UTF8) as the replacement character."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
