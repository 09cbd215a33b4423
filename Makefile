# wangge — the two commands: `make demo` and `make test`. Everything installs from this repository.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
WANGGE := $(BIN)/wangge
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := postgresql-15 postgresql-15-postgis-3 chromium fonts-noto-cjk
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup system-packages python web db demo serve test lint bench clean-data

setup: system-packages python web

system-packages:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

python: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

web: web/node_modules/.package-lock.json

web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	npm ci --prefix web --no-audit --no-fund

db: setup
	$(WANGGE) db start
	$(WANGGE) migrate

demo: db
	$(WANGGE) demo load --if-empty
	$(WANGGE) serve --host $(HOST) --port $(PORT)

serve: db
	$(WANGGE) serve --host $(HOST) --port $(PORT)

lint: python
	$(BIN)/ruff check api spatial web tests bench migrations
	$(BIN)/ruff format --check api spatial web tests bench migrations
	$(BIN)/mypy api spatial

test: db lint
	$(BIN)/pytest

# Benchmarks print ratios against a baseline measured in the same run (bench/results/latest.md).
bench: db
	$(WANGGE) demo load --if-empty
	$(BIN)/python -m bench.run

clean-data:
	-$(WANGGE) db stop
	rm -rf .data

# A long fuzzing run of every API operation (tests/test_fuzz.py; `make test` runs a short one).
FUZZ_EXAMPLES ?= 300
.PHONY: fuzz
fuzz: db
	WANGGE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest tests/test_fuzz.py -q
