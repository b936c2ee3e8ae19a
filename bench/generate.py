"""Generate a synthetic settlement month (period 2026-10) as an input folder.

Everything is vectorised in polars (no Python loop per row or per work) and
deterministic: every random choice is a hash of a row or work index with a
fixed seed, so the same parameters give the same files. Data is cached by
parameters under ``bench-out/<N>[-w<W>]/``; a rerun only writes what is missing.

Layout of one cache folder::

    ref/                 reference files (policy, licensees, holders, works, splits,
                         consent, revenue, contracts/)
    parquet/             an input folder: copies (hard links) of ref/* + usage/*.parquet
    csv/                 an input folder: copies (hard links) of ref/* + usage/*.csv
    params.json          the parameters and generator version the data was made with

The usage rows (docs/formats.md, usage log v1):

* work popularity is Zipf-like (exponent ZIPF_S) over a fixed permutation of the catalogue;
* identifiers come in mixed schemes and unnormalised spellings (lower-case ISRC with
  hyphens, ISWC with dots/dashes, ISBN-10, DOI as doi.org URL or upper case, URLs with
  upper-case host, default port, fragment, trailing slash, utm_ parameters and unsorted
  query, WORK: ids);
* about 1% malformed rows (negative units, bad or out-of-period timestamps, unknown use
  types and units, unknown licensee, missing model, invalid identifiers);
* about 2% re-sent rows (exact copies of an earlier record, possibly in an earlier file);
* about 3% references to works that are not in the catalogue (suspense);
* consent opt-outs that cover about 1% of usage (unlicensed).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import polars as pl

GENERATOR_VERSION = 4
PERIOD = "2026-10"
PERIOD_START_EPOCH = 1790812800  # 2026-10-01T00:00:00Z
PERIOD_SECONDS = 31 * 86400
DEFAULT_WORKS = 1_000_000
DEFAULT_ROWS_PER_FILE = 10_000_000
LICENSEE_COUNT = 20
ZIPF_S = 0.9
FORMS = 8  # spellings per work in the usage logs
SEED = 2026

RESEND_RATE = 0.02
UNKNOWN_RATE = 0.03
# malformed rows: (kind, rate); about 1% in all
MALFORMED = [
    ("negative_units", 0.0025),
    ("invalid_timestamp", 0.0020),
    ("outside_period", 0.0010),
    ("invalid_use_type", 0.0020),
    ("invalid_unit", 0.0005),
    ("unknown_licensee", 0.0005),
    ("missing_model", 0.0005),
    ("invalid_ref", 0.0010),
]
CONSENT_TARGET = 0.01  # share of usage the opt-outs cover

# (use_type, unit, probability, min units, max units)
USES = [
    ("train", "token", 0.33, 100, 2_000_000),
    ("train", "sample", 0.05, 1, 100),
    ("fine_tune", "token", 0.10, 100, 500_000),
    ("ground", "request", 0.15, 1, 20),
    ("index", "page", 0.10, 1, 50),
    ("crawl", "page", 0.10, 1, 200),
    ("crawl", "request", 0.05, 1, 20),
    ("output", "output", 0.12, 1, 1),
]
TERRITORIES = ["SE", "NO", "DK", "FI", "DE", "GB", "US", "FR", "se", "gb"]
USAGE_SCHEMA = {
    "record_id": pl.String, "licensee_id": pl.String, "model_id": pl.String, "work_ref": pl.String,
    "use_type": pl.String, "units": pl.Int64, "unit": pl.String, "occurred_at": pl.String,
    "territory": pl.String, "output_id": pl.String, "attribution": pl.String,
}
REFERENCE_FILES = ["policy.yaml", "licensees.csv", "holders.csv", "works.csv", "splits.csv", "consent.csv",
                   "revenue.csv"]


# --- small vectorised helpers --------------------------------------------------------------


def uniform(column: str, seed: int) -> pl.Expr:
    """A float in [0, 1) from a hash of an integer column."""
    return (pl.col(column).hash(seed) // (1 << 11)).cast(pl.Float64) * (1.0 / (1 << 53))


def below(column: str, seed: int, modulus: int) -> pl.Expr:
    """An integer in [0, modulus) from a hash of an integer column."""
    return (pl.col(column).hash(seed) % modulus).cast(pl.Int64)


def digit(number: pl.Expr, width: int, position: int) -> pl.Expr:
    """Digit `position` (0 = leftmost) of `number` written with `width` digits."""
    return (number // 10 ** (width - 1 - position)) % 10


def zfill(number: pl.Expr, width: int) -> pl.Expr:
    return number.cast(pl.String).str.zfill(width)


def iswc_check(body: pl.Expr) -> pl.Expr:
    """ISO 15707: sum = 1 + sum(i * d_i, i=1..9); check = (10 - sum mod 10) mod 10."""
    total = 1 + sum(i * digit(body, 9, i - 1) for i in range(1, 10))
    return (10 - total % 10) % 10


def isbn13_check(body12: pl.Expr) -> pl.Expr:
    total = sum(digit(body12, 12, i) * (3 if i % 2 else 1) for i in range(12))
    return (10 - total % 10) % 10


def isbn10_check(body9: pl.Expr) -> pl.Expr:
    """The ISBN-10 check character: sum((10 - i) * d_i) + check = 0 mod 11; 10 is X."""
    total = sum((10 - i) * digit(body9, 9, i) for i in range(9))
    check = (11 - total % 11) % 11
    return pl.when(check == 10).then(pl.lit("X")).otherwise(check.cast(pl.String))


def pick(values: list[str], index: pl.Expr) -> pl.Expr:
    return index.replace_strict(dict(enumerate(values)), default=None, return_dtype=pl.String)


# --- identifiers ------------------------------------------------------------------------------
# Each builder returns FORMS expressions: the spellings a usage log may use for one work,
# in any order; form 0 is how works.csv writes it. Columns: `i` (work index) and `key`
# (the identifier's number, unique per scheme).


def iswc_forms(key: pl.Expr, work_id: pl.Expr | None) -> list[pl.Expr]:
    body = key
    b = zfill(body, 9)
    check = iswc_check(body).cast(pl.String)
    canon = pl.concat_str(pl.lit("ISWC:T"), b, check)
    dotted = pl.concat_str(pl.lit("ISWC:T-"), b.str.slice(0, 3), pl.lit("."), b.str.slice(3, 3), pl.lit("."),
                           b.str.slice(6, 3), pl.lit("-"), check)
    dashed = pl.concat_str(pl.lit("iswc:t-"), b, pl.lit("-"), check)
    spaced = pl.concat_str(pl.lit("Iswc:T "), b.str.slice(0, 3), pl.lit(" "), b.str.slice(3, 3), pl.lit(" "),
                           b.str.slice(6, 3), pl.lit(" "), check)
    work = pl.concat_str(pl.lit("WORK:"), work_id) if work_id is not None else dotted
    return [dotted, canon, dotted, dashed, canon, spaced, dotted, work]


def isrc_forms(key: pl.Expr, work_id: pl.Expr | None, registrant: pl.Expr, country: pl.Expr) -> list[pl.Expr]:
    tail = zfill(key, 7)
    canon = pl.concat_str(pl.lit("ISRC:"), country, registrant, tail)
    lower = pl.concat_str(pl.lit("isrc:"), country.str.to_lowercase(), pl.lit("-"), registrant.str.to_lowercase(),
                          pl.lit("-"), tail.str.slice(0, 2), pl.lit("-"), tail.str.slice(2, 5))
    upper_hyphen = pl.concat_str(pl.lit("ISRC:"), country, pl.lit("-"), registrant, pl.lit("-"),
                                 tail.str.slice(0, 2), pl.lit("-"), tail.str.slice(2, 5))
    work = pl.concat_str(pl.lit("WORK:"), work_id) if work_id is not None else lower
    return [canon, lower, canon, lower, upper_hyphen, lower, canon, work]


def isbn_forms(key: pl.Expr, work_id: pl.Expr | None) -> list[pl.Expr]:
    body9 = key
    b9 = zfill(body9, 9)
    body12 = 978_000_000_000 + body9
    c13 = isbn13_check(body12).cast(pl.String)
    c10 = isbn10_check(body9)
    canon = pl.concat_str(pl.lit("ISBN:978"), b9, c13)
    hyphen13 = pl.concat_str(pl.lit("ISBN:978-"), b9.str.slice(0, 1), pl.lit("-"), b9.str.slice(1, 3), pl.lit("-"),
                             b9.str.slice(4, 5), pl.lit("-"), c13)
    isbn10 = pl.concat_str(pl.lit("ISBN:"), b9, c10)
    hyphen10 = pl.concat_str(pl.lit("isbn:"), b9.str.slice(0, 1), pl.lit("-"), b9.str.slice(1, 3), pl.lit("-"),
                             b9.str.slice(4, 5), pl.lit("-"), c10.str.to_lowercase())
    work = pl.concat_str(pl.lit("WORK:"), work_id) if work_id is not None else isbn10
    return [hyphen13, canon, isbn10, hyphen10, hyphen13, canon, isbn10, work]


def doi_forms(key: pl.Expr, work_id: pl.Expr | None, prefix: str) -> list[pl.Expr]:
    suffix = pl.concat_str(pl.lit(prefix), key.cast(pl.String))
    canon = pl.concat_str(pl.lit("DOI:10.5555/"), suffix)
    upper = pl.concat_str(pl.lit("DOI:10.5555/"), suffix.str.to_uppercase())
    lower_scheme = pl.concat_str(pl.lit("doi:10.5555/"), suffix)
    resolver = pl.concat_str(pl.lit("DOI:https://doi.org/10.5555/"), suffix.str.to_uppercase())
    doi_doi = pl.concat_str(pl.lit("DOI:doi:10.5555/"), suffix)
    work = pl.concat_str(pl.lit("WORK:"), work_id) if work_id is not None else upper
    return [canon, upper, lower_scheme, resolver, doi_doi, canon, upper, work]


def url_forms(key: pl.Expr, work_id: pl.Expr | None, host: str, with_query: pl.Expr) -> list[pl.Expr]:
    """URLs; when `with_query`, the canonical query is `lang=en&v=2` (sorted)."""
    path = pl.concat_str(pl.lit("/articles/"), key.cast(pl.String))
    q = pl.when(with_query)
    canon = pl.concat_str(pl.lit("URL:https://" + host), path, q.then(pl.lit("?lang=en&v=2")).otherwise(pl.lit("")))
    upper_host = pl.concat_str(pl.lit("URL:HTTPS://" + host.upper()), path, pl.lit("/"),
                               q.then(pl.lit("?v=2&utm_source=newsletter&lang=en"))
                               .otherwise(pl.lit("?utm_source=newsletter&utm_medium=email")))
    port = pl.concat_str(pl.lit("URL:https://" + host + ":443"), path,
                         q.then(pl.lit("?v=2&lang=en")).otherwise(pl.lit("")), pl.lit("#section-2"))
    tracked = pl.concat_str(pl.lit("url:https://" + host.capitalize()), path,
                            q.then(pl.lit("?gclid=abc123&lang=en&utm_campaign=ai&v=2"))
                            .otherwise(pl.lit("?fbclid=xyz&utm_campaign=ai")))
    work = pl.concat_str(pl.lit("WORK:"), work_id) if work_id is not None else upper_host
    return [canon, upper_host, port, tracked, canon, upper_host, tracked, work]


KINDS = ("composition", "recording", "text")


def work_frame(count: int, unknown: bool) -> pl.LazyFrame:
    """Per work index `i`: kind, scheme and FORMS spellings of its identifier.

    Known works have identifiers numbered by `i`; unknown ones (not in the catalogue)
    use disjoint number ranges and hosts, so they can never match a catalogued work.
    """
    frame = pl.LazyFrame({"i": pl.int_range(0, count, dtype=pl.Int64, eager=True)})
    slot = pl.col("i") % 20
    scheme = (pl.when(slot < 8).then(pl.lit("ISWC")).when(slot < 14).then(pl.lit("ISRC"))
              .when(slot < 17).then(pl.lit("ISBN")).when(slot < 19).then(pl.lit("DOI")).otherwise(pl.lit("URL")))
    kind = (pl.when(slot < 8).then(pl.lit("composition")).when(slot < 14).then(pl.lit("recording"))
            .otherwise(pl.lit("text")))
    i = pl.col("i")
    offset = 900_000_000 if unknown else 10_000_000
    key = pl.col("i") * 7 + offset if not unknown else pl.col("i") + offset
    work_id = None if unknown else pl.concat_str(pl.lit("W"), zfill(i, 7))
    registrant = pl.concat_str(pl.lit("ZZ" if unknown else "R"), zfill(i % (10 if unknown else 90) + (0 if unknown else 10), 1 if unknown else 2))
    country = pick(["SE", "NO", "DK", "FI", "GB", "US"], i % 6)
    forms = {
        "ISWC": iswc_forms(key, work_id),
        "ISRC": isrc_forms(i, work_id, registrant, country),
        "ISBN": isbn_forms(key, work_id),
        "DOI": doi_forms(i, work_id, "unk." if unknown else "nmtr."),
        "URL": url_forms(i, work_id, "unknown.example.net" if unknown else "texts.example.org", i % 2 == 0),
    }
    columns = []
    for f in range(FORMS):
        expr = pl.lit(None, dtype=pl.String)
        for name in reversed(list(forms)):
            expr = pl.when(scheme == name).then(forms[name][f]).otherwise(expr)
        columns.append(expr.alias(f"form{f}"))
    frame = frame.with_columns(scheme.alias("scheme"), kind.alias("kind"), *columns)
    if not unknown:
        frame = frame.with_columns(pl.concat_str(pl.lit("W"), zfill(i, 7)).alias("work_id"))
    return frame


def forms_series(frame: pl.DataFrame) -> pl.Series:
    """All spellings as one series: index FORMS * i + f is form f of work i."""
    return (frame.select(pl.concat_list([f"form{f}" for f in range(FORMS)]).alias("ref"))
            .explode("ref")["ref"])


# --- the catalogue ------------------------------------------------------------------------------


def holder_count(works: int) -> int:
    return max(10, works // 20)


def write_catalogue(ref: Path, works: int, licensees: list[str], zipf_cdf: pl.Series, permutation: tuple[int, int]) -> None:
    holders = holder_count(works)
    catalogue = work_frame(works, unknown=False).collect()
    catalogue.select(
        "work_id", "kind", pl.concat_str(pl.lit("Title "), pl.col("i").cast(pl.String)).alias("title"),
        pl.col("form0").alias("identifiers"),
    ).write_csv(ref / "works.csv", line_terminator="\n")

    # splits: 1-3 distinct holders per work, shares as decimals, percentages and fractions
    h = pl.LazyFrame({"i": catalogue["i"], "kind": catalogue["kind"], "work_id": catalogue["work_id"]})
    count = below("i", SEED + 11, 10)  # 0..9
    n_holders = pl.when(count < 3).then(1).when(count < 7).then(2).otherwise(3)
    style = below("i", SEED + 12, 2)
    base = below("i", SEED + 13, holders)
    step = 1 + below("i", SEED + 14, max(1, (holders - 1) // 3))
    splits = h.with_columns(n_holders.alias("n"), style.alias("style"), base.alias("base"), step.alias("step"))
    splits = splits.with_columns(pl.int_ranges(0, pl.col("n")).alias("k")).explode("k")
    share = (pl.when(pl.col("n") == 1).then(pl.lit("1"))
             .when(pl.col("n") == 2).then(pl.when(pl.col("style") == 0).then(pl.lit("0.5"))
                                          .otherwise(pick(["70%", "30%"], pl.col("k"))))
             .otherwise(pl.when(pl.col("style") == 0).then(pl.lit("1/3"))
                        .otherwise(pick(["0.5", "0.25", "25%"], pl.col("k")))))
    holder_index = (pl.col("base") + pl.col("k") * pl.col("step")) % holders
    splits.select(
        "work_id", pl.col("kind").alias("right"),
        pl.concat_str(pl.lit("H"), zfill(holder_index + 1, 6)).alias("holder_id"),
        share.alias("share"), pl.lit("2020-01-01").alias("valid_from"), pl.lit(None, dtype=pl.String).alias("valid_to"),
    ).collect().write_csv(ref / "splits.csv", line_terminator="\n")

    pl.select(pl.int_range(1, holders + 1, dtype=pl.Int64).alias("n")).select(
        pl.concat_str(pl.lit("H"), zfill(pl.col("n"), 6)).alias("holder_id"),
        pl.concat_str(pl.lit("Holder "), pl.col("n").cast(pl.String)).alias("name"),
        pick(["SE", "NO", "DK", "FI", "DE"], pl.col("n") % 5).alias("country"),
        pl.lit(None, dtype=pl.String).alias("ipi"), pl.lit(None, dtype=pl.String).alias("isni"),
        pl.lit("EUR").alias("payout_currency"),
        pl.when(pl.col("n") % 7 == 0).then(pl.lit("0.15")).otherwise(pl.lit("0")).alias("withholding_rate"),
        pl.lit(None, dtype=pl.String).alias("payout_threshold"),
    ).write_csv(ref / "holders.csv", line_terminator="\n")

    write_consent(ref, works, holders, licensees, zipf_cdf, permutation)


def write_consent(ref: Path, works: int, holders: int, licensees: list[str], zipf_cdf: pl.Series,
                  permutation: tuple[int, int]) -> None:
    """Work opt-outs on works of middling popularity adding up to about CONSENT_TARGET of
    usage, a few holder opt-outs, and signals that are not in force in the period."""
    p = pl.DataFrame({"cdf": zipf_cdf}).with_row_index("rank").with_columns(
        (pl.col("cdf") - pl.col("cdf").shift(1, fill_value=0.0)).alias("p"))
    small = p.filter(pl.col("p") < CONSENT_TARGET / 10)["rank"]
    start = min(max(1, works // 2000, int(small[0]) if len(small) else 1), works - 1)
    candidates = p.slice(start, None).with_columns(pl.col("p").cum_sum().alias("acc"))
    chosen = candidates.filter(pl.col("acc") - pl.col("p") < CONSENT_TARGET * 0.85)["rank"]
    multiplier, offset = permutation
    work_index = (chosen.cast(pl.Int64) * multiplier + offset) % works
    rows = []
    for n, index in enumerate(work_index.to_list()):
        work_id = f"W{index:07d}"
        if n % 5 == 4:   # a narrower opt-out: one use type, one licensee
            rows.append(("work", work_id, "train", licensees[n % len(licensees)], "opt_out", "2026-01-01", None))
        else:
            rows.append(("work", work_id, "*", None, "opt_out", "2025-06-01", None))
    for n in range(max(1, min(10, holders // 2000))):  # a holder's works are random, ~40 of them
        holder = f"H{(n * 997) % holders + 1:06d}"
        rows.append(("holder", holder, "*" if n % 2 else "output", None, "opt_out", "2026-03-01", None))
    # not in force during the period: expired, and starting after it
    rows.append(("work", f"W{work_index[0] if len(work_index) else 0:07d}", "*", None, "opt_out", "2024-01-01",
                 "2025-01-01"))
    rows.append(("holder", "H000001", "*", None, "opt_out", "2027-01-01", None))
    rows.append(("work", "W0000001", "*", None, "opt_in", "2025-01-01", None))
    schema = {c: pl.String for c in ("subject", "subject_id", "use_type", "licensee_id", "signal", "valid_from",
                                     "valid_to")}
    pl.DataFrame(rows, schema=schema, orient="row").write_csv(ref / "consent.csv", line_terminator="\n")


POLICY = """society: "Bench Rights Society"
consent_required: false
commission:
  train: "0.10"
  fine_tune: "0.10"
  ground: "0.15"
  index: "0.15"
  crawl: "0.15"
  output: "0.12"
thresholds:
  EUR: "10.00"
  USD: "10.00"
suspense_hold_months: 36
"""


def contract_yaml(n: int, licensee: str) -> str:
    """One contract per licensee: per-unit terms by use type and unit (some tiered), a
    flat fee by usage on every contract (term `usage-fee`, whose allocation weights are
    the usage units: no use-type weights are set), and a revenue share on every other."""
    currency = "USD" if n % 5 == 4 else "EUR"
    terms = []
    if n % 3 == 0:
        terms.append("""  - id: train-tokens
    type: per_unit
    use_type: train
    unit: token
    per: 1000000
    tiers:
      - {up_to: 1000000000, rate: "0.40"}
      - {up_to: null, rate: "0.30"}""")
    else:
        terms.append("""  - id: train-tokens
    type: per_unit
    use_type: train
    unit: token
    rate: "0.35"
    per: 1000000""")
    terms.append("""  - id: train-samples
    type: per_unit
    use_type: train
    unit: sample
    rate: "0.002\"""")
    terms.append("""  - id: fine-tune-tokens
    type: per_unit
    use_type: fine_tune
    unit: token
    rate: "1.20"
    per: 1000000""")
    terms.append("""  - id: ground-requests
    type: per_unit
    use_type: ground
    unit: request
    rate: "0.0015\"""")
    terms.append("""  - id: crawl-pages
    type: per_unit
    use_type: crawl
    unit: page
    rate: "0.50"
    per: 1000""")
    if n % 2 == 0:
        terms.append("""  - id: revenue-share
    type: revenue_share
    rate: "12.5%"
    allocation: by_usage""")
    terms.append(f"""  - id: usage-fee
    type: flat_fee
    amount: "{2500 + 250 * n}.00"
    basis: by_usage
    use_type: train""")
    return f"""contract_id: C-{licensee}
version: 1
licensee_id: {licensee}
licensor: "Bench Rights Society"
currency: {currency}
term: {{start: 2026-01-01, end: 2026-12-31}}
territories: ["*"]
repertoire: {{all: true}}
use_types: [train, fine_tune, ground, index, crawl, output]
models: ["*"]
terms:
""" + "\n".join(terms) + "\n"


def write_reference(ref: Path, works: int, zipf_cdf: pl.Series, permutation: tuple[int, int]) -> None:
    ref.mkdir(parents=True, exist_ok=True)
    (ref / "contracts").mkdir(exist_ok=True)
    licensees = licensee_ids()
    (ref / "policy.yaml").write_text(POLICY, encoding="utf-8")
    pl.DataFrame({"licensee_id": licensees, "name": [f"AI Firm {n + 1}" for n in range(LICENSEE_COUNT)],
                  "country": [["US", "GB", "SE", "DE", "FR"][n % 5] for n in range(LICENSEE_COUNT)]}
                 ).write_csv(ref / "licensees.csv", line_terminator="\n")
    revenue = []
    for n, licensee in enumerate(licensees):
        (ref / "contracts" / f"C-{licensee}.yaml").write_text(contract_yaml(n, licensee), encoding="utf-8")
        if n % 2 == 0:
            revenue.append((licensee, f"C-{licensee}", PERIOD, f"{100000 + 12345 * n}.50",
                            "USD" if n % 5 == 4 else "EUR"))
    pl.DataFrame(revenue, schema={c: pl.String for c in ("licensee_id", "contract_id", "period", "amount", "currency")},
                 orient="row").write_csv(ref / "revenue.csv", line_terminator="\n")
    write_catalogue(ref, works, licensees, zipf_cdf, permutation)


def licensee_ids() -> list[str]:
    return [f"ai-{n + 1:02d}" for n in range(LICENSEE_COUNT)]


# --- usage ------------------------------------------------------------------------------------------


def zipf_cdf(works: int) -> pl.Series:
    weights = pl.int_range(1, works + 1, dtype=pl.Int64, eager=True).cast(pl.Float64).pow(-ZIPF_S)
    cdf = weights.cum_sum()
    return cdf / cdf[-1]


def permutation_for(works: int) -> tuple[int, int]:
    """rank -> work index as (rank * multiplier + offset) mod works, a bijection."""
    for multiplier in (7919, 104729, 1299709, 15485863):
        if math.gcd(multiplier, works) == 1:
            return multiplier % works or 1, (works // 3) % works
    return 1, 0


def cumulative(rates: list[float]) -> list[float]:
    out, total = [], 0.0
    for rate in rates:
        total += rate
        out.append(total)
    return out


def choose(u: pl.Expr, thresholds: list[float]) -> pl.Expr:
    """Index of the first threshold above u (thresholds cumulative, last = 1)."""
    expr = pl.lit(len(thresholds) - 1, dtype=pl.Int64)
    for index in reversed(range(len(thresholds) - 1)):
        expr = pl.when(u < thresholds[index]).then(pl.lit(index, dtype=pl.Int64)).otherwise(expr)
    return expr


BAD_REFS = [
    "ISWC:T-034.524.680-2", "ISWC:T0345246809", "ASIN:B000123456", "ISBN:978-0-306-40615-8",
    "isrc:US-RC1-76", "ISBN:0306406153", "DOI:11.1000/xyz", "URL:ftp://files.example.org/x", "unknown-ref",
]


def usage_chunk(start: int, stop: int, works: int, known: pl.Series, unknown: pl.Series, unknown_count: int,
                cdf: pl.Series, permutation: tuple[int, int]) -> pl.DataFrame:
    """Usage rows [start, stop): row r shows record k (k = r, or an earlier record for a re-send)."""
    licensees = licensee_ids()
    rows = pl.DataFrame({"r": pl.int_range(start, stop, dtype=pl.Int64, eager=True)})
    resend = (uniform("r", SEED + 1) < RESEND_RATE) & (pl.col("r") > 0)
    rows = rows.with_columns(
        pl.when(resend).then((pl.col("r").hash(SEED + 2) % pl.col("r").cast(pl.UInt64).clip(1)).cast(pl.Int64))
        .otherwise(pl.col("r")).alias("k"))

    # licensee: skewed over 20 firms
    lic_weights = [1 / (n + 1) ** 0.7 for n in range(LICENSEE_COUNT)]
    total = sum(lic_weights)
    lic = choose(uniform("k", SEED + 3), cumulative([w / total for w in lic_weights]))
    use = choose(uniform("k", SEED + 4), cumulative([u[2] for u in USES]))
    rows = rows.with_columns(lic.alias("lic"), use.alias("use"))

    # work: Zipf rank -> permuted work index, or an unknown work
    ranks = cdf.search_sorted(rows.select(uniform("k", SEED + 5)).to_series(), side="right").cast(pl.Int64)
    multiplier, offset = permutation
    rows = rows.with_columns(((ranks.clip(0, works - 1) * multiplier + offset) % works).alias("work"),
                             below("k", SEED + 6, FORMS).alias("form"),
                             (uniform("k", SEED + 7) < UNKNOWN_RATE).alias("is_unknown"),
                             below("k", SEED + 8, unknown_count).alias("unknown_work"))
    ref_index = pl.when(pl.col("is_unknown")).then(pl.col("unknown_work")).otherwise(pl.col("work")) * FORMS + pl.col("form")
    known_refs = known.gather(rows.select(pl.when(~pl.col("is_unknown")).then(ref_index)).to_series())
    unknown_refs = unknown.gather(rows.select(pl.when(pl.col("is_unknown")).then(ref_index)).to_series())
    rows = rows.with_columns(pl.coalesce(known_refs, unknown_refs).alias("work_ref"))

    # units by unit, some zero
    low = pl.Series([u[3] for u in USES], dtype=pl.Int64)
    high = pl.Series([u[4] for u in USES], dtype=pl.Int64)
    span = (high - low + 1)
    rows = rows.with_columns(
        pick([u[0] for u in USES], pl.col("use")).alias("use_type"),
        pick([u[1] for u in USES], pl.col("use")).alias("unit"),
        (pl.col("use").replace_strict(dict(enumerate(low.to_list())), return_dtype=pl.Int64)
         + (pl.col("k").hash(SEED + 9) % pl.col("use").replace_strict(dict(enumerate(span.to_list())), return_dtype=pl.UInt64))
         .cast(pl.Int64)).alias("units"),
    ).with_columns(pl.when(uniform("k", SEED + 10) < 0.005).then(0).otherwise("units").alias("units"))

    # time: uniform over the month; a few spellings of UTC
    second = below("k", SEED + 15, PERIOD_SECONDS) + PERIOD_START_EPOCH
    stamp = pl.from_epoch(second, time_unit="s").dt.strftime("%Y-%m-%dT%H:%M:%S")
    variant = below("k", SEED + 16, 20)
    stamp = (pl.when(variant == 0).then(stamp + "+00:00")
             .when(variant == 1).then(pl.concat_str(stamp, pl.lit("."), zfill(below("k", SEED + 17, 1000), 3), pl.lit("Z")))
             .otherwise(stamp + "Z"))
    territory_pick = below("k", SEED + 18, len(TERRITORIES) + 3)
    territory = pl.when(territory_pick < len(TERRITORIES)).then(pick(TERRITORIES, territory_pick.clip(0, len(TERRITORIES) - 1)))
    is_output = pl.col("use_type") == "output"
    attributed = is_output & (below("k", SEED + 19, 2) == 0)
    rows = rows.with_columns(
        pl.concat_str(pl.lit("rec-"), zfill(pl.col("k"), 10)).alias("record_id"),
        pick(licensees, pl.col("lic")).alias("licensee_id"),
        pl.concat_str(pick(licensees, pl.col("lic")), pl.lit("-model-"), below("k", SEED + 20, 3).cast(pl.String))
        .alias("model_id"),
        stamp.alias("occurred_at"),
        territory.alias("territory"),
        pl.when(is_output).then(pl.concat_str(pl.lit("out-"), pl.col("k").cast(pl.String))).alias("output_id"),
        pl.when(attributed).then(pick(["0.25", "0.5", "1", "0.125", ".75", "0.333333333"],
                                      below("k", SEED + 21, 6))).alias("attribution"),
    )

    # malformed records (about 1%): one fault each
    fault = choose(uniform("k", SEED + 22), cumulative([rate for _, rate in MALFORMED]) + [1.0])
    kinds = {name: n for n, (name, _) in enumerate(MALFORMED)}
    bad = below("k", SEED + 23, 3)
    rows = rows.with_columns(fault.alias("fault")).with_columns(
        pl.when(pl.col("fault") == kinds["negative_units"]).then(-1 - pl.col("units")).otherwise("units").alias("units"),
        pl.when(pl.col("fault") == kinds["invalid_timestamp"])
        .then(pick(["2026-10-32T10:00:00Z", "2026-10-05 14:03:00", "yesterday"], bad))
        .when(pl.col("fault") == kinds["outside_period"])
        .then(pick(["2026-09-30T23:59:59Z", "2026-11-01T00:00:00Z", "2025-10-05T12:00:00+00:00"], bad))
        .otherwise("occurred_at").alias("occurred_at"),
        pl.when(pl.col("fault") == kinds["invalid_use_type"]).then(pick(["pretrain", "Train", "inference"], bad))
        .otherwise("use_type").alias("use_type"),
        pl.when(pl.col("fault") == kinds["invalid_unit"]).then(pick(["tokens", "TOKEN", "byte"], bad))
        .otherwise("unit").alias("unit"),
        pl.when(pl.col("fault") == kinds["unknown_licensee"]).then(pick(["ai-99", "AI-01", "unknown-firm"], bad))
        .otherwise("licensee_id").alias("licensee_id"),
        pl.when(pl.col("fault") == kinds["missing_model"]).then(pl.lit(None, dtype=pl.String))
        .otherwise("model_id").alias("model_id"),
        pl.when(pl.col("fault") == kinds["invalid_ref"])
        .then(pick(BAD_REFS, below("k", SEED + 24, len(BAD_REFS))))
        .otherwise("work_ref").alias("work_ref"),
    )
    return rows.select(list(USAGE_SCHEMA)).cast(USAGE_SCHEMA)


# --- driver ---------------------------------------------------------------------------------------------


def cache_dir(root: Path, rows: int, works: int) -> Path:
    return root / (str(rows) if works == DEFAULT_WORKS else f"{rows}-w{works}")


def link_reference(ref: Path, folder: Path) -> None:
    """Make `folder` an input folder sharing ref/'s files (hard links, or copies)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "contracts").mkdir(exist_ok=True)
    names = REFERENCE_FILES + [f"contracts/{p.name}" for p in sorted((ref / "contracts").iterdir())]
    for name in names:
        target = folder / name
        if target.exists():
            target.unlink()
        try:
            os.link(ref / name, target)
        except OSError:
            shutil.copyfile(ref / name, target)


def generate(root: Path, rows: int, works: int = DEFAULT_WORKS, formats: tuple[str, ...] = ("parquet", "csv"),
             rows_per_file: int = DEFAULT_ROWS_PER_FILE, log=print) -> Path:
    """Generate (or reuse) the data for `rows` usage rows; returns the cache folder."""
    folder = cache_dir(root, rows, works)
    params = {"generator_version": GENERATOR_VERSION, "rows": rows, "works": works, "rows_per_file": rows_per_file,
              "seed": SEED, "period": PERIOD}
    params_path = folder / "params.json"
    if params_path.exists() and json.loads(params_path.read_text()) != params:
        log(f"generate: parameters changed, regenerating {folder}")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    params_path.write_text(json.dumps(params, indent=2) + "\n")
    ref = folder / "ref"
    cdf = zipf_cdf(works)
    permutation = permutation_for(works)
    if not (ref / ".done").exists():
        started = time.perf_counter()
        if ref.exists():
            shutil.rmtree(ref)
        write_reference(ref, works, cdf, permutation)
        (ref / ".done").write_text("")
        log(f"generate: catalogue of {works:,} works in {time.perf_counter() - started:.1f} s")
    pending = [f for f in formats if not (folder / f / ".done").exists()]
    if not pending:
        return folder
    started = time.perf_counter()
    known = unknown = None
    unknown_count = max(1000, works // 10)
    for fmt in pending:
        if (folder / fmt).exists():
            shutil.rmtree(folder / fmt)
        link_reference(ref, folder / fmt)
        (folder / fmt / "usage").mkdir()
    parquet_ready = "parquet" not in pending and (folder / "parquet" / ".done").exists()
    files = math.ceil(rows / rows_per_file) if rows else 0
    for n in range(files):
        start, stop = n * rows_per_file, min(rows, (n + 1) * rows_per_file)
        name = f"part-{n:05d}"
        if parquet_ready:  # CSV from the cached Parquet: same rows, no regeneration
            chunk = pl.read_parquet(folder / "parquet" / "usage" / f"{name}.parquet")
        else:
            if known is None:
                known = forms_series(work_frame(works, unknown=False).select([f"form{f}" for f in range(FORMS)]).collect())
                unknown = forms_series(work_frame(unknown_count, unknown=True).select([f"form{f}" for f in range(FORMS)]).collect())
            chunk = usage_chunk(start, stop, works, known, unknown, unknown_count, cdf, permutation)
        for fmt in pending:
            path = folder / fmt / "usage" / f"{name}.{fmt}"
            if fmt == "parquet":
                chunk.write_parquet(path)
            else:
                chunk.write_csv(path, line_terminator="\n")
        log(f"generate: {name} ({stop - start:,} rows) {'+'.join(pending)} "
            f"at {time.perf_counter() - started:.1f} s")
    for fmt in pending:
        (folder / fmt / ".done").write_text("")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--works", type=int, default=DEFAULT_WORKS)
    parser.add_argument("--formats", default="parquet,csv")
    parser.add_argument("--rows-per-file", type=int, default=DEFAULT_ROWS_PER_FILE)
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    args = parser.parse_args(argv)
    folder = generate(args.out, args.rows, args.works, tuple(args.formats.split(",")), args.rows_per_file)
    print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
