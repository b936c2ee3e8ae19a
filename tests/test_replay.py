"""Replay (`settle replay`): an auditor settles a closed run again from its inputs and gets
its outputs byte for byte, or the name of every file that is not as the run's manifest
pins it (DESIGN.md, "Who uses it", 3; laws 4 and 7)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from conftest import ROOT, settle_cli
from contracts.errors import InputError
from contracts.loading import load_inputs
from settlement import posting
from settlement.exports import export
from settlement.intake import Period
from settlement.progress import SILENT
from settlement.replay import replay
from settlement.run import settle

CLOCK = "2026-11-05T09:00:00Z"
FIXTURES = ROOT / "fixtures"


def settled(inputs: Path, out: Path, ledger: str | None = None, corrects: str | None = None,
            reason: str | None = None) -> dict:
    return posting.settled_and_posted(load_inputs(inputs), Period.parse("2026-10"), CLOCK, out, SILENT, ledger,
                                      corrects, reason)


def replayed(out: Path, inputs: Path = FIXTURES, ledger: str | None = None, keep: Path | None = None):
    return replay(out, lambda: load_inputs(inputs), ledger, keep)


@pytest.fixture(scope="module")
def run_out(tmp_path_factory) -> Path:
    """A run of the fixtures, to copy before changing it."""
    out = tmp_path_factory.mktemp("run") / "out"
    settled(FIXTURES, out)
    return out


def copied(folder: Path, tmp_path: Path, name: str) -> Path:
    shutil.copytree(folder, tmp_path / name)
    return tmp_path / name


def test_a_run_replays_to_its_bytes_and_the_kept_replay_is_the_run(run_out, tmp_path):
    result = replayed(run_out, keep=tmp_path / "again")
    assert result.problems == [] and result.replayed
    assert result.inputs == 14 and result.outputs == 68
    ours = {p.relative_to(run_out): p.read_bytes() for p in run_out.rglob("*") if p.is_file()}
    again = {p.relative_to(tmp_path / "again"): p.read_bytes() for p in (tmp_path / "again").rglob("*") if p.is_file()}
    assert ours == again


def test_outputs_changed_after_the_run_are_named(run_out, tmp_path):
    out = copied(run_out, tmp_path, "out")
    statement = out / "statements" / "H001.csv"
    statement.write_text(statement.read_text(encoding="utf-8").replace(",", ";", 1), encoding="utf-8")
    (out / "invoices" / "quill-labs.csv").unlink()
    (out / "notes.txt").write_text("added later\n", encoding="utf-8")
    result = replayed(out)
    assert [p.split(":")[0] for p in result.problems] == [
        "output invoices/quill-labs.csv", "output notes.txt", "output statements/H001.csv"]
    assert "missing" in result.problems[0] and "not in the manifest" in result.problems[1]
    assert result.replayed  # settled again, the engine gives the bytes the manifest pins: the files were changed


def test_a_forged_output_whose_manifest_was_changed_to_match_is_caught_by_settling_again(run_out, tmp_path):
    out = copied(run_out, tmp_path, "out")
    lines = (out / "lines.csv").read_text(encoding="utf-8").split("\n")
    lines[5] = lines[5].rsplit(",", 1)[0] + ",999.99"  # a holder's net raised on line 6
    (out / "lines.csv").write_text("\n".join(lines), encoding="utf-8")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    for entry in manifest["outputs"]:
        if entry["path"] == "lines.csv":
            entry["sha256"] = hashlib.sha256((out / "lines.csv").read_bytes()).hexdigest()
            entry["bytes"] = (out / "lines.csv").stat().st_size
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    result = replayed(out)
    assert not result.replayed
    assert result.problems == [next(p for p in result.problems if p.startswith("replayed output lines.csv"))]
    assert result.problems[0].endswith("(first differs at line 6)")


def test_inputs_that_are_not_the_runs_are_named_and_nothing_is_settled(run_out, tmp_path):
    inputs = copied(FIXTURES, tmp_path, "inputs")
    (inputs / "revenue.csv").write_text((FIXTURES / "revenue.csv").read_text(encoding="utf-8").replace(
        "1850000.00", "1900000.00"), encoding="utf-8")
    (inputs / "usage" / "quill-labs-2026-10-late.csv").unlink()
    result = replayed(run_out, inputs, keep=tmp_path / "kept")
    assert result.problems == [
        "input usage/quill-labs-2026-10-late.csv: missing",
        next(p for p in result.problems if p.startswith("input revenue.csv: SHA-256")),
        "the inputs are not the run's: nothing was settled again"]
    assert not (tmp_path / "kept").exists()


def test_a_preview_replays_as_a_preview(tmp_path):
    from settlement.exports import export_preview
    from settlement.run import preview

    export_preview(preview(load_inputs(FIXTURES), Period.parse("2026-10"), CLOCK), tmp_path / "preview")
    result = replayed(tmp_path / "preview")
    assert result.problems == [] and result.replayed and result.outputs == 7


def test_the_ledger_confirms_the_posted_run_and_refuses_another_computation(tmp_path):
    ledger = str(tmp_path / "ledger.sqlite")
    settled(FIXTURES, tmp_path / "posted", ledger)
    result = replayed(tmp_path / "posted", ledger=ledger)
    assert result.problems == [] and result.ledger.startswith("posted as run 1 (settlement) with this manifest.json")
    with settle(load_inputs(FIXTURES), Period.parse("2026-10"), CLOCK) as again:  # not posted, then edited
        export(again, tmp_path / "unposted")
    manifest = tmp_path / "unposted" / "manifest.json"
    manifest.write_bytes(manifest.read_bytes().replace(b'"engine_version": "0.2.0"', b'"engine_version": "0.2.1"'))
    result = replayed(tmp_path / "unposted", ledger=ledger)
    assert result.problems[0].startswith("the ledger posted run ") and "this folder's is" in result.problems[0]
    assert result.problems[1:] == ["manifest.json differs from the run's, though every output it names is the same",
                                   "the run was made by engine 0.2.1, this is 0.2.0: replay it with the version that "
                                   "made it"]


def test_an_adjustment_replays_with_the_figures_of_the_run_it_corrects(tmp_path):
    ledger = str(tmp_path / "ledger.sqlite")
    first = settled(FIXTURES, tmp_path / "first", ledger)
    inputs = copied(FIXTURES, tmp_path, "restated")
    (inputs / "revenue.csv").write_text((FIXTURES / "revenue.csv").read_text(encoding="utf-8").replace(
        "1850000.00", "1900000.00"), encoding="utf-8")
    settled(inputs, tmp_path / "adjusted", ledger, first["run_id"], "lumen-ai restated its revenue")
    result = replayed(tmp_path / "adjusted", inputs, ledger=ledger, keep=tmp_path / "again")
    assert result.problems == [] and result.replayed and "(adjustment)" in result.ledger
    assert (tmp_path / "again" / "adjustments.csv").read_bytes() == (tmp_path / "adjusted" / "adjustments.csv").read_bytes()
    with pytest.raises(InputError, match=f"is an adjustment of run {first['run_id']}.*expected --ledger to replay it"):
        replayed(tmp_path / "adjusted", inputs)


def test_the_command_line_says_what_replays_and_exits_1_on_a_difference(run_out, tmp_path):
    done = settle_cli("replay", str(run_out), str(FIXTURES))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Replayed run-2026-10-") and "14 inputs as pinned, 68 outputs and manifest.json" \
                                                            " identical byte for byte" in done.stdout
    out = copied(run_out, tmp_path, "out")
    (out / "suspense.csv").write_bytes(b"")
    done = settle_cli("replay", str(out), str(FIXTURES))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines()[1].startswith("  output suspense.csv: SHA-256 ")
    done = settle_cli("replay", str(tmp_path / "nowhere"), str(FIXTURES))
    assert done.returncode == 2 and done.stderr.startswith("error: ") and len(done.stderr.splitlines()) == 1


def test_usage_read_from_elsewhere_is_replayed_from_the_same_patterns(tmp_path):
    logs = tmp_path / "logs"
    shutil.copytree(FIXTURES / "usage", logs)
    inputs = copied(FIXTURES, tmp_path, "inputs")
    shutil.rmtree(inputs / "usage")
    pattern = str(logs / "*")
    done = settle_cli("run", str(inputs), "--period", "2026-10", "--out", str(tmp_path / "out"), "--clock", CLOCK,
                      "--usage", pattern, "--quiet")
    assert done.returncode == 0, done.stderr
    assert settle_cli("replay", str(tmp_path / "out"), str(inputs), "--usage", pattern, "--quiet").returncode == 0
    done = settle_cli("replay", str(tmp_path / "out"), str(inputs), "--usage", str(logs / "*.csv"))
    assert done.returncode == 1 and "  input lumen-ai-2026-10-b.parquet: missing" in done.stderr.splitlines()


def test_out_must_be_a_new_or_empty_folder_and_the_run_is_left_as_it_is(run_out, tmp_path):
    out = copied(run_out, tmp_path, "out")
    (out / "statements" / "H009.csv").write_bytes(b"edited\n")
    for keep, problem in ((out, "is inside the run's output folder"), (out / "replayed", "is inside the run's "),
                          (run_out, "is not a new or empty folder")):
        with pytest.raises(InputError, match=problem):
            replayed(out, keep=keep)
    assert not (out / "replayed").exists()
    assert (out / "statements" / "H009.csv").read_bytes() == b"edited\n"
    assert replayed(run_out, keep=tmp_path / "empty").problems == []


@pytest.mark.parametrize("edit", [
    lambda m: m["outputs"][0].pop("sha256"), lambda m: m["inputs"][0].pop("path"),
    lambda m: m.update(inputs=5), lambda m: m.update(outputs=None), lambda m: m.pop("run_id")])
def test_a_manifest_that_is_not_a_runs_is_one_error_line(run_out, tmp_path, edit):
    out = copied(run_out, tmp_path, "out")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    edit(manifest)
    (out / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    done = settle_cli("replay", str(out), str(FIXTURES))
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
    assert "manifest.json: field" in done.stderr and "is not a run's; expected the file a run writes" in done.stderr


@pytest.mark.parametrize("edit", [
    lambda text: text.replace(CLOCK, "2026-11-05T09:00:01Z"), lambda text: text.replace('"period": "2026-10"', '"period": "2026-13"'),
    lambda text: text[:40], lambda text: text.replace('"run_id": "run-', '"run_id": "other-')])
def test_a_summary_changed_after_the_run_is_an_output_not_as_pinned_and_nothing_is_settled(run_out, tmp_path, edit):
    out = copied(run_out, tmp_path, "out")
    (out / "summary.json").write_text(edit((out / "summary.json").read_text(encoding="utf-8")), encoding="utf-8")
    result = replayed(out, keep=tmp_path / "kept")
    assert result.problems[0].startswith("output summary.json: SHA-256 ")
    assert result.problems[1:] == ["summary.json is not the run's: nothing was settled again from its period and clock"]
    assert not (tmp_path / "kept").exists() or not any((tmp_path / "kept").iterdir())


def test_a_preview_is_replayed_whatever_ledger_the_environment_names(tmp_path):
    done = settle_cli("preview", str(FIXTURES), "--period", "2026-10", "--out", str(tmp_path / "preview"), "--clock",
                      CLOCK, "--quiet")
    assert done.returncode == 0, done.stderr
    import os
    import subprocess
    import sys
    done = subprocess.run([str(Path(sys.executable).parent / "settle"), "replay", str(tmp_path / "preview"),
                           str(FIXTURES)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "SETTLE_LEDGER": str(tmp_path / "ledger.sqlite")})
    assert done.returncode == 0, done.stderr
    assert "(2026-10, preview)" in done.stdout and "ledger: not looked in (a preview is never posted)" in done.stdout
    assert not (tmp_path / "ledger.sqlite").exists()


def test_usage_read_from_elsewhere_replays_from_anywhere_however_its_path_is_spelled(tmp_path):
    """Logs named by --usage outside the input folder are named by their path in the folder the
    pattern starts from: run with a relative pattern, replayed with an absolute one, the same
    files have the same names, and the replay its bytes."""
    logs = tmp_path / "logs"
    shutil.copytree(FIXTURES / "usage", logs)
    inputs = copied(FIXTURES, tmp_path, "inputs")
    shutil.rmtree(inputs / "usage")
    done = settle_cli("run", str(inputs), "--period", "2026-10", "--out", str(tmp_path / "out"), "--clock", CLOCK,
                      "--usage", "logs", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    assert "lumen-ai-2026-10-a.csv" in [entry["path"] for entry in manifest["inputs"]]
    assert replay(tmp_path / "out", lambda: load_inputs(inputs, [str(logs / "*")])).problems == []
    moved = replay(tmp_path / "out", lambda: load_inputs(inputs, [str(tmp_path / "logs*")]))  # named logs/...
    assert ("input lumen-ai-2026-10-a.csv: the file given as logs/lumen-ai-2026-10-a.csv has its SHA-256; a log "
            "named by --usage is pinned by its path in the folder its pattern starts from") in "\n".join(moved.problems)
