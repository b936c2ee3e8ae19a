"""Run one command and print its wall time, CPU time, peak RSS and exit code as JSON.

    python -m bench.measure --log FILE [--timeout S] -- COMMAND...

The benchmark times each run through this small process instead of starting it
from its own. On Linux a process's peak RSS (`ru_maxrss`) starts at the
memory of the process it was forked from (its high-water mark, when Python's
subprocess forks by vfork, as here), carried through `exec`; the
benchmark's process grows when it reads the engine's outputs to check their
totals (allocations.csv holds 68M rows at 100M usage rows), so every run it
started after that reported at least the benchmark's own peak: `settle preview`
"peaked at 17.15 GiB" at 100M rows after `settle run` had been checked. This
process imports nothing large, so the runs it starts report their own peaks.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time


def flush_disk() -> None:
    """Write back what earlier steps wrote or deleted before a timed run starts, so that no
    run pays for another's: at 100M rows the engine writes 17 GB of outputs, most of it
    still in the page cache when it exits, and deleting them makes the disk discard it.

    Deleted files cost the next run too. On an ext4 file system without a journal, as on
    this project's machines, creating a file passes over every inode deleted in the last
    60 seconds, or the last 360 while its inode table is not yet written back
    (`recently_deleted` in the kernel's ext4 inode allocator). Writing a 10.5M-row month's
    50,000 statements a few seconds after an earlier output folder was deleted took 24-26
    system CPU seconds instead of 5-6 (perf: `find_get_block_common` and
    `recently_deleted` on top). Written back, the deletions count for a minute only: a
    100M-row run writes its statements minutes after it starts, a 10.5M-row run about
    45 s after, so runs timed back to back at that size should be a minute apart."""
    os.sync()


def measured(command: list[str], log: str, timeout: float | None) -> dict:
    """Run `command` with its output in `log`: wall seconds, peak RSS (bytes), CPU seconds,
    exit code, and whether the timeout killed it."""
    started = time.perf_counter()
    with open(log, "w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
        fired = threading.Event()  # a kill by the timer, not by the kernel's OOM killer (both are SIGKILL)
        timer = threading.Timer(timeout, lambda: process.poll() is None and (fired.set(), process.kill())
                                ) if timeout else None
        if timer:
            timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)  # this child's own rusage
        finally:
            if timer:
                timer.cancel()
    return {"wall_s": time.perf_counter() - started, "peak_rss_bytes": usage.ru_maxrss * 1024,
            "exit": os.waitstatus_to_exitcode(status), "cpu_s": usage.ru_utime + usage.ru_stime,
            "timed_out": fired.is_set()}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.measure", description=__doc__.splitlines()[0])
    parser.add_argument("--log", required=True, help="file for the command's output")
    parser.add_argument("--timeout", type=float, help="kill the command after this many seconds")
    parser.add_argument("command", nargs="+", help="the command, after --")
    args = parser.parse_args()
    json.dump(measured(args.command, args.log, args.timeout), sys.stdout)


if __name__ == "__main__":
    main()
