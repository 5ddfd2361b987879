# Two entry points on a fresh machine:  make bench  (quick benchmark -> bench-results/, bench-reports/, verdict)
#                                       make test   (the test suite)
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
# The official data: $OTARENA_DATA, else the project's shared copy beside the checkout,
# else the per-user cache (filled by `otarena data fetch`).
SHARED_DATA := $(abspath $(CURDIR)/../shared/data)
ifeq ($(strip $(OTARENA_DATA)),)
  ifneq ($(wildcard $(SHARED_DATA)/w2-benchmark),)
    export OTARENA_DATA := $(SHARED_DATA)
  endif
endif
QUICK_PAIRS := hd-2,hd-4,hd-8,hd-16,hd-32,hd-64,hd-128
QUICK_SOLVERS := linear,constant,identity

.PHONY: bench test test-long install clean-venv

$(BIN)/otarena: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)" -e ".[test,bench]"
	touch $@

install: $(BIN)/otarena

# The quick benchmark, for real, into a store of its own ($(BENCH_STORE), wiped first): the
# closed-form baselines on the seven official HD pairs and four trained solvers on hd-2 at
# the quick budget ([W2], [MM], Amos' MLP objective row and ICNN regression row with w2ot's
# L-BFGS), every table and figure for that store, then the reproduction verdict against
# the committed CPU records in results/ (same cells, same kind of device).
BENCH_STORE ?= bench-results
BENCH_REPORTS ?= bench-reports
# The trained cells run as two processes side by side (a training program runs on one
# thread, so one process per core), each with its own progress lines, appending to the one
# store; the split balances their CPU minutes. Either failing fails the target.
BENCH_TRAINED_A := W2,MM
BENCH_TRAINED_B := icnn-regression-lbfgs,mlp-objective
BENCH_RUN = $(BIN)/otarena run --pairs hd-2 --seeds 0 --budget quick --eval-size 16384 \
  --results $(BENCH_STORE) --solvers
bench: install
	rm -rf $(BENCH_STORE) $(BENCH_REPORTS)
	$(BIN)/otarena data fetch $(QUICK_PAIRS)
	$(BIN)/otarena run --pairs $(QUICK_PAIRS) --solvers $(QUICK_SOLVERS) --seeds 0 \
	  --budget quick --eval-size 16384 --results $(BENCH_STORE)
	$(BENCH_RUN) $(BENCH_TRAINED_A) & first=$$!; \
	  $(BENCH_RUN) $(BENCH_TRAINED_B); second=$$?; \
	  wait $$first && [ $$second -eq 0 ]
	$(BIN)/otarena report --results $(BENCH_STORE) --out $(BENCH_REPORTS)
	$(BIN)/otarena verify --results $(BENCH_STORE) --against results

# Two pytest workers: most of the suite's time is XLA compiling, which runs on one thread,
# so two processes keep both cores of a CI machine busy. The 25 slowest tests are listed.
test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 2 --durations=25

# The tests marked long (not in make test, not in CI): quality at the quick budget, the image
# rows on a built pair, and on a GPU the paper-budget checks.
test-long: install
	$(BIN)/python -m pytest -q -n 2 -m long --durations=25

clean-venv:
	rm -rf $(VENV)
