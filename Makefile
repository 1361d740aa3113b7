# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,baselines,server,postgres,search,train,ray]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/coldbrew demo

test: $(STAMP)
	$(VENV)/bin/ruff check src tests
	$(PY) -m pytest -q --durations=25

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/run_quality.py
	$(PY) benchmarks/run_quality.py --data ../shared/data/movielens_latest_small
	$(PY) benchmarks/run_speed.py

clean:
	rm -rf $(VENV) build dist *.egg-info
