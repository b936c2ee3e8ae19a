"""A run's output folder as its manifest.json pins it: what replay, check and explain read first.

manifest.json names every input and output file of a run with its SHA-256; summary.json
names the run, its period and its clock. Both are read strictly (a folder whose
manifest is not a run's is one InputError), and the output files are compared with
the manifest's pins, a few at a time.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from contracts.errors import InputError
from contracts.loading import sha256_file
from settlement.money import currency_digits

# a holder line's key, as lines.csv, lines.parquet and the statements name its columns (the engine's
# frames call the split version `version`: settlement/distribute.py)
LINE_KEY = ["licensee_id", "contract_id", "work_id", "use_type", "split_version", "holder_id"]
HASH_THREADS = 2  # hashlib releases the GIL, and the machine has two cores
OLDER_FORMATS = {  # engine versions whose run folders check and explain do not read, and why
    "0.1.0": "its statements and summary.json have no brought_forward"}


@dataclass(frozen=True)
class Pinned:
    """A run's output folder as its manifest describes it; its summary, read when asked for
    (after the folder is checked: an edited summary is an output not as pinned)."""

    folder: Path
    manifest: dict
    manifest_bytes: bytes

    @property
    def run_id(self) -> str:
        return self.manifest["run_id"]

    @property
    def preview(self) -> bool:
        return self.manifest.get("preview") is True

    @property
    def pins(self) -> dict[str, str]:
        """The SHA-256 of every input and output file the manifest names, by its name."""
        return {entry["path"]: entry["sha256"] for entry in self.manifest["inputs"] + self.manifest["outputs"]}

    def require_run(self) -> "Pinned":
        """This run, refused if it is a preview (which allocates nothing: no lines to check or
        explain) or was written in formats this version does not read (OLDER_FORMATS)."""
        if self.preview:
            raise InputError(str(self.folder), "is a preview, which allocates nothing", expected="a run's output folder")
        made_by = self.manifest.get("engine_version")
        if made_by in OLDER_FORMATS:
            raise InputError(str(self.folder), f"was made by engine {made_by}, whose outputs this version does not "
                                               f"read ({OLDER_FORMATS[made_by]})",
                             expected=f"engine {made_by} to check or explain it")
        return self

    @property
    def manifest_sha256(self) -> str:
        return hashlib.sha256(self.manifest_bytes).hexdigest()

    @functools.cached_property
    def summary(self) -> dict:
        """summary.json, with the run's period, clock and (of an adjustment) what it corrects, checked."""
        path = self.folder / "summary.json"
        summary = parsed(path, read_bytes(path), {"run_id": str, "period": str, "clock": str})
        if summary["run_id"] != self.run_id:
            raise InputError(str(path), "names another run than manifest.json", field="run_id",
                             value=summary["run_id"], expected=self.run_id)
        if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", summary["period"]):
            raise InputError(str(path), "is not a run's", field="period", value=summary["period"],
                             expected="a month such as 2026-10")
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", summary["clock"]):
            raise InputError(str(path), "is not a run's", field="clock", value=summary["clock"],
                             expected="a UTC time such as 2026-11-05T09:00:00Z")
        adjustment = summary.get("adjustment")
        if adjustment is not None:
            with_fields(path, adjustment, {"corrects": str, "reason": str})
        return summary

    @property
    def kind(self) -> str:
        return "preview" if self.preview else ("adjustment" if "adjustment" in self.summary else "settlement")

    @staticmethod
    def read(folder: Path) -> "Pinned":
        """The run in `folder`; an InputError names what is missing or unreadable."""
        path = folder / "manifest.json"
        manifest_bytes = read_bytes(path)
        manifest = parsed(path, manifest_bytes, {"run_id": str, "inputs": list, "outputs": list})
        for entries in (manifest["inputs"], manifest["outputs"]):
            for entry in entries:
                with_fields(path, entry, {"path": str, "sha256": str})
        return Pinned(folder, manifest, manifest_bytes)


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise InputError(str(path), f"cannot be read ({error.strerror or error})",
                         expected="the output folder of a run or a preview (with its manifest.json and "
                                  "summary.json)") from None


def parsed(path: Path, data: bytes, fields: dict[str, type]) -> dict:
    """`data` as the JSON object of `path`, with `fields` of their types."""
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(str(path), f"is not JSON ({error})") from None
    return with_fields(path, value, fields)


def with_fields(path: Path, value, fields: dict[str, type]) -> dict:
    """`value`, a JSON object of `path`, refused unless it has `fields` of their types."""
    for name, kind in fields.items():
        if not isinstance(value, dict) or not isinstance(value.get(name), kind):
            raise InputError(str(path), "is not a run's", field=name,
                             expected=f"the file a run writes ({name}: {kind.__name__})")
    return value


def hashed(paths: list[str]) -> dict[str, str]:
    with ThreadPoolExecutor(HASH_THREADS) as pool:
        return dict(zip(paths, pool.map(sha256_file, paths)))


@dataclass(frozen=True)
class Differences:
    """Files found against the files a manifest pins, by name."""

    missing: list[str]
    unpinned: list[str]
    changed: list[str]

    @staticmethod
    def of(entries: list[dict], found: dict[str, str]) -> "Differences":
        """`found`: SHA-256 by name; `entries`: the manifest's."""
        pins = {entry["path"]: entry["sha256"] for entry in entries}
        return Differences(sorted(pins.keys() - found.keys()), sorted(found.keys() - pins.keys()),
                           sorted(name for name in pins.keys() & found.keys() if found[name] != pins[name]))

    @property
    def names(self) -> list[str]:
        return self.missing + self.unpinned + self.changed

    def lines(self, where: str, entries: list[dict], found: dict[str, str], detail=lambda name: "") -> list[str]:
        """One line per file that differs. `where`: what the files are; `detail(name)`: more on a changed file."""
        pins = {entry["path"]: entry["sha256"] for entry in entries}
        return ([f"{where} {name}: missing" for name in self.missing]
                + [f"{where} {name}: not in the manifest" for name in self.unpinned]
                + [f"{where} {name}: SHA-256 {found[name][:16]}..., the manifest pins {pins[name][:16]}...{detail(name)}"
                   for name in self.changed])


def output_problems(pinned: Pinned) -> tuple[int, Differences, list[str]]:
    """The run's output folder against its manifest: how many files, which differ, and how."""
    from settlement.exports import output_names

    names = [name for name in output_names(pinned.folder) if name != "manifest.json"]
    digests = hashed([os.path.join(pinned.folder, name) for name in names])
    found = {name: digests[os.path.join(pinned.folder, name)] for name in names}
    differences = Differences.of(pinned.manifest["outputs"], found)
    return len(names), differences, differences.lines("output", pinned.manifest["outputs"], found)


def minor_units(column: str, currency: str = "currency") -> pl.Expr:
    """A CSV amount as integer minor units; null unless written as a decimal with exactly its
    currency's digits (`12.30` EUR, `1200` JPY, `0.005` BHD)."""
    text, digits = pl.col(column), currency_digits(pl.col(currency))
    plain = text.str.contains(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?$")  # one pattern: ASCII, so bytes are characters
    point = text.str.find(".", literal=True)
    places = pl.when(point.is_null()).then(0).otherwise(text.str.len_bytes().cast(pl.Int64) - point - 1)
    value = text.str.replace(".", "", literal=True).cast(pl.Int128, strict=False)
    negative_zero = (value == 0) & text.str.starts_with("-")  # law 4: no -0
    return pl.when(plain & (places == digits) & ~negative_zero).then(value)
