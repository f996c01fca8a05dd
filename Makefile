# make demo: set up .venv and run the offline demo recipe (train, evaluate, transcribe).
# make test: set up .venv and run the whole test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,interop]'
	touch $@

demo: install
	PATH="$(abspath $(BIN)):$$PATH" bash recipes/demo/run.sh

test: install
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf exp/demo
