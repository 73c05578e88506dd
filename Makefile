# Two commands for a new user: `make run` (set up, load the sample handbook, start the shell or
# the bot) and `make test`. Everything installs into .venv from pinned versions (requirements.lock).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The sample knowledge base lives in a data folder of its own, never in your ASKLOOP_HOME (where
# a real handbook would mix with it), and always on the embedded stores.
SAMPLE_HOME ?= $(CURDIR)/.askloop-sample
SAMPLE := env -u ASKLOOP_DATABASE_URL -u ASKLOOP_CHROMA_URL ASKLOOP_HOME=$(SAMPLE_HOME) $(BIN)/askloop

.PHONY: install run check test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and exactly pinned: the CPU build; anything looser pulls CUDA wheels.
	$(BIN)/python -m pip install --quiet -c requirements.lock torch==2.13.0
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test]'
	# The model's ONNX export, made once at install (into ASKLOOP_MODEL_CACHE) instead of on first use.
	$(BIN)/python -c "from bot.settings import load_settings; from retrieval.embeddings import shared_embedder; \
	s = load_settings(); [shared_embedder(s.embedding_model, b, s.model_cache) for b in ('onnx-fp32', 'onnx-int8')]"
	touch $(STAMP)

run: install
	$(SAMPLE) db upgrade
	$(SAMPLE) ingest examples/handbook
	@if [ -n "$$SLACK_BOT_TOKEN" ]; then $(SAMPLE) serve; else $(SAMPLE) shell; fi

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
