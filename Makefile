# Two entry points on a fresh machine:  make bench  (quick benchmark -> results/, reports/)
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

.PHONY: bench test install clean-venv

$(BIN)/otarena: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)" -e ".[test,bench]"
	touch $@

install: $(BIN)/otarena

# The quick benchmark: the closed-form baselines on the seven official HD pairs, and two
# trained solvers ([W2] and Amos' ICNN objective/L-BFGS) on hd-2 at the quick budget
# (a few minutes on a CPU); then every table and figure from the records.
bench: install
	$(BIN)/otarena data fetch $(QUICK_PAIRS)
	$(BIN)/otarena run --pairs $(QUICK_PAIRS) --solvers $(QUICK_SOLVERS) --seeds 0 \
	  --budget quick --eval-size 16384 --results results
	$(BIN)/otarena run --pairs hd-2 --solvers W2,icnn-objective-lbfgs --seeds 0 \
	  --budget quick --eval-size 16384 --results results
	$(BIN)/otarena report --results results --out reports

test: install
	$(BIN)/python -m pytest -q

clean-venv:
	rm -rf $(VENV)
