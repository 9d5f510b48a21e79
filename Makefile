# reslab: every set-up step from a fresh clone lives here.
#   make reproduce   set up, fetch data, run the quick catalogue, write the report
#   make test        set up, lint, run the tests
# TORCH_SPEC picks the torch build: the default is this machine's CPU wheel; a GPU user
# passes e.g. TORCH_SPEC='torch==2.5.1' (or installs torch in .venv beforehand).

PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.reslab-installed

.PHONY: setup test lint format reproduce bench data system-deps clean

setup: $(STAMP) data

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install "$(TORCH_SPEC)"
	$(BIN)/pip install -e ".[dev]"
	touch $(STAMP)

# Debian packages the data and the report test use (Fashion-MNIST, headless Chromium);
# installed only when running as root with apt, skipped quietly otherwise.
system-deps:
	@sh scripts/system-deps.sh

# Fashion-MNIST: Debian's package as root (via system-deps), else the official files,
# checksummed; a copy already present and verified is kept.
data: $(STAMP) system-deps
	$(BIN)/reslab data fetch fashion-mnist

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: setup lint
	$(BIN)/python -m pytest

# The quick catalogue: every study, measured and judged, then reslab-report/report.html.
# Resumable: run it again after an interruption and finished runs come from the store.
reproduce: setup
	$(BIN)/reslab reproduce --scale quick

bench: setup
	$(BIN)/reslab bench

clean:
	rm -rf $(VENV) reslab-report reslab-sweep .pytest_cache
