"""Where a run's time and memory go: `settle run` in one process, stage by stage.

    python -m bench.stages FOLDER [--out DIR] [--period 2026-10]

Each stage is a function of the engine, wrapped for the run: its wall time
and the process's CPU time (all threads: on two cores, at most twice the wall
time) summed over its calls, and the process's peak resident memory while it ran
(sampled every 20 ms; what earlier stages left allocated counts too). Stages
that run once per partition or per contract show their number of calls.
Use it on a generated month (bench-out/<N>/parquet) to find the next thing to
make faster or smaller; the benchmark proper times whole processes.

It also prints the size of the aggregated result (the priced sums: one row per
licensee, contract, work, use type, unit, split version and status), as a frame
would hold it in memory, so that the peak can be set against it: issue 3 asks
that memory not grow with N beyond the size of the aggregated result.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import settlement  # noqa: F401 (first: it sets polars' allocator, as the `settle` command does)
import polars as pl
from bench.measure import flush_disk
from contracts import loading
from settlement import aggregate, exports, ledger, price, run
from settlement.intake import Period

CLOCK = "2026-11-05T09:00:00Z"
PAGE = os.sysconf("SC_PAGE_SIZE")
STAGES = [  # (module or class, function, what it is), in run order; "of which": inside the stage above
    (loading, "load_inputs", "load inputs (contracts, catalogue, splits)"),
    (aggregate, "validate_to_spill", "validation into the spill"),
    (aggregate, "group_codes", "codes of the key's text columns"),
    (aggregate, "first_pass", "pass 1: counts, quarantine, re-send hashes"),
    (aggregate, "not_counted", "pass 2: settling the candidate rows"),
    (aggregate, "group_partitions", "group sums, partitioning included"),
    (aggregate.GroupCodes, "decoded", "group keys decoded, per partition"),
    (run, "classified_partition", "classification and its sums"),
    (price, "price_all", "pricing"),
    (ledger.PricedByContract, "written", "priced sums written per contract"),
    (ledger, "allocated_by_contract", "allocation, levels 1 and 2"),
    (ledger, "distributed", "withholding, lines finished per contract"),
    (ledger, "withholding_spread", "of which withholding's spread"),
    (ledger, "check_written", "the ledger's files checked"),
    (exports, "write_lines", "lines.csv and lines.parquet"),
    (exports, "write_statements", "statements"),
    (exports, "write_reports", "reports"),
    (exports, "write_manifest", "manifest"),
]


@dataclass
class Stage:
    label: str
    seconds: float = 0.0
    cpu: float = 0.0
    calls: int = 0
    peak: int = 0
    active: int = field(default=0, repr=False)


def rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * PAGE


class Profile:
    """Times and peak memory of the wrapped stages."""

    def __init__(self):
        self.stages: dict[str, Stage] = {}
        self.originals: list[tuple] = []
        self.overall = 0
        self.stop = threading.Event()
        threading.Thread(target=self.sample, daemon=True).start()

    def sample(self) -> None:
        while not self.stop.wait(0.02):
            now = rss()
            self.overall = max(self.overall, now)
            for stage in self.stages.values():
                if stage.active:
                    stage.peak = max(stage.peak, now)

    def wrap(self, module, name: str, label: str) -> None:
        stage = self.stages.setdefault(name, Stage(label))
        function = getattr(module, name)
        self.originals.append((module, name, vars(module)[name]))  # a class's staticmethod as it was

        def enter():
            stage.calls += 1
            stage.active += 1
            stage.peak = max(stage.peak, rss())
            return time.perf_counter(), time.process_time()

        def leave(started):
            stage.seconds += time.perf_counter() - started[0]
            stage.cpu += time.process_time() - started[1]
            stage.peak = max(stage.peak, rss())
            stage.active -= 1

        def wrapper(*args, **kwargs):
            started = enter()
            try:
                return function(*args, **kwargs)
            finally:
                leave(started)

        def generator_wrapper(*args, **kwargs):  # each partition timed while it is made, not while it is used
            parts = function(*args, **kwargs)
            while True:
                started = enter()
                try:
                    part = next(parts)
                except StopIteration:
                    return
                finally:
                    leave(started)
                yield part

        setattr(module, name, generator_wrapper if name == "group_partitions" else wrapper)

    def restore(self) -> None:
        """Unwrap every stage and stop sampling."""
        self.stop.set()
        for module, name, function in reversed(self.originals):
            setattr(module, name, function)

    def table(self, total: float) -> str:
        rows = ["| stage | calls | seconds | CPU seconds | peak RSS GiB |", "|---|---|---|---|---|"]
        rows += [f"| {s.label} | {s.calls} | {s.seconds:.1f} | {s.cpu:.1f} | {s.peak / (1 << 30):.2f} |"
                 for s in self.stages.values() if s.calls]
        rows.append(f"| whole run | 1 | {total:.1f} | {time.process_time():.1f} | {self.overall / (1 << 30):.2f} |")
        return "\n".join(rows)


class AggregatedResult:
    """The priced sums' rows and in-memory bytes, measured when `run.combined` returns them
    (read back one partition's file at a time, so the measure adds at most one partition
    to the peak; its time is reported apart and left out of no stage)."""

    def __init__(self):
        self.rows = self.bytes = 0
        self.seconds = 0.0
        self.combined = run.combined

    def wrap(self) -> None:
        combined = self.combined

        def measured(partials):
            classified = combined(partials)
            started = time.perf_counter()
            for path in classified.priced:
                frame = pl.read_parquet(path)
                self.rows += frame.height
                self.bytes += frame.estimated_size()
            self.seconds += time.perf_counter() - started
            return classified

        run.combined = measured

    def restore(self) -> None:
        run.combined = self.combined

    def line(self) -> str:
        return (f"aggregated result (the priced sums): {self.rows:,} rows, {self.bytes / (1 << 30):.2f} GiB "
                f"in memory (measured in {self.seconds:.1f} s, within the whole run)")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stages", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--out", type=Path, default=Path("bench-out/stages"))
    parser.add_argument("--period", default="2026-10")
    args = parser.parse_args()
    profile, aggregated = Profile(), AggregatedResult()
    aggregated.wrap()
    for module, name, label in STAGES:
        profile.wrap(module, name, label)
    exports.prepare_folder(args.out)  # an earlier run's outputs deleted, and written back, before the clock starts
    flush_disk()
    started = time.perf_counter()
    try:
        settlement = run.settle(loading.load_inputs(args.folder), Period.parse(args.period), CLOCK)
        exports.export(settlement, args.out)
    finally:
        profile.restore()
        aggregated.restore()
    print(profile.table(time.perf_counter() - started))
    print(aggregated.line())


if __name__ == "__main__":
    main()
