"""The engine's allocator settings reach polars' allocator in the `settle` command."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT

from settlement import ALLOCATOR_CONF

PROBE = """
import os, sys
import settlement.cli
print(os.environ.get("_RJEM_MALLOC_CONF"))
"""


def probe(env: dict) -> str:
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    return done.stdout.strip()


def test_the_command_sets_the_allocator_before_polars_loads():
    """Importing the command sets `_RJEM_MALLOC_CONF` before anything imports polars (whose
    jemalloc reads it once, when it loads), and leaves a value the user set alone. polars
    puts its own defaults before the value it finds, so the later settings win."""
    env = {key: value for key, value in os.environ.items() if key != "_RJEM_MALLOC_CONF"}
    assert probe(env).endswith("," + ALLOCATOR_CONF)
    assert probe({**env, "_RJEM_MALLOC_CONF": "narenas:2"}).endswith(",narenas:2")
    order = subprocess.run([sys.executable, "-c", "import sys, settlement; print('polars' in sys.modules)"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True)
    assert order.stdout.strip() == "False"
