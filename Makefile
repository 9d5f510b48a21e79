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

.PHONY: setup test lint format reproduce data system-deps clean

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

# For now: one small residual net trained on real data (a 5k-image subset, one epoch,
# about two minutes on 2 CPU cores), its result printed; stored runs are not trained twice.
reproduce: setup
	$(BIN)/reslab train --model resnet20 --data fashion-mnist --epochs 1 --train-size 5000 \
		--val-size 1000 --eval-train-size 1000 --log-every 10

clean:
	rm -rf $(VENV) reslab-report .pytest_cache
