"""Identifier normalisation: examples per scheme, properties, and scalar/polars agreement."""

from __future__ import annotations

import string

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.identifiers import (
    EXPECTED,
    REF_LENGTH_MAX,
    SCHEMES,
    WHITESPACE,
    IdentifierError,
    normalise_doi,
    normalise_isbn,
    normalise_iscc,
    normalise_isrc,
    normalise_iswc,
    normalise_ref,
    normalise_url,
    normalised_ref_expr,
)

REASONS = {
    "missing_field", "unknown_scheme", "invalid_isrc", "invalid_iswc", "invalid_isbn",
    "invalid_doi", "invalid_url", "invalid_iscc", "invalid_work_id",
}
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def scalar(raw: str | None) -> tuple[str | None, str | None]:
    """normalise_ref as a (ref, reason) pair, the shape of the polars struct."""
    try:
        return normalise_ref(raw), None
    except IdentifierError as error:
        return None, error.reason


def vector(raws: list[str | None], engine: str = "streaming") -> list[tuple[str | None, str | None]]:
    """normalised_ref_expr over a column, run in the given polars engine."""
    frame = pl.LazyFrame({"raw": raws}, schema={"raw": pl.String})
    out = frame.select(normalised_ref_expr(pl.col("raw")).alias("n")).unnest("n").collect(engine=engine)
    assert out.schema == pl.Schema({"ref": pl.String, "reason": pl.String})
    return list(out.iter_rows())


def assert_agree(raws: list[str | None]) -> None:
    """Both implementations give the same (ref, reason) for every raw ref."""
    assert vector(raws) == [scalar(raw) for raw in raws]


# --- independent check-digit arithmetic (not the module's) -------------------


def iswc_check(nine: str) -> str:
    return str((10 - (1 + sum(i * int(d) for i, d in enumerate(nine, 1))) % 10) % 10)


def isbn13_check(twelve: str) -> str:
    return str(-sum(int(d) * (1, 3)[i % 2] for i, d in enumerate(twelve)) % 10)


def isbn10_check(nine: str) -> str:
    value = -sum((10 - i) * int(d) for i, d in enumerate(nine)) % 11
    return "X" if value == 10 else str(value)


# --- table-driven examples ------------------------------------------------------

VALID = [
    # ISRC
    ("ISRC:USRC17607839", "ISRC:USRC17607839"),
    ("isrc:us-rc1-76-07839", "ISRC:USRC17607839"),
    ("  Isrc:US RC1 76 07839 \n", "ISRC:USRC17607839"),
    ("ISRC:gb-a1b-99-00001", "ISRC:GBA1B9900001"),
    # ISWC (T-034.524.680-1 is the ISO 15707 textbook example)
    ("ISWC:T-034.524.680-1", "ISWC:T0345246801"),
    ("iswc:T0345246801", "ISWC:T0345246801"),
    ("ISWC:t 034 524 680 1", "ISWC:T0345246801"),
    ("ISWC:T-345.246.800-3", "ISWC:T3452468003"),
    # ISBN
    ("ISBN:0-306-40615-2", "ISBN:9780306406157"),
    ("ISBN:978-0-306-40615-7", "ISBN:9780306406157"),
    ("isbn:978 0 306 40615 7", "ISBN:9780306406157"),
    ("ISBN:080442957X", "ISBN:9780804429573"),
    ("ISBN:080442957x", "ISBN:9780804429573"),
    ("ISBN:979-10-90636-07-1", "ISBN:9791090636071"),
    # DOI
    ("DOI:10.1000/xyz123", "DOI:10.1000/xyz123"),
    ("doi:10.1000/XYZ123", "DOI:10.1000/xyz123"),
    ("DOI:doi:10.1000/XYZ123", "DOI:10.1000/xyz123"),
    ("DOI:https://doi.org/10.1038/NPHYS1170", "DOI:10.1038/nphys1170"),
    ("DOI:HTTP://DOI.ORG/10.1038/nphys1170", "DOI:10.1038/nphys1170"),
    ("DOI:https://dx.doi.org/10.1002/(SICI)1097-4571", "DOI:10.1002/(sici)1097-4571"),
    ("DOI:10.123456789/ÄBC", "DOI:10.123456789/Äbc"),  # only ASCII is case-folded
    # URL
    ("URL:HTTPS://Example.COM:443/a/b/?utm_source=x&b=2&a=1#frag", "URL:https://example.com/a/b?a=1&b=2"),
    ("url:http://example.com:80/", "URL:http://example.com"),
    ("URL:http://example.com:443/x", "URL:http://example.com:443/x"),
    ("URL:https://example.com:8443/Path/Case/", "URL:https://example.com:8443/Path/Case"),
    ("URL:https://example.com/a//?", "URL:https://example.com/a"),
    ("URL:https://example.com?Gclid=1&FBCLID=2&mc_cid=3&mc_eid=4&msclkid=5&igshid=6&ref_src=7&UTM_x", "URL:https://example.com"),
    ("URL:https://example.com/?z=1&&a=2&a=1&gclidx=3", "URL:https://example.com?a=1&a=2&gclidx=3&z=1"),
    ("URL:https://User:Pw@Example.com/", "URL:https://User:Pw@example.com"),
    ("URL:http://[2001:DB8::1]:8080/x", "URL:http://[2001:db8::1]:8080/x"),
    ("URL:http://example.com:/x#?a=1", "URL:http://example.com/x"),
    # ISCC
    ("ISCC:KACYPXW445FTYNJ3", "ISCC:KACYPXW445FTYNJ3"),
    ("iscc:kacy-pxw4-45ft-ynj3", "ISCC:KACYPXW445FTYNJ3"),
    ("ISCC:ISCC:KACYPXW445FTYNJ3", "ISCC:KACYPXW445FTYNJ3"),
    ("ISCC:iscc:kacypxw445ftynj3", "ISCC:KACYPXW445FTYNJ3"),
    # WORK
    ("WORK:W-000123", "WORK:W-000123"),
    ("work:  Mixed-Case_id:1  ", "WORK:Mixed-Case_id:1"),
    ("WORK:" + "w" * 128, "WORK:" + "w" * 128),
]

INVALID = [
    # missing
    ("", "missing_field"),
    ("   \t\n", "missing_field"),
    ("\u3000\xa0\x1c", "missing_field"),
    (None, "missing_field"),
    # scheme
    ("USRC17607839", "unknown_scheme"),
    ("FOO:bar", "unknown_scheme"),
    ("IS RC:USRC17607839", "unknown_scheme"),
    (":USRC17607839", "unknown_scheme"),
    ("ıSRC:USRC17607839", "unknown_scheme"),  # dotless i upper-cases to I in Python
    ("https://example.com", "unknown_scheme"),
    ("x" * 10_000, "unknown_scheme"),
    # ISRC
    ("ISRC:", "invalid_isrc"),
    ("ISRC:USRC1760783", "invalid_isrc"),
    ("ISRC:USRC176078391", "invalid_isrc"),
    ("ISRC:U1RC17607839", "invalid_isrc"),
    ("ISRC:USRC1760783X", "invalid_isrc"),
    ("ISRC:US_RC17607839", "invalid_isrc"),
    ("ISRC:USRC1760783٩", "invalid_isrc"),  # Arabic-Indic digit
    ("ISRC:" + "U" * 10_000, "invalid_isrc"),
    ("ISRC:USRC17607839" + " " * REF_LENGTH_MAX, "invalid_isrc"),  # raw longer than the limit
    # ISWC
    ("ISWC:T-034.524.680-2", "invalid_iswc"),
    ("ISWC:T-345.246.800-1", "invalid_iswc"),  # docs/formats.md example: check digit should be 3
    ("ISWC:T-034.524.680", "invalid_iswc"),
    ("ISWC:034.524.680-1", "invalid_iswc"),
    ("ISWC:T-034.524.680-11", "invalid_iswc"),
    ("ISWC:T_034.524.680-1", "invalid_iswc"),
    # ISBN
    ("ISBN:0-306-40615-3", "invalid_isbn"),
    ("ISBN:978-0-306-40615-8", "invalid_isbn"),
    ("ISBN:977-0-306-40615-7", "invalid_isbn"),
    ("ISBN:0-306-40615", "invalid_isbn"),
    ("ISBN:X-306-40615-2", "invalid_isbn"),
    ("ISBN:978030640615X", "invalid_isbn"),
    ("ISBN:" + "9" * 10_000, "invalid_isbn"),
    # DOI
    ("DOI:10.100/xyz", "invalid_doi"),
    ("DOI:10.1234567890/xyz", "invalid_doi"),
    ("DOI:10.1000/", "invalid_doi"),
    ("DOI:10.1000", "invalid_doi"),
    ("DOI:11.1000/xyz", "invalid_doi"),
    ("DOI:10.1000/x y", "invalid_doi"),
    ("DOI:https://example.org/10.1000/xyz", "invalid_doi"),
    ("DOI:10.1000/" + "x" * 10_000, "invalid_doi"),
    # URL
    ("URL:example.com", "invalid_url"),
    ("URL:ftp://example.com/x", "invalid_url"),
    ("URL:https://", "invalid_url"),
    ("URL:https:///path", "invalid_url"),
    ("URL:https://exa mple.com", "invalid_url"),
    ("URL:https://example.com:8o/x", "invalid_url"),
    ("URL:https://a@b@example.com", "invalid_url"),
    ("URL:https://example.com/" + "x" * 10_000, "invalid_url"),
    # ISCC
    ("ISCC:KACYPXW44", "invalid_iscc"),
    ("ISCC:KACYPXW445FTYNJ1", "invalid_iscc"),
    ("ISCC:KACYPXW445FTYNJ8", "invalid_iscc"),
    ("ISCC:" + "A" * 129, "invalid_iscc"),
    ("ISCC:" + "A" * 10_000, "invalid_iscc"),
    # WORK
    ("WORK:", "invalid_work_id"),
    ("WORK:   ", "invalid_work_id"),
    ("WORK:W 1", "invalid_work_id"),
    ("WORK:W\u00a01", "invalid_work_id"),
    ("WORK:" + "w" * 129, "invalid_work_id"),
    ("WORK:" + "w" * 10_000, "invalid_work_id"),
]


@pytest.mark.parametrize(("raw", "canonical"), VALID)
def test_valid_examples_normalise_to_the_canonical_form(raw, canonical):
    """Each accepted spelling maps to its documented canonical ref."""
    assert normalise_ref(raw) == canonical


@pytest.mark.parametrize(("raw", "reason"), INVALID)
def test_invalid_examples_raise_their_reason_code(raw, reason):
    """Each rejected ref raises IdentifierError carrying its reason and expected-phrase."""
    with pytest.raises(IdentifierError) as caught:
        normalise_ref(raw)
    assert caught.value.reason == reason
    assert caught.value.expected == EXPECTED[reason]
    assert len(str(caught.value)) < 400  # a 10,000-character value is not echoed whole


def test_polars_expression_matches_every_table_example():
    """The vectorised expression gives the same ref or reason as the tables, in both engines."""
    raws = [raw for raw, _ in VALID + INVALID]
    expected = [(canonical, None) for _, canonical in VALID] + [(None, reason) for _, reason in INVALID]
    assert vector(raws, "streaming") == expected
    assert vector(raws, "in-memory") == expected


@pytest.mark.parametrize(
    ("function", "value", "canonical"),
    [
        (normalise_isrc, "us-rc1-76-07839", "USRC17607839"),
        (normalise_iswc, "T-034.524.680-1", "T0345246801"),
        (normalise_isbn, "0-306-40615-2", "9780306406157"),
        (normalise_doi, "https://doi.org/10.1000/XYZ123", "10.1000/xyz123"),
        (normalise_url, "HTTPS://Example.COM:443/a/b/?utm_source=x&b=2&a=1#frag", "https://example.com/a/b?a=1&b=2"),
        (normalise_iscc, "ISCC:kacy-pxw4-45ft-ynj3", "KACYPXW445FTYNJ3"),
    ],
)
def test_per_scheme_functions_take_and_return_unprefixed_values(function, value, canonical):
    """The per-scheme functions normalise a bare value and reject a wrong one with their own reason."""
    assert function(value) == canonical
    with pytest.raises(IdentifierError) as caught:
        function("?")
    assert caught.value.reason.startswith("invalid_")


def test_reason_codes_and_expected_phrases_are_the_closed_set():
    """EXPECTED has a phrase for exactly the documented reason codes, and SCHEMES is the documented list."""
    assert set(EXPECTED) == REASONS
    assert all(phrase.strip() for phrase in EXPECTED.values())
    assert SCHEMES == ("ISRC", "ISWC", "ISBN", "DOI", "URL", "ISCC", "WORK")


def test_whitespace_set_is_everything_python_calls_whitespace():
    """The explicit whitespace set covers str.isspace(), so stripping never depends on the engine."""
    assert {c for c in map(chr, range(0x110000)) if c.isspace()} == set(WHITESPACE)


def test_expression_has_no_python_callbacks():
    """The expression is pure polars (no python_udf), so the streaming engine runs it natively."""
    assert "python" not in str(normalised_ref_expr(pl.col("raw"))).lower()


def test_null_and_all_null_columns():
    """A null ref (also in an all-null column) gives a null ref and reason missing_field."""
    assert vector([None, None]) == [(None, "missing_field")] * 2


# --- generators ----------------------------------------------------------------------

DIGITS, LETTERS, ALNUM = string.digits, string.ascii_uppercase, string.ascii_uppercase + string.digits
BASE32 = string.ascii_uppercase + "234567"


def chars(alphabet: str, size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=size, max_size=size)


def random_case(text: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(text), max_size=len(text)).map(
        lambda flips: "".join(c.swapcase() if flip else c for c, flip in zip(text, flips))
    )


def sprinkle(text: str, fillers: str) -> st.SearchStrategy[str]:
    """Insert filler characters (hyphens, spaces) between the characters of text."""
    return st.lists(st.sampled_from(["", "", ""] + list(fillers)), min_size=len(text), max_size=len(text)).map(
        lambda gaps: "".join(c + gap for c, gap in zip(text, gaps))
    )


isrc_codes = st.builds(lambda a, b, c: a + b + c, chars(LETTERS, 2), chars(ALNUM, 3), chars(DIGITS, 7))
iswc_codes = chars(DIGITS, 9).map(lambda d: "T" + d + iswc_check(d))
isbn10_codes = chars(DIGITS, 9).map(lambda d: d + isbn10_check(d))
isbn13_codes = st.builds(lambda p, d: p + d + isbn13_check(p + d), st.sampled_from(["978", "979"]), chars(DIGITS, 9))
doi_suffix = st.text(alphabet=string.ascii_letters + string.digits + "-._;()/:<>", min_size=1, max_size=20)
doi_codes = st.builds(lambda reg, suffix: f"10.{reg}/{suffix}", st.text(DIGITS, min_size=4, max_size=9), doi_suffix)
doi_prefixes = st.sampled_from(["", "doi:", "DOI:", "https://doi.org/", "http://doi.org/", "https://dx.doi.org/"])
iscc_codes = st.text(alphabet=BASE32, min_size=10, max_size=40)
work_ids = st.text(alphabet=string.ascii_letters + string.digits + "-_:.é", min_size=1, max_size=20)

label = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=8)
hosts = st.lists(label, min_size=1, max_size=3).map(".".join)
segment = st.text(alphabet=string.ascii_letters + string.digits + "-_.~%", max_size=6)
paths = st.builds(
    lambda segs, slash: "".join("/" + s for s in segs) + slash, st.lists(segment, max_size=3), st.sampled_from(["", "/", "//"])
)
params = st.one_of(
    st.sampled_from(["utm_source=x", "UTM_Medium=y", "utm_", "gclid=1", "FbClid=2", "ref_src=t", "MC_EID=9", ""]),
    st.builds(lambda n, v: f"{n}={v}", st.text(string.ascii_letters, min_size=1, max_size=4), st.text(ALNUM, max_size=4)),
    st.text(string.ascii_letters, min_size=1, max_size=4),
)
queries = st.one_of(st.just(""), st.lists(params, max_size=5).map(lambda ps: "?" + "&".join(ps)))
urls_parts = st.tuples(
    st.sampled_from(["http", "https", "HTTP", "Https"]),
    st.sampled_from(["", "user@", "u:p@"]),
    hosts,
    st.sampled_from(["", ":", ":80", ":443", ":8080"]),
    paths,
    queries,
    st.sampled_from(["", "#", "#frag", "#a?b=1"]),
)


def url_from(parts: tuple[str, ...]) -> str:
    return "".join((parts[0], "://") + parts[1:])


valid_refs = st.one_of(
    isrc_codes.flatmap(lambda c: sprinkle(c, "- ")).flatmap(random_case).map(lambda v: "ISRC:" + v),
    iswc_codes.map(lambda c: f"{c[0]}-{c[1:4]}.{c[4:7]}.{c[7:10]}-{c[10]}").flatmap(random_case).map(lambda v: "ISWC:" + v),
    iswc_codes.flatmap(lambda c: sprinkle(c, "-. ")).map(lambda v: "iswc:" + v),
    st.one_of(isbn10_codes, isbn13_codes).flatmap(lambda c: sprinkle(c, "- ")).map(lambda v: "ISBN:" + v),
    st.builds(lambda p, d: "DOI:" + p + d, doi_prefixes, doi_codes),
    urls_parts.map(url_from).map(lambda u: "URL:" + u),
    st.builds(lambda inner, c: "ISCC:" + inner + c, st.sampled_from(["", "ISCC:", "iscc:"]), iscc_codes).flatmap(random_case),
    work_ids.map(lambda w: "WORK:" + w),
)

NOISE = list("-. :/?&=#@_xX09aZ%" + WHITESPACE) + ["ı", "ſ", "\u212a", "٣", "É", "ß", "\x00", "😀"]


@st.composite
def mutated(draw, refs=valid_refs):
    """A valid ref with a few random edits: near-valid inputs hit every boundary of the rules."""
    text = draw(refs)
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, max(len(text) - 1, 0)))
        op = draw(st.sampled_from(["replace", "insert", "delete", "swapcase", "pad"]))
        noise = draw(st.sampled_from(NOISE))
        if op == "replace":
            text = text[:i] + noise + text[i + 1 :]
        elif op == "insert":
            text = text[:i] + noise + text[i:]
        elif op == "delete":
            text = text[:i] + text[i + 1 :]
        elif op == "swapcase":
            text = text[:i] + text[i:].swapcase()
        else:
            text = noise + text + noise
    return text


padded_refs = st.builds(
    lambda left, raw, right: left + raw + right,
    st.text(alphabet=WHITESPACE, max_size=2),
    st.one_of(valid_refs, mutated()),
    st.text(alphabet=WHITESPACE, max_size=2),
)
schemes_any_case = st.sampled_from(list(SCHEMES) + [s.lower() for s in SCHEMES] + ["FOO", "isrc ", "", "X"])
random_refs = st.one_of(
    st.none(),
    st.text(),
    st.builds(lambda s, t: f"{s}:{t}", schemes_any_case, st.text()),
)


# --- properties -----------------------------------------------------------------------


@PROPERTY
@given(st.lists(st.one_of(valid_refs, mutated(), random_refs), max_size=30))
def test_normalisation_is_idempotent(raws):
    """A canonical ref normalises to itself, in the scalar and in the polars version."""
    canon = [ref for ref, _ in map(scalar, raws) if ref is not None]
    assert [normalise_ref(ref) for ref in canon] == canon
    assert vector(canon) == [(ref, None) for ref in canon]


@PROPERTY
@given(valid_refs)
def test_generated_valid_refs_are_accepted(raw):
    """Every generated well-formed ref is accepted, so the mutation tests start from valid inputs."""
    assert scalar(raw)[1] is None


@PROPERTY
@given(
    st.one_of(
        isrc_codes.map(lambda c: ("ISRC", c)),
        iswc_codes.map(lambda c: ("ISWC", c)),
        st.one_of(isbn10_codes, isbn13_codes).map(lambda c: ("ISBN", c)),
        doi_codes.map(lambda c: ("DOI", c)),
    ),
    st.data(),
)
def test_isrc_iswc_isbn_doi_are_case_insensitive(scheme_and_code, data):
    """Any mix of upper and lower case in an ISRC, ISWC, ISBN or DOI (and its prefix) gives one canonical ref."""
    scheme, code = scheme_and_code
    variant = data.draw(random_case(f"{scheme}:{code}"))
    assert normalise_ref(variant) == normalise_ref(f"{scheme}:{code}") == normalise_ref(f"{scheme}:{code}".lower())


@PROPERTY
@given(urls_parts, st.data())
def test_url_scheme_and_host_are_case_insensitive(parts, data):
    """Changing the case of a URL's scheme or host never changes its canonical ref."""
    scheme, user, host, *rest = parts
    other = (data.draw(random_case(scheme)), user, data.draw(random_case(host)), *rest)
    assert normalise_ref("URL:" + url_from(other)) == normalise_ref("URL:" + url_from(parts))


@PROPERTY
@given(chars(DIGITS, 9), st.data())
def test_isbn10_and_its_isbn13_have_one_canonical(nine, data):
    """An ISBN-10 and the 978 ISBN-13 of the same book normalise to the same ref."""
    isbn10 = nine + isbn10_check(nine)
    isbn13 = "978" + nine + isbn13_check("978" + nine)
    spelled10 = data.draw(sprinkle(isbn10, "- "))
    assert normalise_ref("ISBN:" + spelled10) == normalise_ref("ISBN:" + isbn13) == "ISBN:" + isbn13


@PROPERTY
@given(chars(DIGITS, 9), st.integers(1, 9))
def test_a_wrong_check_digit_is_rejected(nine, delta):
    """Changing the check digit of an ISWC, ISBN-10 or ISBN-13 makes it invalid."""
    isbn13 = "978" + nine
    wrong10 = (int(isbn10_check(nine).replace("X", "10")) + delta) % 11
    assert scalar(f"ISWC:T{nine}{(int(iswc_check(nine)) + delta) % 10}") == (None, "invalid_iswc")
    assert scalar(f"ISBN:{isbn13}{(int(isbn13_check(isbn13)) + delta) % 10}") == (None, "invalid_isbn")
    assert scalar(f"ISBN:{nine}{'X' if wrong10 == 10 else wrong10}") == (None, "invalid_isbn")


@PROPERTY
@given(st.lists(random_refs, max_size=40))
def test_scalar_and_polars_agree_on_random_text(raws):
    """On arbitrary text (with and without a scheme prefix) both versions give the same ref or reason."""
    assert_agree(raws)


@PROPERTY
@given(st.lists(st.one_of(mutated(), valid_refs, padded_refs), max_size=40))
def test_scalar_and_polars_agree_on_near_valid_identifiers(raws):
    """On valid identifiers, mutations of them and whitespace-padded ones both versions give the same ref or reason."""
    assert_agree(raws)


@PROPERTY
@given(st.lists(st.one_of(mutated(), random_refs), min_size=1, max_size=5), st.integers(REF_LENGTH_MAX - 3, REF_LENGTH_MAX + 3))
def test_scalar_and_polars_agree_at_the_length_limit(raws, length):
    """Refs padded to around REF_LENGTH_MAX get the same answer from both versions."""
    padded = [None if raw is None else raw + "/" * max(length - len(raw), 0) for raw in raws]
    assert_agree(padded)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(valid_refs, mutated(), random_refs), max_size=30), st.data())
def test_canonical_spellings_skip_normalisation_without_changing_the_table(raws, data):
    """Intake lets references already spelled as a catalogue identifier skip normalisation;
    the identifier table is the same as when every reference is normalised."""
    from settlement.intake import identifier_table

    refs = pl.DataFrame({"raw": raws}, schema={"raw": pl.String}).select(
        normalised_ref_expr(pl.col("raw")).struct.field("ref"))["ref"].drop_nulls()
    canonical = pl.Series(data.draw(st.lists(st.sampled_from(refs.to_list()), unique=True)) if len(refs) else [],
                          dtype=pl.String)
    work_refs = pl.concat([pl.Series(raws, dtype=pl.String), canonical]).unique(maintain_order=True)
    ambiguous = canonical.head(1).to_list()
    full = identifier_table(work_refs, ambiguous).sort("work_ref")
    shortcut = identifier_table(work_refs, ambiguous, canonical).sort("work_ref")
    assert shortcut.to_dicts() == full.to_dicts()
