# The two commands of the README: `make demo` and `make test`.
# Both set up .venv first (scripts/bootstrap.sh; quick once done).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-fast lint bench clean-demo

setup:
	@bash scripts/bootstrap.sh

demo: setup
	$(PY) examples/quickstart.py

# Two pytest workers (pytest-xdist), one torch thread each: ~1.5x the throughput of
# one process on two threads for a 135M model. A test file stays on one worker,
# so its module fixtures (the demo run in test_memorize.py) are built once.
# --no-loadscope-reorder: xdist would otherwise hand out files by their number of tests
# (the one-test crash file last), not in the longest-first order tests/conftest.py sets;
# that ordering cost ~9 of the suite's 33 minutes (1966 s, where 2849 s of tests fit in ~1430 s).
XDIST := -n 2 --dist loadfile --no-loadscope-reorder

test: setup
	$(PY) -m pytest -q $(XDIST)
	cd integrations/langchain && ../../$(PY) -m pytest -q $(XDIST)

test-fast: setup
	$(PY) -m pytest -q -m "not slow" $(XDIST)
	cd integrations/langchain && ../../$(PY) -m pytest -q -m "not slow" $(XDIST)

lint: setup
	$(VENV)/bin/ruff check seal_agent tests examples benchmarks scripts integrations
	$(PY) scripts/gen_config_table.py --check
	$(VENV)/bin/mypy seal_agent

clean-demo:
	rm -rf .seal-agent/quickstart
