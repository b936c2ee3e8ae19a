"""Load and validate an input folder (docs/formats.md) into domain objects and frames.

Every failure is an `InputError` naming the file, the row or field path, the
value and what was expected. Nothing here computes money.
"""

from __future__ import annotations

import glob
import itertools
import os
import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Iterator, TypeVar

import polars as pl
import yaml
from pydantic import BaseModel, ValidationError
from yaml.constructor import ConstructorError

from contracts.catalogue import (Catalogue, empty_like_consent, fail_first, load_consent, load_splits, load_works,
                                 read_table)
from contracts.currencies import CURRENCY_EXPONENTS
from contracts.errors import InputError, MissingInput, UnknownCurrency
from contracts.licence import LicenceContract
from contracts.parties import BalanceBroughtForward, Licensee, RightsHolder
from contracts.policy import DistributionPolicy, RevenueReport
from contracts.usage import usage_format

USAGE_EXPECTED = ("a usage log named *.csv, *.csv.gz, *.csv.zst (any case), *.jsonl, *.ndjson or *.parquet "
                  "(lower case)")
CONTRACT_SUFFIXES = (".yaml", ".yml", ".json")
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
    usage_names: dict[Path, str]  # each usage log's name in the run's outputs (usage_names)
    brought_forward: pl.DataFrame  # balances.csv: holder_id, currency, amount_minor (Int64), sorted by the first two

    def name(self, path: Path) -> str:
        """An input file's name in the run's outputs: a usage log's (usage_names), or its path in the folder."""
        return self.usage_names.get(path) or path.relative_to(self.folder).as_posix()


def validation_error(path: Path, error: ValidationError, row: int | None = None) -> InputError:
    """The first pydantic error as one clear line."""
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    value = first.get("input")
    if isinstance(value, (dict, list)):
        value = None
    message = first["msg"].removeprefix("Value error, ")
    return InputError(str(path), message, row=row, field=field, value=value)


class StrictYamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing two things it lets through: a key given twice in one
    mapping (the last would silently replace the first, e.g. a second `terms:` block) and a
    date that does not exist (PyYAML raises a bare ValueError, with no line)."""

    def compose_mapping_node(self, anchor):
        """The mapping as written, checked for a key given twice before anything is built from it:
        once built, a merged (`<<:`) mapping holds the keys it merged, which its own may override."""
        node = super().compose_mapping_node(anchor)
        first_line: dict = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = (key_node.tag, key_node.value)
            if key in first_line:
                raise ConstructorError(None, None, f"key {key_node.value!r} is given twice (first at line "
                                       f"{first_line[key]}); a mapping takes each key once", key_node.start_mark)
            first_line[key] = key_node.start_mark.line + 1
        return node

    def construct_yaml_timestamp(self, node: yaml.ScalarNode):
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as error:
            raise ConstructorError(None, None, f"{node.value!r} is not a date that exists ({error})",
                                   node.start_mark) from None


# the safe loader registered its own function for timestamps: register the override in its place
StrictYamlLoader.add_constructor("tag:yaml.org,2002:timestamp", StrictYamlLoader.construct_yaml_timestamp)


def yaml_error(path: Path, error: yaml.YAMLError) -> InputError:
    """PyYAML's problem on one line, with where it is (1-based line and column) when PyYAML knows."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return InputError(str(path), f"not valid YAML{where}: {problem}")


def load_yaml(path: Path, model: type[M]) -> M:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=StrictYamlLoader)
    except yaml.YAMLError as error:
        raise yaml_error(path, error) from None
    except UnicodeDecodeError as error:
        raise InputError(str(path), f"not valid YAML: {str(error).splitlines()[0]}",
                         expected="a UTF-8 text file") from None
    if not isinstance(data, dict):
        raise InputError(str(path), "expected a mapping at the top level")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise validation_error(path, error) from None


def load_rows(path: Path, model: type[M]) -> list[M]:
    """A small CSV table, one validated model per row, in file order (record i is data row
    i + 1, as `read_table` numbers rows); empty cells are absent fields."""
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


def refuse_repeated(path: Path, records: list[BaseModel], fields: tuple[str, ...], expected: str) -> None:
    """Refuse a key (`fields`) given on two rows of `records` (as `load_rows` returns them), at
    the second: kept in a dict, the last row would silently replace the first."""
    first_row: dict[tuple, int] = {}
    for row, record in enumerate(records, start=1):
        key = tuple(getattr(record, field) for field in fields)
        if key in first_row:
            raise InputError(str(path), f"given twice (first at row {first_row[key]})", row=row,
                             field=", ".join(fields), value=", ".join(str(part) for part in key), expected=expected)
        first_row[key] = row


def require(folder: Path, *names: str) -> Path:
    for name in names:
        if (folder / name).exists():
            return folder / name
    raise MissingInput(str(folder / names[0]), "required input file is missing")


def check_currencies(contracts: list[LicenceContract], path_of: dict[str, Path], holders: dict[str, RightsHolder],
                     holders_path: Path, policy: DistributionPolicy, policy_path: Path) -> None:
    for contract in contracts:
        if contract.currency not in CURRENCY_EXPONENTS:
            raise UnknownCurrency(contract.currency, str(path_of[contract.contract_id]))
    # holders are in file order and each once (refuse_repeated): holder i is data row i + 1
    for row, holder in enumerate(holders.values(), start=1):
        if holder.payout_currency not in CURRENCY_EXPONENTS:
            raise UnknownCurrency(holder.payout_currency, str(holders_path), "payout_currency", row=row)
    for code in policy.thresholds:
        if code not in CURRENCY_EXPONENTS:
            raise UnknownCurrency(code, str(policy_path), "thresholds")


def is_hidden(path: Path) -> bool:
    """Dot-files and dot-folders (.gitkeep, .DS_Store, .git, Spark's .crc files) are an editor's or
    a tool's, not inputs; so are names starting with an underscore (Spark's and Hadoop's _SUCCESS
    and _committed_ markers), which pyarrow's and polars' datasets skip alike."""
    return path.name.startswith((".", "_"))


def contract_files(folder: Path) -> list[Path]:
    """The files of contracts/, each a contract: *.yaml, *.yml, *.json in any case. Anything
    else there but hidden dot-files is refused, so no contract is left out unnoticed."""
    where = folder / "contracts"
    paths = sorted(path for path in where.iterdir() if not is_hidden(path)) if where.is_dir() else []
    for path in paths:
        if path.is_dir():
            raise InputError(str(path), "is a folder; contracts are read from contracts/ itself, not its folders",
                             expected="a contract file (*.yaml, *.yml, *.json)")
        if not path.name.lower().endswith(CONTRACT_SUFFIXES) or not path.is_file():
            raise InputError(str(path), "is not a contract file", expected="a contract file (*.yaml, *.yml, *.json)")
    if not paths:
        raise MissingInput(str(where), "no contract files (*.yaml, *.yml, *.json)")
    return paths


def load_contracts(folder: Path, licensees: dict[str, Licensee]) -> tuple[list[LicenceContract], dict[str, Path]]:
    contracts, path_of = [], {}
    for path in contract_files(folder):
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


def check_repertoires(contracts: list[LicenceContract], path_of: dict[str, Path], works: pl.DataFrame) -> None:
    """A repertoire's listed works are catalogue works: a mistyped id would license nothing, silently."""
    for contract in contracts:
        listed = contract.repertoire.works or []
        known = pl.Series(listed, dtype=pl.String).is_in(works["work_id"].implode()).to_list()
        for index, (work_id, is_known) in enumerate(zip(listed, known)):
            if not is_known:
                raise InputError(str(path_of[contract.contract_id]), "unknown work", field=f"repertoire.works.{index}",
                                 value=work_id, expected="a work_id of works.csv")


def check_revenue(revenue: list[RevenueReport], path: Path, contracts: list[LicenceContract]) -> None:
    """A revenue report for a contract of contracts/ names the contract's licensee and currency:
    another licensee would leave it unused, its revenue share charged 0 with only a warning.
    Reports for other contracts are kept (revenue.csv may hold earlier contracts' history).
    Reports are in file order (load_rows): report i is data row i + 1."""
    by_id = {contract.contract_id: contract for contract in contracts}
    for row, report in enumerate(revenue, start=1):
        contract = by_id.get(report.contract_id)
        if contract is None:  # history: a contract no longer in contracts/ (a term without revenue warns)
            continue
        if report.licensee_id != contract.licensee_id:
            raise InputError(str(path), "not the contract's licensee", row=row, field="licensee_id",
                             value=report.licensee_id, expected=f"{contract.licensee_id} (contract {contract.contract_id})")
        if report.currency != contract.currency:
            raise InputError(str(path), "revenue currency differs from the contract's", row=row, field="currency",
                             value=report.currency, expected=f"{contract.currency} (contract {contract.contract_id})")


BALANCE_SCHEMA = {"holder_id": pl.String, "currency": pl.String, "amount_minor": pl.Int64}
INT64_LIMIT = 2**63


def load_balances(path: Path, holders: dict[str, RightsHolder]) -> pl.DataFrame:
    """balances.csv, the balances earlier runs carried forward (`settle ledger balances`
    writes it from the ledger), in minor units; an empty frame when the file is absent. Each row names a
    holder of holders.csv and an ISO 4217 currency, once, and an amount exact in that
    currency's minor unit: a balance is money owed, never rounded here."""
    if not path.exists():
        return pl.DataFrame(schema=BALANCE_SCHEMA)
    rows = load_rows(path, BalanceBroughtForward)
    refuse_repeated(path, rows, ("holder_id", "currency"), "one balance per holder and currency")
    balances = []
    for row, balance in enumerate(rows, start=1):  # record i is data row i + 1 (load_rows)
        if balance.holder_id not in holders:
            raise InputError(str(path), "unknown holder", row=row, field="holder_id", value=balance.holder_id,
                             expected="a holder_id of holders.csv")
        if balance.currency not in CURRENCY_EXPONENTS:
            raise UnknownCurrency(balance.currency, str(path), "currency", row=row)
        digits = CURRENCY_EXPONENTS[balance.currency]
        minor = Fraction(Decimal(balance.amount)) * 10**digits  # exact: Decimal's arithmetic would round at 28 digits
        if minor.denominator != 1:
            raise InputError(str(path), f"not a whole number of {balance.currency}'s minor unit", row=row,
                             field="amount", value=balance.amount,
                             expected=f"whole minor units: at most {digits} decimal places, trailing zeros aside")
        if abs(minor) >= INT64_LIMIT:
            raise InputError(str(path), "too large for the ledger", row=row, field="amount", value=balance.amount,
                             expected=f"under 2^63 minor units of {balance.currency}")
        if minor:  # a zero balance is no balance: it would only add a currency of zeros to the run
            balances.append((balance.holder_id, balance.currency, int(minor)))
    return pl.DataFrame(balances, schema=BALANCE_SCHEMA, orient="row").sort("holder_id", "currency")


def check_split_holders(splits: pl.DataFrame, splits_path: Path, holders: dict[str, RightsHolder]) -> None:
    unknown = ~pl.col("holder_id").is_in(list(holders))
    if splits.filter(unknown).height:
        # the loaded splits are sorted and unnumbered: the file is read again (only on this error) for the row
        fail_first(read_table(splits_path), unknown, splits_path, "holder_id", "a holder_id of holders.csv",
                   "unknown holder")


def is_usage_log(path: Path) -> bool:
    return usage_format(path.name) is not None


def usage_log(path: Path, named_by: str | None = None) -> Path:
    """`path`, refused unless it is a usage log intake can read (by its name: usage_format)."""
    how = f"named by --usage {named_by!r}, " if named_by else ""
    if not path.is_file():
        problem = "a broken link" if path.is_symlink() and not path.exists() else "not a file"
        raise InputError(str(path), f"{how}is {problem}", expected=USAGE_EXPECTED)
    if not is_usage_log(path):
        raise InputError(str(path), f"{how}is not a usage log by its name", expected=USAGE_EXPECTED)
    return path


def entries_under(folder: Path, seen: set[Path] | None = None) -> Iterator[Path]:
    """Everything under `folder` that is not a folder, however deep and through links to
    folders (each folder once, so a link back up ends), skipping hidden dot-files and -folders."""
    seen = set() if seen is None else seen
    if folder.resolve() in seen:
        return
    seen.add(folder.resolve())
    for path in sorted(folder.iterdir()):
        if is_hidden(path):
            continue
        if path.is_dir():
            yield from entries_under(path, seen)
        else:
            yield path


REFERENCE_NAMES = ("policy.yaml", "policy.json", "licensees.csv", "holders.csv", "works.csv", "works.parquet",
                   "splits.csv", "splits.parquet", "consent.csv", "revenue.csv",
                   "balances.csv")  # an input folder's files, but contracts/


def is_reference_name(name: str) -> bool:
    """Whether `name` is the name in a run's outputs of an input folder's file other than a usage log."""
    return name in REFERENCE_NAMES or name.startswith("contracts/")


def pattern_base(pattern: str) -> Path:
    """The folder a --usage pattern starts from: its part before the first wildcard, or, for
    a pattern without one, the folder it names (or the folder of the file it names)."""
    parts = Path(pattern).parts
    plain = list(itertools.takewhile(lambda part: not glob.has_magic(part), parts))
    base = Path(*plain) if plain else Path(".")
    return base.parent if len(plain) == len(parts) and not base.is_dir() else base


def usage_names(folder: Path, logs: list[Path], base_of: dict[Path, Path]) -> dict[Path, str]:
    """Each log's name in the run's outputs (the manifest, the row accounting, quarantine.csv):
    its path in the input folder, or, for a log a --usage pattern named outside it, its path
    in the pattern's base folder (`base_of`). The same files get the same names however the
    folder or the pattern is spelled (relative or absolute), so the same inputs give the same
    outputs. Two logs that would share a name, or a log named as an input file of the folder
    is, are refused."""
    names: dict[Path, str] = {}
    seen: dict[str, Path] = {}
    root = Path(os.path.abspath(folder))
    for log in logs:
        where = Path(os.path.abspath(log))
        base = root if where.is_relative_to(root) else Path(os.path.abspath(base_of.get(log, root)))
        name = where.relative_to(base).as_posix()
        if is_reference_name(name):
            raise InputError(str(log), f"would be named {name!r} in the run's outputs, as an input of the folder is",
                             expected="a usage log whose path in its pattern's folder is not the name of an input "
                                      "file (policy.yaml, holders.csv, contracts/..., ...)")
        if name in seen:
            raise InputError(str(log), f"is named {name!r} in the run's outputs, as {seen[name]} is",
                             expected="usage logs of distinct names: one --usage pattern over their common folder")
        names[log], seen[name] = name, log
    return names


def logs_named_by(pattern: str) -> list[Path]:
    """The usage logs of one --usage pattern: the files it matches and the logs under the
    folders it matches. A pattern naming no log, or a file that is not one, is refused."""
    logs = []
    for match in sorted(glob.glob(pattern, recursive=True)):
        path = Path(match)
        if path.is_dir():
            logs.extend(usage_log(entry, pattern) for entry in entries_under(path))
        else:
            logs.append(usage_log(path, pattern))
    if not logs:
        raise MissingInput(pattern, "--usage pattern names no usage log", expected=USAGE_EXPECTED)
    return logs


def once_each(paths: list[Path]) -> list[Path]:
    """`paths` without a file named twice (relative and absolute, through a link): by the
    file it resolves to, each shown under its first spelling in sorted order."""
    first: dict[Path, Path] = {}
    for path in sorted(paths):
        first.setdefault(path.resolve(), path)
    return sorted(first.values())


def usage_files(folder: Path, patterns: list[str] | None = None) -> tuple[list[Path], dict[Path, str]]:
    """The usage logs: every log under `folder/usage`, or the logs the glob `patterns` name,
    and their names in the run's outputs (usage_names). Sorted by path, so the order they
    were named in never matters. Anything there that is not a usage log (but hidden
    dot-files) is refused: its rows would be lost unnoticed."""
    if patterns:
        named: dict[Path, list[tuple[Path, Path]]] = {}  # each file (resolved): its patterns' bases and spellings
        for pattern in patterns:
            base = Path(os.path.abspath(pattern_base(pattern)))
            for log in logs_named_by(pattern):
                named.setdefault(log.resolve(), []).append((base, Path(os.path.abspath(log))))
        # the outermost base, whatever the order or spelling of the patterns (ties: by text)
        chosen = [min(pairs, key=lambda pair: (len(pair[0].parts), str(pair[0]), str(pair[1])))
                  for pairs in named.values()]
        base_of = {log: base for base, log in chosen}
        logs = sorted(base_of)
        return logs, usage_names(folder, logs, base_of)
    where = folder / "usage"
    files = [usage_log(path) for path in entries_under(where)] if where.is_dir() else []
    if not files:
        raise MissingInput(str(where), "no usage logs", expected=USAGE_EXPECTED)
    logs = once_each(files)
    return logs, usage_names(folder, logs, {})


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
        licensee_rows = load_rows(licensees_path, Licensee)
        refuse_repeated(licensees_path, licensee_rows, ("licensee_id",), "each licensee_id once")
        licensees = {l.licensee_id: l for l in licensee_rows}
        holders_path = require(folder, "holders.csv")
        holder_rows = load_rows(holders_path, RightsHolder)
        refuse_repeated(holders_path, holder_rows, ("holder_id",), "each holder_id once")
        holders = {h.holder_id: h for h in holder_rows}
        contracts, path_of = load_contracts(folder, licensees)
        check_currencies(contracts, path_of, holders, holders_path, policy, policy_path)
        works_path, (works, refs, ambiguous) = works_loaded.result()
    check_repertoires(contracts, path_of, works)
    splits_path = require(folder, "splits.csv", "splits.parquet")
    splits, share_scale = load_splits(splits_path, works)
    check_split_holders(splits, splits_path, holders)
    consent_path = folder / "consent.csv"
    consent = (load_consent(consent_path, works, holder_ids=list(holders), licensee_ids=list(licensees))
               if consent_path.exists() else None)
    revenue_path = folder / "revenue.csv"
    revenue = load_rows(revenue_path, RevenueReport) if revenue_path.exists() else []
    refuse_repeated(revenue_path, revenue, ("licensee_id", "contract_id", "period"),
                    "one report per licensee, contract and period")
    check_revenue(revenue, revenue_path, contracts)
    balances_path = folder / "balances.csv"
    brought_forward = load_balances(balances_path, holders)
    reference = [policy_path, licensees_path, holders_path, works_path, splits_path,
                 *path_of.values(), *[p for p in (consent_path, revenue_path, balances_path) if p.exists()]]
    catalogue = Catalogue(works, refs, ambiguous, splits, share_scale, consent if consent is not None else empty_like_consent())
    logs, names = usage_files(folder, usage)
    return Inputs(folder, policy, licensees, holders, contracts, revenue, catalogue, logs, sorted(reference), names,
                  brought_forward)


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
