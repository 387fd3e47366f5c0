# mubench: `make run` (the quick suite on the CPU) and `make test`; both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/mubench run --suite quick
	$(BIN)/mubench stream run --task split_mnist

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python -m mubench.bench

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache

.PHONY: cards
cards: install  # (re)write data_cards/<task>.md for every registered task (statistics need the data)
	$(BIN)/mubench data card
