"""Classify usage groups (each with the catalogue work its reference names, resolved
in aggregation) by licence scope, consent and the split in force, which decide each
group's fate:

- `accepted`: a covered, consenting use of a catalogued work with a split in force;
- `suspense`: a covered use that cannot be attributed to holders yet
  (`unknown_work`, `no_split`); it is charged and its money is held;
- `unlicensed`: outside every licence of the licensee or opted out; reported,
  never charged nor paid as licensed use.

Everything here is on usage groups, not raw rows, and loops only over contracts.
"""

from __future__ import annotations

import datetime as dt
import re

import polars as pl

from contracts.vocabulary import SCHEME_KINDS, SCOPE_REASONS
from settlement.keys import REASON, STATUS, lexical_enum, packed_key

# A use falls out of a contract's scope in the order of SCOPE_REASONS; the
# reason reported is that of the contract the use got furthest into.
COVERED = len(SCOPE_REASONS)
UTC = dt.timezone.utc


def with_kind(groups: pl.DataFrame, catalogue) -> pl.DataFrame:
    """The groups with their work's kind and their reference's scheme, which repertoires
    by kind need (aggregation has resolved each group's `work_id`)."""
    return (groups.join(catalogue.works.select("work_id", "kind"), on="work_id", how="left")
            .with_columns(pl.col("ref").cast(pl.String).str.extract(r"^([^:]*)", 1).alias("scheme")))


def as_text(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col(pl.Enum).cast(pl.String))


def repertoire_matters(contracts: list) -> bool:
    return any(not contract.repertoire.all for contract in contracts)


def term_bounds(contract) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(contract.term.start, dt.time(), UTC)
    return start, dt.datetime.combine(contract.term.end + dt.timedelta(days=1), dt.time(), UTC)


def repertoire_covers(contract) -> pl.Expr:
    repertoire = contract.repertoire
    if repertoire.all:
        return pl.lit(True)
    if repertoire.works is not None:
        return pl.col("work_id").is_in(repertoire.works).fill_null(False)
    kinds = set(repertoire.kinds)
    schemes = [scheme for scheme, possible in SCHEME_KINDS.items() if kinds & set(possible)]
    return (pl.when(pl.col("work_id").is_not_null()).then(pl.col("kind").is_in(list(kinds)))
            .otherwise(pl.col("scheme").is_in(schemes)))


def glob_pattern(glob: str) -> str:
    """A model-scope glob (`*`, `?`) as an anchored regex for the Rust regex engine."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return f"(?s)^{body}$"  # (?s): `*` matches line breaks too, as fnmatch does


def scope_stage(contract) -> pl.Expr:
    """How far a group gets into `contract`'s scope: -1 other licensee, 0..4 the
    first check it fails (SCOPE_REASONS), COVERED when it is covered."""
    start, end = term_bounds(contract)
    model = pl.any_horizontal([pl.col("model_id").str.contains(glob_pattern(p)) for p in contract.models])
    territory = (pl.lit(True) if "*" in contract.territories
                 else pl.col("territory").is_in(contract.territories).fill_null(False))
    fails = [
        (pl.col("segment_start") < start) | (pl.col("segment_start") >= end),
        ~pl.col("use_type").is_in(contract.use_types),
        ~model,
        ~territory,
        ~repertoire_covers(contract),
    ]
    stage = pl.when(pl.col("licensee_id") != contract.licensee_id).then(-1)
    for index, fail in enumerate(fails):
        stage = stage.when(fail).then(index)
    return stage.otherwise(COVERED)


def match_contracts(groups: pl.DataFrame, contracts: list) -> pl.DataFrame:
    """The covering contract (the first by contract id), or the scope reason of the nearest miss."""
    ranked = sorted(contracts, key=lambda c: c.contract_id)
    width = len(ranked) + 1
    # stage first, then the earlier contract: a single integer to take the max of
    scores = [(scope_stage(c) + 1) * width + (width - 1 - i) for i, c in enumerate(ranked)]
    best = pl.max_horizontal(scores) if scores else pl.lit(0)
    ids = {width - 1 - i: c.contract_id for i, c in enumerate(ranked)}
    matched = groups.with_columns(best.alias("_best"))
    stage = pl.col("_best") // width - 1
    contract = lexical_enum(ids.values())
    return matched.with_columns(
        pl.when(stage == COVERED).then((pl.col("_best") % width).replace_strict(ids, default=None,
                                                                               return_dtype=contract))
        .alias("contract_id"),
        pl.when(stage < 0).then(pl.lit("no_licence", dtype=REASON))
        .when(stage < COVERED).then(stage.replace_strict(dict(enumerate(SCOPE_REASONS)), default=None,
                                                         return_dtype=REASON))
        .alias("scope_reason"),
    ).drop("_best")


def versions_in_force(keys: pl.DataFrame, versions: pl.DataFrame, at: str) -> pl.DataFrame:
    """For each distinct (work_id, instant `at`), the split version in force then.
    `versions`: the catalogue's (Catalogue.versions)."""
    return (keys.select("work_id", at).unique().join(versions, on="work_id").filter(in_force(at))
            .select("work_id", at, "version"))


def in_force(at: str) -> pl.Expr:
    """A validity range [valid_from, valid_to) holds at the instant in column `at`."""
    return ((pl.col("valid_from") <= pl.col(at)) &
            (pl.col("valid_to").is_null() | (pl.col(at) < pl.col("valid_to"))))


def applicable(signals: pl.DataFrame, at: str) -> pl.DataFrame:
    return signals.filter(in_force(at)
                          & ((pl.col("signal_use_type") == "*") | (pl.col("signal_use_type") == pl.col("use_type")))
                          & (pl.col("signal_licensee").is_null() | (pl.col("signal_licensee") == pl.col("licensee_id"))))


def consent_decisions(keys: pl.DataFrame, catalogue, consent_required: bool, at: str) -> pl.DataFrame:
    """For keys (work_id, version, use_type, licensee_id, `at`): `consent_reason`, null when allowed.

    The most restrictive signal in force wins: an opt-out by the work, by any
    holder of the version in force, or by the whole repertoire blocks the use.
    When consent is required, an opt-in by the work, the repertoire or every
    holder is needed."""
    keys = keys.select("work_id", "version", "use_type", "licensee_id", at).unique()
    signals = catalogue.consent.rename({"use_type": "signal_use_type", "licensee_id": "signal_licensee"})
    by_work = applicable(keys.join(signals.filter(pl.col("subject") == "work"),
                                   left_on="work_id", right_on="subject_id"), at)
    by_all = applicable(keys.join(signals.filter(pl.col("subject") == "all").drop("subject_id"), how="cross"), at)
    holders = keys.join(catalogue.splits.select("work_id", "version", "holder_id"), on=["work_id", "version"])
    by_holder = applicable(holders.join(signals.filter(pl.col("subject") == "holder"),
                                        left_on="holder_id", right_on="subject_id"), at)
    key = ["work_id", "version", "use_type", "licensee_id", at]
    opt_out = pl.concat([f.filter(pl.col("signal") == "opt_out").select(key) for f in (by_work, by_all, by_holder)]
                        ).unique().with_columns(pl.lit(True).alias("opted_out"))
    opt_in = pl.concat([f.filter(pl.col("signal") == "opt_in").select(key) for f in (by_work, by_all)]
                       ).unique().with_columns(pl.lit(True).alias("opted_in"))
    holder_count = holders.group_by(key).agg(pl.col("holder_id").n_unique().alias("holders"))
    holders_in = (by_holder.filter(pl.col("signal") == "opt_in").group_by(key)
                  .agg(pl.col("holder_id").n_unique().alias("holders_in")))
    decided = (keys.join(opt_out, on=key, how="left", nulls_equal=True)
               .join(opt_in, on=key, how="left", nulls_equal=True)
               .join(holder_count, on=key, how="left", nulls_equal=True)
               .join(holders_in, on=key, how="left", nulls_equal=True))
    all_holders_in = (pl.col("holders_in").fill_null(0) == pl.col("holders")) & (pl.col("holders") > 0)
    allowed_without_signal = pl.lit(not consent_required)
    return decided.select(*key, pl.when(pl.col("opted_out").fill_null(False)).then(pl.lit("opted_out"))
                          .when(allowed_without_signal | pl.col("opted_in").fill_null(False) | all_holders_in)
                          .then(pl.lit(None, dtype=pl.String))
                          .otherwise(pl.lit("no_opt_in")).alias("consent_reason"))


def scope(groups: pl.DataFrame, contracts: list, by_work: bool) -> pl.DataFrame:
    """`contract_id` and `scope_reason` of every group, decided once per distinct
    combination (in the groups given: a partition) of the columns scope depends on (few:
    licensees × models × territories × use types × segments, unless a repertoire names
    works). The combinations are found and joined back on one packed integer when the
    columns allow (a join on five columns took most of the step)."""
    columns = ["licensee_id", "model_id", "territory", "use_type", "segment"]
    if by_work:
        columns += ["work_id", "kind", "scheme"]
    frame = groups.select(*columns, "segment_start")
    key = packed_key(frame, columns)
    if key is None:
        combos = frame.unique(columns)
        matched = match_contracts(as_text(combos), contracts)  # model globs and scope lists are text
        combos = combos.select(columns).with_columns(matched["contract_id"], matched["scope_reason"])
        return groups.join(combos, on=columns, how="left", nulls_equal=True)
    keyed = frame.with_columns(key.alias("_scope"))
    combos = keyed.unique("_scope")
    matched = match_contracts(as_text(combos), contracts)
    found = combos.select("_scope").with_columns(matched["contract_id"], matched["scope_reason"])
    return groups.with_columns(looked_up(keyed["_scope"], found, "_scope"))


def looked_up(keys: pl.Series, found: pl.DataFrame, key: str) -> list[pl.Series]:
    """The columns of `found` (unique by `key`) for each of `keys`, in their order, null where
    `found` has none: new columns for a partition of groups, where joining the partition
    itself copied every column of its millions of groups (the run's memory peaked there)."""
    columns = keys.to_frame(key).join(found, on=key, how="left", maintain_order="left")
    return columns.drop(key).get_columns()


def with_versions(groups: pl.DataFrame, catalogue, segment_count: int) -> pl.DataFrame:
    """The split version in force in each group's segment (null when none or no work),
    as an Enum (Catalogue.version_type), looked up once per (work, segment) of the groups."""
    place = (pl.col("work").cast(pl.UInt64) * segment_count + pl.col("segment")).alias("_place")
    keyed = groups.select(place, "work_id", "segment_start")
    places = keyed.filter(pl.col("work_id").is_not_null()).unique("_place")
    found = (places.join(catalogue.versions, on="work_id").filter(in_force("segment_start"))
             .select("_place", pl.col("version").cast(catalogue.version_type)))
    return groups.with_columns(looked_up(keyed["_place"], found, "_place"))


def with_consent(groups: pl.DataFrame, catalogue, consent_required: bool) -> pl.DataFrame:
    """`consent_reason` of every licensed group of a catalogued work with a split in force.

    Without an opt-in requirement or a signal for the whole repertoire, only
    works named by a signal, directly or through a holder, can be refused:
    only their groups are decided (the rest are allowed), and the reasons are
    put in place by row (a join of every group on five columns took longer)."""
    key = ["work_id", "version", "use_type", "licensee_id", "segment_start"]
    candidates = pl.col("contract_id").is_not_null() & pl.col("work_id").is_not_null()
    signals = catalogue.consent
    if not consent_required and not (signals["subject"] == "all").any():
        holders = signals.filter(pl.col("subject") == "holder")["subject_id"]
        named = pl.concat([signals.filter(pl.col("subject") == "work")["subject_id"],
                           catalogue.splits.filter(pl.col("holder_id").is_in(holders.implode()))["work_id"]])
        works = groups.select("work", "work_id").unique("work")  # by code, then each work's id once
        named_codes = works.filter(pl.col("work_id").is_in(named.unique().implode()))["work"]
        candidates = candidates & pl.col("work").is_in(named_codes.implode())
    rows = groups.lazy().with_row_index("_row").filter(candidates).select("_row", *key).collect()
    decisions = consent_decisions(as_text(rows.select(key)), catalogue, consent_required, "segment_start")
    refused = (decisions.filter(pl.col("consent_reason").is_not_null())
               .with_columns(pl.col(c).cast(dtype) for c, dtype in rows.select(key).schema.items()))
    hits = rows.join(refused, on=key, how="inner", nulls_equal=True)
    reason = pl.repeat(None, groups.height, dtype=REASON, eager=True).alias("consent_reason")
    return groups.with_columns(reason.scatter(hits["_row"], hits["consent_reason"].cast(REASON)))


def classify(groups: pl.DataFrame, catalogue, contracts: list, consent_required: bool,
             segments: pl.DataFrame) -> pl.DataFrame:
    """Give every usage group its status, reason, contract and split version (Enums;
    `work_key` is not made here: see `work_key`)."""
    by_work = repertoire_matters(contracts)  # a repertoire names works or kinds: scope depends on the work
    starts = segments.sort("segment")["segment_start"]  # segment n is the n-th: put in place by it
    groups = groups.with_columns(pl.lit(starts).gather(pl.col("segment")).alias("segment_start"))
    groups = scope(with_kind(groups, catalogue) if by_work else groups, contracts, by_work)
    groups = with_versions(groups, catalogue, segments.height)
    groups = with_consent(groups, catalogue, consent_required)
    status = (pl.when(pl.col("scope_reason").is_not_null() | pl.col("consent_reason").is_not_null())
              .then(pl.lit("unlicensed", dtype=STATUS))
              .when(pl.col("work_id").is_null() | pl.col("version").is_null()).then(pl.lit("suspense", dtype=STATUS))
              .otherwise(pl.lit("accepted", dtype=STATUS)))
    reason = pl.coalesce("scope_reason", "consent_reason",
                         pl.when(pl.col("work_id").is_null()).then(pl.lit("unknown_work", dtype=REASON))
                         .when(pl.col("version").is_null()).then(pl.lit("no_split", dtype=REASON)))
    return groups.with_columns(status.alias("status"), reason.alias("reason")).with_columns(
        pl.when(pl.col("status") == "unlicensed").then(None).otherwise("contract_id").alias("contract_id"))


def work_key() -> pl.Expr:
    """A group's work key: the catalogue work, or the reference when it names none
    (made only on the rows that need it: as text it is a string per row)."""
    return pl.coalesce("work_id", pl.col("ref").cast(pl.String)).alias("work_key")


def period_end_instant(period) -> dt.datetime:
    """Equal-per-work bases use the split and consent in force at the period's last instant."""
    return period.end - dt.timedelta(microseconds=1)


def with_version_at_end(works: pl.DataFrame, catalogue, period) -> pl.DataFrame:
    at = period_end_instant(period)
    works = works.with_columns(pl.lit(at, dtype=pl.Datetime("us", "UTC")).alias("at"))
    versions = versions_in_force(works.filter(pl.col("work_id").is_not_null()), catalogue.versions, "at")
    works = works.join(versions, on=["work_id", "at"], how="left")
    return works.with_columns(
        pl.when(pl.col("work_id").is_null()).then(pl.lit("suspense"))
        .when(pl.col("version").is_null()).then(pl.lit("suspense")).otherwise(pl.lit("accepted")).alias("status"),
        pl.when(pl.col("work_id").is_null()).then(pl.lit("unknown_work"))
        .when(pl.col("version").is_null()).then(pl.lit("no_split")).alias("reason"),
    )


def covered_works(contracts: list, catalogue, consent_required: bool, period) -> pl.DataFrame:
    """Per contract with a per-covered-work fee: the repertoire's consenting works at the period's end."""
    frames = []
    for contract in contracts:
        for term in contract.terms:
            if getattr(term, "basis", None) != "per_covered_work":
                continue
            works = (catalogue.works.with_columns(pl.col("work_id").alias("work_key"),
                                                  pl.lit("WORK").alias("scheme"))
                     .filter(repertoire_covers(contract)))
            works = with_version_at_end(works, catalogue, period).with_columns(
                pl.lit(term.use_type).alias("use_type"), pl.lit(contract.licensee_id).alias("licensee_id"),
                pl.lit(contract.contract_id).alias("contract_id"))
            decisions = consent_decisions(works.filter(pl.col("version").is_not_null()), catalogue,
                                          consent_required, "at")
            works = works.join(decisions, on=["work_id", "version", "use_type", "licensee_id", "at"], how="left",
                               nulls_equal=True).filter(pl.col("consent_reason").is_null())
            frames.append(works.select("contract_id", "work_key", "version", "status", "reason"))
    return pl.concat(frames).unique() if frames else pl.DataFrame(
        schema={"contract_id": pl.String, "work_key": pl.String, "version": pl.String, "status": pl.String,
                "reason": pl.String})


def used_works(priced: pl.DataFrame, catalogue, period) -> pl.DataFrame:
    """Per contract: every work with priced usage (unknown works included, for suspense)."""
    works = priced.select("contract_id", "work_key", "work_id").unique()
    return with_version_at_end(works, catalogue, period).select("contract_id", "work_key", "version", "status",
                                                                "reason")
