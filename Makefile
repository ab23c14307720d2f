# `make demo`: set up .venv (torch pinned first: a bare `torch` pulls GBs of CUDA wheels) and run
# the short demo. `make test`: same set-up, then the test suite. `make bench`: the benchmarks.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.robustrl-installed

.PHONY: setup demo test bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,envpool,sb3,ray,games,render]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/robustrl demo

test: setup
	$(PY) -m pytest -q -n 2 --durations=25

bench: setup
	$(PY) benchmarks/throughput.py
	$(PY) benchmarks/ppo_reference.py

clean:
	rm -rf $(VENV) runs
