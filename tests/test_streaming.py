"""The streaming two-pass aggregation equals a direct in-memory computation of the same rules."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builders import contract, holder, split, usage, work, write_inputs
from contracts.loading import load_inputs
from settlement import aggregate, intake
from settlement.intake import Period

ROOT = Path(__file__).resolve().parent.parent
PERIOD = Period.parse("2026-10")
LICENSEES = [{"licensee_id": "ai", "name": "AI Firm", "country": "US"},
             {"licensee_id": "bi", "name": "BI Firm", "country": "US"}]
REFS = ("WORK:W1", "WORK:W2", "ISWC:T-034.524.680-1", "ISWC:T0345246801", "ISRC:USRC17607839", "ISWC:T0345246802",
        "nonsense", "WORK:W3")
WHEN = ("2026-10-01T00:00:00Z", "2026-10-15T23:59:59Z", "2026-10-16T00:00:00Z", "2026-10-31T23:59:59Z",
        "2026-09-30T23:59:59Z", "2026-10-32T00:00:00Z")


@st.composite
def messy_rows(draw) -> list[dict]:
    """Rows from small pools, so re-sends, conflicting re-sends, over-attributed outputs,
    bad identifiers and bad values all occur often."""
    rows = []
    for _ in range(draw(st.integers(1, 40))):
        use_type = draw(st.sampled_from(("train", "output", "crawl", "summarize")))
        attribution = draw(st.sampled_from(("", "0.6", "0.5", "1", "1.5"))) if use_type == "output" else ""
        rows.append(usage(f"r{draw(st.integers(0, 12))}", draw(st.sampled_from(REFS)),
                          draw(st.sampled_from(("1", "5", "1000", "-1", "x"))), use_type=use_type,
                          unit=draw(st.sampled_from(("token", "output", "request"))),
                          occurred_at=draw(st.sampled_from(WHEN)),
                          output_id=f"o{draw(st.integers(0, 3))}" if attribution else "",
                          attribution=attribution, licensee_id=draw(st.sampled_from(("ai", "bi")))))
    return rows


def reference_groups(inputs, cuts) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The same rules, applied to all rows at once in memory: validate, refuse identifiers,
    deduplicate, check attribution, keep the counted rows, sum."""
    scans = [intake.scan_usage_file(p, i, inputs.name(p))
             for i, p in enumerate(inputs.usage_files)]
    licensees = list(inputs.licensees)
    rows = (intake.checked(pl.concat(scans), PERIOD, licensees)
            .with_columns(intake.described(intake.check_texts(PERIOD, licensees))).drop("failed_check")
            .collect(engine="in-memory"))
    identifiers = intake.identifier_table(rows["work_ref"].drop_nulls().unique(), inputs.catalogue.ambiguous["ref"].to_list())
    rows = intake.with_identifier_reasons(rows, identifiers)
    rows = intake.attribution_checked(intake.deduplicated(rows.lazy())).collect()
    kept = rows.filter(pl.col("copy") == "kept").join(identifiers.select("work_ref", "ref"), on="work_ref")
    groups = (kept.with_columns(aggregate.segment_of(pl.col("occurred"), cuts).alias("segment"))
              .group_by(aggregate.GROUP_KEY).agg(aggregate.sums()))
    quarantined = rows.filter(pl.col("reason").is_not_null()).select("file_index", "row", "reason").sort("file_index", "row")
    return groups, quarantined


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.lists(messy_rows(), min_size=1, max_size=3), slice_rows=st.sampled_from((1, 4, 1_000_000)),
       key_bits=st.sampled_from((64, 0)), partition_rows=st.sampled_from((1, 3, 10_000_000)),
       record_rows=st.sampled_from((2, 25_000_000)), candidate_rows=st.sampled_from((1, 3, 1_000_000)),
       ref_by_hash=st.booleans())
def test_streaming_and_in_memory_aggregates_are_identical(tmp_path_factory, files, slice_rows, key_bits,
                                                          partition_rows, record_rows, candidate_rows, ref_by_hash):
    """Every group sum, every group's work and every quarantine reason agree between the two-pass streaming
    path and a direct one, however Parquet files are sliced for validation, with the group key packed or not,
    and however many partitions the group sums, the re-send search and the settling of re-sends are computed
    in (no group is split between two: a work's groups share a partition, whichever identifiers name it; nor
    is a record's copies, nor an output's rows for its attribution check); with two licensees, so that
    outputs of one id under both occur; with each row's reference code found by its hash or, as when two
    references share a hash, by its text."""
    folder = write_inputs(tmp_path_factory.mktemp("in"), holders=[holder("a"), holder("b")], licensees=LICENSEES,
                          works=[work("W1", identifiers="ISWC:T-034.524.680-1"), work("W2"), work("W3")],
                          splits=split("W1", {"a": "1/3", "b": "2/3"}, valid_to="2026-10-16")
                          + split("W1", {"a": "1"}, valid_from="2026-10-16") + split("W2", {"b": "1"}),
                          contracts=[contract([{"id": "t", "type": "flat_fee", "amount": "10", "basis": "by_usage",
                                                "use_type": "train"}], use_types=["train", "output", "crawl"])],
                          usage_files={f"u{i}.{('parquet', 'csv', 'jsonl')[i % 3]}": rows
                                       for i, rows in enumerate(files)})
    inputs = load_inputs(folder)
    cuts = aggregate.breakpoints(inputs.catalogue, inputs.contracts, PERIOD)
    settings_ = ("SLICE_ROWS", "KEY_BITS", "PARTITION_ROWS", "RECORD_PARTITION_ROWS", "CANDIDATE_PARTITION_ROWS")
    defaults = [getattr(aggregate, name) for name in settings_]
    for name, value in zip(settings_, (slice_rows, key_bits, partition_rows, record_rows, candidate_rows)):
        setattr(aggregate, name, value)
    by_hash = aggregate.GroupCodes.ref_hashes
    if not ref_by_hash:
        aggregate.GroupCodes.ref_hashes = property(lambda codes: None)
    try:
        streamed = aggregate.aggregate_usage(inputs.usage_files, [inputs.name(p) for p in inputs.usage_files], PERIOD, list(inputs.licensees),
                                             inputs.catalogue.ambiguous["ref"].to_list(), cuts,
                                             inputs.catalogue.refs)
    finally:
        for name, value in zip(settings_, defaults):
            setattr(aggregate, name, value)
        aggregate.GroupCodes.ref_hashes = by_hash
    expected_groups, expected_quarantine = reference_groups(inputs, cuts)
    key = ["file", *[k for k in aggregate.GROUP_KEY if k != "file_index"], "work_id"]
    names = {i: inputs.name(p) for i, p in enumerate(inputs.usage_files)}
    expected = (expected_groups.join(inputs.catalogue.refs, on="ref", how="left")
                .with_columns(pl.col("file_index").replace_strict(names, return_dtype=pl.String).alias("file"))
                .select(*key, *aggregate.SUMS).sort(key, nulls_last=True))
    actual = pl.concat(streamed.partials).select(*key, *aggregate.SUMS).sort(key, nulls_last=True)
    assert expected.to_dicts() == actual.to_dicts()
    quarantine = streamed.quarantine.select("file", "row", "reason").to_dicts()
    assert quarantine == [{"file": names[r["file_index"]], "row": r["row"], "reason": r["reason"]}
                          for r in expected_quarantine.to_dicts()]


@settings(max_examples=100, deadline=None)
@given(refs=st.lists(st.text(max_size=4), unique=True).map(sorted),
       names=st.lists(st.one_of(st.none(), st.sampled_from(["W1", "W2", "a", "zz"])), min_size=50, max_size=50))
def test_work_keys_name_each_work_code(refs, names):
    """The steps after aggregation carry a work by its code and name it by `work_keys`: the
    name of each reference's code is its work key, the catalogue work it names or else itself."""
    work_ids = pl.Series(names[:len(refs)], dtype=pl.String)
    codes = aggregate.GroupCodes({"ref": pl.Series(refs, dtype=pl.String)}, pl.DataFrame(), work_ids, 1, [])
    named = codes.work_keys.gather(codes.work_codes[1:]).to_list()
    assert named == [work_id if work_id is not None else ref for ref, work_id in zip(refs, work_ids.to_list())]
    assert codes.work_keys[0] is None and codes.work_codes[0] == 0


def test_validation_holds_no_whole_file_in_memory(tmp_path):
    """The one query that reads raw rows streams in every format: its physical plan has no
    node that polars' streaming engine marks as memory-intensive or as falling back to the
    in-memory engine (such a node holds a whole column: with `replace`, validating a
    10M-row CSV held all of its rows, 3.6 GiB). The colours come from the plan's own legend."""
    csv = ROOT / "fixtures" / "usage" / "lumen-ai-2026-10-a.csv"
    compressed = tmp_path / "lumen.csv.gz"
    compressed.write_bytes(gzip.compress(csv.read_bytes(), mtime=0))
    files = sorted((ROOT / "fixtures" / "usage").iterdir()) + [compressed]
    assert {path.suffix for path in files} == {".csv", ".parquet", ".jsonl", ".gz"}
    for index, path in enumerate(files):
        window = aggregate.windows(path)[0]
        graph = aggregate.validation(path, index, path.name, window, PERIOD, ["lumen-ai"]).show_graph(
            engine="streaming", plan_stage="physical", raw_output=True, show=False)
        legend = {colour: meaning.strip().removesuffix(" node")
                  for colour, meaning in re.findall(r'COLOR="([^"]+)">⬤</FONT>([^<>]+)', graph)}
        marked = {legend[colour] for colour in re.findall(r'fillcolor="([^"]+)"', graph)}
        assert set(legend.values()) == {"potentially memory-intensive", "in-memory engine fallback"}, graph
        assert not marked, f"{path.name}: {marked}"
