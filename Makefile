# make demo: set up .venv and run the offline demo recipe (train, evaluate, transcribe).
# make test: set up .venv and run the whole test suite.
# make bench-deps: the peers bench/decode.py compares with (pyctcdecode, kenlm).
# make coverage: the whole suite, then which lines of asr/ it never ran (a map, not a target).
# make mutate: mutation testing of the modules that carry the promises.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test coverage bench-deps mutate clean

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

coverage: install
	$(BIN)/python -m pytest -q --cov --cov-report=term tests

# The peers bench/decode.py measures against: pyctcdecode pins numpy<2 in its metadata but
# runs with numpy 2, so it goes in without its pins (--no-deps) rather than as an extra.
bench-deps: install
	$(BIN)/python -m pip install -q --no-deps pyctcdecode==0.5.0 pygtrie==2.6.2 kenlm==0.3.0

# Mutation testing (mutmut) of the modules that carry the promises; see [tool.mutmut] in
# pyproject.toml. Prints killed/survived per module. About 10 minutes on 2 cores.
mutate: install
	$(BIN)/python -m pip install -q mutmut==3.8.1
	rm -rf mutants
	PATH="$(abspath $(BIN)):$$PATH" OMP_NUM_THREADS=1 $(BIN)/mutmut run --max-children 2 > /dev/null || true
	$(BIN)/python .ci/mutation_summary.py

clean:
	rm -rf exp/demo
