"""Work-reference identifiers: validate and normalise scheme-prefixed refs.

Usage logs and the catalogue name works as ``SCHEME:value`` in many spellings;
money can only be matched to a work if both sides compare equal, so every ref
is reduced to one canonical string (see docs/formats.md, "Identifiers").

There are two implementations of the same rules:

* ``normalise_ref`` and ``normalise_<scheme>``: scalar, for contracts, the
  catalogue loader and error messages;
* ``normalised_ref_expr``: a pure polars expression for usage logs of 10^8
  rows in the streaming engine (no Python per row).

They must agree on every input, so both are driven by the *same* regex
strings, and the constructs used are those on which Python's ``re`` and Rust's
``regex`` agree: explicit ASCII classes (``[0-9]`` not ``\\d``, ``[Hh]`` not
``(?i)``), an explicit whitespace set (not ``\\s`` / ``str.strip()``), full
matches (Python ``fullmatch`` = Rust ``^(?:...)$``) and ASCII-only case
mapping (Unicode case tables differ between Python and Rust versions).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import polars as pl

__all__ = [
    "EXPECTED", "REF_LENGTH_MAX", "SCHEMES", "WHITESPACE", "IdentifierError", "normalise_doi", "normalise_isbn",
    "normalise_iscc", "normalise_isrc", "normalise_iswc", "normalise_ref", "normalise_url", "normalised_ref_expr",
]

SCHEMES: tuple[str, ...] = ("ISRC", "ISWC", "ISBN", "DOI", "URL", "ISCC", "WORK")
REF_LENGTH_MAX = 2048  # longer raw refs are invalid: bounds per-row work
WORK_ID_LENGTH_MAX = 128
ISCC_LENGTH = (10, 128)

# Every character Python's str.isspace() accepts (a superset of Rust's
# char::is_whitespace, which lacks \x1c-\x1f); used by both implementations.
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003"
    "\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_WS = "".join(f"\\u{ord(c):04x}" for c in WHITESPACE)  # class body, both dialects

_UPPER = [chr(c) for c in range(ord("A"), ord("Z") + 1)]
_LOWER = [c.lower() for c in _UPPER]
_ASCII_LOWER = str.maketrans(dict(zip(_UPPER, _LOWER)))

_REASON_BY_SCHEME = {
    "ISRC": "invalid_isrc",
    "ISWC": "invalid_iswc",
    "ISBN": "invalid_isbn",
    "DOI": "invalid_doi",
    "URL": "invalid_url",
    "ISCC": "invalid_iscc",
    "WORK": "invalid_work_id",
}

EXPECTED: dict[str, str] = {
    "missing_field": "a non-empty scheme-prefixed identifier like ISRC:USRC17607839",
    "unknown_scheme": "a scheme prefix, one of " + ", ".join(s + ":" for s in SCHEMES),
    "invalid_isrc": "an ISRC like US-RC1-76-07839: 2 letters, 3 letters or digits, 7 digits",
    "invalid_iswc": "an ISWC like T-034.524.680-1 with a valid check digit",
    "invalid_isbn": "an ISBN-10 or ISBN-13 like 978-0-306-40615-7 with a valid check digit",
    "invalid_doi": "a DOI like 10.1000/xyz123 (or doi:..., https://doi.org/...), no spaces",
    "invalid_url": "an http(s) URL with a host, like https://example.com/page, no spaces",
    "invalid_iscc": "an ISCC code like KACYPXW445FTYNJ3: 10-128 base32 characters (A-Z, 2-7)",
    "invalid_work_id": "a catalogue work id: 1-128 characters, no spaces",
}


class IdentifierError(ValueError):
    """A ref that cannot be normalised.

    reason: a stable code (callers count and route by it);
    expected: one short phrase saying what a valid value looks like.
    """

    def __init__(self, reason: str, value: str, expected: str):
        self.reason = reason
        self.value = value
        self.expected = expected
        shown = value if len(value) <= 80 else value[:77] + "..."
        super().__init__(f"{reason}: {shown!r}; expected {expected}")


def _fail(reason: str, value: str | None) -> IdentifierError:
    return IdentifierError(reason, "" if value is None else value, EXPECTED[reason])


# --- shared patterns -------------------------------------------------------
# Written unanchored and without flags; _py() and _rs() anchor them the same way.


def _ci(text: str) -> str:
    """Case-insensitive literal as explicit classes: (?i) would also match 'ſ', 'K'."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isascii() and c.isalpha() else re.escape(c) for c in text)


def _py(core: str) -> re.Pattern[str]:
    return re.compile(core, re.DOTALL)  # used with fullmatch only


def _rs(core: str) -> str:
    return f"(?s)^(?:{core})$"


_REF = r"(?P<scheme>[A-Za-z]+):(?P<value>.*)"
_ISRC = r"[A-Za-z]{2}[A-Za-z0-9]{3}[0-9]{7}"
_ISWC = r"[Tt][0-9]{10}"
_ISBN10 = r"[0-9]{9}[0-9Xx]"
_ISBN13 = r"97[89][0-9]{10}"
_DOI_PREFIX = "|".join(_ci(p) for p in ("https://doi.org/", "http://doi.org/", "https://dx.doi.org/", "http://dx.doi.org/", "doi:"))
_DOI = rf"(?:{_DOI_PREFIX})?(?P<doi>10\.[0-9]{{4,9}}/[^{_WS}]+)"
_ISCC_PREFIX = r"(?:" + _ci("ISCC:") + r")?(?P<iscc>.*)"
_ISCC = rf"[A-Za-z2-7]{{{ISCC_LENGTH[0]},{ISCC_LENGTH[1]}}}"
_WORK = rf"[^{_WS}]{{1,{WORK_ID_LENGTH_MAX}}}"
_URL = (
    r"(?P<scheme>[Hh][Tt][Tt][Pp][Ss]?)://"
    rf"(?:(?P<user>[^/?#@{_WS}]*)@)?"
    rf"(?P<host>\[[0-9A-Fa-f:.]+\]|[^/?#@:\[\]{_WS}]+)"
    r"(?::(?P<port>[0-9]*))?"
    rf"(?P<path>/[^?#{_WS}]*)?"
    rf"(?:\?(?P<query>[^#{_WS}]*))?"
    rf"(?:#[^{_WS}]*)?"
)
_TRACKING_NAMES = ("gclid", "fbclid", "mc_cid", "mc_eid", "msclkid", "igshid", "ref_src")
_TRACKING = r"(?:" + _ci("utm_") + r"[^=]*|" + "|".join(_ci(n) for n in _TRACKING_NAMES) + r")(?:=.*)?"
_DEFAULT_PORT = {"http": "80", "https": "443"}

_REF_RE, _ISRC_RE, _ISWC_RE = _py(_REF), _py(_ISRC), _py(_ISWC)
_ISBN10_RE, _ISBN13_RE, _DOI_RE = _py(_ISBN10), _py(_ISBN13), _py(_DOI)
_ISCC_PREFIX_RE, _ISCC_RE, _WORK_RE = _py(_ISCC_PREFIX), _py(_ISCC), _py(_WORK)
WORK_ID_PATTERN = _rs(_WORK)  # a catalogue work id: exactly what a WORK: reference accepts
_URL_RE, _TRACKING_RE = _py(_URL), _py(_TRACKING)


# --- scalar ----------------------------------------------------------------


def _ascii_lower(text: str) -> str:
    """Lower-case A-Z only: DOIs are case-insensitive for ASCII only, and it keeps the two engines equal."""
    return text.translate(_ASCII_LOWER)


def _strip(value: str) -> str:
    return value.strip(WHITESPACE)


def _remove(value: str, chars: str) -> str:
    return value.translate({ord(c): None for c in chars})


def _iswc_check(digits: str) -> int:
    """ISO 15707: 1 + sum(i * d_i, i=1..9), check = (10 - sum mod 10) mod 10."""
    total = 1 + sum(i * int(d) for i, d in enumerate(digits[:9], start=1))
    return (10 - total % 10) % 10


def _isbn13_check(digits12: str) -> int:
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits12))
    return (10 - total % 10) % 10


def _isbn10_valid(digits: str) -> bool:
    values = [int(d) for d in digits[:9]] + [10 if digits[9] in "Xx" else int(digits[9])]
    return sum((10 - i) * v for i, v in enumerate(values)) % 11 == 0


def _isrc(value: str) -> str | None:
    code = _remove(_strip(value), "- ")
    return code.upper() if _ISRC_RE.fullmatch(code) else None


def _iswc(value: str) -> str | None:
    code = _remove(_strip(value), "-. ")
    if not _ISWC_RE.fullmatch(code) or _iswc_check(code[1:]) != int(code[10]):
        return None
    return "T" + code[1:]


def _isbn(value: str) -> str | None:
    """Any valid ISBN becomes ISBN-13, so a book has one key whichever edition code was reported."""
    code = _remove(_strip(value), "- ")
    if _ISBN10_RE.fullmatch(code) and _isbn10_valid(code):
        body = "978" + code[:9]
    elif _ISBN13_RE.fullmatch(code) and _isbn13_check(code[:12]) == int(code[12]):
        body = code[:12]
    else:
        return None
    return body + str(_isbn13_check(body))


def _doi(value: str) -> str | None:
    match = _DOI_RE.fullmatch(_strip(value))
    return _ascii_lower(match["doi"]) if match else None


def _url(value: str) -> str | None:
    match = _URL_RE.fullmatch(_strip(value))
    if not match:
        return None
    scheme = match["scheme"].lower()
    user = f"{match['user']}@" if match["user"] else ""
    port = match["port"] or ""
    port = f":{port}" if port and port != _DEFAULT_PORT[scheme] else ""
    path = (match["path"] or "").rstrip("/")  # all slashes: keeps it idempotent
    params = sorted(p for p in (match["query"] or "").split("&") if p and not _TRACKING_RE.fullmatch(p))
    query = "?" + "&".join(params) if params else ""
    return f"{scheme}://{user}{_ascii_lower(match['host'])}{port}{path}{query}"


def _iscc(value: str) -> str | None:
    code = _remove(_ISCC_PREFIX_RE.fullmatch(_strip(value))["iscc"], "-")
    return code.upper() if _ISCC_RE.fullmatch(code) else None


def _work(value: str) -> str | None:
    code = _strip(value)
    return code if _WORK_RE.fullmatch(code) else None


_CANON: dict[str, Callable[[str], str | None]] = {
    "ISRC": _isrc, "ISWC": _iswc, "ISBN": _isbn, "DOI": _doi, "URL": _url, "ISCC": _iscc, "WORK": _work,
}


def _normalise(scheme: str, value: str) -> str:
    canon = _CANON[scheme](value)
    if canon is None:
        raise _fail(_REASON_BY_SCHEME[scheme], value)
    return canon


def normalise_isrc(value: str) -> str:
    """ISRC without prefix -> 12 upper-case characters, e.g. us-rc1-76-07839 -> USRC17607839."""
    return _normalise("ISRC", value)


def normalise_iswc(value: str) -> str:
    """ISWC without prefix -> T + 10 digits, check digit verified, e.g. T-034.524.680-1 -> T0345246801."""
    return _normalise("ISWC", value)


def normalise_isbn(value: str) -> str:
    """ISBN-10 or -13 without prefix -> ISBN-13 digits, e.g. 0-306-40615-2 -> 9780306406157."""
    return _normalise("ISBN", value)


def normalise_doi(value: str) -> str:
    """DOI (bare, doi: or doi.org URL) -> lower-case 10.xxxx/suffix."""
    return _normalise("DOI", value)


def normalise_url(value: str) -> str:
    """http(s) URL -> one spelling per page: no tracking, default port, fragment or trailing slash."""
    return _normalise("URL", value)


def normalise_iscc(value: str) -> str:
    """ISCC code (a doubled ISCC: tolerated) -> upper-case base32 without hyphens."""
    return _normalise("ISCC", value)


def normalise_ref(raw: str) -> str:
    """Scheme-prefixed ref -> canonical "SCHEME:value"; raises IdentifierError with a reason code."""
    text = _strip(raw) if raw is not None else ""
    if not text:
        raise _fail("missing_field", raw)
    match = _REF_RE.fullmatch(text)
    scheme = match["scheme"].upper() if match else None
    if scheme not in SCHEMES:
        raise _fail("unknown_scheme", raw)
    if len(raw) > REF_LENGTH_MAX:
        raise _fail(_REASON_BY_SCHEME[scheme], raw)
    return f"{scheme}:{_normalise(scheme, match['value'])}"


# --- vectorised --------------------------------------------------------------
# One expression, built as a chain of `struct.with_fields` stages: each stage
# names its results and later stages read them with pl.field(), so every
# intermediate is computed once (a plain expression tree would repeat shared
# sub-expressions, e.g. a parsed number per check-digit term: ~30x slower).
# Each _x_stages mirrors the scalar _x above; its last stage defines the field
# "X" (the scheme name): the canonical value, or null. Its input is masked to
# rows of that scheme, so the string kernels skip other rows as nulls.

_Stages = list[dict[str, pl.Expr]]
F = pl.field  # a field computed by an earlier stage


def _lower_expr(text: pl.Expr) -> pl.Expr:
    """A-Z -> a-z only, the twin of _ascii_lower (str.to_lowercase folds all of Unicode)."""
    return text.str.replace_many(_UPPER, _LOWER)


def _digit(number: pl.Expr, width: int, i: int) -> pl.Expr:
    """Digit i (0 = leftmost) of a number written with `width` digits."""
    return (number // 10 ** (width - 1 - i)) % 10


def _isbn13_check_expr(body: pl.Expr) -> pl.Expr:
    """Check digit of a 12-digit ISBN body given as an integer."""
    total = sum(_digit(body, 12, i) * (3 if i % 2 else 1) for i in range(12))
    return (10 - total % 10) % 10


def _isrc_stages(value: pl.Expr) -> _Stages:
    return [
        {"isrc_code": value.str.replace_all("[- ]", "")},
        {"ISRC": pl.when(F("isrc_code").str.contains(_rs(_ISRC))).then(F("isrc_code").str.to_uppercase())},
    ]


def _iswc_stages(value: pl.Expr) -> _Stages:
    n = F("iswc_n")
    total = 1 + sum(i * _digit(n, 10, i - 1) for i in range(1, 10))
    return [
        {"iswc_code": value.str.replace_all("[-. ]", "")},
        {"iswc_digits": pl.when(F("iswc_code").str.contains(_rs(_ISWC))).then(F("iswc_code").str.slice(1))},
        {"iswc_n": F("iswc_digits").str.to_integer(strict=False)},
        {"ISWC": pl.when((10 - total % 10) % 10 == n % 10).then("T" + F("iswc_digits"))},
    ]


def _isbn_stages(value: pl.Expr) -> _Stages:
    """ISBN-10 -> its 978 body; ISBN-13 -> its first 12 digits; one check digit is then
    computed for both, and an ISBN-13 is valid iff that reproduces it."""
    code, n10, n13, body, full = F("isbn_code"), F("isbn10_n"), F("isbn13_n"), F("isbn_body"), F("isbn_full")
    last = code.str.slice(9, 1)
    tenth = pl.when(last.is_in(["X", "x"])).then(10).otherwise(last.str.to_integer(strict=False))
    sum10 = sum((10 - i) * _digit(n10, 9, i) for i in range(9)) + tenth
    return [
        {"isbn_code": value.str.replace_all("[- ]", "")},
        {
            "isbn10_n": pl.when(code.str.contains(_rs(_ISBN10))).then(code.str.slice(0, 9).str.to_integer(strict=False)),
            "isbn13_n": pl.when(code.str.contains(_rs(_ISBN13))).then(code.str.to_integer(strict=False)),
        },
        {"isbn10_ok": sum10 % 11 == 0},
        {"isbn_body": pl.when(F("isbn10_ok")).then(978_000_000_000 + n10).otherwise(n13 // 10)},
        {"isbn_full": body * 10 + _isbn13_check_expr(body)},
        {"ISBN": pl.when(F("isbn10_ok") | (full == n13)).then(full.cast(pl.String))},
    ]


def _doi_stages(value: pl.Expr) -> _Stages:
    return [{"DOI": _lower_expr(value.str.extract(_rs(_DOI), 1))}]


def _url_stages(value: pl.Expr) -> _Stages:
    part = F("url").struct.field
    scheme, user, port, query = F("url_scheme"), F("url_user"), F("url_port"), F("url_query")
    # user, port and query stay null when absent (a null fails `!= ""`); filling
    # them with "" would make every other scheme's row pay for the query split.
    item = pl.element()
    kept = item.filter((item != "") & ~item.str.contains(_rs(_TRACKING)))
    default = pl.when(scheme == "http").then(pl.lit("80")).otherwise(pl.lit("443"))
    return [
        {"url": value.str.extract_groups(_rs(_URL))},
        {
            "url_scheme": _lower_expr(part("scheme")),
            "url_user": part("user"),
            "url_port": part("port"),
            "url_query": part("query").str.split("&").list.eval(kept).list.sort().list.join("&"),
        },
        {
            "URL": pl.concat_str(
                scheme, pl.lit("://"),
                pl.when(user != "").then(user + "@").otherwise(pl.lit("")),
                _lower_expr(part("host")),
                pl.when((port != "") & (port != default)).then(":" + port).otherwise(pl.lit("")),
                part("path").fill_null("").str.strip_chars_end("/"),  # all slashes: idempotent
                pl.when(query != "").then("?" + query).otherwise(pl.lit("")),
            )
        },
    ]


def _iscc_stages(value: pl.Expr) -> _Stages:
    code = F("iscc_code")
    return [
        {"iscc_code": value.str.extract(_rs(_ISCC_PREFIX), 1).str.replace_all("-", "", literal=True)},
        {"ISCC": pl.when(code.str.contains(_rs(_ISCC))).then(code.str.to_uppercase())},
    ]


def _work_stages(value: pl.Expr) -> _Stages:
    return [{"WORK": pl.when(value.str.contains(_rs(_WORK))).then(value)}]


_STAGES: dict[str, Callable[[pl.Expr], _Stages]] = {
    "ISRC": _isrc_stages, "ISWC": _iswc_stages, "ISBN": _isbn_stages, "DOI": _doi_stages,
    "URL": _url_stages, "ISCC": _iscc_stages, "WORK": _work_stages,
}


def _scheme_stages() -> _Stages:
    """All schemes' stages, merged level by level so the chain stays short."""
    per_scheme = [stages(F(f"value_{name}")) for name, stages in _STAGES.items()]
    return [
        {k: v for stages in per_scheme if level < len(stages) for k, v in stages[level].items()}
        for level in range(max(map(len, per_scheme)))
    ]


def normalised_ref_expr(raw: pl.Expr) -> pl.Expr:
    """Vectorised twin of normalise_ref: a struct expression with fields
    `ref` (String, canonical "SCHEME:value", null when invalid) and
    `reason` (String reason code, null when valid). Null input -> ref null, reason "missing_field".

    Pure polars (no Python per row) so it streams over 10^8 usage rows.
    """
    scheme, text, canon = F("scheme"), F("text"), F("canon")
    stages: _Stages = [
        {"text": F("raw").str.strip_chars(WHITESPACE)},
        {"parts": text.str.extract_groups(_rs(_REF))},
        {
            "scheme": F("parts").struct.field("scheme").str.to_uppercase(),  # ASCII letters only
            "value": F("parts").struct.field("value").str.strip_chars(WHITESPACE),
            "in_bounds": F("raw").str.len_chars() <= REF_LENGTH_MAX,
        },
        {f"value_{name}": pl.when((scheme == name) & F("in_bounds")).then(F("value")) for name in SCHEMES},
        *_scheme_stages(),
        {"canon": pl.coalesce([F(name) for name in SCHEMES])},
        {
            "out": pl.struct(
                ref=(scheme + ":" + canon).cast(pl.String),
                reason=pl.when(text.is_null() | (text == "")).then(pl.lit("missing_field"))
                .when(scheme.is_null() | ~scheme.is_in(SCHEMES)).then(pl.lit("unknown_scheme"))
                .when(canon.is_null())
                .then(scheme.replace_strict(_REASON_BY_SCHEME, default=None, return_dtype=pl.String))
                .otherwise(pl.lit(None, pl.String)),
            )
        },
    ]
    expr = pl.struct(raw=raw.cast(pl.String))
    for stage in stages:
        expr = expr.struct.with_fields(**stage)
    return expr.struct.field("out")
