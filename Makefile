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

# The main job on the bundled sample data: validate, audit (with target prompts, an eval set and the
# tiny tokenizer for the truncation audit), gate with the default thresholds (the sample data carries
# injected label noise, a length-biased annotator and under-covered target prompts: the verdict is
# "warn" on those four checks; a "fail" would not stop the demo either), clean, and the HTML report.
demo: install
	@mkdir -p $(DEMO_OUT)
	$(PY) -m prefaudit validate sample_data/pairs.jsonl
	$(PY) -m prefaudit validate sample_data/multi_pairs.jsonl --annotations sample_data/multi_annotations.jsonl
	$(PY) -m prefaudit audit sample_data/pairs.jsonl --target sample_data/target.jsonl --eval sample_data/eval.jsonl \
	  --tokenizer tiny --json $(DEMO_OUT)/audit.json --pairs-out $(DEMO_OUT)/pairs.parquet --target-out $(DEMO_OUT)/target.csv
	@$(PY) -m prefaudit gate --audit $(DEMO_OUT)/audit.json --json $(DEMO_OUT)/gate.json; code=$$?; \
	  if [ $$code -gt 1 ]; then exit $$code; fi; echo "gate exit code: $$code (0 pass/warn, 1 fail)"
	$(PY) -m prefaudit clean sample_data/pairs.jsonl --eval sample_data/eval.jsonl --out $(DEMO_OUT)/cleaned.jsonl \
	  --manifest $(DEMO_OUT)/removed.jsonl --review-out $(DEMO_OUT)/review.csv
	$(PY) -m prefaudit report --audit $(DEMO_OUT)/audit.json --config prefaudit/defaults/gate.toml -o $(DEMO_OUT)/audit.html --quiet
	@echo "demo output: $(abspath $(DEMO_OUT))/ (audit.json, gate.json, pairs.parquet, target.csv, cleaned.jsonl, removed.jsonl)"
	@echo "demo report: $(abspath $(DEMO_OUT))/audit.html"

test: install browser
	$(PY) -m pytest $(TEST_FLAGS)

lint: install
	$(VENV)/bin/ruff check prefaudit tests benchmarks

clean-venv:
	rm -rf $(VENV)
