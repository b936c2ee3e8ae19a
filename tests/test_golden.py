"""The demo's outputs, byte for byte. Rewrite them with SNAP_UPDATE=1 after a deliberate change."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

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


def test_demo_outputs_are_canonical_text(demo_out):
    """CSV and JSON outputs are UTF-8 with LF line ends and no exponent or negative zero in amounts."""
    for name, data in output_files(demo_out).items():
        if name.endswith((".csv", ".json")):
            text = data.decode("utf-8")
            assert "\r" not in text, name
            assert ",-0.00" not in text and ",-0," not in text, name


@pytest.mark.parametrize("body_rows", [1, 3, 7])
def test_statements_do_not_depend_on_the_body_size(tmp_path, monkeypatch, body_rows):
    """Statements whose rows are joined a few at a time (a holder's rows in several bodies,
    written one after the other) equal the golden ones, and so do their manifest hashes."""
    from contracts.loading import load_inputs
    from settlement import exports
    from settlement.intake import Period
    from settlement.run import settle

    monkeypatch.setattr(exports, "STATEMENT_BODY_ROWS", body_rows)
    settlement = settle(load_inputs(ROOT / "fixtures"), Period.parse("2026-10"), CLOCK)
    exports.export(settlement, tmp_path / "out")
    assert output_files(tmp_path / "out" / "statements") == output_files(GOLDEN / "statements")
    assert (tmp_path / "out" / "manifest.json").read_bytes() == (GOLDEN / "manifest.json").read_bytes()


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
