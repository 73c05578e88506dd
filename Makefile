# Two commands for a new user: `make run` (set up, load the sample docs, start the bot) and
# `make test`. Everything installs into .venv from pinned versions (requirements.lock).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run check test bench clean readme

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and exactly pinned: the CPU build; anything looser pulls CUDA wheels.
	$(BIN)/python -m pip install --quiet -c requirements.lock torch==2.13.0
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test]'
	touch $(STAMP)

run: install
	$(BIN)/askloop db upgrade
	$(BIN)/askloop ingest docs/
	@if [ -n "$$SLACK_BOT_TOKEN" ]; then $(BIN)/askloop serve; else $(BIN)/askloop shell; fi

# The checks that keep the layers and the types honest, then the tests (CI runs exactly this).
check: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: check
	$(BIN)/python -m pytest -q

bench: install
	for script in benchmarks/*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info

readme:
	$(PYTHON) scripts/build_readme.py
