# Two commands on a fresh machine: `make run` (the main job) and `make test`.
VENV := .venv
BIN := $(VENV)/bin
DATA := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup data postgres run test test-fast lint
setup: data $(VENV)/.installed

# Debian's real Fashion-MNIST IDX files (elsewhere vaesweep downloads them with torchvision).
data:
	@[ -f $(DATA) ] || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq dataset-fashion-mnist; }

# A PostgreSQL server for the multi-worker test (it starts its own throwaway cluster on loopback).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql; }

# uv, with PyTorch's CPU build where there is no GPU (scripts/install.sh says how it chooses).
$(VENV)/.installed: pyproject.toml constraints.txt scripts/install.sh
	sh scripts/install.sh $(VENV) '[test]'
	touch $@

run: setup
	$(BIN)/vaesweep run --study warmup --trials 30

lint: setup
	$(BIN)/ruff check vaesweep tests benchmarks scripts
	$(BIN)/ruff format --check vaesweep tests benchmarks scripts
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

test: lint postgres
	$(BIN)/pytest

# Between edits: the unit lane (the library in-process on tiny inputs), about a minute.
test-fast: setup
	$(BIN)/pytest -q -m unit
