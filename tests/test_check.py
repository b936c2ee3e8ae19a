"""Check (`settle check`): a run's invariants, from its output files alone. Each forged
run below is consistent with its manifest (the files re-pinned, as a forger would), so
only the invariant it breaks can find it."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from conftest import ROOT, settle_cli
from contracts.loading import load_inputs
from settlement.check import check
from settlement.exports import export
from settlement.intake import Period
from settlement.run import settle

CLOCK = "2026-11-05T09:00:00Z"
FIXTURES = ROOT / "fixtures"


@pytest.fixture(scope="module")
def run_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "out"
    with settle(load_inputs(FIXTURES), Period.parse("2026-10"), CLOCK) as settlement:
        export(settlement, out)
    return out


def forged(run_out: Path, tmp_path: Path, name: str, line: int, old: str, new: str) -> Path:
    """A copy of the run with `old` replaced by `new` on line `line` (from 1) of file `name`,
    and the manifest re-pinned to match."""
    out = tmp_path / "forged"
    shutil.copytree(run_out, out)
    path = out / name
    lines = path.read_text(encoding="utf-8").split("\n")
    assert old in lines[line - 1], lines[line - 1]
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    path.write_text("\n".join(lines), encoding="utf-8")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    for entry in manifest["outputs"]:
        if entry["path"] == name:
            entry["sha256"], entry["bytes"] = hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return out


def failed(out: Path) -> list[str]:
    return check(out)[1].failed


def test_every_invariant_of_the_sample_month_holds(run_out):
    pinned, findings = check(run_out)
    assert findings.failed == []
    assert [line.split(":")[0].split(" (")[0] for line in findings.passed] == [
        "every output file is the one manifest.json pins", "lines.csv and lines.parquet hold the same 1321 lines",
        "level 1", "level 2", "net = gross − commission − withholding on every line, none negative", "statements",
        "conservation, as summary.json states it", "rows"]
    assert "EUR: charged 70000.00 = payable 59843.34 + carried forward 21.00 + commission 6943.22 + withholding " \
           "2132.09 + suspense 1060.35" in findings.passed[6]


def test_a_cent_moved_between_two_works_of_a_term_breaks_level_two(run_out, tmp_path):
    allocations = (run_out / "allocations.csv").read_text(encoding="utf-8").split("\n")
    first, second = allocations[1], allocations[2]  # two parts of the same term
    assert first.split(",")[:2] == second.split(",")[:2] and first.endswith("88.89") and second.endswith("88.89")
    out = forged(run_out, tmp_path, "allocations.csv", 2, "88.89", "88.90")
    lines = (out / "allocations.csv").read_text(encoding="utf-8").split("\n")
    lines[2] = lines[2][:-len("88.89")] + "88.88"
    (out / "allocations.csv").write_text("\n".join(lines), encoding="utf-8")
    out = forged(out, tmp_path / "again", "allocations.csv", 2, "88.90", "88.90")  # re-pinned
    problems = failed(out)
    assert len(problems) == 1 and problems[0].startswith(
        "level 2: the holders' gross of 2 work amount(s) is not the work's level-1 amount")


def test_a_term_whose_parts_do_not_sum_to_its_charge_breaks_level_one(run_out, tmp_path):
    out = forged(run_out, tmp_path, "allocations.csv", 2, "88.89", "88.90")
    problems = failed(out)
    assert problems[0].startswith("level 1: the parts of 1 term(s) in allocations.csv do not sum to what the "
                                  "invoice charges (in minor units): contract_id=MUSIC-AI-2026, term_id=fixed-fee, "
                                  "charged=1200000, parts=1200001")


def test_suspense_raised_by_a_cent_breaks_conservation(run_out, tmp_path):
    out = forged(run_out, tmp_path, "suspense.csv", 2, ",53.58", ",53.59")
    problems = failed(out)
    assert problems == [
        "conservation does not hold: EUR: charged 70000.00 = payable 59843.34 + carried forward 21.00 + commission "
        "6943.22 + withholding 2132.09 + suspense 1060.36 = 70000.01",
        "EUR: suspense 1060.35 in summary.json, 1060.36 in the files"]


def test_a_statement_paying_what_it_should_carry_forward_is_found(run_out, tmp_path):
    statement = (run_out / "statements" / "H043.csv").read_text(encoding="utf-8").split("\n")
    payable = next(i for i, line in enumerate(statement, start=1) if line.startswith("payable,"))
    out = forged(run_out, tmp_path, "statements/H043.csv", payable, ",0.00", ",17.00")
    problems = failed(out)
    assert problems[0].startswith("statements: 1 balance(s) not paid when at least the threshold, or not carried "
                                  "forward below it: holder_id=H043")
    assert problems[1].startswith("conservation does not hold: EUR")


def test_rows_that_do_not_add_up_are_found(run_out, tmp_path):
    summary = (run_out / "summary.json").read_text(encoding="utf-8").split("\n")
    line = next(i for i, text in enumerate(summary, start=1) if '"quarantined": 29' in text)
    out = forged(run_out, tmp_path, "summary.json", line, "29", "28")
    assert failed(out) == [
        "rows of all files: 3471 read, but 3345 accepted + 31 duplicates + 28 quarantined + 37 suspense + 29 "
        "unlicensed = 3470",
        "rows: the files' quarantined do not sum to summary.json's 28",
        f"rows: summary.json counts 28 quarantined, {out / 'quarantine.csv'} holds 29"]


def test_the_command_line_exits_1_naming_what_does_not_hold(run_out, tmp_path):
    done = settle_cli("check", str(run_out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Checked run-2026-10-") and done.stdout.count("  ✓ ") == 8
    out = tmp_path / "edited"
    shutil.copytree(run_out, out)
    (out / "lines.csv").write_text((run_out / "lines.csv").read_text(encoding="utf-8").replace(",11.19\n", ",11.18\n", 1),
                                   encoding="utf-8")
    done = settle_cli("check", str(out))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        done.stderr.splitlines()[0], "  ✗ lines.csv (1321 lines) and lines.parquet (1321 lines) do not hold the same lines",
        "error: 2 invariants of run " + json.loads((run_out / "summary.json").read_text())["run_id"] + " do not hold"]
    assert done.stderr.startswith("  ✗ output lines.csv: SHA-256 ")
    done = settle_cli("check", str(tmp_path / "nowhere"))
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
