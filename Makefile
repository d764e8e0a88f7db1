# One entry point for users and CI. Every target sets itself up: a fresh clone needs only python3.11 and make.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: help venv lint format test test-unit test-stack test-slow bench gpu-check demo serve clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml scripts/install-system-deps.sh
	bash scripts/install-system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all]'
	touch $(STAMP)

venv: $(STAMP)  ## create .venv with everything (export, serving, Airflow, tests)

# Two pytest-xdist workers: much of the suite waits on subprocesses (Triton start-up, Airflow, moto), so two
# workers overlap well even on a 2-core machine. --dist loadfile keeps each file on one worker, so a file's module
# fixtures (its Tritons, api-servers, lakes) are built once. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2

lint: $(STAMP)  ## ruff: lint, import order and formatting (seconds; make test runs it first)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)  ## ruff: sort imports, fix what is safe, format the tree
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: lint  ## run the test suite (fast: exports and serves the micro model for real)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-unit: $(STAMP)  ## the unit tier alone: no process, no network, well under a minute (tests/unit)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-stack: $(STAMP)  ## only the production stack running as processes (tests/integration/stack, a few minutes)
	$(PY) -m pytest -m stack -s $(PYTEST_ARGS)

test-slow: $(STAMP)  ## the slow tests too: full-size (234 M) export in fp32 and int8, the benchmarks' quick run
	$(PY) -m pytest -m slow -s $(PYTEST_ARGS)

bench: $(STAMP)  ## benchmarks (issue 8): full-size throughput vs funasr, Triton overhead, BI latency, memory
	$(PY) -m benchmarks $(BENCH_ARGS)

# No $(STAMP) dependency: reinstalling '.[all]' would put the CPU onnxruntime back over onnxruntime-gpu.
gpu-check:  ## GPU acceptance (issue 15): fp32/fp16 export, CUDA parity, encoder throughput, NGC Triton (docs/gpu-acceptance.md)
	PYTHON=$(PY) bash scripts/gpu-acceptance.sh $(GPU_ARGS)

demo: $(STAMP)  ## the main job end to end on the bundled fixture model
	$(VENV)/bin/svp demo $(DEMO_ARGS)

clean:  ## remove the virtual environment and build outputs
	rm -rf $(VENV) build *.egg-info .pytest_cache
