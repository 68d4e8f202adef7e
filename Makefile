# The README's two commands: `make repro` (install + run the pipeline) and `make test` (both test tiers).
# tests/test_docs.py dry-runs every target (`make -n`) and runs the bench commands with --help.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# On machines whose default PyPI torch wheel is a CUDA build, point this at the CPU wheels, e.g.
#   make repro TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
TORCH_PIN := torch==2.13.0

.PHONY: setup repro test test-fast compare bench results clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and exactly pinned, so nothing below can pull a different (CUDA) build.
	$(BIN)/python -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_PIN)"
	# onnx: package.onnx's exporter and runtime (tests/test_sharing.py exports and runs a model).
	$(BIN)/python -m pip install -q -e ".[dev,onnx]"
	# chiVe word vectors for model.builtin.word_vectors: chive. --no-deps: only the wheel's vector files are read,
	# its dependencies (spaCy, SudachiPy) are never imported.
	$(BIN)/python -m pip install -q --no-deps ja-ginza==5.3.0
	touch $@

repro: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" HF_HUB_OFFLINE=$${HF_HUB_OFFLINE:-0} $(BIN)/dvc repro
	@echo
	@$(BIN)/python -m stages.evaluate --summary

# -n auto: one pytest-xdist worker per core (tests/conftest.py splits the threads); --dist loadfile keeps a test
# file's module fixtures (pipeline runs) on one worker, so none is built twice.
test: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -n auto --dist loadfile

# Fast tier only: in-process unit tests, no pipeline or training runs (under a minute on 2 cores).
test-fast: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -n auto --dist loadfile -m "not slow"

# Every experiment (`dvc exp show`) with its headline metrics and the params that differ, in < 100 columns.
compare: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m stages.compare --table

# docs/benchmarks.md. As modules (-m), so `bench` and `stages` import from the project root.
bench: setup
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python -m bench.embed
	$(BIN)/python -m bench.train

# docs/results.md: the default pipeline on the three datasets in ../shared/data (several minutes on CPU).
results: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m bench.results

clean:
	rm -rf $(VENV)
