#!/usr/bin/env bash
# What a session with a lent GPU runs first, in one call (about 25 minutes of device time):
# the measurements the issues ask for that only a GPU can give. Everything it writes goes
# under $OUT (the device tool brings it back); result records go to results/gpu-*.jsonl
# in the store given by $STORE so they can be committed with the device named in them.
#
#   bash benchmarks/gpu_session.sh            # on the GPU machine, from the repo root
#
# Needs the official HD files in $OTARENA_DATA (carry them or the shared copy).
set -euo pipefail
OUT=${OUT:-gpu-out}
STORE=${STORE:-results}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1

# 1. HD target sampling: otarena (JAX) vs the official-style PyTorch autograd push (issue 2).
python -m benchmarks.sampling_speed --dims 2,16,128 --repeats 500 --json "$OUT/sampling.json" \
  | tee "$OUT/sampling.txt"

# 2. Training throughput of every engine solver on hd-16 and hd-128, 1 and 10 vmapped
#    seeds, and the projected wall-clock of the paper-budget HD matrix (issue 5).
python -m benchmarks.throughput --pairs hd-16,hd-128 --seeds 1,10 --chunk 500 --repeats 3 \
  --json "$OUT/throughput.json" | tee "$OUT/throughput.txt"

# 3. Paper-budget cells, cheapest first, as far as the time allows (issue 5); records are
#    appended as each cell finishes, so a cut-off keeps everything finished before it.
timeout 600 python -m otarena.cli run --suite hd-icnn --solvers icnn-objective-lbfgs \
  --pairs hd-2,hd-4 --budget paper --vmap-seeds --results "$STORE" --quiet || true
cp "$STORE"/records.jsonl "$OUT/records.jsonl" 2>/dev/null || true
