# physrnn — the front door. Every target builds the environment it needs on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: test test-slow mutants mutants-changed mutants-curated demo data bench clean studies report sweeps

# Reinstall only when the project's metadata changes (a second `make test` goes straight to pytest).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

# What `make test` leaves out: the Dask sweeps and shards, the shrunk versions of every study (about 5 minutes).
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

# Blind mutation testing: mutmut generates the mutants of the science modules itself; a seeded sample of 400 runs,
# each against the tests that call the mutated function. Prints the score with its 95 % interval per module and every
# survivor; fails below 85 % (80 % per module). About 45 minutes on 2 cores; not part of make test.
MUT_STAMP := $(VENV)/.mutation-stamp

mutants: $(MUT_STAMP)
	$(BIN)/python mutation/sample.py

# Every mutant of the science functions changed since SINCE (default origin/main, else the last tag): run it before
# committing science code, and read every survivor. SAMPLE=N runs a seeded sample of N of them instead (a new
# module's thousand mutants take hours on 2 cores).
mutants-changed: $(MUT_STAMP)
	$(BIN)/python mutation/sample.py --changed $(if $(SINCE),--since $(SINCE)) $(if $(SAMPLE),--sample $(SAMPLE))

# The curated regression set: every named mutant of mutation/mutants.toml planted in a scratch copy, its tests run;
# fails below 90 % (about 15-25 minutes on 2 cores).
mutants-curated: $(STAMP)
	$(BIN)/python mutation/run.py

# The default datasets (see studies/data/*.toml) written to data/.
DATASETS := $(patsubst studies/data/%.toml,data/%.h5,$(wildcard studies/data/*.toml))
data: $(DATASETS)

data/%.h5: studies/data/%.toml $(STAMP)
	$(BIN)/physrnn simulate --config $< --output $@

# The main job: the default study (studies/demo.toml) end to end, about a minute on 2 cores; prints the report path.
demo: $(STAMP)
	$(BIN)/physrnn study studies/demo.toml

# Studies: one config each in studies/*.toml; outputs cached under data/cache, reports in data/reports/NAME/.
STUDIES := $(patsubst studies/%.toml,%,$(wildcard studies/*.toml))
study-%: $(STAMP)
	$(BIN)/physrnn study studies/$*.toml

studies: $(addprefix study-,$(STUDIES))

# Sweeps: one config each in studies/sweeps/*.toml, on a local Dask cluster; reports in data/sweeps/NAME/.
SWEEPS := $(patsubst studies/sweeps/%.toml,%,$(wildcard studies/sweeps/*.toml))
sweep-%: $(STAMP)
	$(BIN)/physrnn sweep studies/sweeps/$*.toml

sweeps: $(addprefix sweep-,$(SWEEPS))

# Rebuild every study's report from its stored results; a study never run is skipped with a note.
report: $(STAMP)
	@for s in $(STUDIES); do $(BIN)/physrnn report studies/$$s.toml --missing-ok || exit 1; done

# The benchmarks also need reservoirpy (benchmark-only: the reference our echo-state network is compared with).
BENCH_STAMP := $(VENV)/.bench-stamp

# An optional extra of pyproject.toml (bench, mutation) installed once beside the test dependencies.
$(VENV)/.%-stamp: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,$*]'
	touch $@

bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/bench_simulate.py
	$(BIN)/python benchmarks/bench_learning.py
	$(BIN)/python benchmarks/bench_sweep.py

clean:
	rm -rf $(VENV) data/*.h5 data/*.shards data/cache data/reports data/sweeps data/demo .pytest_cache bench-results
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
