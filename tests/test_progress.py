"""Issue 3, item 5: progress. The engine tells a listener the stage it is in; while it reads
the usage logs, the files and rows read so far (within a long CSV file too); and in a stage
that goes a part at a time (passes over the rows, partitions, contracts), each part done.
The command line draws that as a rich progress bar on a terminal, and nothing with --quiet
or when its output is not one."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest

from conftest import ROOT, settle_cli
from contracts.loading import load_inputs
from settlement import aggregate, exports, ledger, run
from settlement.cli import StageProgress
from settlement.intake import Period
from settlement.progress import Progress

CLOCK = "2026-11-05T09:00:00Z"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Recorded(Progress):
    """Everything a run tells its listener, in order."""

    def __init__(self):
        self.stages: list[str] = []
        self.reads: list[tuple[float, int, int]] = []
        self.steps: list[tuple[str, int, int, str]] = []  # the stage, done, total, unit

    def stage(self, name: str) -> None:
        self.stages.append(name)

    def reading(self, files_done: Fraction, files: int, rows_read: int) -> None:
        self.reads.append((files_done, files, rows_read))

    def step(self, done: int, total: int, unit: str) -> None:
        self.steps.append((self.stages[-1], done, total, unit))


INTAKE = ["reading 4 usage files", "checking identifiers and re-sent rows", "summing and classifying the usage groups"]
LEDGER = ["preparing the allocation", "allocating each contract's terms to holders", "withholding and net on every line"]


def test_the_listener_is_told_every_file_and_every_row_as_they_are_read(monkeypatch):
    """The demo's four logs (CSV, Parquet in windows of 100 rows, JSON Lines): one report per
    window and per file, files and rows only ever growing; after each whole file, the rows
    read are exactly the rows_read of summary.json's files so far."""
    monkeypatch.setattr(aggregate, "SLICE_ROWS", 100)
    monkeypatch.setattr(aggregate, "PROGRESS_SECONDS", 3600)  # no report while a whole file is read
    listener = Recorded()
    priced = run.preview(load_inputs(ROOT / "fixtures"), Period.parse("2026-10"), CLOCK, listener)

    assert listener.stages == [*INTAKE, "pricing"]
    done = [files_done for files_done, _, _ in listener.reads]
    rows = [rows_read for _, _, rows_read in listener.reads]
    assert {files for _, files, _ in listener.reads} == {4}
    assert done == sorted(done) and len(set(done)) == len(done) and done[-1] == 4
    assert rows == sorted(rows)
    per_file = priced.accounting["rows_read"].to_list()  # in the order the files are read (by path)
    parquet = priced.accounting["file"].to_list().index("usage/lumen-ai-2026-10-b.parquet")
    assert len(listener.reads) == 3 + -(-per_file[parquet] // 100)  # three whole files, the Parquet in windows
    whole = [rows_read for files_done, _, rows_read in listener.reads if files_done == int(files_done)]
    assert whole == [sum(per_file[:count]) for count in range(1, 5)]


def long_csv(folder: Path, copies: int) -> Path:
    """The demo's first CSV log with its rows repeated `copies` times (1,195 rows each)."""
    header, *rows = (ROOT / "fixtures/usage/lumen-ai-2026-10-a.csv").read_text().splitlines()
    usage = folder / "usage.csv"
    usage.write_text("\n".join([header, *rows * copies]) + "\n")
    (folder / "spill").mkdir()
    return usage


def validated(folder: Path, files: list[Path], listener: Progress) -> list[Path]:
    parts, _ = aggregate.validate_to_spill(files, [f.name for f in files], Period.parse("2026-10"), ["lumen-ai"], folder / "spill",
                                           listener)
    return parts


def test_a_long_csv_file_reports_its_rows_while_it_is_read(monkeypatch, tmp_path):
    """While a CSV file's one query runs, the listener is told the rows of its parts written so
    far, then all of its rows; every part is listed, none holds more than SLICE_ROWS rows."""
    monkeypatch.setattr(aggregate, "SLICE_ROWS", 1_000)
    monkeypatch.setattr(aggregate, "PROGRESS_SECONDS", 0.001)
    listener = Recorded()
    parts = validated(tmp_path, [long_csv(tmp_path, 200)], listener)

    during = [rows_read for files_done, _, rows_read in listener.reads if files_done == 0]
    assert len(during) >= 2 and during == sorted(during) and during[0] > 0, during
    assert listener.reads[-1] == (1, 1, 239_000) and len(listener.reads) == len(during) + 1
    assert parts == sorted((tmp_path / "spill").rglob("*.parquet"))
    counts = [aggregate.spilled_rows(part) for part in parts]
    assert sum(counts) == 239_000 and max(counts) <= 1_000


def test_a_listener_failing_mid_file_stops_the_files_query(monkeypatch, tmp_path):
    """A listener that fails while a CSV file is read (a closed terminal): its error comes out,
    and nothing writes to the spill afterwards, while the error is still held (the query is
    waited for: the spill is deleted as the error leaves the run)."""
    monkeypatch.setattr(aggregate, "SLICE_ROWS", 1_000)
    monkeypatch.setattr(aggregate, "PROGRESS_SECONDS", 0.001)

    class HungUp(Progress):
        def reading(self, files_done: Fraction, files: int, rows_read: int) -> None:
            raise BrokenPipeError(5, "Input/output error")

    usage = long_csv(tmp_path, 500)  # long enough that its query would still be running
    with pytest.raises(BrokenPipeError) as failure:
        validated(tmp_path, [usage], HungUp())
    spill = lambda: sorted((part, part.stat().st_size) for part in (tmp_path / "spill").rglob("*.parquet"))
    before = spill()
    time.sleep(0.5)
    assert spill() == before and failure.traceback  # held, as a caller's cleanup holds it


def test_an_empty_or_header_only_csv_is_one_part_of_no_rows(tmp_path):
    """An empty and a header-only CSV file are each one spill part of no rows, each reported as read."""
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("record_id,licensee_id,work_ref,use_type,units,unit,occurred_at\n")
    (tmp_path / "spill").mkdir()
    listener = Recorded()
    parts = validated(tmp_path, [tmp_path / "empty.csv", tmp_path / "header.csv"], listener)
    assert [aggregate.spilled_rows(part) for part in parts] == [0, 0]
    assert listener.reads == [(1, 2, 0), (2, 2, 0)]


def test_a_settlement_tells_its_stages_in_order_and_each_part_done(monkeypatch, tmp_path):
    """Every stage of a run and its export, in order; the passes over the rows that check
    identifiers and re-sends, the group sums' partitions, the contracts allocated, then
    distributed, and the statements' partitions of holders (several of each, with
    PARTITION_ROWS and LINE_PARTITION_ROWS cut) each counted once, in order, up to their
    number."""
    monkeypatch.setattr(aggregate, "PARTITION_ROWS", 500)
    monkeypatch.setattr(ledger, "LINE_PARTITION_ROWS", 200)
    listener = Recorded()
    with run.settle(load_inputs(ROOT / "fixtures"), Period.parse("2026-10"), CLOCK, listener) as settlement:
        exports.export(settlement, tmp_path / "out", listener)
    assert listener.stages == [*INTAKE, "pricing", *LEDGER, "writing lines.csv and lines.parquet",
                               "writing the statements", "writing invoices, reports and the manifest"]
    assert listener.reads[-1][0] == 4
    for stage, unit in (("checking identifiers and re-sent rows", "passes over the rows"),
                        ("summing and classifying the usage groups", "partitions"), (LEDGER[1], "contracts"),
                        (LEDGER[2], "contracts"), ("writing the statements", "partitions of holders")):
        steps = [(done, total) for at, done, total, named in listener.steps if at == stage and named == unit]
        total = steps[-1][1]
        assert total > 1 and steps == [(done, total) for done in range(1, total + 1)], stage
    assert len(listener.steps) == sum(total for _, done, total, _ in listener.steps if done == 1)


def test_the_bar_pulses_in_a_new_stage_and_fills_over_files_and_parts():
    """What the command line's bar holds after each report (drawn or not): a new stage has no
    total, whatever the last one counted; reading and parts set the total and what is done."""
    progress = StageProgress(enabled=False)
    bar = lambda: (progress.display.tasks[0].description, progress.display.tasks[0].total,
                   progress.display.tasks[0].completed, progress.display.tasks[0].fields["detail"])
    with progress:
        progress.stage("reading 4 usage files")
        assert bar() == ("reading 4 usage files", None, 0, "")
        progress.reading(Fraction(5, 2), 4, 1_500)
        assert bar()[:3] == ("reading 4 usage files", 4, 2.5)
        assert re.fullmatch(r"2/4 files, 1,500 rows, [\d,]+ rows/s", bar()[3])
        progress.stage("summing and classifying the usage groups")
        assert bar()[:3] == ("summing and classifying the usage groups", None, 0)
        assert re.fullmatch(r"read 1,500 rows at [\d,]+ rows/s", bar()[3])
        progress.step(3, 7, "partitions")
        assert bar()[1:3] == (7, 3) and bar()[3].startswith("3/7 partitions, read 1,500 rows at ")
        progress.stage("pricing")
        assert bar()[:3] == ("pricing", None, 0) and len(progress.display.tasks) == 1


def in_terminal(*args: str) -> str:
    """What `settle ARGS` writes to a terminal (a pseudo-terminal 200 columns wide), escapes removed."""
    main, child = pty.openpty()
    command = [str(Path(sys.executable).parent / "settle"), *args]
    environment = {name: value for name, value in os.environ.items()  # rich would take these over the terminal
                   if name not in ("TTY_COMPATIBLE", "TTY_INTERACTIVE", "FORCE_COLOR")}
    process = subprocess.Popen(command, cwd=ROOT, stdin=child, stdout=child, stderr=child, close_fds=True,
                               env={**environment, "COLUMNS": "200", "TERM": "xterm"})
    os.close(child)
    written, deadline = b"", time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            if not select.select([main], [], [], 1)[0]:
                continue
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            written += chunk
        assert process.wait(timeout=max(deadline - time.monotonic(), 1)) == 0
    finally:
        process.kill()
        os.close(main)
    return ANSI.sub("", written.decode("utf-8")).replace("\r", "\n")


def test_a_terminal_shows_a_bar_over_the_files_with_rows_and_rows_per_second(tmp_path):
    """`settle run` on a terminal draws every stage, the files and rows read with their rate,
    and the parts of the stages that count them; the bar is gone when the summary prints."""
    shown = in_terminal("run", "fixtures", "--period", "2026-10", "--out", str(tmp_path / "out"), "--clock", CLOCK)
    frames = [line for line in shown.splitlines() if "━" in line]
    assert any(re.search(r"reading 4 usage files ━+.* [1-4]/4 files, [\d,]+ rows, [\d,]+ rows/s", line)
               for line in frames), frames
    assert any(re.search(r"checking identifiers and re-sent rows ━+ (\d+)/\1 passes over the rows, read 3,471 rows",
                         line) for line in frames), frames
    assert any(re.search(r"summing and classifying the usage groups ━+ 1/1 partitions, read 3,471 rows at "
                         r"[\d,]+ rows/s", line) for line in frames), frames
    assert any(re.search(r"allocating each contract's terms to holders ━+ (\d+)/\1 contracts, read 3,471 rows", line)
               for line in frames), frames
    assert any(re.search(r"writing the statements ━+ 1/1 partitions of holders, read 3,471 rows", line)
               for line in frames), frames
    for stage in ("loading contracts and catalogue", *INTAKE[1:], "pricing", *LEDGER,
                  "writing lines.csv and lines.parquet", "writing invoices, reports and the manifest"):
        assert any(stage in line for line in frames), stage
    assert "Settled 2026-10 as run-" in shown  # the bar is gone, the summary stays


def test_quiet_or_not_a_terminal_draws_no_bar(tmp_path):
    """--quiet on a terminal prints nothing; piped, the summary is the first thing printed."""
    quiet = in_terminal("run", "fixtures", "--period", "2026-10", "--out", str(tmp_path / "quiet"), "--clock", CLOCK,
                        "--quiet")
    assert quiet.strip() == ""
    piped = settle_cli("run", "fixtures", "--period", "2026-10", "--out", str(tmp_path / "piped"), "--clock", CLOCK)
    assert piped.returncode == 0 and piped.stdout.startswith("Settled 2026-10 as run-")
    assert "━" not in piped.stdout + piped.stderr and "\x1b[" not in piped.stdout + piped.stderr


def test_a_listener_that_fails_is_not_blamed_on_the_usage_file():
    """A failure of the listener (a closed terminal) comes out as itself, not as 'cannot be read'."""

    class HungUp(Progress):
        def reading(self, files_done: Fraction, files: int, rows_read: int) -> None:
            raise BrokenPipeError(5, "Input/output error")

    with pytest.raises(BrokenPipeError):
        run.preview(load_inputs(ROOT / "fixtures"), Period.parse("2026-10"), CLOCK, HungUp())
