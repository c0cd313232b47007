# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_OUT := demo_out
TEST_FLAGS ?= -q -n 2 --dist loadgroup

.PHONY: install demo test lint browser clean-venv bench

install: $(STAMP)

# CPU torch from the on-disk build first, so that nothing pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

# Debian's headless Chromium for the browser test (Playwright's own download does not work here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing: run 'sudo apt-get install -y chromium'"; exit 1; fi; }

demo: install
	$(PY) -m prefaudit validate sample_data/pairs.jsonl
	$(PY) -m prefaudit validate sample_data/multi_pairs.jsonl --annotations sample_data/multi_annotations.jsonl
	$(PY) -m prefaudit report sample_data/pairs.jsonl -o $(DEMO_OUT)/audit.html --quiet
	@echo "demo output: $(DEMO_OUT)/"
	@echo "demo report: $(abspath $(DEMO_OUT))/audit.html"

test: install browser
	$(PY) -m pytest $(TEST_FLAGS)

lint: install
	$(VENV)/bin/ruff check prefaudit tests benchmarks

clean-venv:
	rm -rf $(VENV)
