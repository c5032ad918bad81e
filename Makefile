# securephone — the two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
JOBS   ?= 2
# Line coverage of the sans-I/O core, enforced by .ci/run after `make test`.
CORE_FILES := src/securephone/sip/*,src/securephone/sdp/*,src/securephone/media/*
CORE_MIN   ?= 90

.PHONY: demo test coverage-core lint bench venv debs clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

debs:
	scripts/install-debian-deps.sh

demo: $(STAMP) debs
	$(PY) -m securephone.demo

# Sound on a real clock (-m realtime) runs alone after the rest, as on a desktop: a phone does
# not share the CPU with a test suite's peers.
test: $(STAMP) debs
	$(PY) -m pytest -n $(JOBS) -q -m 'not realtime' --cov --cov-report=
	$(PY) -m pytest -q -m realtime --cov --cov-append --cov-report=term:skip-covered

# After `make test`: the core (sip, sdp, media) must keep CORE_MIN % of its lines covered.
coverage-core: $(STAMP)
	$(VENV)/bin/coverage report --include='$(CORE_FILES)' --skip-covered --fail-under=$(CORE_MIN)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy --strict src

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.*
