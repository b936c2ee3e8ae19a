"""Shared test fixtures: the repository root and a settle runner."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
POSTGRES = "postgresql://postgres@127.0.0.1:5432/"  # see the README; tests make and drop their own databases
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/builders.py, tests/strategies.py


@pytest.fixture
def root() -> Path:
    return ROOT


def settle_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run the `settle` command line as a user would."""
    return subprocess.run([str(Path(sys.executable).parent / "settle"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def postgres_database() -> str:
    """A new, empty PostgreSQL database's URL (dropped by `drop_postgres`)."""
    import psycopg

    name = f"settle_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(POSTGRES + "test", autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at 127.0.0.1:5432 cannot be reached in CI: {error}")
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 cannot be reached: {error}")
    return POSTGRES + name


def drop_postgres(url: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES + "test", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request, tmp_path):
    """A new ledger database's --ledger value, in each backend."""
    if request.param == "sqlite":
        yield str(tmp_path / "ledger.sqlite")
        return
    url = postgres_database()
    try:
        yield url
    finally:
        drop_postgres(url)
