"""Intake edge cases found by review and by the property tests."""

from __future__ import annotations

import itertools
import json

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT, settle_cli
from builders import contract, holder, split, usage, work, write_inputs
from contracts.loading import load_inputs
from settlement import intake
from settlement.intake import Period
from settlement.run import settle

CLOCK = "2026-11-05T09:00:00Z"


def test_identical_resend_in_another_format_is_a_duplicate(tmp_path):
    """A re-send written as JSONL with "" and as CSV with empty cells is the same fact: a duplicate."""
    folder = write_inputs(tmp_path / "in", holders=[holder("a")], works=[work("W1")], splits=split("W1", {"a": "1"}),
                          contracts=[contract([{"id": "t", "type": "per_unit", "use_type": "train", "unit": "token",
                                                "rate": "1"}])],
                          usage_files={"a.jsonl": [usage("r1", "WORK:W1", 5)]})
    row = usage("r1", "WORK:W1", 5)
    header = ",".join(row)
    line = ",".join("" if value == "" else value for value in row.values())  # empty cells, not ""
    (folder / "usage" / "b.csv").write_text(f"{header}\n{line}\n", encoding="utf-8")
    assert json.loads((folder / "usage" / "a.jsonl").read_text())["territory"] == ""
    settled = settle(load_inputs(folder), Period.parse("2026-10"), CLOCK)
    counts = settled.accounting.select("accepted", "duplicates", "quarantined").sum().row(0)
    assert counts == (1, 1, 0)


def test_catalogue_without_splits_sends_money_to_suspense(tmp_path):
    """A header-only splits.csv loads, and every charged amount is held in suspense."""
    folder = write_inputs(tmp_path / "in", holders=[holder("a")], works=[work("W1")], splits=[],
                          contracts=[contract([{"id": "t", "type": "flat_fee", "amount": "10", "basis": "by_usage",
                                                "use_type": "train"}])],
                          usage_files={"u.csv": [usage("r1", "WORK:W1", 5)]})
    settled = settle(load_inputs(folder), Period.parse("2026-10"), CLOCK)
    assert settled.totals["EUR"]["charged"] == settled.totals["EUR"]["suspense"] == 1000


def test_usage_globs_replace_the_usage_folder(tmp_path):
    """`--usage` globs read logs from anywhere; a log outside the input folder is named by its
    path in the folder its pattern starts from, however that is spelled."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "october.csv").write_bytes((ROOT / "fixtures" / "usage" / "quill-labs-2026-10-late.csv").read_bytes())
    done = settle_cli("run", "fixtures", "--period", "2026-10", "--out", str(tmp_path / "out"),
                      "--clock", CLOCK, "--quiet", "--usage", str(logs / "*.csv"))
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [f["file"] for f in summary["files"]] == ["october.csv"]


def test_logs_of_one_name_from_two_patterns_are_refused(tmp_path):
    for month in ("a", "b"):
        (tmp_path / month).mkdir()
        (tmp_path / month / "october.csv").write_bytes(
            (ROOT / "fixtures" / "usage" / "quill-labs-2026-10-late.csv").read_bytes())
    done = settle_cli("run", "fixtures", "--period", "2026-10", "--out", str(tmp_path / "out"), "--clock", CLOCK,
                      "--usage", str(tmp_path / "a" / "*.csv"), "--usage", str(tmp_path / "b" / "*.csv"))
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
    assert f"{tmp_path / 'b' / 'october.csv'}: is named 'october.csv' in the run's outputs, as " \
           f"{tmp_path / 'a' / 'october.csv'} is; expected usage logs of distinct names" in done.stderr
    done = settle_cli("run", "fixtures", "--period", "2026-10", "--out", str(tmp_path / "out"), "--clock", CLOCK,
                      "--usage", str(tmp_path / "*" / "*.csv"), "--quiet")  # one pattern over both
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [f["file"] for f in summary["files"]] == ["a/october.csv", "b/october.csv"]


TIMESTAMP_PARTS = {  # each field's usual value and variants that are wrong, odd or borderline
    "year": ["2026", "26", "02026", "0000", "+2026"], "month": ["10", "1", "13", "00", "010", "02"],
    "day": ["05", "5", "31", "32", "00", "29"], "sep": ["T", "t", " "], "hour": ["14", "4", "24", "23", "00"],
    "minute": ["03", "3", "60", "59"], "second": ["00", "0", "60", "61", "59"],
    "tail": ["Z", "z", ".5Z", ".123456Z", ".1234567Z", ".123456789Z", ".1234567891Z", ".Z", "+00:00",
             ".5+00:00", "+01:00", "", "Z ", "ZZ", ".-1Z", ".12a3Z", "+00:00+00:00"],
}


def test_timestamps_parse_as_one_general_parse_would():
    """The fast path for the common forms, then the general parse for what it leaves, accept
    and refuse exactly what a single parse with optional fractional seconds does, to the
    microsecond, for every combination of the parts above (918,000 texts: samples of them
    missed texts of a common form's length that only the general parse reads)."""
    from settlement.intake import parse_timestamp

    texts = [f"{year}-{month}-{day}{sep}{hour}:{minute}:{second}{tail}"
             for year, month, day, sep, hour, minute, second, tail in itertools.product(*TIMESTAMP_PARTS.values())]
    general = (pl.col("t").str.replace(r"\+00:00$", "Z")
               .str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", strict=False, time_unit="us", time_zone="UTC"))
    frame = pl.DataFrame({"t": texts}).select("t", parse_timestamp(pl.col("t")).to_physical().alias("got"),
                                              general.to_physical().alias("want"))  # year 0 is no Python date
    assert frame.filter(~pl.col("got").eq_missing(pl.col("want"))).head(5).to_dicts() == []


def test_parquet_windows_number_rows_as_the_whole_file(tmp_path, monkeypatch):
    """A Parquet file read in windows gives every row once, numbered by its place in the file."""
    from settlement import aggregate

    path = tmp_path / "u.parquet"
    pl.DataFrame({"record_id": [f"r{i}" for i in range(25)], "units": list(range(25))}).write_parquet(path)
    monkeypatch.setattr(aggregate, "SLICE_ROWS", 7)
    windows = [intake.scan_usage_file(path, 0, "u.parquet", window).collect() for window in aggregate.windows(path)]
    rows = pl.concat(windows)
    assert [w.height for w in windows] == [7, 7, 7, 4]
    assert rows["row"].to_list() == list(range(1, 26))
    assert rows["record_id"].to_list() == [f"r{i}" for i in range(25)]
    assert rows["units"].to_list() == [str(i) for i in range(25)]


@st.composite
def resend_rows(draw) -> list[dict]:
    """Spill-like rows from small pools: records re-sent in several files and rows, with
    equal or differing content, some already quarantined, some content null."""
    rows = []
    for index in range(draw(st.integers(0, 30))):
        rows.append({
            "file_index": draw(st.integers(0, 2)), "row": index + 1,
            "licensee_id": draw(st.sampled_from(("ai", "bi"))), "record_id": draw(st.sampled_from(("r1", "r2", "r3"))),
            "model_id": "m", "work_ref": draw(st.sampled_from(("WORK:W1", "WORK:W2"))), "use_type": "train",
            "units_count": draw(st.sampled_from((1, 2))), "unit": "token", "occurred": None,
            "territory": draw(st.sampled_from((None, "SE"))), "output_id": None, "attribution_nanos": None,
            "reason": draw(st.sampled_from((None, None, None, "negative_units"))),
            "field": None, "value": None, "expected": None})
    return rows


def expected_copies(rows: list[dict]) -> list[str | None]:
    """The re-send rule, row by row: every valid copy of a (licensee, record) whose valid
    copies do not all have the same content is conflicting; otherwise the first by (file,
    row) is kept and the others are duplicates; invalid rows are neither."""
    valid = [r for r in rows if r["reason"] is None]
    contents: dict[tuple, set] = {}
    first: dict[tuple, dict] = {}
    for row in sorted(valid, key=lambda r: (r["file_index"], r["row"])):
        key = (row["licensee_id"], row["record_id"])
        first.setdefault(key, row)
        contents.setdefault(key, set()).add(tuple(row[c] for c in intake.CONTENT_COLUMNS))
    copies = []
    for row in rows:
        key = (row["licensee_id"], row["record_id"])
        if row["reason"] is not None:
            copies.append(None)
        elif len(contents[key]) > 1:
            copies.append("conflicting_resend")
        else:
            copies.append("kept" if first[key] is row else "duplicate")
    return copies


@settings(max_examples=100, deadline=None)
@given(rows=resend_rows())
def test_deduplication_keeps_the_first_of_identical_copies_and_quarantines_every_conflicting_one(rows):
    """`intake.deduplicated` agrees with the rule applied row by row, in any order of rows."""
    schema = {"file_index": pl.UInt32, "row": pl.UInt32, "units_count": pl.Int64,
              "occurred": pl.Datetime("us", "UTC"), "attribution_nanos": pl.Int64}
    frame = pl.DataFrame(rows, schema={name: schema.get(name, pl.String) for name in (
        "file_index", "row", "licensee_id", "record_id", "model_id", "work_ref", "use_type", "units_count", "unit",
        "occurred", "territory", "output_id", "attribution_nanos", "reason", "field", "value", "expected")})
    marked = intake.deduplicated(frame.lazy()).collect()
    assert marked["copy"].to_list() == expected_copies(rows)
    conflicting = marked.filter(pl.col("copy") == "conflicting_resend")
    assert conflicting["reason"].to_list() == ["conflicting_resend"] * conflicting.height


FIELD_VALUES = st.one_of(st.none(), st.text(max_size=6))


@settings(max_examples=200, deadline=None)
@given(row=st.fixed_dictionaries({c: FIELD_VALUES for c in intake.USAGE_COLUMNS}),
       column=st.sampled_from(intake.USAGE_COLUMNS), other=st.sampled_from(intake.USAGE_COLUMNS),
       value=FIELD_VALUES)
def test_a_row_hash_changes_with_any_field_and_with_values_moved_between_fields(row, column, other, value):
    """The run id hashes every row read (law 4: same inputs, same id): a row whose field
    differs, null against empty included, or whose values sit in other fields, hashes
    differently, since each field is hashed with a seed of its own."""
    changed = row | {column: value}
    swapped = row | {column: row[other], other: row[column]}
    frame = pl.DataFrame([row, changed, swapped], schema={c: pl.String for c in intake.USAGE_COLUMNS})
    hashes = frame.select(intake.raw_row_hash())[:, 0].to_list()
    assert (hashes[1] == hashes[0]) == (changed == row)
    assert (hashes[2] == hashes[0]) == (swapped == row)


JSON_SCALARS = st.one_of(
    st.text(max_size=6), st.sampled_from(["ai", "WORK:W1", "2026-10-05T14:03:00Z", "0.25", "", "é", "\x00", "\ud800"]),
    st.integers(min_value=-(10**30), max_value=10**30), st.sampled_from([0, -0.0, 1e3, 1.5, 2.0, 1e-7]),
    st.booleans(), st.none())
JSON_VALUES = st.one_of(JSON_SCALARS, st.lists(JSON_SCALARS, max_size=2), st.dictionaries(st.text(max_size=3),
                                                                                          JSON_SCALARS, max_size=2))
JSON_KEYS = st.one_of(st.sampled_from(intake.USAGE_COLUMNS), st.text(max_size=5))


@st.composite
def json_lines(draw) -> str:
    """A line a JSON Lines exporter might write, or a broken one: an object of usage columns and
    other keys (a key possibly twice), values of every JSON type, escaped or not, spaced or not."""
    members = draw(st.lists(st.tuples(JSON_KEYS, JSON_VALUES), max_size=6))
    ascii_only, spaced = draw(st.booleans()), draw(st.booleans())
    dumped = [json.dumps(key, ensure_ascii=ascii_only) + (" : " if spaced else ":")
              + json.dumps(value, ensure_ascii=ascii_only) for key, value in members]
    line = "{" + (", " if spaced else ",").join(dumped) + "}"
    broken = draw(st.sampled_from(["", "", "", "cut", "bom", "array", "nan", "tail", "cr", "ws"]))
    return {"": line, "cut": line[:len(line) // 2], "bom": "\ufeff" + line, "array": f"[{line}]",
            "nan": line.replace("}", ', "units": NaN}', 1), "tail": line + " x", "cr": line + "\r",
            "ws": f" \t{line} "}[broken]


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(json_lines(), min_size=1, max_size=8))
def test_json_lines_parsed_once_read_as_they_would_by_json_path(tmp_path_factory, lines):
    """A plain JSON line is parsed once (intake.plain_object), every other one field by field by
    JSON path: for every line, each usage column and the malformed flag are what a JSON path per
    field gives, so the fast parse changes no row's fate. A line written by json.dumps from a usage
    row is plain (it takes the fast parse)."""
    path = tmp_path_factory.mktemp("jsonl") / "usage.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="replace")  # a raw lone surrogate: not UTF-8
    read = intake.scan_ndjson_as_text(path).collect()
    line = pl.col("line")
    is_object = line.str.strip_chars().str.starts_with("{") & line.str.json_path_match("$").is_not_null()
    by_path = read.select(
        "row", *(line.str.json_path_match(f"$.{column}").alias(column) for column in intake.USAGE_COLUMNS),
        pl.when(~is_object).then(pl.lit("malformed_json"))
        .when(line.str.contains(r'"attribution"\s*:\s*[-0-9.]')).then(pl.lit("attribution_number")).alias("malformed"))
    assert read.select(by_path.columns).to_dicts() == by_path.to_dicts()
    common = pl.Series([json.dumps(usage("r1", "WORK:W1", 5)), json.dumps(usage("r2", "ISWC:T-034.524.680-1", 7))])
    assert pl.select(intake.plain_object(pl.lit(common))).to_series().all()


def test_the_same_logs_give_the_same_manifest_however_folder_and_patterns_are_spelled(tmp_path):
    """Law 4: the input folder relative or absolute, a log named by two patterns in either
    spelling and order: one manifest, and a second run posted to the same ledger is the first."""
    import shutil

    from contracts.loading import is_reference_name

    shutil.copytree(ROOT / "fixtures", tmp_path / "fixtures", ignore=shutil.ignore_patterns("usage"))
    logs = tmp_path / "ext"
    (logs / "late").mkdir(parents=True)
    for name in ("lumen-ai-2026-10-a.csv", "quill-labs-2026-10.jsonl"):
        (logs / name).write_bytes((ROOT / "fixtures" / "usage" / name).read_bytes())
    (logs / "late" / "q.csv").write_bytes((ROOT / "fixtures" / "usage" / "quill-labs-2026-10-late.csv").read_bytes())
    ledger = str(tmp_path / "ledger.sqlite")
    spellings = [("fixtures", ["ext/", "ext/late/*.csv"]), (str(tmp_path / "fixtures"), [f"{logs}/late/*.csv", "ext"])]
    manifests = []
    for number, (folder, patterns) in enumerate(spellings):
        out = tmp_path / f"out{number}"
        done = settle_cli("run", folder, "--period", "2026-10", "--out", str(out), "--clock", CLOCK, "--ledger", ledger,
                          *[arg for pattern in patterns for arg in ("--usage", pattern)], cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        manifests.append((out / "manifest.json").read_bytes())
    assert manifests[0] == manifests[1]
    names = [e["path"] for e in json.loads(manifests[0])["inputs"] if not is_reference_name(e["path"])]
    assert names == ["late/q.csv", "lumen-ai-2026-10-a.csv", "quill-labs-2026-10.jsonl"]
    assert "posted already as run 1" in done.stdout


def test_a_log_named_as_an_input_file_is_refused(tmp_path):
    (tmp_path / "ext").mkdir()
    (tmp_path / "ext" / "holders.csv").write_bytes(
        (ROOT / "fixtures" / "usage" / "quill-labs-2026-10-late.csv").read_bytes())
    done = settle_cli("run", str(ROOT / "fixtures"), "--period", "2026-10", "--out", str(tmp_path / "out"),
                      "--clock", CLOCK, "--usage", str(tmp_path / "ext"))
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
    assert "holders.csv: would be named 'holders.csv' in the run's outputs, as an input of the folder is" in done.stderr
