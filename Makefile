# The two promises of the README:
#   make study   runs every notebook in order at the `default` preset (papermill), writing the executed
#                notebooks, figures/ and results/;
#   make test    runs the test suite.
# Both create or reuse the virtual environment .venv and install what they need (torch==2.13.0, CPU build
# here; never torchvision).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
PRESET ?= default
# The data folder (clean_scenes/, real_rainy/, paired_public/; never committed): `auto` = data/ when `make data`
# fetched it, else ../shared/data beside the checkout, else the embedded fallback; `none` forces the fallback.
DATA_DIR ?= auto
REAL_DIR ?= $(firstword $(wildcard data/real_rainy ../shared/data/real_rainy))
PUBLIC_DIR ?= $(firstword $(wildcard data/paired_public ../shared/data/paired_public))
STUDY_ARGS ?=
PYTEST_ARGS ?=

.PHONY: study test venv calibrate benchmark clean-venv data weights diagnose

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[notebooks,test]"
	touch $@

study: venv
	$(PY) -m ttl study --preset $(PRESET) --data-dir $(DATA_DIR) --times results/study_times_$(PRESET).json $(STUDY_ARGS)

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

# The shipped deraining model (weights/derain/derain.pt + derain.json, figures/derain/): trained on the training
# scenes and the public training pairs, scored on the public test pairs; a killed run continues where it stopped.
weights: venv
	$(PY) -m ttl weights --data-dir $(DATA_DIR)
	$(PY) -m ttl report

# Rebuild the data folder (clean_scenes/, paired_public/, real_rainy/) from its public originals into data/.
data: venv
	$(PY) -m ttl data fetch --to data

calibrate: venv
	$(PY) -m ttl calibrate --real-dir $(REAL_DIR) --public-dir $(PUBLIC_DIR)

benchmark: venv
	$(PY) -m ttl benchmark --out results/benchmark_renderers.json
	$(PY) -m ttl benchmark --training --threads 0 --out results/benchmark_training.json
	$(PY) -m ttl benchmark --recipes --out results/benchmark_recipes.json
	$(PY) -m ttl report

# Why the distilled start helps fine-tuning or not (ttl.transfer): weights, activations, feature drift and rain probes
# of the starts and the fine-tuned rows of a finished `make study` -> results/transfer_diagnosis_$(PRESET).json
diagnose: venv
	$(PY) -m ttl.transfer --preset $(PRESET) --data-dir $(DATA_DIR)

clean-venv:
	rm -rf $(VENV)
