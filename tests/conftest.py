"""Shared test fixtures: the repository root and a settle runner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/builders.py, tests/strategies.py


@pytest.fixture
def root() -> Path:
    return ROOT


def settle_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run the `settle` command line as a user would."""
    return subprocess.run([str(Path(sys.executable).parent / "settle"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)
