# The two commands of the README: `make demo` and `make test`.
# Both set up .venv first (scripts/bootstrap.sh; quick once done).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-fast lint bench clean-demo

setup:
	@bash scripts/bootstrap.sh

demo: setup
	$(PY) examples/quickstart.py

test: setup
	$(PY) -m pytest -q
	cd integrations/langchain && ../../$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"
	cd integrations/langchain && ../../$(PY) -m pytest -q -m "not slow"

lint: setup
	$(VENV)/bin/ruff check seal_agent tests examples benchmarks scripts integrations
	$(PY) scripts/gen_config_table.py --check
	$(VENV)/bin/mypy seal_agent

clean-demo:
	rm -rf .seal-agent/quickstart
