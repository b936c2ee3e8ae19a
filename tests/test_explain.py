"""Explain (`settle explain`): why a holder got an amount for a work, step by step by the
published rules, worked out again from the run's files; a figure the rules do not give is
marked (DESIGN.md, "Who uses it", 3: "why did holder H get this amount for work W?")."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT, settle_cli
from contracts.loading import load_inputs
from settlement import money
from settlement.exports import export
from settlement.explain import MOST_LINES, PART, TIE_BREAK, explain, explained_parts, recomputed_share
from settlement.intake import Period
from settlement.run import settle

CLOCK = "2026-11-05T09:00:00Z"
FIXTURES = ROOT / "fixtures"


def settled(out: Path) -> Path:
    with settle(load_inputs(FIXTURES), Period.parse("2026-10"), CLOCK) as settlement:
        export(settlement, out)
    return out


@pytest.fixture(scope="module")
def run_out(tmp_path_factory) -> Path:
    return settled(tmp_path_factory.mktemp("run") / "out")


def test_every_line_of_the_sample_month_is_what_the_rules_give(run_out):
    """Each of the run's lines, worked out again from its files by the written rules: an
    independent check of every level of every line, and of every holder's balance."""
    lines = pl.read_parquet(run_out / "lines.parquet").with_columns(pl.col("contract_id", "use_type").cast(pl.String))
    explained = 0
    for holder, contract, use_type in lines.select("holder_id", "contract_id", "use_type").unique().sort(
            pl.all()).iter_rows():
        result = explain(run_out, FIXTURES, holder, contract=contract, use_type=use_type)
        assert result.mismatches == 0, "\n".join(result.lines)
        assert result.matched <= MOST_LINES, (holder, contract, use_type)  # every line shown
        explained += result.matched
    assert explained == lines.height == 1321


def test_a_withheld_line_shows_the_holders_total_and_its_part(run_out):
    result = explain(run_out, FIXTURES, "H012", work="W000023", use_type="train")
    text = "\n".join(result.lines)
    assert result.mismatches == 0 and result.matched == 1
    assert "4. withholding at H012's rate on its EUR total after commission over" in text
    assert " × 0.3 = " in text and "(this line's gross − commission of the holder's)" in text
    assert text.splitlines()[-1].startswith("H012's EUR net over all its lines is ")


def test_leftover_units_given_against_rule_5_are_marked(tmp_path, monkeypatch):
    """A run whose largest remainder gives the leftover units to the smallest remainders
    still conserves every amount; only the explanation finds it out."""
    ranked = money.leftover_units
    monkeypatch.setattr(money, "leftover_units", lambda groups, remainders, leftovers: ranked(
        groups, remainders.max() - remainders, leftovers))
    out = settled(tmp_path / "out")
    result = explain(out, FIXTURES, "H009", work="W000001", use_type="train")
    assert result.mismatches >= 1
    assert any("✗ the run wrote" in line and "ranks" in line for line in result.lines)


def test_a_commission_not_at_the_policys_rate_is_marked(tmp_path, monkeypatch):
    from settlement import distribute

    rates = distribute.Rates.of
    monkeypatch.setattr(distribute.Rates, "of", staticmethod(lambda policy, holders, types: rates(
        policy.model_copy(update={"commission": {**dict(policy.commission), "train": "0.11"}}), holders, types)))
    out = settled(tmp_path / "out")
    result = explain(out, FIXTURES, "H009", work="W000001", use_type="train")
    commission = next(line for line in result.lines if "3. commission" in line)
    assert "205.53 × 0.1 = 20.553 → half-even 20.55  ✗ the run wrote 22.61" in commission


def test_lines_are_narrowed_and_the_rest_counted(run_out):
    every = explain(run_out, FIXTURES, "H009")
    assert every.matched == pl.read_parquet(run_out / "lines.parquet").filter(pl.col("holder_id") == "H009").height
    shown = [line for line in every.lines if line.startswith("H009 on ")]
    assert len(shown) == min(every.matched, MOST_LINES)
    narrowed = explain(run_out, FIXTURES, "H009", work="W000001", contract="MUSIC-AI-2026")
    assert narrowed.matched == 2 and all(" under MUSIC-AI-2026 " in line for line in narrowed.lines
                                         if line.startswith("H009 on "))


def test_the_command_line_explains_and_refuses_what_it_cannot(run_out, tmp_path):
    done = settle_cli("explain", str(run_out), str(FIXTURES), "--holder", "H009", "--work", "W000001",
                      "--use-type", "fine_tune")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("H009 on W000001 (fine_tune, split 2020-01-01) under MUSIC-AI-2026")
    assert "12.43 gross  ✓" in done.stdout and "5. net = 12.43 − 1.24 − 0.00 = 11.19 (lines.parquet)  ✓" in done.stdout
    done = settle_cli("explain", str(run_out), str(FIXTURES), "--holder", "H004")
    assert done.returncode == 2 and "holder H004 has no line in run" in done.stderr
    inputs = tmp_path / "inputs"
    shutil.copytree(FIXTURES, inputs)
    (inputs / "policy.yaml").write_text((FIXTURES / "policy.yaml").read_text(encoding="utf-8").replace(
        '"0.10"', '"0.11"'), encoding="utf-8")
    done = settle_cli("explain", str(run_out), str(inputs), "--holder", "H009")
    assert done.returncode == 2 and "policy.yaml: is not the file the run's manifest.json pins" in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_a_run_folder_named_like_a_glob_is_read_as_named(run_out, tmp_path):
    shutil.copytree(run_out, tmp_path / "run[1]")
    decoy = tmp_path / "run1"  # what the pattern run[1] would match
    shutil.copytree(run_out, decoy)
    pl.read_parquet(decoy / "lines.parquet").clear().write_parquet(decoy / "lines.parquet")
    result = explain(tmp_path / "run[1]", FIXTURES, "H012", work="W000023", use_type="train")
    assert result.mismatches == 0 and result.matched == 1


def test_a_holder_line_missing_from_its_split_is_marked(run_out, tmp_path):
    """A forger drops one holder's line and re-pins the files: the shares left do not sum to 1."""
    import hashlib
    import json

    out = tmp_path / "out"
    shutil.copytree(run_out, out)
    lines = pl.read_parquet(out / "lines.parquet")
    dropped = (pl.col("holder_id") == "H024") & (pl.col("work_id") == "W000001") & (pl.col("use_type") == "fine_tune")
    lines.filter(~dropped).write_parquet(out / "lines.parquet")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    for entry in manifest["outputs"]:
        if entry["path"] == "lines.parquet":
            entry["sha256"] = hashlib.sha256((out / "lines.parquet").read_bytes()).hexdigest()
    (out / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    result = explain(out, FIXTURES, "H009", work="W000001", use_type="fine_tune")
    assert any(line.startswith("  2. the holders of split 2020-01-01 and their shares: H009 1/3, H019 1/3  ✗ the "
                               "shares sum to 2/3, not 1") for line in result.lines)


def test_outputs_without_attribution_weighing_past_64_bits_are_explained(tmp_path):
    """An output without attribution weighs 10^9 × its units: 10^12 units weigh 10^21."""
    inputs = tmp_path / "inputs"
    shutil.copytree(FIXTURES, inputs)
    log = inputs / "usage" / "quill-labs-2026-10.jsonl"
    log.write_text(log.read_text(encoding="utf-8") + (
        '{"record_id": "qul-huge", "licensee_id": "quill-labs", "model_id": "quill-writer-2", "work_ref": '
        '"ISWC:T0620484254", "use_type": "output", "units": 1000000000000, "unit": "output", "occurred_at": '
        '"2026-10-02T01:44:14Z", "territory": null, "output_id": "out-huge", "attribution": null}\n'), encoding="utf-8")
    with settle(load_inputs(inputs), Period.parse("2026-10"), CLOCK) as settlement:
        export(settlement, tmp_path / "out")
    result = explain(tmp_path / "out", inputs, "H009", contract="MUSIC-REVMIN-2026")
    assert result.mismatches == 0 and result.matched >= 1


KEY_TEXT = st.sampled_from(["", "a", "b", "B", "é", "W1", "W10", "W2", "ISRC:X"])


@st.composite
def terms_parts(draw) -> pl.DataFrame:
    """allocations.csv's rows of a few terms: small weights, so that remainders tie often,
    and weights past 64 bits; suspense parts with no version; keys that differ by one column."""
    rows = []
    for contract in draw(st.lists(st.sampled_from(["C1", "C2", "C3"]), min_size=1, max_size=3, unique=True)):
        for term in draw(st.lists(st.sampled_from(["t1", "t2", "t3"]), min_size=1, max_size=3, unique=True)):
            keys = draw(st.lists(st.tuples(KEY_TEXT, st.sampled_from(["train", "index"]),
                                           st.sampled_from(["v1", "v2", None])), min_size=1, max_size=25, unique=True))
            big = draw(st.booleans())
            for work_key, use_type, version in keys:
                weight = draw(st.integers(0, 10**27) if big else st.integers(0, 4))
                rows.append((contract, term, work_key, use_type, version,
                             "accepted" if version is not None else "suspense", weight,
                             draw(st.integers(0, 10**6))))
    frame = pl.DataFrame(rows, orient="row", schema={
        "contract_id": pl.String, "term_id": pl.String, "work_key": pl.String, "use_type": pl.String,
        "version": pl.String, "status": pl.String, "weight": pl.Int128, "amount_minor": pl.Int128})
    positive = frame.group_by("contract_id", "term_id").agg(pl.col("weight").sum() > 0)
    return frame.join(positive.filter(pl.col("weight")).drop("weight"), on=["contract_id", "term_id"], how="semi")


@settings(max_examples=60, deadline=None)
@given(terms_parts(), st.data())
def test_each_explained_part_is_ranked_in_streaming_passes_as_among_all_of_its_terms_parts(allocations, data):
    """explain ranks an explained line's part among its term's parts by sums over
    allocations.csv, never holding the term (68M parts at 100M usage rows): the share it
    shows is the one worked out on every part of the term held in memory."""
    accepted = allocations.filter(pl.col("status") == "accepted").select(PART).unique().sort(PART)
    if accepted.is_empty():
        return
    keys = accepted.sample(data.draw(st.integers(1, accepted.height)), seed=data.draw(st.integers(0, 99)))
    parts = explained_parts(allocations.lazy(), keys)
    assert parts.height == allocations.filter(pl.col("status") == "accepted").join(keys, on=PART, how="semi").height
    for part in parts.iter_rows(named=True):
        term = allocations.filter(pl.col("contract_id") == part["contract_id"], pl.col("term_id") == part["term_id"])
        total = int(term["amount_minor"].sum())
        mine = pl.all_horizontal(pl.col(k) == part[k] for k in TIE_BREAK)
        share = recomputed_share(term, total, mine, TIE_BREAK)
        assert (part["total"], part["weight"], part["weight_sum"], part["parts"], part["floor"],
                total - part["floor_sum"], part["rank"]) == (share.total, share.weight, share.weight_sum,
                                                             share.parts, share.floor, share.leftover, share.rank)
