"""Every command the README shows runs (sqlmodel and typer test their docs the same way)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

from conftest import ROOT, settle_cli

README = (ROOT / "README.md").read_text(encoding="utf-8")


def shown_commands() -> list[str]:
    """The commands in the README's sh blocks, without their comments."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", README, flags=re.S):
        for line in block.splitlines():
            command = line.split("#", 1)[0].strip()
            if command:
                commands.append(command)
    return commands


def test_quick_start_is_two_commands():
    """The quick start is exactly `make demo` then `make test`."""
    assert shown_commands()[:2] == ["make demo", "make test"]


def test_make_demo_settles_the_sample_month():
    """`make demo` runs, balances, and says where the statements are."""
    done = subprocess.run(["make", "demo"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "statements" in done.stdout
    assert "Checked run-2026-10-" in done.stdout and "✗" not in done.stdout + done.stderr
    summary = json.loads((ROOT / "demo-out" / "summary.json").read_text())
    for currency, totals in summary["currencies"].items():
        parts = ("payable", "carried_forward", "commission", "withholding", "suspense")
        assert sum(int(totals[p].replace(".", "")) for p in parts) == int(totals["charged"].replace(".", "")), currency


def test_make_test_runs_pytest():
    """`make test` is wired to the whole test suite (not run here: it would recurse)."""
    done = subprocess.run(["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "pytest" in done.stdout


def test_settle_commands_shown_run(tmp_path):
    """Each `settle ...` command in the README succeeds (output redirected to a temporary folder)."""
    settle_lines = [c for c in shown_commands() if c.startswith("settle ")]
    assert settle_lines
    written = set()  # the output folders and ledgers of the commands run so far, by the README's names
    for command in settle_lines:
        args = shlex.split(command)[1:]
        for option in ("--out", "--ledger"):  # in a temporary folder, by the name the README gives
            if option in args:
                where = args.index(option) + 1
                written.add(args[where])
                args[where] = str(tmp_path / Path(args[where]).name)
        args = [str(tmp_path / arg) if arg in written else arg for arg in args]  # a run's folder read again
        done = settle_cli(*args)
        assert done.returncode == 0, (command, done.stderr)
