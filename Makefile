# make demo: set up .venv and run the offline demo recipe (train, evaluate, transcribe).
# make test: set up .venv and run the whole test suite.
# make bench-deps: the peers bench/decode.py compares with (pyctcdecode, kenlm).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test bench-deps clean

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

# The peers bench/decode.py measures against: pyctcdecode pins numpy<2 in its metadata but
# runs with numpy 2, so it goes in without its pins (--no-deps) rather than as an extra.
bench-deps: install
	$(BIN)/python -m pip install -q --no-deps pyctcdecode==0.5.0 pygtrie==2.6.2 kenlm==0.3.0

clean:
	rm -rf exp/demo
