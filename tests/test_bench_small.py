"""The benchmark at toy size: the engine and the DuckDB job agree on every total.

`make bench` runs the same at 10^6 rows and a 10^6-work catalogue; here 20,000
usage rows over 1,000 works, in four files per format, so it runs in seconds;
`settle preview` is checked against the same totals.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bench` is not an installed package

from bench import generate  # noqa: E402
from bench.__main__ import main, measure  # noqa: E402

ROWS, WORKS = 20_000, 1_000


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> list[dict]:
    root = tmp_path_factory.mktemp("bench")
    code = main(["--rows", str(ROWS), "--works", str(WORKS), "--formats", "parquet,csv", "--rows-per-file", "5000",
                 "--out", str(root), "--quiet"])
    folder = generate.cache_dir(root, ROWS, WORKS)
    data = json.loads((folder / "results.json").read_text())
    assert code == 0, json.dumps([r.get("comparison") for r in data], indent=1)
    return data


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_engine_and_duckdb_totals_agree(results, fmt):
    result = next(r for r in results if r["format"] == fmt)
    assert result["engine"]["exit"] == 0 and result["duckdb"]["exit"] == 0
    differing = [c for c in result["comparison"] if not c["same"]]
    assert result["agree"] and not differing, differing


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_the_month_exercises_every_path(results, fmt):
    """Quarantine, re-sends, suspense and opt-outs all occur, in about the planned shares."""
    totals = next(r for r in results if r["format"] == fmt)["duckdb_totals"]
    assert totals["rows_read"] == ROWS
    assert 0.005 * ROWS < totals["quarantined"] < 0.02 * ROWS
    assert 0.01 * ROWS < totals["duplicates"] < 0.03 * ROWS
    assert 0.015 * ROWS < totals["rows"]["suspense"] < 0.05 * ROWS
    assert 0.002 * ROWS < totals["rows"]["unlicensed"] < 0.03 * ROWS
    assert set(totals["units_by_use_type"]) == {"train", "fine_tune", "ground", "index", "crawl", "output"}
    assert {"negative_units", "invalid_timestamp", "outside_period", "invalid_use_type", "invalid_iswc",
            "unknown_licensee", "missing_field"} <= set(totals["quarantine_by_reason"])


def test_generated_data_is_cached_and_identical(results, tmp_path):
    """Generation is deterministic: a second folder gets the same bytes."""
    first = generate.generate(tmp_path / "a", 3_000, 500, ("parquet",), 1_000, log=lambda *a: None)
    second = generate.generate(tmp_path / "b", 3_000, 500, ("parquet",), 1_000, log=lambda *a: None)
    for name in ["ref/works.csv", "ref/splits.csv", "ref/consent.csv", "parquet/usage/part-00002.parquet"]:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    stamp = (first / "parquet" / "usage" / "part-00000.parquet").stat().st_mtime_ns
    generate.generate(tmp_path / "a", 3_000, 500, ("parquet",), 1_000, log=lambda *a: None)
    assert (first / "parquet" / "usage" / "part-00000.parquet").stat().st_mtime_ns == stamp


def test_stage_profile_covers_the_whole_run(capsys, monkeypatch, tmp_path):
    """`python -m bench.stages` settles the sample month and reports every stage it wraps, each called."""
    from bench import stages

    monkeypatch.setattr(sys, "argv", ["bench.stages", str(Path(__file__).resolve().parent.parent / "fixtures"),
                                      "--out", str(tmp_path / "out")])
    stages.main()
    table = capsys.readouterr().out
    for _, _, label in stages.STAGES:
        assert f"| {label} | " in table, label
    assert (tmp_path / "out" / "summary.json").exists()


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_preview_and_duckdb_totals_agree(results, fmt):
    """`settle preview` accounts for the rows as the DuckDB job does (and as the run does)."""
    result = next(r for r in results if r["format"] == fmt)
    assert result["preview"]["exit"] == 0
    differing = [c for c in result["preview_comparison"] if not c["same"]]
    assert result["preview_agrees"] and not differing, differing
    assert result["preview_totals"]["rows"] == result["engine_totals"]["rows"]


def test_a_runs_peak_is_its_own_not_the_benchmarks(tmp_path):
    """A run's peak RSS is its own, whatever the benchmark's process held before it (a
    child forked from a process inherits that process's high-water mark: bench/measure.py)."""
    held = bytearray(512 << 20)
    held[::4096] = b"x" * len(held[::4096])  # touched, so resident
    run = measure([sys.executable, "-c", "pass"], tmp_path / "log")
    del held
    assert run["exit"] == 0
    assert run["peak_rss_bytes"] < 128 << 20, run["peak_rss_bytes"]
