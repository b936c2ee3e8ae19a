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

import hashlib
import json
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from contracts.errors import InputError
from contracts.loading import Inputs, sha256_file
from settlement.intake import Period, display_name
from settlement.progress import SILENT, Progress

HASH_THREADS = 2  # hashlib releases the GIL, and the machine has two cores


@dataclass(frozen=True)
class Pinned:
    """A run's output folder as its manifest and summary describe it."""

    folder: Path
    manifest: dict
    manifest_bytes: bytes
    summary: dict

    @property
    def run_id(self) -> str:
        return self.manifest["run_id"]

    @property
    def preview(self) -> bool:
        return self.manifest.get("preview") is True

    @property
    def manifest_sha256(self) -> str:
        return hashlib.sha256(self.manifest_bytes).hexdigest()

    @staticmethod
    def read(folder: Path) -> "Pinned":
        """The run in `folder`; an InputError names what is missing or unreadable."""
        expected = "the output folder of a run or a preview (with its manifest.json and summary.json)"
        manifest_bytes = read_bytes(folder / "manifest.json", expected)
        manifest = parsed(folder / "manifest.json", manifest_bytes, ("run_id", "inputs", "outputs"))
        summary = parsed(folder / "summary.json", read_bytes(folder / "summary.json", expected),
                         ("run_id", "period", "clock"))
        if summary["run_id"] != manifest["run_id"]:
            raise InputError(str(folder / "summary.json"), "names another run than manifest.json", field="run_id",
                             value=summary["run_id"], expected=manifest["run_id"])
        return Pinned(folder, manifest, manifest_bytes, summary)


def read_bytes(path: Path, expected: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise InputError(str(path), f"cannot be read ({error.strerror or error})", expected=expected) from None


def parsed(path: Path, data: bytes, keys: tuple[str, ...]) -> dict:
    """`data` as the JSON object of `path`, with `keys`."""
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(str(path), f"is not JSON ({error})") from None
    missing = [key for key in keys if not isinstance(value, dict) or key not in value]
    if missing:
        raise InputError(str(path), "is not a run's", field=missing[0], expected="the file a run writes")
    return value


@dataclass
class Replay:
    """What a replay found: `problems`, each one line; none means the run replayed to its bytes."""

    pinned: Pinned
    outputs: int = 0  # output files checked on disk
    inputs: int = 0   # input files found as pinned
    replayed: bool = False  # settled again, to an identical manifest
    ledger: str | None = None  # what the ledger says of the run
    problems: list[str] = field(default_factory=list)


def hashed(paths: list[str]) -> dict[str, str]:
    with ThreadPoolExecutor(HASH_THREADS) as pool:
        return dict(zip(paths, pool.map(sha256_file, paths)))


def pinned_files(entries: list[dict], found: dict[str, str], where: str) -> list[str]:
    """Where the files `found` (SHA-256 by name) differ from the manifest's `entries`:
    one line per file changed, missing or not pinned. `where`: what the files are."""
    pins = {entry["path"]: entry["sha256"] for entry in entries}
    problems = [f"{where} {name}: missing" for name in sorted(pins.keys() - found.keys())]
    problems += [f"{where} {name}: not in the manifest" for name in sorted(found.keys() - pins.keys())]
    problems += [f"{where} {name}: SHA-256 {found[name][:16]}..., the manifest pins {pins[name][:16]}..."
                 for name in sorted(pins.keys() & found.keys()) if found[name] != pins[name]]
    return problems


def output_problems(pinned: Pinned) -> tuple[int, list[str]]:
    """The run's output folder against its manifest: how many files, and what differs."""
    from settlement.exports import output_names

    names = [name for name in output_names(pinned.folder) if name != "manifest.json"]
    digests = hashed([os.path.join(pinned.folder, name) for name in names])
    found = {name: digests[os.path.join(pinned.folder, name)] for name in names}
    return len(names), pinned_files(pinned.manifest["outputs"], found, "output")


def input_problems(pinned: Pinned, inputs: Inputs) -> tuple[int, list[str]]:
    """The inputs given against the ones the manifest pins: how many, and what differs."""
    paths = sorted([*inputs.reference_files, *inputs.usage_files])
    digests = hashed([str(path) for path in paths])
    found = {display_name(path, inputs.folder): digests[str(path)] for path in paths}
    return len(found), pinned_files(pinned.manifest["inputs"], found, "input")


def first_difference(ours: Path, theirs: Path) -> str:
    """Where two files first differ: a line number, for text."""
    with open(ours, "rb") as a, open(theirs, "rb") as b:
        for number, (line_a, line_b) in enumerate(zip(a, b), start=1):
            if line_a != line_b:
                return f"first differs at line {number}"
    return "one is a prefix of the other"


def replayed_problems(pinned: Pinned, replayed: Path) -> list[str]:
    """Each output of the replay (in `replayed`) that differs from what the manifest pins."""
    manifest = json.loads((replayed / "manifest.json").read_bytes())
    problems = []
    if manifest["run_id"] != pinned.run_id:
        problems.append(f"the replay is run {manifest['run_id']}, not {pinned.run_id}: the inputs read differ")
    ours = {entry["path"]: entry["sha256"] for entry in manifest["outputs"]}
    for line in pinned_files(pinned.manifest["outputs"], ours, "replayed output"):
        name = line.split(" ")[2].rstrip(":")
        both = name in ours and (pinned.folder / name).is_file()
        problems.append(line + (f" ({first_difference(replayed / name, pinned.folder / name)})" if both else ""))
    return problems or ["manifest.json differs from the run's, though every file it names is the same"]


def settled_again(pinned: Pinned, inputs: Inputs, out: Path, engine, progress: Progress) -> None:
    """The run's period settled again from `inputs` into `out`, as the run was: a preview
    as a preview, an adjustment with the figures of the run it corrects (from the ledger
    `engine`)."""
    from settlement.adjust import Adjustment
    from settlement.exports import export, export_preview
    from settlement.posting import checked_figures, run_record
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
        corrected = run_record(engine, corrects)
        if corrected is None:
            raise InputError(str(pinned.folder), f"is an adjustment of run {corrects}, which the ledger does not hold")
        correction = Correction(corrects, reason)
        old_totals, old = checked_figures(engine, corrected)
        adjustment = Adjustment(correction, old, old_totals)
    with settle(inputs, period, clock, progress, correction) as settlement:
        export(settlement, out, progress, adjustment)


def ledger_line(pinned: Pinned, engine) -> tuple[str | None, list[str]]:
    """What the ledger says of the run: posted with this manifest, or a problem."""
    from settlement.posting import database_errors, run_record

    if pinned.preview:
        return None, ["a preview is never posted: replay it without --ledger"]
    with database_errors(engine, "reading the run"):
        record = run_record(engine, pinned.run_id)
    if record is None:
        return None, [f"run {pinned.run_id} is not posted in the ledger"]
    if record.manifest_sha256 != pinned.manifest_sha256:
        return None, [f"the ledger posted run {pinned.run_id} with manifest.json {record.manifest_sha256[:16]}..., "
                      f"this folder's is {pinned.manifest_sha256[:16]}..."]
    return f"posted as run {record.sequence} ({record.kind}) with this manifest.json, hash {record.hash}", []


def replay(run_out: Path, load, ledger: str | None = None, keep: Path | None = None,
           progress: Progress = SILENT) -> Replay:
    """Replay the run in `run_out` from the inputs `load()` returns (contracts.loading.Inputs),
    posted in `ledger` if given. The replayed outputs go to a temporary folder, or to `keep`
    (a new or empty folder), which is kept."""
    from settlement.posting import opened

    result = Replay(Pinned.read(run_out))
    engine = None if ledger is None else opened(ledger, create=False)
    if engine is not None:
        result.ledger, problems = ledger_line(result.pinned, engine)
        result.problems += problems
    progress.stage("checking the run's outputs against its manifest")
    result.outputs, problems = output_problems(result.pinned)
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
        same = (out / "manifest.json").read_bytes() == result.pinned.manifest_bytes
        result.replayed = same
        if not same:
            result.problems += replayed_problems(result.pinned, out)
    finally:
        if keep is None:
            shutil.rmtree(out, ignore_errors=True)
    return result
