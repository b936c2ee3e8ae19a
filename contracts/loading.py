"""Load and validate an input folder (docs/formats.md) into domain objects and frames.

Every failure is an `InputError` naming the file, the row or field path, the
value and what was expected. Nothing here computes money.
"""

from __future__ import annotations

import glob
import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import polars as pl
import yaml
from pydantic import BaseModel, ValidationError

from contracts.catalogue import Catalogue, empty_like_consent, load_consent, load_splits, load_works, read_table
from contracts.currencies import CURRENCY_EXPONENTS
from contracts.errors import InputError, MissingInput, UnknownCurrency
from contracts.licence import LicenceContract
from contracts.parties import Licensee, RightsHolder
from contracts.policy import DistributionPolicy, RevenueReport

USAGE_SUFFIXES = (".csv", ".csv.gz", ".csv.zst", ".jsonl", ".ndjson", ".parquet")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Inputs:
    """Everything one settlement reads, validated."""

    folder: Path
    policy: DistributionPolicy
    licensees: dict[str, Licensee]
    holders: dict[str, RightsHolder]
    contracts: list[LicenceContract]
    revenue: list[RevenueReport]
    catalogue: Catalogue
    usage_files: list[Path]
    reference_files: list[Path]


def validation_error(path: Path, error: ValidationError, row: int | None = None) -> InputError:
    """The first pydantic error as one clear line."""
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    value = first.get("input")
    if isinstance(value, (dict, list)):
        value = None
    message = first["msg"].removeprefix("Value error, ")
    return InputError(str(path), message, row=row, field=field, value=value)


def load_yaml(path: Path, model: type[M]) -> M:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise InputError(str(path), f"not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise InputError(str(path), "expected a mapping at the top level")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise validation_error(path, error) from None


def load_rows(path: Path, model: type[M]) -> list[M]:
    """A small CSV table, one validated model per row; empty cells are absent fields."""
    frame = read_table(path)
    records = []
    for record in frame.iter_rows(named=True):
        row = record.pop("_row")
        fields = {key: value for key, value in record.items() if value not in (None, "")}
        try:
            records.append(model.model_validate(fields))
        except ValidationError as error:
            raise validation_error(path, error, row=row) from None
    return records


def require(folder: Path, *names: str) -> Path:
    for name in names:
        if (folder / name).exists():
            return folder / name
    raise MissingInput(str(folder / names[0]), "required input file is missing")


def check_currencies(path_of: dict[str, Path], contracts: list[LicenceContract],
                     holders: dict[str, RightsHolder], policy: DistributionPolicy) -> None:
    for contract in contracts:
        if contract.currency not in CURRENCY_EXPONENTS:
            raise UnknownCurrency(contract.currency, str(path_of[contract.contract_id]))
    for holder in holders.values():
        if holder.payout_currency not in CURRENCY_EXPONENTS:
            raise UnknownCurrency(holder.payout_currency, "holders.csv", "payout_currency")
    for code in policy.thresholds:
        if code not in CURRENCY_EXPONENTS:
            raise UnknownCurrency(code, "policy.yaml", "thresholds")


def load_contracts(folder: Path, licensees: dict[str, Licensee]) -> tuple[list[LicenceContract], dict[str, Path]]:
    paths = sorted((folder / "contracts").glob("*.yaml")) + sorted((folder / "contracts").glob("*.json"))
    if not paths:
        raise MissingInput(str(folder / "contracts"), "no contract files (*.yaml, *.json)")
    contracts, path_of = [], {}
    for path in paths:
        contract = load_yaml(path, LicenceContract)
        if contract.contract_id in path_of:
            raise InputError(str(path), "contract id already used by " + str(path_of[contract.contract_id]),
                             field="contract_id", value=contract.contract_id)
        if contract.licensee_id not in licensees:
            raise InputError(str(path), "unknown licensee", field="licensee_id", value=contract.licensee_id,
                             expected="a licensee_id of licensees.csv")
        contracts.append(contract)
        path_of[contract.contract_id] = path
    return sorted(contracts, key=lambda c: c.contract_id), path_of


def usage_files(folder: Path, patterns: list[str] | None = None) -> list[Path]:
    """The usage logs: every log under `folder/usage`, or the files the glob `patterns` match.
    Sorted by path, so the order they were named in never matters."""
    if patterns:
        matched = {Path(p) for pattern in patterns for p in glob.glob(pattern, recursive=True)}
        where = ", ".join(patterns)
    else:
        matched = set((folder / "usage").rglob("*"))
        where = str(folder / "usage")
    files = sorted(p for p in matched if p.is_file() and p.name.endswith(USAGE_SUFFIXES))
    if not files:
        raise MissingInput(where, "no usage logs (*.csv, *.csv.gz, *.csv.zst, *.jsonl, *.ndjson, *.parquet)")
    return files


def works_of(folder: Path) -> tuple[Path, tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]]:
    path = require(folder, "works.csv", "works.parquet")
    return path, load_works(path)


def load_inputs(folder: Path, usage: list[str] | None = None) -> Inputs:
    """Read and validate the whole input folder; `usage` globs replace its usage/ folder."""
    if not folder.is_dir():
        raise MissingInput(str(folder), "input folder does not exist")
    with ThreadPoolExecutor(1) as pool:
        # the works (a million at catalogue scale) are read by polars, which releases the GIL, while
        # the holders and contracts are validated by pydantic, which holds it; a problem in them
        # is still reported before one in the works
        works_loaded = pool.submit(works_of, folder)
        policy_path = require(folder, "policy.yaml", "policy.json")
        policy = load_yaml(policy_path, DistributionPolicy)
        licensees_path = require(folder, "licensees.csv")
        licensees = {l.licensee_id: l for l in load_rows(licensees_path, Licensee)}
        holders_path = require(folder, "holders.csv")
        holders = {h.holder_id: h for h in load_rows(holders_path, RightsHolder)}
        contracts, path_of = load_contracts(folder, licensees)
        check_currencies(path_of, contracts, holders, policy)
        works_path, (works, refs, ambiguous) = works_loaded.result()
    splits_path = require(folder, "splits.csv", "splits.parquet")
    splits, share_scale = load_splits(splits_path, works)
    unknown = splits.filter(~pl.col("holder_id").is_in(list(holders)))
    if unknown.height:
        raise InputError(str(splits_path), "unknown holder", field="holder_id", value=unknown["holder_id"][0],
                         expected="a holder_id of holders.csv")
    consent_path = folder / "consent.csv"
    consent = load_consent(consent_path, works) if consent_path.exists() else None
    revenue_path = folder / "revenue.csv"
    revenue = load_rows(revenue_path, RevenueReport) if revenue_path.exists() else []
    reference = [policy_path, licensees_path, holders_path, works_path, splits_path,
                 *path_of.values(), *[p for p in (consent_path, revenue_path) if p.exists()]]
    catalogue = Catalogue(works, refs, ambiguous, splits, share_scale, consent if consent is not None else empty_like_consent())
    return Inputs(folder, policy, licensees, holders, contracts, revenue, catalogue,
                  usage_files(folder, usage), sorted(reference))


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
