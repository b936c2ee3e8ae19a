"""The domain's closed word lists, shared by models, intake and pricing."""

from __future__ import annotations

from typing import Literal, get_args

UseType = Literal["train", "fine_tune", "ground", "index", "crawl", "output"]
Unit = Literal["token", "sample", "page", "request", "work", "output", "second"]
WorkKind = Literal["composition", "recording", "text", "image", "video", "other"]
Right = Literal["composition", "recording", "text", "image", "video", "other"]
Signal = Literal["opt_in", "opt_out"]
ConsentSubject = Literal["work", "holder", "all"]

USE_TYPES: tuple[str, ...] = get_args(UseType)
UNITS: tuple[str, ...] = get_args(Unit)
WORK_KINDS: tuple[str, ...] = get_args(WorkKind)
RIGHTS: tuple[str, ...] = get_args(Right)

# A usage group's fate after classification, and the reasons a group is not accepted.
# SCOPE_REASONS are in the order a use falls out of a contract's scope.
STATUSES: tuple[str, ...] = ("accepted", "suspense", "unlicensed")
SCOPE_REASONS: tuple[str, ...] = ("outside_term", "use_type_not_licensed", "model_not_licensed",
                                  "territory_not_licensed", "work_not_in_repertoire")
REASONS: tuple[str, ...] = (*SCOPE_REASONS, "no_licence", "opted_out", "no_opt_in", "unknown_work", "no_split",
                            "no_allocation_base")

# The kind of work an identifier scheme names; used to decide which contract
# covers usage of a work that is not (yet) in the catalogue.
SCHEME_KINDS: dict[str, tuple[str, ...]] = {
    "ISWC": ("composition",),
    "ISRC": ("recording",),
    "ISBN": ("text",),
    "DOI": ("text",),
    "URL": ("text",),
    "ISCC": WORK_KINDS,
    "WORK": WORK_KINDS,
}
