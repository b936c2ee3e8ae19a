"""Issue 3, item 5: progress. The engine tells a listener the stage it is in; while it reads
the usage logs, the files and rows read so far; and in a stage that goes a partition at a
time, each partition done. The command line draws that as a rich progress bar on a
terminal, and nothing with --quiet or when its output is not one."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT, settle_cli
from contracts.loading import load_inputs
from settlement import aggregate, exports, run
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

    def reading(self, files_done: float, files: int, rows_read: int) -> None:
        self.reads.append((files_done, files, rows_read))

    def step(self, done: int, total: int, unit: str) -> None:
        self.steps.append((self.stages[-1], done, total, unit))


INTAKE = ["reading 4 usage files", "checking identifiers and re-sent rows", "summing and classifying the usage groups"]


def test_the_listener_is_told_every_file_and_every_row_as_they_are_read(monkeypatch):
    """The demo's four logs (CSV, Parquet in windows of 100 rows, JSON Lines): one report per
    window and per file, files and rows only ever growing; after each whole file, the rows
    read are exactly the rows_read of summary.json's files so far."""
    monkeypatch.setattr(aggregate, "SLICE_ROWS", 100)
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


def test_a_settlement_tells_its_stages_in_order_and_each_part_done(monkeypatch, tmp_path):
    """Every stage of a run and its export, in order; the group sums' partitions (several, with
    PARTITION_ROWS cut to 500) and the statements' partitions of holders each counted once,
    in order, up to their number."""
    monkeypatch.setattr(aggregate, "PARTITION_ROWS", 500)
    listener = Recorded()
    with run.settle(load_inputs(ROOT / "fixtures"), Period.parse("2026-10"), CLOCK, listener) as settlement:
        exports.export(settlement, tmp_path / "out", listener)
    assert listener.stages == [*INTAKE, "pricing", "allocating and distributing", "writing lines.csv and lines.parquet",
                               "writing the statements", "writing invoices, reports and the manifest"]
    assert listener.reads[-1][0] == 4
    for stage, unit in (("summing and classifying the usage groups", "partitions"),
                        ("writing the statements", "partitions of holders")):
        steps = [(done, total) for at, done, total, named in listener.steps if at == stage and named == unit]
        total = steps[-1][1]
        assert steps == [(done, total) for done in range(1, total + 1)], stage
    partitions = [total for at, _, total, _ in listener.steps if at == INTAKE[-1]]
    assert partitions[0] > 1


def in_terminal(*args: str) -> str:
    """What `settle ARGS` writes to a terminal (a pseudo-terminal 200 columns wide), escapes removed."""
    main, child = pty.openpty()
    command = [str(Path(sys.executable).parent / "settle"), *args]
    process = subprocess.Popen(command, cwd=ROOT, stdin=child, stdout=child, stderr=child, close_fds=True,
                               env={**os.environ, "COLUMNS": "200", "TERM": "xterm"})
    os.close(child)
    written, deadline = b"", time.monotonic() + 300
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
    os.close(main)
    return ANSI.sub("", written.decode("utf-8")).replace("\r", "\n")


def test_a_terminal_shows_a_bar_over_the_files_with_rows_and_rows_per_second(tmp_path):
    shown = in_terminal("run", "fixtures", "--period", "2026-10", "--out", str(tmp_path / "out"), "--clock", CLOCK)
    frames = [line for line in shown.splitlines() if "━" in line]
    assert any(re.search(r"reading 4 usage files ━+.* [1-4]/4 files, [\d,]+ rows read, [\d,]+ rows/s", line)
               for line in frames), frames
    assert any(re.search(r"summing and classifying the usage groups ━+ 1/1 partitions, 3,471 rows read, "
                         r"[\d,]+ rows/s", line) for line in frames), frames
    assert any(re.search(r"writing the statements ━+ 1/1 partitions of holders, 3,471 rows read", line)
               for line in frames), frames
    for stage in ("loading contracts and catalogue", *INTAKE[1:], "pricing", "allocating and distributing",
                  "writing lines.csv and lines.parquet", "writing invoices, reports and the manifest"):
        assert any(stage in line for line in frames), stage
    assert "Settled 2026-10 as run-" in shown  # the bar is gone, the summary stays


def test_quiet_or_not_a_terminal_draws_no_bar(tmp_path):
    quiet = in_terminal("run", "fixtures", "--period", "2026-10", "--out", str(tmp_path / "quiet"), "--clock", CLOCK,
                        "--quiet")
    assert quiet.strip() == ""
    piped = settle_cli("run", "fixtures", "--period", "2026-10", "--out", str(tmp_path / "piped"), "--clock", CLOCK)
    assert piped.returncode == 0 and piped.stdout.startswith("Settled 2026-10 as run-")
    assert "━" not in piped.stdout + piped.stderr and "\x1b[" not in piped.stdout + piped.stderr
