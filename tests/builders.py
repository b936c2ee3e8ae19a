"""Build small input folders (docs/formats.md) from Python data, for tests."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import yaml

POLICY = {"society": "Test Society", "consent_required": False,
          "commission": {"train": "0", "fine_tune": "0", "ground": "0", "index": "0", "crawl": "0", "output": "0"},
          "thresholds": {}}
LICENSEES = [{"licensee_id": "ai", "name": "AI Firm", "country": "US"}]


def holder(holder_id: str, **fields) -> dict:
    return {"holder_id": holder_id, "name": holder_id.title(), "country": "SE", "ipi": "", "isni": "",
            "payout_currency": "EUR", "withholding_rate": "0", "payout_threshold": "", **fields}


def work(work_id: str, kind: str = "composition", identifiers: str = "") -> dict:
    return {"work_id": work_id, "kind": kind, "title": f"Title {work_id}", "identifiers": identifiers}


def split(work_id: str, shares: dict[str, str], valid_from: str = "2020-01-01", valid_to: str = "",
          right: str = "composition") -> list[dict]:
    return [{"work_id": work_id, "right": right, "holder_id": h, "share": s, "valid_from": valid_from,
             "valid_to": valid_to} for h, s in shares.items()]


def contract(terms: list[dict], **fields) -> dict:
    base = {"contract_id": "C1", "version": 1, "licensee_id": "ai", "licensor": "Test Society", "currency": "EUR",
            "term": {"start": "2026-01-01", "end": "2026-12-31"}, "territories": ["*"],
            "repertoire": {"all": True}, "use_types": ["train"], "models": ["*"], "terms": terms}
    return base | fields


def usage(record_id: str, work_ref: str, units: int | str, *, use_type: str = "train", unit: str = "token",
          occurred_at: str = "2026-10-10T12:00:00Z", licensee_id: str = "ai", model_id: str = "m1", **extra) -> dict:
    return {"record_id": record_id, "licensee_id": licensee_id, "model_id": model_id, "work_ref": work_ref,
            "use_type": use_type, "units": str(units), "unit": unit, "occurred_at": occurred_at,
            "territory": extra.pop("territory", ""), "output_id": extra.pop("output_id", ""),
            "attribution": extra.pop("attribution", ""), **extra}


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    frame = pl.DataFrame(rows, schema={c: pl.String for c in columns}) if rows else \
        pl.DataFrame(schema={c: pl.String for c in columns})
    frame.write_csv(path, line_terminator="\n")


def write_inputs(folder: Path, *, holders: list[dict], works: list[dict], splits: list[dict],
                 contracts: list[dict], usage_files: dict[str, list[dict]], policy: dict | None = None,
                 consent: list[dict] | None = None, revenue: list[dict] | None = None,
                 licensees: list[dict] | None = None, balances: list[dict] | None = None) -> Path:
    """Write a complete input folder and return it (balances.csv only when `balances` is given)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "contracts").mkdir(exist_ok=True)
    (folder / "usage").mkdir(exist_ok=True)
    (folder / "policy.yaml").write_text(yaml.safe_dump(policy or POLICY), encoding="utf-8")
    write_csv(folder / "licensees.csv", licensees or LICENSEES, ["licensee_id", "name", "country"])
    write_csv(folder / "holders.csv", holders, list(holder("x")))
    write_csv(folder / "works.csv", works, ["work_id", "kind", "title", "identifiers"])
    write_csv(folder / "splits.csv", splits, ["work_id", "right", "holder_id", "share", "valid_from", "valid_to"])
    write_csv(folder / "consent.csv", consent or [],
              ["subject", "subject_id", "use_type", "licensee_id", "signal", "valid_from", "valid_to"])
    write_csv(folder / "revenue.csv", revenue or [], ["licensee_id", "contract_id", "period", "amount", "currency"])
    if balances is not None:
        write_csv(folder / "balances.csv", balances, ["holder_id", "currency", "amount"])
    for spec in contracts:
        (folder / "contracts" / f"{spec['contract_id']}.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    for name, rows in usage_files.items():
        write_usage(folder / "usage" / name, rows)
    return folder


def write_usage(path: Path, rows: list[dict]) -> None:
    columns = list(usage("r", "WORK:x", 1))
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    elif path.suffix == ".parquet":
        pl.DataFrame(rows, schema={c: pl.String for c in columns}).write_parquet(path)
    else:
        write_csv(path, rows, columns)
