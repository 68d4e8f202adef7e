# The README's two commands: `make repro` (install + run the pipeline) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# On machines whose default PyPI torch wheel is a CUDA build, point this at the CPU wheels, e.g.
#   make repro TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
TORCH_PIN := torch==2.13.0

.PHONY: setup repro test bench results clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and exactly pinned, so nothing below can pull a different (CUDA) build.
	$(BIN)/python -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_PIN)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

repro: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" HF_HUB_OFFLINE=$${HF_HUB_OFFLINE:-0} $(BIN)/dvc repro
	@$(BIN)/dvc metrics show
	@echo "metrics: data/eval/metrics.json   plots: dvc plots show   model: data/model"

test: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python bench/embed.py
	$(BIN)/python bench/train.py

# README "Results": the default pipeline on the three datasets in ../shared/data (several minutes on CPU).
results: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/results.py

clean:
	rm -rf $(VENV)
