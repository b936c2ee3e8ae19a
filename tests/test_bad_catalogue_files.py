"""Reference tables polars cannot read, and catalogue rows that read but are wrong.

Each case breaks one file of a copy of the demo fixtures, as a user might (a comma
too many, a quote left open, a file saved as Latin-1 or cut to 0 bytes, a Parquet
file that is not one, a float share), and expects the run refused with one
`error:` line naming the file, the row and what was expected: exit 2, no traceback.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import polars as pl
import pytest
from typer.testing import CliRunner

from contracts.catalogue import CONSENT_COLUMNS, load_consent, load_works, read_table
from contracts.csv_faults import first_bad_row
from contracts.errors import InputError
from settlement.cli import app

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
CLOCK = "2026-11-05T09:00:00Z"


def fixtures_copy(folder: Path) -> Path:
    shutil.copytree(FIXTURES, folder, ignore=shutil.ignore_patterns("*.py", "*.md"))
    return folder


def settle(folder: Path, out: Path):
    return CliRunner().invoke(app, ["run", str(folder), "--period", "2026-10", "--out", str(out), "--clock", CLOCK,
                                    "--quiet"])


def one_error_line(result) -> str:
    """Exit 2 and one `error:` line, no traceback (an uncaught exception would be result.exception)."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def append(path: Path, data: bytes) -> None:
    assert path.read_bytes().endswith(b"\n")
    with open(path, "ab") as handle:
        handle.write(data)


def replace_line(path: Path, number: int, new: bytes) -> None:
    """Replace physical line `number` (the header is line 0, so data row `number`)."""
    lines = path.read_bytes().splitlines(keepends=True)
    lines[number] = new
    path.write_bytes(b"".join(lines))


def garbage_parquet(folder: Path, name: str) -> None:
    (folder / f"{name}.csv").unlink()
    (folder / f"{name}.parquet").write_bytes(b"PAR1 not really a parquet file")


def float_shares(folder: Path) -> None:
    """splits.parquet with share as Float64: 0.7 + 0.3 for W000001 (the fixture's thirds cannot be floats
    at all, so every other work has a share of 1)."""
    splits = pl.read_csv(folder / "splits.csv", infer_schema=False)
    (folder / "splits.csv").unlink()
    first = splits.filter(pl.col("work_id") == "W000001").head(2).with_columns(share=pl.Series(["0.7", "0.3"]))
    others = splits.filter(pl.col("work_id") != "W000001").unique(["work_id", "valid_from"], keep="first",
                                                                   maintain_order=True).with_columns(share=pl.lit("1"))
    pl.concat([first, others]).with_columns(pl.col("share").cast(pl.Float64)).write_parquet(folder / "splits.parquet")


@dataclass(frozen=True)
class Case:
    name: str
    fault: Callable[[Path], None]
    file: str
    fragments: tuple[str, ...]


CASES = [
    # 1a: a field too many, in a table read by load_rows and in the catalogue
    Case("extra field in holders.csv", lambda f: replace_line(f / "holders.csv", 2, b"H002,Erik,SE,,,EUR,0,,oops\n"),
         "holders.csv", ("row 2", "9 fields where the header names 8", "'oops'",
                         "expected 8 fields: holder_id, name, country")),
    Case("extra field in works.csv", lambda f: append(f / "works.csv", b"W000999,composition,Hello, world,\n"),
         "works.csv", ("row 201", "5 fields where the header names 4", "expected 4 fields: work_id, kind, title",
                       'a value holding a comma in quotes')),
    # 1b
    Case("unclosed quote in works.csv", lambda f: append(f / "works.csv", b'W000999,composition,"Unclosed title,\n'),
         "works.csv", ("row 201", "field 'title'", "'\"Unclosed title,'", "unclosed quote",
                       "expected a closing quote")),
    Case("unclosed quote mid-file", lambda f: replace_line(f / "works.csv", 5, b'W000005,composition,"Open,\n'),
         "works.csv", ("row 5", "field 'title'", "unclosed quote")),
    Case("stray quote in an unquoted value", lambda f: replace_line(f / "works.csv", 7, b'W000007,text,say x"y,\n'),
         "works.csv", ("row 7", "field 'title'", "'say x\"y'", "a quote inside an unquoted value")),
    Case("text after a closing quote", lambda f: replace_line(f / "works.csv", 7, b'W000007,text,"Title"z,\n'),
         "works.csv", ("row 7", "malformed quoting", '"Title"z', "expected a quoted value closed by a quote")),
    # 1c
    Case("Latin-1 byte in holders.csv", lambda f: append(f / "holders.csv", b"H999,Bj\xf6rk,IS,,,EUR,0,\n"),
         "holders.csv", ("row 61", "field 'name'", "b'Bj\\xf6rk'", "not UTF-8 text", "expected a file saved as UTF-8")),
    # 1d
    *[Case(f"0-byte {name}", lambda f, name=name: (f / name).write_bytes(b""), name,
           ("empty file", f"expected a header row with columns {columns}"))
      for name, columns in [("works.csv", "work_id, kind, title, identifiers"),
                            ("licensees.csv", "licensee_id, name, country"),
                            ("holders.csv", "holder_id, name, country, ipi, isni, payout_currency"),
                            ("splits.csv", "work_id, right, holder_id, share, valid_from, valid_to")]],
    # 1e
    Case("garbage works.parquet", lambda f: garbage_parquet(f, "works"), "works.parquet",
         ("not a readable Parquet file",)),
    Case("garbage splits.parquet", lambda f: garbage_parquet(f, "splits"), "splits.parquet",
         ("not a readable Parquet file",)),
    # 2a, 2b
    Case("subject all with a subject_id", lambda f: append(f / "consent.csv", b"all,W000001,*,,opt_out,2026-01-01,\n"),
         "consent.csv", ("row 4", "field 'subject_id'", "'W000001'", "expected empty for subject all")),
    Case("consent ending before it starts",
         lambda f: append(f / "consent.csv", b"work,W000001,*,,opt_out,2026-05-01,2026-01-01\n"),
         "consent.csv", ("row 4", "field 'valid_to'", "'2026-01-01'", "expected a date after valid_from")),
    # 3
    Case("float shares in splits.parquet", float_shares, "splits.parquet",
         ("row 1", "field 'share'", "= 0.7", "float", "expected a decimal string such as \"0.40\"")),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_catalogue_file_is_one_error_line(case, tmp_path):
    folder = fixtures_copy(tmp_path / "in")
    case.fault(folder)
    line = one_error_line(settle(folder, tmp_path / "out"))
    assert f"{folder / case.file}" in line, line
    for fragment in case.fragments:
        assert fragment in line, (fragment, line)
    assert not (tmp_path / "out").exists()


def test_0_byte_consent_and_revenue_are_read_as_no_rows(tmp_path):
    """docs/formats.md lets them be empty: 0 bytes is a header alone, as for the other tables that may be."""
    folder = fixtures_copy(tmp_path / "in")
    (folder / "consent.csv").write_bytes(b"")
    (folder / "revenue.csv").write_bytes(b"")
    assert read_table(folder / "consent.csv").columns == ["_row", *CONSENT_COLUMNS]
    assert read_table(folder / "consent.csv").height == 0
    result = settle(folder, tmp_path / "out")
    assert result.exit_code == 0, (result.output, result.exception)


def test_rows_are_numbered_as_read_table_numbers_them(tmp_path):
    """A value over two lines is one row, a blank line is one: the row named is the one `_row` would be."""
    path = tmp_path / "works.csv"
    path.write_bytes(b'work_id,kind,title,identifiers\nW1,text,"two\nlines",\n\nW2,text,fine,\n')
    assert read_table(path)["_row"].to_list() == [1, 2, 3]
    append(path, b"W3,text,too,many,fields\n")
    with pytest.raises(InputError) as error:
        load_works(path)
    assert error.value.row == 4 and "5 fields where the header names 4" in str(error.value)


def test_an_unclosed_quote_in_the_header_names_no_row(tmp_path):
    """polars reads such a header as one long column name (a missing column is reported), but should
    it refuse one, the row-finder does not fail on the header."""
    lines = ['work_id,kind,"title,identifiers\n', "W1,text,t,\n"]
    error = first_bad_row(str(tmp_path / "works.csv"), lines)
    assert error.row is None and "unclosed quote" in str(error)


def test_a_float_column_of_nulls_only_is_no_float(tmp_path):
    path = tmp_path / "splits.parquet"
    pl.DataFrame({"share": ["1"], "valid_to": pl.Series([None], dtype=pl.Float64)}).write_parquet(path)
    assert read_table(path)["valid_to"].to_list() == [None]


# 2c: load_inputs cannot pass them yet (contracts/loading.py is not this change's), so load_consent is called
def consent_of(tmp_path: Path, row: bytes, **known) -> pl.DataFrame:
    folder = fixtures_copy(tmp_path / "in")
    append(folder / "consent.csv", row)
    works, _, _ = load_works(folder / "works.csv")
    return load_consent(folder / "consent.csv", works, **known)


KNOWN = {"holder_ids": ["H004", "H014"], "licensee_ids": ["lumen-ai", "quill-labs"]}


def test_consent_for_an_unknown_holder_is_refused(tmp_path):
    with pytest.raises(InputError) as error:
        consent_of(tmp_path, b"holder,H999,*,,opt_out,2026-01-01,\n", **KNOWN)
    assert (error.value.row, error.value.field, error.value.value) == (4, "subject_id", "H999")
    assert "expected a holder_id of holders.csv" in str(error.value)


def test_consent_for_an_unknown_licensee_is_refused(tmp_path):
    with pytest.raises(InputError) as error:
        consent_of(tmp_path, b"work,W000001,*,nobody-ai,opt_out,2026-01-01,\n", **KNOWN)
    assert (error.value.row, error.value.field, error.value.value) == (4, "licensee_id", "nobody-ai")
    assert "expected a licensee_id of licensees.csv" in str(error.value)


def test_consent_naming_known_parties_loads(tmp_path):
    assert consent_of(tmp_path, b"holder,H014,*,lumen-ai,opt_out,2026-01-01,\n", **KNOWN).height == 4
