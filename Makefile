# callscope: `make run` sets up and serves the console; `make test` sets up and runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test setup system-deps lint clean

# the compiled twins (setup.py) are built by the install: rebuild when their sources change
COMPILED := setup.py $(wildcard src/callscope/*/*.pyx src/callscope/*/*.pxd)

$(STAMP): pyproject.toml scripts/setup-venv.sh $(COMPILED)
	PYTHON=$(PYTHON) bash scripts/setup-venv.sh $(VENV)
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/callscope demo --if-empty
	$(BIN)/callscope serve

system-deps:
	bash scripts/system-deps.sh

test: setup system-deps
	bash scripts/test.sh

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache .coverage
