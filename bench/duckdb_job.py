"""The settlement's intake and aggregation as one DuckDB job, for comparison.

Reads every usage file of an input folder (Parquet or CSV), validates each row
with the engine's checks in the engine's order of precedence (docs/formats.md,
usage log v1), normalises identifiers in SQL, drops re-sent rows (same
licensee_id and record_id), resolves identifiers against the catalogue's
normalised identifiers, applies the consent opt-outs in force, and aggregates
units per (licensee, work, use type, unit).

Two scans of the usage files: the first reads only licensee_id and record_id
and keeps the hashes of record keys seen more than once (re-send candidates);
the second validates, normalises and aggregates every row, keeping the record
id in the group key for candidates only, so a re-send's copies can be counted
once without holding every row. It writes the totals as JSON:

    rows_read, quarantined, duplicates, quarantine_by_reason,
    rows {accepted, suspense, unlicensed}, units {status: {use_type: units}},
    units_by_use_type (accepted + suspense + unlicensed), units_resolved, groups

It is an independent implementation (nothing is imported from the engine), so
agreement is evidence. It covers what the benchmark's generated months need:
contracts with territories ["*"], models ["*"] and repertoire {all: true}; no
split, consent or contract boundary inside the period (one segment). It says
so and exits 2 when an input is outside that.

    python -m bench.duckdb_job FOLDER --period 2026-10 [--out totals.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import duckdb
import yaml

USE_TYPES = ("train", "fine_tune", "ground", "index", "crawl", "output")
UNITS = ("token", "sample", "page", "request", "work", "output", "second")
SCHEMES = ("ISRC", "ISWC", "ISBN", "DOI", "URL", "ISCC", "WORK")
TIMESTAMP = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|\+00:00)"
ATTRIBUTION = r"0(\.[0-9]{1,9})?|1(\.0{1,9})?|\.[0-9]{1,9}"
TRACKING = (r"(?:[Uu][Tt][Mm]_[^=]*|[Gg][Cc][Ll][Ii][Dd]|[Ff][Bb][Cc][Ll][Ii][Dd]|[Mm][Cc]_[Cc][Ii][Dd]"
            r"|[Mm][Cc]_[Ee][Ii][Dd]|[Mm][Ss][Cc][Ll][Kk][Ii][Dd]|[Ii][Gg][Ss][Hh][Ii][Dd]|[Rr][Ee][Ff]_[Ss][Rr][Cc])"
            r"(?:=.*)?")
URL = (r"^([Hh][Tt][Tt][Pp][Ss]?)://(?:([^/?#@\s]*)@)?(\[[0-9A-Fa-f:.]+\]|[^/?#@:\[\]\s]+)(?::([0-9]*))?"
       r"(/[^?#\s]*)?(?:\?([^#\s]*))?(?:#[^\s]*)?$")
DOI = (r"^(?:[Hh][Tt][Tt][Pp][Ss]?://(?:[Dd][Xx]\.)?[Dd][Oo][Ii]\.[Oo][Rr][Gg]/|[Dd][Oo][Ii]:)?"
       r"(10\.[0-9]{4,9}/\S+)$")
REF_LENGTH_MAX = 2048


class Unsupported(Exception):
    """An input the comparison job does not model."""


def sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def sql_list(values) -> str:
    return "(" + ", ".join(sql_text(v) for v in values) + ")"


def digit(column: str, position: int) -> str:
    """The integer value of the character at 1-based `position` of `column`."""
    return f"(ascii(substr({column}, {position}, 1)) - 48)"


def normalised_refs(source: str, raw: str = "work_ref") -> str:
    """SQL that adds `ref` (canonical, null when invalid) and `ref_reason` (null when valid) to
    every row of `source`, whose identifier column is `raw`."""
    iswc_sum = " + ".join(f"{i} * {digit('code', i + 1)}" for i in range(1, 10))
    isbn10_sum = " + ".join(f"{10 - i} * {digit('code', i + 1)}" for i in range(9))
    isbn13 = lambda body: "(10 - (" + " + ".join(  # noqa: E731
        f"{3 if i % 2 else 1} * {digit(body, i + 1)}" for i in range(12)) + ") % 10) % 10"
    return f"""
    WITH s1 AS (
        SELECT *, trim({raw}) AS _text FROM {source}
    ), s2 AS (
        SELECT *, upper(regexp_extract(_text, '^([A-Za-z]+):', 1)) AS _scheme FROM s1
    ), s3 AS (
        SELECT *,
            trim(substr(_text, length(_scheme) + 2)) AS _value,
            length({raw}) <= {REF_LENGTH_MAX} AS _in_bounds
        FROM s2
    ), s4 AS (
        SELECT *,
            CASE WHEN _scheme IN ('ISRC', 'ISBN') THEN replace(replace(_value, '-', ''), ' ', '')
                 WHEN _scheme = 'ISWC' THEN regexp_replace(_value, '[-. ]', '', 'g')
                 WHEN _scheme = 'ISCC' THEN replace(regexp_replace(_value, '^[Ii][Ss][Cc][Cc]:', ''), '-', '')
                 WHEN _scheme = 'URL' THEN _value
            END AS code
        FROM s3
    ), s5 AS (
        SELECT *,
            CASE WHEN _scheme = 'URL' AND regexp_full_match(code, '{URL[1:-1]}')
                 THEN regexp_extract(code, '{URL}', ['scheme', 'user', 'host', 'port', 'path', 'query'])
            END AS url,
            CASE WHEN _scheme = 'ISBN' AND regexp_full_match(code, '97[89][0-9]{{10}}')
                      AND ({isbn13('code')}) = {digit('code', 13)} THEN substr(code, 1, 12)
                 WHEN _scheme = 'ISBN' AND regexp_full_match(code, '[0-9]{{9}}[0-9Xx]')
                      AND ({isbn10_sum} + CASE WHEN substr(code, 10, 1) IN ('X', 'x') THEN 10
                                               ELSE {digit('code', 10)} END) % 11 = 0
                 THEN '978' || substr(code, 1, 9)
            END AS isbn_body
        FROM s4
    ), s6 AS (
        SELECT *,
            CASE
                WHEN NOT _in_bounds THEN NULL
                WHEN _scheme = 'ISRC' THEN
                    CASE WHEN regexp_full_match(code, '[A-Za-z]{{2}}[A-Za-z0-9]{{3}}[0-9]{{7}}') THEN upper(code) END
                WHEN _scheme = 'ISWC' THEN
                    CASE WHEN regexp_full_match(code, '[Tt][0-9]{{10}}')
                              AND (10 - (1 + {iswc_sum}) % 10) % 10 = {digit('code', 11)}
                         THEN 'T' || substr(code, 2) END
                WHEN _scheme = 'ISBN' THEN
                    CASE WHEN isbn_body IS NOT NULL THEN isbn_body || CAST({isbn13('isbn_body')} AS VARCHAR) END
                WHEN _scheme = 'DOI' THEN lower(nullif(regexp_extract(_value, '{DOI}', 1), ''))
                WHEN _scheme = 'URL' THEN
                    CASE WHEN url IS NOT NULL THEN
                        lower(url.scheme) || '://'
                        || CASE WHEN url.user <> '' THEN url.user || '@' ELSE '' END
                        || lower(url.host)
                        || CASE WHEN url.port <> '' AND url.port <> (CASE WHEN lower(url.scheme) = 'http'
                                                                          THEN '80' ELSE '443' END)
                                THEN ':' || url.port ELSE '' END
                        || rtrim(url.path, '/')
                        || coalesce('?' || nullif(array_to_string(list_sort(list_filter(
                               string_split(url.query, '&'),
                               lambda p: p <> '' AND NOT regexp_full_match(p, '{TRACKING}'))), '&'), ''), '')
                    END
                WHEN _scheme = 'ISCC' THEN
                    CASE WHEN regexp_full_match(code, '[A-Za-z2-7]{{10,128}}') THEN upper(code) END
                WHEN _scheme = 'WORK' THEN
                    CASE WHEN regexp_full_match(_value, '\\S{{1,128}}') THEN _value END
            END AS _canon
        FROM s5
    )
    SELECT * EXCLUDE (_text, _scheme, _value, _in_bounds, code, url, isbn_body, _canon),
        CASE WHEN _canon IS NOT NULL THEN _scheme || ':' || _canon END AS ref,
        CASE WHEN _text IS NULL OR _text = '' THEN 'missing_field'
             WHEN _scheme NOT IN {sql_list(SCHEMES)} THEN 'unknown_scheme'
             WHEN _canon IS NULL THEN 'invalid_' || CASE _scheme WHEN 'WORK' THEN 'work_id' ELSE lower(_scheme) END
        END AS ref_reason
    FROM s6
    """


def usage_relation(folder: Path) -> tuple[str, list[str]]:
    usage = sorted(p for p in (folder / "usage").rglob("*") if p.is_file())
    parquet = [str(p) for p in usage if p.name.endswith(".parquet")]
    csv = [str(p) for p in usage if p.name.endswith(".csv")]
    others = [p.name for p in usage if not p.name.endswith((".parquet", ".csv"))]
    if others:
        raise Unsupported(f"usage files other than .parquet/.csv: {others[:3]}")
    columns = ("record_id", "licensee_id", "model_id", "work_ref", "use_type", "units", "unit", "occurred_at",
               "territory", "output_id", "attribution")
    text = ", ".join(f"CAST({c} AS VARCHAR) AS {c}" for c in columns)
    parts = []
    if parquet:
        parts.append(f"SELECT {text} FROM read_parquet({parquet!r}, union_by_name = true)")
    if csv:
        parts.append(f"SELECT {text} FROM read_csv({csv!r}, header = true, all_varchar = true, delim = ',', "
                     f"quote = '\"', escape = '\"', union_by_name = true)")
    return " UNION ALL ".join(parts), parquet + csv


def contracts_scope(folder: Path, period_start: dt.date, period_end: dt.date) -> dict[str, set[str]]:
    """Per licensee, the use types some contract in term covers. Only whole-repertoire,
    every-model, every-territory contracts are modelled."""
    covered: dict[str, set[str]] = {}
    for path in sorted((folder / "contracts").glob("*.yaml")):
        contract = yaml.safe_load(path.read_text(encoding="utf-8"))
        start = dt.date.fromisoformat(str(contract["term"]["start"]))
        end = dt.date.fromisoformat(str(contract["term"]["end"])) + dt.timedelta(days=1)
        if period_start < start < period_end or period_start < end < period_end:
            raise Unsupported(f"{path.name}: the contract term starts or ends inside the period")
        if not (start <= period_start and end >= period_end):
            continue
        if contract.get("models", ["*"]) != ["*"] or contract.get("territories") != ["*"] \
                or contract.get("repertoire") != {"all": True}:
            raise Unsupported(f"{path.name}: only models ['*'], territories ['*'], repertoire {{all: true}}")
        covered.setdefault(contract["licensee_id"], set()).update(contract["use_types"])
    return covered


def run(folder: Path, period: str, threads: int | None = None, memory_limit: str | None = None,
        temp_directory: str | None = None) -> dict:
    year, month = (int(p) for p in period.split("-"))
    start = dt.datetime(year, month, 1)
    end = dt.datetime(year + month // 12, month % 12 + 1, 1)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now

    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    if memory_limit:
        con.execute(f"SET memory_limit = {sql_text(memory_limit)}")
    if temp_directory:
        con.execute(f"SET temp_directory = {sql_text(temp_directory)}")
    con.execute("SET preserve_insertion_order = false")

    covered = contracts_scope(folder, start.date(), end.date())
    con.execute("CREATE TEMP TABLE covered (licensee_id VARCHAR, use_type VARCHAR)")
    pairs = [(licensee, use) for licensee, uses in sorted(covered.items()) for use in sorted(uses)]
    if pairs:
        con.executemany("INSERT INTO covered VALUES (?, ?)", pairs)
    licensees = [r[0] for r in con.execute(
        f"SELECT trim(licensee_id) FROM read_csv({sql_text(str(folder / 'licensees.csv'))}, all_varchar = true)"
    ).fetchall()]

    # --- the catalogue: normalised identifiers, splits in force, consent in force
    works_csv = sql_text(str(folder / "works.csv"))
    con.execute(f"""
        CREATE TEMP TABLE catalogue_refs AS
        WITH raw AS (
            SELECT trim(work_id) AS work_id, unnest(string_split(coalesce(identifiers, ''), ' ')) AS work_ref
            FROM read_csv({works_csv}, all_varchar = true, header = true)
        ), normal AS ({normalised_refs("(SELECT * FROM raw WHERE work_ref <> '')")})
        SELECT DISTINCT ref, work_id FROM (
            SELECT ref, work_id FROM normal WHERE ref IS NOT NULL
            UNION ALL
            SELECT 'WORK:' || trim(work_id), trim(work_id) FROM read_csv({works_csv}, all_varchar = true, header = true)
        )
    """)
    con.execute("""
        CREATE TEMP TABLE refs AS
        SELECT ref, min(work_id) AS work_id, count(DISTINCT work_id) > 1 AS ambiguous
        FROM catalogue_refs GROUP BY ref
    """)
    splits_csv = sql_text(str(folder / "splits.csv"))
    consent_csv = sql_text(str(folder / "consent.csv"))
    inside = con.execute(f"""
        SELECT count(*) FROM (
            SELECT CAST(valid_from AS DATE) AS d FROM read_csv({splits_csv}, all_varchar = true)
            UNION ALL SELECT CAST(nullif(valid_to, '') AS DATE) FROM read_csv({splits_csv}, all_varchar = true)
            UNION ALL SELECT CAST(valid_from AS DATE) FROM read_csv({consent_csv}, all_varchar = true)
            UNION ALL SELECT CAST(nullif(valid_to, '') AS DATE) FROM read_csv({consent_csv}, all_varchar = true)
        ) WHERE d > DATE '{start.date()}' AND d < DATE '{end.date()}'
    """).fetchone()[0]
    if inside:
        raise Unsupported(f"{inside} split or consent dates inside the period (segments are not modelled)")
    at = f"TIMESTAMP '{start:%Y-%m-%d %H:%M:%S}'"
    con.execute(f"""
        CREATE TEMP TABLE split_holders AS
        SELECT trim(work_id) AS work_id, trim(holder_id) AS holder_id
        FROM read_csv({splits_csv}, all_varchar = true)
        WHERE CAST(valid_from AS TIMESTAMP) <= {at}
          AND (nullif(valid_to, '') IS NULL OR {at} < CAST(valid_to AS TIMESTAMP))
    """)
    con.execute(f"""
        CREATE TEMP TABLE opt_outs AS
        SELECT subject, nullif(trim(subject_id), '') AS subject_id, trim(use_type) AS use_type,
               nullif(trim(licensee_id), '') AS licensee_id
        FROM read_csv({consent_csv}, all_varchar = true)
        WHERE trim(signal) = 'opt_out' AND CAST(valid_from AS TIMESTAMP) <= {at}
          AND (nullif(valid_to, '') IS NULL OR {at} < CAST(valid_to AS TIMESTAMP))
    """)
    policy = yaml.safe_load((folder / "policy.yaml").read_text(encoding="utf-8"))
    if policy.get("consent_required"):
        raise Unsupported("consent_required: true")
    lap("catalogue")

    # --- usage: validate every row (first failing check names the reason), in one scan
    source, files = usage_relation(folder)
    blank = lambda c: f"({c} IS NULL OR trim({c}) = '')"  # noqa: E731
    required = ("record_id", "licensee_id", "model_id", "use_type", "units", "unit", "occurred_at")
    reason = f"""CASE
        WHEN {' OR '.join(blank(c) for c in required)} THEN 'missing_field'
        WHEN trim(licensee_id) NOT IN {sql_list(licensees)} THEN 'unknown_licensee'
        WHEN trim(use_type) NOT IN {sql_list(USE_TYPES)} THEN 'invalid_use_type'
        WHEN trim(unit) NOT IN {sql_list(UNITS)} THEN 'invalid_unit'
        WHEN regexp_full_match(trim(units), '-[0-9]+') THEN 'negative_units'
        WHEN NOT regexp_full_match(trim(units), '[0-9]{{1,18}}') THEN 'invalid_units'
        WHEN NOT regexp_full_match(trim(occurred_at), '{TIMESTAMP}') OR _at IS NULL THEN 'invalid_timestamp'
        WHEN _at < TIMESTAMP '{start}' OR _at >= TIMESTAMP '{end}' THEN 'outside_period'
        WHEN NOT {blank('territory')} AND NOT regexp_full_match(trim(territory), '[A-Za-z]{{2}}')
             THEN 'invalid_territory'
        WHEN NOT {blank('attribution')} AND NOT regexp_full_match(trim(attribution), '{ATTRIBUTION}')
             THEN 'invalid_attribution'
        WHEN NOT {blank('attribution')} AND trim(use_type) <> 'output' THEN 'attribution_not_output'
        WHEN NOT {blank('attribution')} AND {blank('output_id')} THEN 'missing_field'
        WHEN ref_reason IS NOT NULL THEN ref_reason
        WHEN ambiguous THEN 'ambiguous_identifier'
    END"""
    content = ("hash(model_id, work_ref, use_type, units, unit, occurred_at, territory, output_id, "
               "attribution)")
    # pass 1, two columns only: record keys that occur more than once are re-send candidates
    # (a hash collision only makes a record a candidate; pass 2 decides on the real key)
    key_hash = "hash(trim(licensee_id), trim(record_id))"
    con.execute(f"""
        CREATE TEMP TABLE candidates AS
        SELECT {key_hash} AS h FROM (SELECT licensee_id, record_id FROM ({source}))
        GROUP BY h HAVING count(*) > 1
    """)
    lap("candidates")

    # pass 2: validate every row and aggregate in the same scan; candidates keep their
    # record id (and a hash of their content) in the key, so their copies can be told apart
    valid, attributed = "reason IS NULL", f"reason IS NULL AND NOT {blank('attribution')}"
    con.execute(f"""
        CREATE TEMP TABLE agg AS
        WITH raw AS ({source}),
        normal AS ({normalised_refs("raw")}),
        checked AS (
            SELECT *, {reason} AS reason FROM (
                SELECT n.*, try_strptime(substr(trim(occurred_at), 1, 19), '%Y-%m-%dT%H:%M:%S') AS _at,
                       coalesce(r.ambiguous, false) AS ambiguous, r.work_id
                FROM normal n LEFT JOIN refs r ON n.ref = r.ref
            )
        ),
        flagged AS (
            SELECT x.*, c.h IS NOT NULL AS candidate
            FROM (SELECT *, {key_hash} AS _h FROM checked) x LEFT JOIN candidates c ON c.h = x._h
        )
        SELECT reason,
               CASE WHEN {valid} THEN trim(licensee_id) END AS licensee_id,
               CASE WHEN {valid} AND candidate THEN trim(record_id) END AS record_id,
               CASE WHEN {valid} AND candidate THEN {content} END AS content,
               CASE WHEN {valid} THEN ref END AS ref,
               CASE WHEN {valid} THEN work_id END AS work_id,
               CASE WHEN {valid} THEN trim(use_type) END AS use_type,
               CASE WHEN {valid} THEN trim(unit) END AS unit,
               CASE WHEN {attributed} THEN trim(output_id) END AS output_id,
               count(*) AS rows,
               sum(CASE WHEN {valid} THEN CAST(trim(units) AS HUGEINT) END) AS units,
               sum(CASE WHEN {attributed} THEN CAST(trim(attribution) AS DECIMAL(38, 9)) END) AS attribution
        FROM flagged
        GROUP BY ALL
    """)
    lap("read_validate_aggregate")

    # re-sends: a candidate record's copies are identical (one group) or conflicting (several)
    conflicting, duplicates = con.execute("""
        SELECT count(*) FILTER (WHERE variants > 1), coalesce(sum(copies - 1), 0) FROM (
            SELECT count(*) AS variants, sum(rows) AS copies FROM agg
            WHERE reason IS NULL AND record_id IS NOT NULL GROUP BY licensee_id, record_id)
    """).fetchone()
    if conflicting:
        raise Unsupported(f"{conflicting} re-sent records have copies that differ (conflicting_resend)")
    con.execute("""
        CREATE TEMP TABLE kept AS
        SELECT licensee_id, ref, work_id, use_type, unit, output_id,
               CASE WHEN record_id IS NULL THEN rows ELSE 1 END AS rows,
               CASE WHEN record_id IS NULL THEN units ELSE units // rows END AS units,
               CASE WHEN record_id IS NULL THEN attribution ELSE attribution / rows END AS attribution
        FROM agg WHERE reason IS NULL
    """)
    lap("deduplicate")
    over_one = con.execute("""
        SELECT count(*) FROM (SELECT licensee_id, output_id FROM kept WHERE output_id IS NOT NULL
                              GROUP BY ALL HAVING sum(attribution) > 1)
    """).fetchone()[0]
    if over_one:
        raise Unsupported(f"{over_one} outputs with attribution over 1")

    # --- aggregate, resolve, consent
    con.execute("""
        CREATE TEMP TABLE groups AS
        WITH g AS (
            SELECT licensee_id, ref, work_id, use_type, unit, sum(rows) AS rows, sum(units) AS units
            FROM kept GROUP BY ALL
        ), versions AS (SELECT DISTINCT work_id FROM split_holders),
        keys AS (SELECT DISTINCT licensee_id, work_id, use_type FROM g WHERE work_id IS NOT NULL),
        applies AS (
            SELECT k.licensee_id, k.work_id, k.use_type, o.subject, o.subject_id FROM keys k JOIN opt_outs o
              ON (o.use_type = '*' OR o.use_type = k.use_type)
             AND (o.licensee_id IS NULL OR o.licensee_id = k.licensee_id)
        ),
        blocked AS (
            SELECT DISTINCT licensee_id, work_id, use_type FROM (
                SELECT licensee_id, work_id, use_type FROM applies WHERE subject = 'all'
                UNION ALL
                SELECT licensee_id, work_id, use_type FROM applies WHERE subject = 'work' AND subject_id = work_id
                UNION ALL
                SELECT a.licensee_id, a.work_id, a.use_type FROM applies a
                JOIN split_holders h ON a.subject = 'holder' AND h.work_id = a.work_id AND h.holder_id = a.subject_id
            )
        )
        SELECT g.*,
            CASE WHEN c.licensee_id IS NULL THEN 'unlicensed'
                 WHEN b.work_id IS NOT NULL THEN 'unlicensed'
                 WHEN g.work_id IS NULL OR v.work_id IS NULL THEN 'suspense'
                 ELSE 'accepted' END AS status
        FROM g
        LEFT JOIN covered c ON c.licensee_id = g.licensee_id AND c.use_type = g.use_type
        LEFT JOIN blocked b ON b.licensee_id = g.licensee_id AND b.work_id = g.work_id AND b.use_type = g.use_type
        LEFT JOIN versions v ON v.work_id = g.work_id
    """)
    lap("aggregate_resolve")

    # --- totals
    totals: dict = {}
    rows_read, quarantined = con.execute(
        "SELECT sum(rows), coalesce(sum(rows) FILTER (WHERE reason IS NOT NULL), 0) FROM agg").fetchone()
    totals["rows_read"], totals["quarantined"] = int(rows_read or 0), int(quarantined)
    totals["duplicates"] = int(duplicates)
    totals["quarantine_by_reason"] = {r: int(n) for r, n in sorted(con.execute(
        "SELECT reason, sum(rows) FROM agg WHERE reason IS NOT NULL GROUP BY reason").fetchall())}
    totals["rows"] = {s: 0 for s in ("accepted", "suspense", "unlicensed")}
    totals["units"] = {s: {} for s in ("accepted", "suspense", "unlicensed")}
    for status, rows in con.execute("SELECT status, sum(rows) FROM groups GROUP BY status").fetchall():
        totals["rows"][status] = int(rows)
    for status, use_type, units in con.execute(
            "SELECT status, use_type, sum(units) FROM groups GROUP BY ALL ORDER BY ALL").fetchall():
        totals["units"][status][use_type] = int(units)
    totals["units_by_use_type"] = {u: int(n) for u, n in con.execute(
        "SELECT use_type, sum(units) FROM groups GROUP BY ALL ORDER BY ALL").fetchall()}
    totals["units_resolved"] = int(con.execute(
        "SELECT coalesce(sum(units), 0) FROM groups WHERE work_id IS NOT NULL").fetchone()[0])
    totals["groups"] = con.execute(
        "SELECT count(*) FROM (SELECT DISTINCT licensee_id, coalesce(work_id, ref), use_type, unit FROM groups)"
    ).fetchone()[0]
    totals["files"] = len(files)
    lap("totals")
    totals["timings"] = timings
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="DuckDB reference job for the settlement benchmark")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--period", required=True)
    parser.add_argument("--out", type=Path, help="write the totals here as JSON (default: stdout)")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--memory-limit")
    parser.add_argument("--temp-directory")
    args = parser.parse_args(argv)
    try:
        totals = run(args.folder, args.period, args.threads, args.memory_limit, args.temp_directory)
    except Unsupported as error:
        print(f"duckdb_job: unsupported input: {error}", file=sys.stderr)
        return 2
    text = json.dumps(totals, indent=2, sort_keys=True) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
