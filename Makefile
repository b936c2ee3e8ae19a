# The two-command quick start: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# The demo posts to a new SQLite ledger each time (kept, a changed fixture or engine would be refused
# as a second settlement of October 2026, law 5, as a society's ledger refuses it), checks the run's
# invariants from its files, and prints the balances it carries forward: November's balances.csv.
demo: $(STAMP)
	rm -f demo-ledger.sqlite
	$(BIN)/settle run fixtures --period 2026-10 --out demo-out --clock 2026-11-05T09:00:00Z --ledger demo-ledger.sqlite
	$(BIN)/settle check demo-out
	$(BIN)/settle ledger balances --ledger demo-ledger.sqlite

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m bench $(if $(N),--rows $(N),)

clean:
	rm -rf $(VENV) demo-out preview-out demo-ledger.sqlite
