"""Packed Enum and code keys sort, group and join exactly as the columns they pack."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from settlement.keys import Codes, grouped, joined, lexical_enum, packed_key, run_sums, sorted_by

WORDS = ["", "A", "B", "a", "b", "W1", "W10", "W2", "é", "z z", "(no allocation base)"]
COLUMNS = ["k1", "k2", "k3"]


@st.composite
def keyed_frames(draw) -> pl.DataFrame:
    """Three Enum key columns drawn from small pools (with nulls), and a value."""
    height = draw(st.integers(0, 30))
    data = {}
    for column in COLUMNS:
        pool = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=6, unique=True))
        values = draw(st.lists(st.one_of(st.none(), st.sampled_from(pool)), min_size=height, max_size=height))
        data[column] = pl.Series(values, dtype=lexical_enum(pool))
    data["value"] = pl.Series(draw(st.lists(st.integers(0, 99), min_size=height, max_size=height)), dtype=pl.Int64)
    return pl.DataFrame(data)


def as_text(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col(COLUMNS).cast(pl.String))


@settings(max_examples=80, deadline=None)
@given(keyed_frames(), st.booleans())
def test_packed_sort_is_the_string_sort(frame, nulls_last):
    """Sorting by the packed key orders rows as sorting the key columns as strings (code points)."""
    assert packed_key(frame, COLUMNS) is not None
    expected = as_text(frame).sort(COLUMNS, nulls_last=nulls_last, maintain_order=True)
    assert as_text(sorted_by(frame, COLUMNS, nulls_last=nulls_last)).equals(expected)


@settings(max_examples=40, deadline=None)
@given(keyed_frames(), st.booleans())
def test_frames_already_in_order_or_in_reverse_order_come_out_sorted(frame, nulls_last):
    """sorted_by skips a frame already in order (a linear check) and still sorts one in
    descending order: the check must not accept either direction."""
    once = sorted_by(frame, COLUMNS, nulls_last=nulls_last)
    assert sorted_by(once, COLUMNS, nulls_last=nulls_last).equals(once)
    again = sorted_by(once.reverse(), COLUMNS, nulls_last=nulls_last)
    assert as_text(again).select(COLUMNS).equals(as_text(once).select(COLUMNS))


@settings(max_examples=80, deadline=None)
@given(keyed_frames())
def test_grouped_is_group_by(frame):
    expected = frame.group_by(COLUMNS).agg(pl.col("value").sum())
    actual = grouped(frame, COLUMNS, pl.col("value").sum())
    order = [*COLUMNS, "value"]
    assert as_text(actual).select(order).sort(order).equals(as_text(expected).select(order).sort(order))


@settings(max_examples=80, deadline=None)
@given(keyed_frames(), st.booleans())
def test_run_sums_is_group_by_in_order(frame, in_order):
    """On a frame sorted by its key, run_sums gives group_by's groups in order of first
    appearance, each summed; on a frame not in order it still does (by grouping)."""
    if in_order:
        frame = sorted_by(frame, COLUMNS)
    expected = frame.group_by(COLUMNS, maintain_order=True).agg(
        pl.col("value").cast(pl.Int128).sum(), (pl.col("value") * 2).cast(pl.Int128).sum().alias("twice"))
    assert run_sums(frame, COLUMNS, value=pl.col("value"), twice=pl.col("value") * 2).equals(expected)


@settings(max_examples=80, deadline=None)
@given(keyed_frames(), st.sampled_from(["inner", "left", "full"]))
def test_joined_is_join_with_equal_nulls(frame, how):
    """Keys only on the left, only on the right, on both, and null keys all come out as a join's."""
    half = frame.height // 2
    left = frame.head(half)
    right = frame.tail(frame.height - half).group_by(COLUMNS).agg(pl.col("value").max().alias("other"))
    expected = left.join(right, on=COLUMNS, how=how, nulls_equal=True, coalesce=True)
    actual = joined(left, right, on=COLUMNS, how=how)
    order = [*COLUMNS, "value", "other"]
    assert as_text(actual).select(order).sort(order).equals(as_text(expected).select(order).sort(order))


def test_keys_too_wide_to_pack_fall_back_to_the_columns():
    wide = pl.Enum([f"c{i:07d}" for i in range(1 << 17)])
    frame = pl.DataFrame({c: pl.Series(["c0000001", "c0000000"], dtype=wide) for c in "abcd"})
    assert packed_key(frame, list("abcd")) is None
    assert sorted_by(frame, list("abcd"))["a"].to_list() == ["c0000000", "c0000001"]


def with_codes(frame: pl.DataFrame) -> tuple[pl.DataFrame, Codes]:
    """`frame` with k2 as Codes (UInt32 ranks of its categories), and the codes."""
    codes = Codes(pl.Series(frame.schema["k2"].categories))
    return frame.with_columns(codes.encode("k2")), codes


@settings(max_examples=80, deadline=None)
@given(keyed_frames(), st.booleans(), st.sampled_from(["inner", "left", "full"]))
def test_codes_sort_and_join_as_their_strings(frame, nulls_last, how):
    """A code column (works, holders) packs with Enums, sorts as its strings and joins as a join does,
    however many codes each side of the join happens to use."""
    coded, codes = with_codes(frame)
    assert coded.schema["k2"] == pl.UInt32 and packed_key(coded, COLUMNS) is not None
    expected = as_text(frame).sort(COLUMNS, nulls_last=nulls_last, maintain_order=True)
    assert as_text(sorted_by(coded, COLUMNS, nulls_last=nulls_last).with_columns(codes.decode("k2"))).equals(expected)
    half = coded.height // 2
    left, right = coded.head(half), coded.tail(coded.height - half).group_by(COLUMNS).agg(
        pl.col("value").max().alias("other"))
    order = [*COLUMNS, "value", "other"]
    expected = left.join(right, on=COLUMNS, how=how, nulls_equal=True, coalesce=True)
    actual = joined(left, right, on=COLUMNS, how=how)
    assert as_text(actual).select(order).sort(order).equals(as_text(expected).select(order).sort(order))
