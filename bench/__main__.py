"""`make bench`: time the engine against DuckDB on a generated month and check they agree.

    python -m bench [--rows N] [--works W] [--formats parquet,csv] [--keep]

1. generate (or reuse) a synthetic month under bench-out/<N>/ (bench/generate.py);
2. for each format, run as separate processes, measuring wall time and peak RSS:
   (a) `settle run FOLDER --period 2026-10 --out DIR --clock ... --quiet`,
   (b) `python -m bench.duckdb_job FOLDER --period 2026-10` (bench/duckdb_job.py),
   (c) `settle preview` with the same arguments: the run stopped after pricing,
       whose work (intake, aggregation, pricing) is the DuckDB job's and a little more;
3. print the timings and compare the totals: rows read, quarantined (also by
   reason), duplicates, accepted / suspense / unlicensed rows, and units per use
   type and status (a preview's: all but accepted and suspense units, which only
   the run's allocation writes). Exit 1 when a run fails or any total differs.

The engine's units per use type come from its exports: unlicensed.csv and
suspense.csv carry units; accepted units are the weights of the `usage-fee`
term in allocations.csv (every generated contract has that flat fee allocated
by usage, with no use-type weights, so its weight per (work, use type) is
exactly the accepted units). lines.csv gives the same figure a second way.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

from bench import generate
from bench.measure import flush_disk

PERIOD = "2026-10"
CLOCK = "2026-11-05T09:00:00Z"
STATUSES = ("accepted", "suspense", "unlicensed")
USE_TYPES = ("train", "fine_tune", "ground", "index", "crawl", "output")
USAGE_TERM = "usage-fee"
GIB = 1 << 30


def measure(command: list[str], log: Path, env: dict | None = None, timeout: float | None = None) -> dict:
    """Run `command` as a child process of a small one (bench/measure.py, which says why):
    wall seconds, the child's peak RSS (bytes), CPU seconds, exit code."""
    load_before = os.getloadavg()[0]
    launcher = [sys.executable, "-m", "bench.measure", "--log", str(log),
                *(["--timeout", str(timeout)] if timeout else []), "--", *command]
    done = subprocess.run(launcher, capture_output=True, text=True, env=repo_env(env))
    if done.returncode != 0:
        raise SystemExit(f"bench.measure could not run {command[0]}: {done.stderr.strip()}")
    return {**json.loads(done.stdout), "log": str(log), "load_before": load_before,
            "load_after": os.getloadavg()[0]}


def engine_version() -> str:
    """The engine's commit, and whether its code differs from it (timings depend on it)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "settlement", "contracts"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+uncommitted changes" if dirty else "")


def repo_env(env: dict | None = None) -> dict:
    """`env` (this process's environment by default) with this repository on PYTHONPATH, so
    `-m bench.duckdb_job` and `-m bench.measure` run from any directory."""
    env = dict(os.environ if env is None else env)
    root = str(Path(__file__).resolve().parent.parent)
    path = env.get("PYTHONPATH")
    if path and root in path.split(os.pathsep):
        return env
    return dict(env, PYTHONPATH=root + (os.pathsep + path if path else ""))


def settle_command() -> list[str]:
    script = Path(sys.executable).parent / "settle"
    return [str(script)] if script.exists() else [sys.executable, "-m", "settlement.cli"]


def read_text_csv(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False, raise_if_empty=False)


def units_by_use(frame: pl.DataFrame, column: str) -> dict[str, int]:
    if frame.height == 0:
        return {}
    sums = frame.group_by("use_type").agg(pl.col(column).cast(pl.Int128).sum())
    return {use: int(units) for use, units in sums.iter_rows() if units}


def engine_totals(out: Path) -> dict:
    """The engine's totals, from the files `settle run` writes."""
    totals, summary = usage_totals(out)
    allocations = read_text_csv(out / "allocations.csv")
    usage_fee = allocations.filter(pl.col("term_id") == USAGE_TERM)
    contracts_with_fee = usage_fee["contract_id"].n_unique()
    units = {
        "accepted": units_by_use(usage_fee.filter(pl.col("status") == "accepted"), "weight"),
        "suspense": units_by_use(read_text_csv(out / "suspense.csv"), "units"),
        "unlicensed": totals["units"]["unlicensed"],
    }
    lines = pl.scan_csv(out / "lines.csv", infer_schema=False)
    accepted_from_lines = (lines.unique(["contract_id", "work_id", "use_type", "split_version"])
                           .group_by("use_type").agg(pl.col("units").cast(pl.Int128).sum()).collect())
    return {
        **totals,
        "units": units,
        "units_by_use_type": total_by_use(units),
        "checks": {
            "contracts_with_usage_fee": contracts_with_fee,
            "accepted_units_from_lines": {u: int(n) for u, n in accepted_from_lines.iter_rows() if n},
            "suspense_units_from_allocations": units_by_use(
                usage_fee.filter(pl.col("status") == "suspense"), "weight"),
            "lines": summary.get("lines"), "holders": summary.get("holders"),
        },
    }


def usage_totals(out: Path) -> tuple[dict, dict]:
    """The totals that `settle run` and `settle preview` both write (rows, quarantined rows
    by reason, unlicensed units), and the summary they come from."""
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    rows = summary["rows"]
    quarantine = read_text_csv(out / "quarantine.csv")
    by_reason = ({} if quarantine.height == 0 else
                 dict(sorted(quarantine.group_by("reason").len().iter_rows())))
    return {"rows_read": rows["rows_read"], "quarantined": rows["quarantined"], "duplicates": rows["duplicates"],
            "quarantine_by_reason": by_reason, "rows": {s: rows[s] for s in STATUSES},
            "units": {"unlicensed": units_by_use(read_text_csv(out / "unlicensed.csv"), "units")}}, summary


def preview_totals(out: Path) -> dict:
    """A preview's totals: those of usage_totals (allocation, which it skips, writes the rest)."""
    return {**usage_totals(out)[0], "units_by_use_type": {}}


PREVIEW_LEAVES_OUT = ("units accepted ", "units suspense ", "units all ")  # comparable() names a preview lacks


def total_by_use(units: dict[str, dict[str, int]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for per_use in units.values():
        for use, n in per_use.items():
            totals[use] = totals.get(use, 0) + n
    return {u: n for u, n in sorted(totals.items()) if n}


def comparable(totals: dict) -> dict[str, int]:
    """Flatten totals to named integers; absent use types count 0."""
    flat = {"rows_read": totals["rows_read"], "quarantined": totals["quarantined"],
            "duplicates": totals["duplicates"]}
    for status in STATUSES:
        flat[f"rows {status}"] = totals["rows"].get(status, 0)
    for reason, count in totals["quarantine_by_reason"].items():
        flat[f"quarantined {reason}"] = count
    for status in STATUSES:
        for use in USE_TYPES:
            flat[f"units {status} {use}"] = totals["units"].get(status, {}).get(use, 0)
    for use in USE_TYPES:
        flat[f"units all {use}"] = totals["units_by_use_type"].get(use, 0)
    return flat


def compare(engine: dict, duck: dict,
            leave_out: tuple[str, ...] = ()) -> list[tuple[str, int | None, int | None, bool]]:
    """Each total of both, named, with whether they agree; `leave_out`: prefixes of names not compared."""
    a, b = ({k: v for k, v in comparable(t).items() if not k.startswith(leave_out)} for t in (engine, duck))
    keys = list(dict.fromkeys([*a, *b]))
    for name in keys:  # quarantine reasons present on one side only
        a.setdefault(name, 0) if name.startswith("quarantined ") else None
        b.setdefault(name, 0) if name.startswith("quarantined ") else None
    return [(k, a.get(k), b.get(k), a.get(k) == b.get(k)) for k in keys]


def internal_checks(engine: dict) -> list[str]:
    """Differences between two ways of reading the engine's accepted and suspense units."""
    problems = []
    checks = engine["checks"]
    if checks["accepted_units_from_lines"] != engine["units"]["accepted"]:
        problems.append(f"accepted units: allocations.csv {engine['units']['accepted']} "
                        f"!= lines.csv {checks['accepted_units_from_lines']}")
    if checks["suspense_units_from_allocations"] != engine["units"]["suspense"]:
        problems.append(f"suspense units: suspense.csv {engine['units']['suspense']} "
                        f"!= allocations.csv {checks['suspense_units_from_allocations']}")
    return problems


def gib(n: int | None) -> str:
    return "-" if n is None else f"{n / GIB:.2f}"


def seconds(run: dict | None) -> str:
    if run is None:
        return "-"
    text = f"{run['wall_s']:.1f}"
    if run["exit"] == 0:
        return text
    return text + (" (timeout)" if run["timed_out"] else " (killed: out of memory?)" if run["exit"] == -9
                   else f" (exit {run['exit']})")


def ratio(a: dict | None, b: dict | None) -> str:
    return f"{a['wall_s'] / b['wall_s']:.2f}" if a and b and a["exit"] == 0 and b["exit"] == 0 else "-"


def print_table(results: list[dict]) -> None:
    header = ("format", "N", "engine wall s", "engine peak RSS GiB", "duckdb wall s", "duckdb peak RSS GiB",
              "ratio engine/duckdb", "preview wall s", "preview peak RSS GiB", "ratio preview/duckdb")
    rows = []
    for r in results:
        e, d, p = r.get("engine"), r.get("duckdb"), r.get("preview")
        rows.append((r["format"], f"{r['rows']:,}", seconds(e), gib(e and e["peak_rss_bytes"]), seconds(d),
                     gib(d and d["peak_rss_bytes"]), ratio(e, d), seconds(p), gib(p and p["peak_rss_bytes"]),
                     ratio(p, d)))
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    line = lambda cells: "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row))
    runs = [(r["format"], name, r[name]) for r in results for name in ("engine", "duckdb", "preview") if r.get(name)]
    print("cpu s (user+sys) and 1-min load average before/after each run (the machine has "
          f"{os.cpu_count()} cores; a load above that means the timings are shared with other work):")
    for fmt, name, run in runs:
        print(f"  {fmt} {name}: cpu {run['cpu_s']:.1f} s, load {run['load_before']:.1f} -> {run['load_after']:.1f}")


def print_comparison(fmt: str, comparison: list, engine: str = "engine") -> None:
    print(f"\ntotals ({fmt}): {engine} vs duckdb")
    width = max(len(name) for name, *_ in comparison)
    for name, a, b, same in comparison:
        print(f"  {name.ljust(width)}  {str(a).rjust(16)}  {str(b).rjust(16)}  {'ok' if same else 'DIFFERS'}")


def timed_settle(command: str, inputs: Path, out: Path, log_file: Path, env: dict, timeout: float | None) -> dict:
    """`settle COMMAND` (run, preview) on `inputs` into a new `out`, timed (measure)."""
    if out.exists():
        shutil.rmtree(out)
    posted = []
    if command == "run":  # posted to a new ledger, as a society's run is: its time is the run's
        ledger = out.parent / f"{out.name}-ledger.sqlite"
        ledger.unlink(missing_ok=True)
        posted = ["--ledger", str(ledger)]
    flush_disk()
    return measure([*settle_command(), command, str(inputs), "--period", PERIOD, "--out", str(out), "--clock", CLOCK,
                    "--quiet", *posted], log_file, env, timeout)


def report_failure(fmt: str, job: str, run: dict) -> bool:
    """Print that `job` failed, with the tail of its log; True (the benchmark has failed)."""
    tail = Path(run["log"]).read_text(errors="replace").splitlines()[-15:]
    print(f"{fmt}: {job} failed (exit {run['exit']}); log tail:", *tail, sep="\n  ")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="usage rows (default 1,000,000)")
    parser.add_argument("--works", type=int, default=generate.DEFAULT_WORKS, help="catalogue works (default 1,000,000)")
    parser.add_argument("--formats", default="parquet,csv", help="comma-separated: parquet, csv")
    parser.add_argument("--keep", action="store_true", help="keep the engine's output folders")
    parser.add_argument("--out", type=Path, default=Path("bench-out"), help="cache and output root (bench-out)")
    parser.add_argument("--rows-per-file", type=int, default=generate.DEFAULT_ROWS_PER_FILE)
    parser.add_argument("--jobs", default="engine,duckdb,preview",
                        help="which to run, comma-separated: engine (settle run), duckdb, preview (settle preview)")
    parser.add_argument("--timeout", type=float, help="kill a run after this many seconds")
    parser.add_argument("--polars-verbose", action="store_true", help="run the engine with POLARS_VERBOSE=1")
    parser.add_argument("--quiet", action="store_true", help="print only the table and any difference")
    args = parser.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    jobs = set(args.jobs.split(","))
    if unknown := set(formats) - {"parquet", "csv"}:
        parser.error(f"unknown format(s): {', '.join(sorted(unknown))}")
    log = (lambda *a, **k: None) if args.quiet else print

    started = time.perf_counter()
    folder = generate.generate(args.out, args.rows, args.works, tuple(formats), args.rows_per_file, log=log)
    log(f"data: {folder} (ready in {time.perf_counter() - started:.1f} s)")

    results, failed = [], False
    version = engine_version()
    log(f"engine: {version}")
    for fmt in formats:
        inputs, out = folder / fmt, folder / f"engine-{fmt}"
        result: dict = {"format": fmt, "rows": args.rows, "works": args.works, "engine_version": version}
        env = dict(os.environ, **({"POLARS_VERBOSE": "1"} if args.polars_verbose else {}))
        if "engine" in jobs:
            log(f"{fmt}: settle run ...")
            result["engine"] = timed_settle("run", inputs, out, folder / f"engine-{fmt}.log", env, args.timeout)
            if result["engine"]["exit"] == 0:
                result["engine_totals"] = engine_totals(out)
            else:
                failed = report_failure(fmt, "settle run", result["engine"])
        if "duckdb" in jobs:
            totals_path = folder / f"duckdb-{fmt}.json"
            totals_path.unlink(missing_ok=True)
            temp = folder / "duckdb.tmp"
            log(f"{fmt}: duckdb job ...")
            flush_disk()
            result["duckdb"] = measure([sys.executable, "-m", "bench.duckdb_job", str(inputs), "--period", PERIOD,
                                        "--out", str(totals_path), "--temp-directory", str(temp)],
                                       folder / f"duckdb-{fmt}.log", repo_env(), args.timeout)
            shutil.rmtree(temp, ignore_errors=True)
            if result["duckdb"]["exit"] == 0:
                result["duckdb_totals"] = json.loads(totals_path.read_text())
            else:
                failed = report_failure(fmt, "duckdb job", result["duckdb"])
        if "preview" in jobs:
            previewed = folder / f"preview-{fmt}"
            log(f"{fmt}: settle preview ...")
            result["preview"] = timed_settle("preview", inputs, previewed, folder / f"preview-{fmt}.log", env,
                                             args.timeout)
            if result["preview"]["exit"] == 0:
                result["preview_totals"] = preview_totals(previewed)
            else:
                failed = report_failure(fmt, "settle preview", result["preview"])
            if not args.keep:
                shutil.rmtree(previewed, ignore_errors=True)
        if not args.keep and out.exists():  # after both runs: deleting 17 GB stalls the disk for a while
            shutil.rmtree(out)
        if "engine_totals" in result and "duckdb_totals" in result:
            comparison = compare(result["engine_totals"], result["duckdb_totals"])
            result["agree"] = all(same for *_, same in comparison)
            result["comparison"] = [{"total": n, "engine": a, "duckdb": b, "same": s} for n, a, b, s in comparison]
            problems = internal_checks(result["engine_totals"])
            result["engine_internal_problems"] = problems
            if not args.quiet or not result["agree"]:
                print_comparison(fmt, [c for c in comparison if not args.quiet or not c[3]])
            for problem in problems:
                print(f"  note ({fmt}): the engine's exports disagree with each other: {problem}")
            failed = failed or not result["agree"]
        if "preview_totals" in result and "duckdb_totals" in result:
            comparison = compare(result["preview_totals"], result["duckdb_totals"], PREVIEW_LEAVES_OUT)
            result["preview_agrees"] = all(same for *_, same in comparison)
            result["preview_comparison"] = [{"total": n, "preview": a, "duckdb": b, "same": s}
                                            for n, a, b, s in comparison]
            if not args.quiet or not result["preview_agrees"]:
                print_comparison(fmt, [c for c in comparison if not args.quiet or not c[3]], "preview")
            failed = failed or not result["preview_agrees"]
        results.append(result)

    print()
    print_table(results)
    (folder / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    verdict = [r[key] for r in results for key in ("agree", "preview_agrees") if key in r]
    if verdict:
        print("\ntotals agree" if all(verdict) else "\nTOTALS DIFFER", f"(details: {folder / 'results.json'})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
