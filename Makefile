# physrnn — the front door. Every target builds the environment it needs on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: test demo data bench clean studies report

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

# Until the study runner lands, the main job runs the learning path end to end on the driven dataset:
# fit each model on its training split, roll out the held-out trajectories, score them against the closed form.
DEMO_MODELS := euler rk4 linear esn
demo: data
	@mkdir -p data/demo
	@for m in $(DEMO_MODELS); do \
	  $(BIN)/physrnn train --data data/driven.h5 --model $$m --quiet \
	    $$( [ $$m = esn ] && echo "--set units=100 --set washout=50" ) -o data/demo/$$m.keras && \
	  $(BIN)/physrnn rollout --model data/demo/$$m.keras --data data/driven.h5 -o data/demo/$$m-rollout.h5 \
	    || exit 1; \
	done
	$(BIN)/physrnn evaluate $(foreach m,$(DEMO_MODELS),data/demo/$(m)-rollout.h5)

# Studies: one config each in studies/*.toml; outputs cached under data/cache, reports in data/reports/NAME/.
STUDIES := $(patsubst studies/%.toml,%,$(wildcard studies/*.toml))
study-%: $(STAMP)
	$(BIN)/physrnn study studies/$*.toml

studies: $(addprefix study-,$(STUDIES))

report: $(STAMP)
	@for s in $(STUDIES); do $(BIN)/physrnn report studies/$$s.toml || exit 1; done

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
