"""Replay: an auditor settles a closed run again and checks that it comes out byte for
byte as it was (DESIGN.md: "an auditor takes a closed run's audit bundle, replays it to
byte-identical outputs").

The audit bundle is the run's output folder, whose manifest.json pins every input and
output file by SHA-256, and the inputs it names. A replay checks, in this order:

1. the output folder holds exactly the files its manifest names, with those hashes
   (a statement edited after the run is found here, without settling anything);
2. the inputs given are the ones the manifest pins: an input changed, missing or added
   since is named, and nothing is settled (it could not give the run's bytes);
3. settled again from those inputs, by the engine's own code (law 7), into a folder of
   its own, the run writes a manifest.json identical to the run's, byte for byte: so
   every output file is identical too. Where it is not, the files that differ are named,
   with the first line where a text file differs;
4. with a ledger, the run is posted there with that manifest's SHA-256, so the bundle is
   the posted run and not another computation of the period.

An adjustment run is replayed with the figures of the run it corrects, read from the
ledger (its adjustments.csv shows them), so it needs the ledger.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from contracts.errors import InputError
from contracts.loading import Inputs
from settlement.intake import Period
from settlement.progress import SILENT, Progress
from settlement.runfolder import Differences, Pinned, hashed, output_problems


@dataclass
class Replay:
    """What a replay found: `problems`, each one line; none means the run replayed to its bytes."""

    pinned: Pinned
    outputs: int = 0  # output files checked on disk
    inputs: int = 0   # input files found as pinned
    replayed: bool = False  # settled again, to an identical manifest
    changed_outputs: bool = False  # output files on disk not as the manifest pins them
    ledger: str | None = None  # what the ledger says of the run
    problems: list[str] = field(default_factory=list)


def input_problems(pinned: Pinned, inputs: Inputs) -> tuple[int, list[str]]:
    """The inputs given against the ones the manifest pins: how many, and what differs. Usage
    named by --usage outside the input folder is pinned by its path in the folder its pattern
    starts from: a file pinned under another name is said to be there, and how to name it."""
    paths = sorted([*inputs.reference_files, *inputs.usage_files])
    digests = hashed([str(path) for path in paths])
    found = {inputs.name(path): digests[str(path)] for path in paths}
    entries = pinned.manifest["inputs"]
    differences = Differences.of(entries, found)
    problems = differences.lines("input", entries, found)
    pins = {entry["path"]: entry["sha256"] for entry in entries}
    moved = [f"input {name}: the file given as {other} has its SHA-256; a log named by --usage is pinned by its path "
             f"in the folder its pattern starts from: give a pattern that starts where the run's did"
             for name in differences.missing for other in differences.unpinned if found[other] == pins[name]]
    return len(found), problems + moved


TEXT = (".csv", ".json")  # outputs whose first differing line is worth naming


def first_difference(ours: Path, theirs: Path) -> str:
    """Where two text files first differ, by line."""
    with open(ours, "rb") as a, open(theirs, "rb") as b:
        for number, (line_a, line_b) in enumerate(zip(a, b), start=1):
            if line_a != line_b:
                return f" (first differs at line {number})"
    return " (one ends where the other goes on)"


def replayed_problems(pinned: Pinned, replayed: Path) -> list[str]:
    """Each output of the replay (in `replayed`) that differs from what the manifest pins."""
    manifest = json.loads((replayed / "manifest.json").read_bytes())
    problems = []
    if manifest["run_id"] != pinned.run_id:
        problems.append(f"the replay is run {manifest['run_id']}, not {pinned.run_id}: the inputs read differ")
    ours = {entry["path"]: entry["sha256"] for entry in manifest["outputs"]}
    differences = Differences.of(pinned.manifest["outputs"], ours)
    detail = lambda name: (first_difference(replayed / name, pinned.folder / name)
                           if name.endswith(TEXT) and (pinned.folder / name).is_file() else "")
    problems += differences.lines("replayed output", pinned.manifest["outputs"], ours, detail)
    return problems or ["manifest.json differs from the run's, though every output it names is the same"]


def settled_again(pinned: Pinned, inputs: Inputs, out: Path, engine, progress: Progress) -> None:
    """The run's period settled again from `inputs` into `out`, as the run was: a preview
    as a preview, an adjustment with the figures of the run it corrects (from the ledger
    `engine`)."""
    from settlement.adjust import Adjustment
    from settlement.exports import export, export_preview
    from settlement.posting import checked_figures, database_errors, run_record
    from settlement.run import Correction, preview, settle

    period, clock = Period.parse(pinned.summary["period"]), pinned.summary["clock"]
    if pinned.preview:
        export_preview(preview(inputs, period, clock, progress), out)
        return
    correction = adjustment = None
    if "adjustment" in pinned.summary:
        corrects, reason = pinned.summary["adjustment"]["corrects"], pinned.summary["adjustment"]["reason"]
        if engine is None:
            raise InputError(str(pinned.folder), f"is an adjustment of run {corrects}, whose figures are in the "
                                                 "ledger", expected="--ledger to replay it")
        with database_errors(engine, "reading the run corrected"):
            corrected = run_record(engine, corrects)
            if corrected is None:
                raise InputError(str(pinned.folder), f"is an adjustment of run {corrects}, which the ledger does "
                                                     "not hold", expected="the ledger it was posted to")
            correction = Correction(corrects, reason)
            old_totals, old = checked_figures(engine, corrected)
        adjustment = Adjustment(correction, old, old_totals)
    with settle(inputs, period, clock, progress, correction) as settlement:
        export(settlement, out, progress, adjustment)


def ledger_line(pinned: Pinned, engine) -> tuple[str | None, list[str]]:
    """What the ledger says of the run: posted with this manifest (and whether it stands for its
    period still), or a problem."""
    from settlement.posting import database_errors, run_record, standing_run

    with database_errors(engine, "reading the run"):
        record = run_record(engine, pinned.run_id)
        standing = record and standing_run(engine, record.period)
    if record is None:
        return None, [f"run {pinned.run_id} is not posted in the ledger"]
    if record.manifest_sha256 != pinned.manifest_sha256:
        return None, [f"the ledger posted run {pinned.run_id} with manifest.json {record.manifest_sha256[:16]}..., "
                      f"this folder's is {pinned.manifest_sha256[:16]}..."]
    since = "" if standing.run_id == record.run_id else f"; it was corrected since: the period stands as {standing.run_id}"
    return f"posted as run {record.sequence} ({record.kind}) with this manifest.json, hash {record.hash}{since}", []


def checked_outputs(result: Replay) -> bool:
    """Check the output folder against its manifest; whether the summary is the run's (to settle from)."""
    result.outputs, differences, problems = output_problems(result.pinned)
    result.problems += problems
    result.changed_outputs = bool(problems)
    if "summary.json" in differences.names:
        result.problems.append("summary.json is not the run's: nothing was settled again from its period and clock")
        return False
    return True


def replay(run_out: Path, load, ledger: str | None = None, keep: Path | None = None,
           progress: Progress = SILENT) -> Replay:
    """Replay the run in `run_out` from the inputs `load()` returns (contracts.loading.Inputs),
    posted in `ledger` if given (a preview, never posted, is not looked for). The replayed
    outputs go to a temporary folder, or to `keep`, a new or empty folder, which is kept."""
    from settlement.posting import opened

    result = Replay(Pinned.read(run_out))
    check_keep(keep, run_out)
    engine = None if ledger is None or result.pinned.preview else opened(ledger, create=False)
    progress.stage("checking the run's outputs against its manifest")
    if not checked_outputs(result):
        return result
    result.pinned.summary  # a summary that is the run's, but not a run's summary, is refused here
    if engine is not None:
        result.ledger, problems = ledger_line(result.pinned, engine)
        result.problems += problems
    progress.stage("checking the inputs against the manifest")
    inputs = load()
    result.inputs, problems = input_problems(result.pinned, inputs)
    if problems:
        result.problems += problems + ["the inputs are not the run's: nothing was settled again"]
        return result
    out = keep if keep is not None else Path(tempfile.mkdtemp(prefix="settle-replay-"))
    try:
        settled_again(result.pinned, inputs, out, engine, progress)
        result.replayed = (out / "manifest.json").read_bytes() == result.pinned.manifest_bytes
        if not result.replayed:
            result.problems += replayed_problems(result.pinned, out) + other_engine(result.pinned)
    finally:
        if keep is None:
            shutil.rmtree(out, ignore_errors=True)
    return result


def other_engine(pinned: Pinned) -> list[str]:
    """Why a run made by another version of the engine may not replay to its bytes."""
    from settlement.run import ENGINE_VERSION

    made_by = pinned.manifest.get("engine_version")
    return [] if made_by == ENGINE_VERSION else [
        f"the run was made by engine {made_by}, this is {ENGINE_VERSION}: replay it with the version that made it"]


def check_keep(keep: Path | None, run_out: Path) -> None:
    """Refuse a --out that is not a new or empty folder: the replay would delete what is there
    (the run's own folder, say)."""
    if keep is None:
        return
    if Path(os.path.abspath(keep)).is_relative_to(run_out.resolve()) or Path(
            os.path.abspath(keep)).is_relative_to(os.path.abspath(run_out)):
        raise InputError(str(keep), "is inside the run's output folder, which a replay leaves as it is",
                         field="--out", expected="a new or empty folder outside the run's")
    if os.path.lexists(keep) and (not keep.is_dir() or keep.is_symlink() or any(keep.iterdir())):
        raise InputError(str(keep), "is not a new or empty folder", field="--out",
                         expected="a new or empty folder for the replayed outputs (the run's own folder is kept as "
                                  "it is)")
