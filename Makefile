# physrnn — the front door. Every target builds the environment it needs on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: test demo data bench clean

# Reinstall only when the project's metadata changes (a second `make test` goes straight to pytest).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

# The default datasets (see studies/data/*.toml) written to data/.
DATASETS := $(patsubst studies/data/%.toml,data/%.h5,$(wildcard studies/data/*.toml))
data: $(DATASETS)

data/%.h5: studies/data/%.toml $(STAMP)
	$(BIN)/physrnn simulate --config $< --output $@

# Until the study runner lands, the main job builds the default datasets and prints what they hold.
demo: data
	@for f in $(DATASETS); do $(BIN)/physrnn inspect $$f; echo; done

# The benchmarks also need reservoirpy (benchmark-only: the reference our echo-state network is compared with).
BENCH_STAMP := $(VENV)/.bench-stamp
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/bench_simulate.py
	$(BIN)/python benchmarks/bench_learning.py

clean:
	rm -rf $(VENV) data/*.h5 .pytest_cache bench-results
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
