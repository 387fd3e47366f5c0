# mubench: `make run` (the quick suite on the CPU) and `make test` (lint and the fast tests); both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install install-jail run test test-slow test-all lint bench clean board

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# The sandbox's jail (`--isolate`, `mubench submit`) needs bubblewrap; as root on Debian or Ubuntu
# this installs it (elsewhere: your distribution's `bubblewrap` package). Isolated runs refuse,
# naming this, where it is missing.
install-jail:
	@command -v bwrap >/dev/null && echo "bubblewrap: $$(command -v bwrap)" || \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null && command -v bwrap)

run: install
	$(BIN)/mubench run --suite quick
	$(BIN)/mubench stream run --task split_mnist

# The fast suite (under 5 minutes on 2 CPU cores): every test not marked slow. The slow ones train
# real models on the mirror's data; CI runs both (.ci/run). docs/testing.md says more.
test: lint
	$(BIN)/python -m pytest -m "not slow"

test-slow: install
	$(BIN)/python -m pytest -m slow

test-all: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python -m mubench.bench.speed
	$(BIN)/python -m mubench.bench.speed --executors
	$(BIN)/python -m mubench.bench.speed --sandbox --trials 3  # what the jail adds to a run (needs bubblewrap)
	$(BIN)/python -m mubench.bench.training  # per task: training speed and accuracy (standard on a GPU, smoke on a CPU); on a GPU also method runs (1 at a time, with overlap, and 4 at a time) and the projected leaderboard

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache

.PHONY: cards
cards: install  # (re)write data_cards/<task>.md for every registered task (statistics need the data)
	$(BIN)/mubench data card

.PHONY: leaderboard-data
# The baselines' committed leaderboard entries (leaderboard/submissions/<method>.json, verified
# against the default store), the README's summary and docs/board.md, regenerated from harness runs of
# the quick suite on the CPU (missing runs only; about 15 minutes from scratch on 2 cores).
# The standard suite (every scenario, seeds 0-2, paper-scale recipes) belongs on a GPU:
#   $(BIN)/mubench leaderboard-data --suite standard --device cuda --replace
leaderboard-data: install
	$(BIN)/mubench leaderboard-data --suite quick --replace

.PHONY: board
# The board (docs/board.md): the board suite's tuning search on seed 100 and its reported runs on
# seeds 0-4 (0-2 on CIFAR-10), on the CPU and one thread (so that `mubench verify --rerun` compares bit for bit),
# missing runs only: a killed `make board` continues where it stopped. Then each baseline's entry
# with its records file (leaderboard/records/), the README's summary and docs/board.md. Runs of one
# task alone: `mubench run --suite board --task adult`, then `make board` writes the entries.
# From scratch the runs take about 6.6 hours of one core (CIFAR-10's four cells 5.3 of them):
# build it task by task (docs/board.md, "Making the board"); from a filled store, 6 minutes.
# The GPU tier (paper-scale profiles, leaderboard/gpu/): mubench leaderboard-data --suite board_gpu --device cuda
board: install
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/mubench leaderboard-data --suite board --replace

.PHONY: audit
# The privacy audit (docs/metrics.md, "The privacy audit"; docs/board.md, "The privacy audit of the
# privacy cells"): every method's population of 32 on cmnist random_10 at the audit profile (about
# 19 minutes of one core), then the board's privacy cells of adult and cwru, each method at its
# chosen setting with a population of 16 (about 15 minutes; the board's tuning must be in the store:
# `make board`), each written to leaderboard/audit/ as the app's Privacy audit page reads it. Resumable.
audit: install
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/mubench run --suite audit
	$(BIN)/mubench results --view audit --format csv --task cmnist --scenario random_10 > leaderboard/audit/cmnist_random_10_audit_population32.csv
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/mubench run --suite board --task adult --task cwru --population 16
	$(BIN)/mubench results --view audit --format csv --task adult --task cwru > leaderboard/audit/board_privacy_cells_population16.csv
