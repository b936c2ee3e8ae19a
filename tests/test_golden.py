"""The demo's outputs, byte for byte. Rewrite them with SNAP_UPDATE=1 after a deliberate change."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT, settle_cli

GOLDEN = ROOT / "tests" / "golden" / "demo"
CLOCK = "2026-11-05T09:00:00Z"


def output_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "out"
    done = settle_cli("run", "fixtures", "--period", "2026-10", "--out", str(out), "--clock", CLOCK, "--quiet")
    assert done.returncode == 0, done.stderr
    if os.environ.get("SNAP_UPDATE") == "1":
        shutil.rmtree(GOLDEN, ignore_errors=True)
        shutil.copytree(out, GOLDEN)
    return out


def test_demo_outputs_match_golden_files(demo_out):
    """Every file of the demo run equals its golden copy, and no file is missing or extra."""
    actual, expected = output_files(demo_out), output_files(GOLDEN)
    assert sorted(actual) == sorted(expected)
    changed = [name for name in expected if actual[name] != expected[name]]
    assert changed == [], f"changed outputs (SNAP_UPDATE=1 to accept): {changed}"


def test_the_manifest_names_every_output_with_its_true_hash_and_size(demo_out):
    """manifest.json lists every other output, each with the SHA-256 and size of the file
    as it is on disk: the statements and the large outputs are hashed while they are
    written, so what was hashed must be exactly what was written."""
    import hashlib
    import json

    manifest = json.loads((demo_out / "manifest.json").read_text(encoding="utf-8"))
    files = output_files(demo_out)
    listed = {entry["path"]: entry for entry in manifest["outputs"]}
    assert sorted(listed) == sorted(name for name in files if name != "manifest.json")
    for name, entry in listed.items():
        assert entry["sha256"] == hashlib.sha256(files[name]).hexdigest(), name
        assert entry["bytes"] == len(files[name]), name


def test_demo_outputs_are_canonical_text(demo_out):
    """CSV and JSON outputs are UTF-8 with LF line ends and no exponent or negative zero in amounts."""
    for name, data in output_files(demo_out).items():
        if name.endswith((".csv", ".json")):
            text = data.decode("utf-8")
            assert "\r" not in text, name
            assert ",-0.00" not in text and ",-0," not in text, name


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 4), st.text(max_size=6)), max_size=30),
       skip=st.integers(0, 3))
def test_each_statement_body_is_its_holders_rows_in_the_order_they_came(rows, skip):
    """holder_bodies: a holder's body is its rows' text, in the order the rows came, and
    holders come in code order; also from a slice of the rows, whose text starts part-way
    into its buffer."""
    import polars as pl

    from settlement.exports import holder_bodies
    from settlement.keys import Codes

    holders = Codes(pl.Series([f"H{code}" for code in range(5)]))
    frame = pl.DataFrame(rows, schema={"_holder": pl.UInt32, "text": pl.String}, orient="row").slice(skip)
    types = type("Types", (), {"holder": holders})
    buffer, ranges = holder_bodies(frame, types)
    expected = {}
    for code, text in frame.iter_rows():
        expected[f"H{code}"] = expected.get(f"H{code}", "") + text
    assert [holder for holder, _, _ in ranges] == sorted(expected)
    assert {holder: bytes(buffer[start:end]).decode() for holder, start, end in ranges} == expected


@pytest.mark.parametrize("partition_rows", [400, 1000])
def test_outputs_do_not_depend_on_the_partitions(tmp_path, monkeypatch, partition_rows):
    """The demo's usage summed and classified in partitions of works (9 and 4 of them) gives
    every golden file, byte for byte: no group is split, lost or counted twice."""
    from contracts.loading import load_inputs
    from settlement import aggregate, exports
    from settlement.intake import Period
    from settlement.run import settle

    monkeypatch.setattr(aggregate, "PARTITION_ROWS", partition_rows)
    parts = []
    monkeypatch.setattr(aggregate, "group_partitions", counted(aggregate.group_partitions, parts))
    settlement = settle(load_inputs(ROOT / "fixtures"), Period.parse("2026-10"), CLOCK)
    exports.export(settlement, tmp_path / "out")
    assert len(parts) > 1
    assert output_files(tmp_path / "out") == output_files(GOLDEN)


@pytest.mark.parametrize("slice_rows", [7, 100])
def test_outputs_do_not_depend_on_the_spill_parts(tmp_path, monkeypatch, slice_rows):
    """The demo's usage validated into spill parts of 7 or 100 rows (every CSV, JSON Lines and
    Parquet log in several) gives every golden file, byte for byte: no row is lost, counted twice or reordered."""
    from contracts.loading import load_inputs
    from settlement import aggregate, exports
    from settlement.intake import Period
    from settlement.run import settle

    monkeypatch.setattr(aggregate, "SLICE_ROWS", slice_rows)
    settlement = settle(load_inputs(ROOT / "fixtures"), Period.parse("2026-10"), CLOCK)
    exports.export(settlement, tmp_path / "out")
    assert output_files(tmp_path / "out") == output_files(GOLDEN)


def counted(partitions, seen: list):
    """`partitions`, noting each partition it yields in `seen`."""
    def wrapper(*args):
        for part in partitions(*args):
            seen.append(part.height)
            yield part
    return wrapper


@pytest.mark.parametrize("line_rows", [1, 40, 300])
def test_outputs_do_not_depend_on_the_holder_partitions(tmp_path, monkeypatch, line_rows):
    """Commission, withholding and statements made per range of holders (one holder per range, a few,
    several dozen) give every golden file, byte for byte: no line is split, lost or ordered differently."""
    from contracts.loading import load_inputs
    from settlement import exports, ledger
    from settlement.intake import Period
    from settlement.run import settle

    monkeypatch.setattr(ledger, "LINE_PARTITION_ROWS", line_rows)
    settlement = settle(load_inputs(ROOT / "fixtures"), Period.parse("2026-10"), CLOCK)
    exports.export(settlement, tmp_path / "out")
    assert len(settlement.ledger.holder_ranges) > 1
    assert output_files(tmp_path / "out") == output_files(GOLDEN)


@pytest.mark.parametrize("shared_rows", [0, 200])
def test_outputs_do_not_depend_on_which_contracts_are_allocated_alone(tmp_path, monkeypatch, shared_rows):
    """Contracts with more priced rows than SHARED_CONTRACT_ROWS are allocated one at a time before the
    others (all of them, or only some): every golden file is the same, byte for byte."""
    from contracts.loading import load_inputs
    from settlement import exports, ledger
    from settlement.intake import Period
    from settlement.run import settle

    monkeypatch.setattr(ledger, "SHARED_CONTRACT_ROWS", shared_rows)
    counted, rows = [], ledger.PricedByContract.rows
    monkeypatch.setattr(ledger.PricedByContract, "rows", lambda self, contract: counted.append(rows(self, contract))
                        or counted[-1])
    settlement = settle(load_inputs(ROOT / "fixtures"), Period.parse("2026-10"), CLOCK)
    exports.export(settlement, tmp_path / "out")
    alone = [count > shared_rows for count in counted]
    assert any(alone) and (all(alone) if shared_rows == 0 else not all(alone)), counted
    assert output_files(tmp_path / "out") == output_files(GOLDEN)


def test_closing_a_settlement_deletes_its_ledger_files():
    """The ledger's temporary files (gigabytes at scale) exist while the settlement is open
    and are gone once the `with` block closes it."""
    from contracts.loading import load_inputs
    from settlement.intake import Period
    from settlement.run import settle

    with settle(load_inputs(ROOT / "fixtures"), Period.parse("2026-10"), CLOCK) as settlement:
        folder = Path(settlement.ledger.folder.name)
        assert settlement.ledger.line_files and all(path.exists() for path in settlement.ledger.line_files)
        assert settlement.lines.collect().height == settlement.ledger.line_count
    assert not folder.exists()
