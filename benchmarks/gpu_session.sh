#!/usr/bin/env bash
# One GPU session in one device call: what only a GPU can measure, in order of value, within
# a deadline. The device tool allows 10 minutes a command and 15 of device time a session
# (the machine's start takes 1-2 of them), so the default deadline is 560 s. Prepare here
# first (bash benchmarks/gpu_prepare.sh), then call the tool's `run` with
#   command: bash benchmarks/gpu_session.sh      carry: [".whl", ".gpu-data"]   timeout_s: 600
#
# Steps (each gets min(its cap, the time left) and is killed by `timeout` at its share;
# a step that would get under 15 s is skipped):
#   setup       install .whl into $WORK/site, record nvidia-smi and versions, check the
#               copy's files against .gpu-data/source.json (then records name the commit)
#   throughput  benchmarks/throughput.py: [W2] hd-16 1 vs 10 vmapped seeds, the L-BFGS rows
#               vs OTT's W2NeuralDual step, then the programs of the paper cells below
#               (compiled into the persistent cache, which the cells then load)   cap 180 s
#   sampling    benchmarks/sampling_speed.py on hd-16, otarena vs the official-style
#               PyTorch push                                                       cap  30 s
#   fidelity    the paper-budget cells of the fidelity issue, 10 vmapped seeds each, in one
#               `otarena run` (one process: no start-up per cell): pairs outer, solvers
#               inner ([W2], icnn-regression-lbfgs-high-precision on hd-8, then hd-16;
#               the records of each cell are written as it finishes)               cap 240 s
#   metaot      `otarena run --suite metaot-sinkhorn --budget paper` (MNIST, then spherical)   the rest
#
# Everything lands in $OUT as steps end, at most 8 files (the tool brings back no more):
#   session.log             this script's output and every step's
#   throughput.json         rewritten after every row (device, versions, rows, ratios)
#   sampling.json           rewritten after every dimension
#   records-gpu.jsonl       the records of the fidelity cells that finished
#   metaot-sinkhorn-gpu.jsonl  the Meta OT records that finished (one per initializer)
#   checkpoints.tar.gz      the training state of a cell cut off at the step's end
# The two record files are named as otarena's store reads them: append them to the files
# of the same names in results/ and commit (each record names its device).
# A cell cut off at its share loses at most the last $OTARENA_CHECKPOINT_SECONDS (20 s) of
# training: its state is in checkpoints.tar.gz, and the next session continues it after
#   bash benchmarks/gpu_prepare.sh --resume <files_at>/checkpoints.tar.gz
# Cells whose records are in results/ are skipped. A Meta OT initializer cut off in
# training is lost (its trained model stays on the device machine).
#
# GPU_SESSION_DRY_RUN=1 (or --dry-run) runs the same steps on a CPU with tiny budgets and
# timeouts, to test this script's plumbing. Knobs: GPU_SESSION_SECONDS (deadline),
# GPU_SESSION_STEPS (e.g. fidelity,metaot to skip the measurements after a first session),
# GPU_CAP_THROUGHPUT, GPU_CAP_SAMPLING, GPU_CAP_FIDELITY, GPU_THROUGHPUT_ROWS,
# GPU_FIDELITY_PAIRS, GPU_FIDELITY_SOLVERS, GPU_METAOT_ARGS, PYTHON, OUT (default
# gpu-out), WORK.
set -uo pipefail
cd "$(dirname "$0")/.."
[ "${1:-}" = "--dry-run" ] && GPU_SESSION_DRY_RUN=1
DRY=${GPU_SESSION_DRY_RUN:-0}
START=$(date +%s)
OUT=${OUT:-$PWD/gpu-out}
WORK=${WORK:-/tmp/otarena-gpu-session}
STORE=$WORK/store
mkdir -p "$OUT" "$WORK"
exec > >(tee -a "$OUT/session.log") 2>&1
TEE=$!

if [ "$DRY" = 1 ]; then  # the same steps, sized for a CPU
  PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
  DEADLINE=${GPU_SESSION_SECONDS:-1200}
  CAP_THROUGHPUT=${GPU_CAP_THROUGHPUT:-420} CAP_SAMPLING=${GPU_CAP_SAMPLING:-120}
  CAP_FIDELITY=${GPU_CAP_FIDELITY:-300}
  ROWS=${GPU_THROUGHPUT_ROWS:-W2@hd-16x1,W2@hd-16x2,icnn-regression-lbfgs-high-precision@hd-16x1,ott-w2neuraldual@hd-16}
  THROUGHPUT_ARGS="--chunk 4 --repeats 2 --pretrain-steps 2 --ott-steps 2"
  SAMPLING_ARGS="--dims 16 --repeats 5"
  CELL_ARGS="--budget smoke --iterations 300 --eval-every 2 --seeds 0-1 --eval-size 256"
  METAOT_ARGS=${GPU_METAOT_ARGS:-"--budget smoke --pairs mnist --solvers zeros,meta-ot"}
  export OTARENA_CHECKPOINT_SECONDS=${OTARENA_CHECKPOINT_SECONDS:-2}
else
  PY=${PYTHON:-python3}
  DEADLINE=${GPU_SESSION_SECONDS:-560}
  CAP_THROUGHPUT=${GPU_CAP_THROUGHPUT:-180} CAP_SAMPLING=${GPU_CAP_SAMPLING:-30}
  CAP_FIDELITY=${GPU_CAP_FIDELITY:-240}
  ROWS=${GPU_THROUGHPUT_ROWS:-}  # empty: benchmarks/throughput.py's DEFAULT_ROWS
  THROUGHPUT_ARGS="--repeats 3"
  SAMPLING_ARGS="--dims 16 --repeats 200"
  CELL_ARGS="--budget paper --seeds 0-9 --eval-size 16384"
  METAOT_ARGS=${GPU_METAOT_ARGS:-"--budget paper --pairs mnist,spherical --seeds 0"}
  export OTARENA_CHECKPOINT_SECONDS=${OTARENA_CHECKPOINT_SECONDS:-20}
fi
STEPS=${GPU_SESSION_STEPS:-throughput,sampling,fidelity,metaot}
FIDELITY_PAIRS=${GPU_FIDELITY_PAIRS:-$([ "$DRY" = 1 ] && echo hd-8 || echo hd-8,hd-16)}
FIDELITY_SOLVERS=${GPU_FIDELITY_SOLVERS:-W2,icnn-regression-lbfgs-high-precision}
export PYTHONUNBUFFERED=1 OTARENA_DATA=$PWD/.gpu-data/data
export OTARENA_COMPILATION_CACHE=$WORK/jax-cache  # fresh on a fresh machine: compile is cold
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # JAX and PyTorch share the card in one step

left() { echo $((DEADLINE - ($(date +%s) - START))); }
wants() { [[ ",$STEPS," == *",$1,"* ]]; }
# step NAME CAP COMMAND...: run COMMAND for min(CAP, time left) seconds at most
step() {
  local name=$1 cap=$2 rest share rc=0 t0
  shift 2
  rest=$(left)
  share=$((cap < rest ? cap : rest))
  if [ "$share" -lt 15 ]; then echo "## $name: skipped, ${rest} s left"; return 0; fi
  echo "## $name: $share s (cap $cap, $rest left), $(date -u +%H:%M:%S) UTC"
  t0=$(date +%s)
  timeout -k 5 "$share" "$@" || rc=$?
  echo "## $name: rc=$rc$([ $rc = 124 ] || [ $rc = 137 ] && echo ', cut at its share') after $(($(date +%s) - t0)) s"
}
collect() {  # the records and checkpoints so far, into $OUT
  [ -s "$STORE/records.jsonl" ] && cp "$STORE/records.jsonl" "$OUT/records-gpu.jsonl"
  [ -s "$STORE/metaot-sinkhorn.jsonl" ] && cp "$STORE/metaot-sinkhorn.jsonl" "$OUT/metaot-sinkhorn-gpu.jsonl"
  if compgen -G "$STORE/.checkpoints/*.pkl" >/dev/null; then
    tar -czf "$OUT/checkpoints.tar.gz.tmp" -C "$STORE" .checkpoints \
      && mv "$OUT/checkpoints.tar.gz.tmp" "$OUT/checkpoints.tar.gz"
  else
    rm -f "$OUT/checkpoints.tar.gz"
  fi
  return 0
}
finish() { collect; exec >&- 2>&-; wait "$TEE"; }  # the log's last lines, then exit
trap finish EXIT

echo "## otarena GPU session$([ "$DRY" = 1 ] && echo ' (DRY RUN on this machine)'): deadline $DEADLINE s, steps $STEPS, out $OUT"

# -- setup -------------------------------------------------------------------------------
if compgen -G ".whl/*.whl" >/dev/null; then  # the device README's command
  timeout 90 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$WORK/site" .whl/*.whl && export PYTHONPATH=$WORK/site${PYTHONPATH:+:$PYTHONPATH} \
    || echo "## wheels: install failed; steps that need ott-jax will fail"
else
  echo "## no .whl/: run benchmarks/gpu_prepare.sh here first (ott-jax, jaxopt, submitit)"
fi
[ -d "$OTARENA_DATA/w2-benchmark" ] || echo "## no .gpu-data/data: run benchmarks/gpu_prepare.sh first"
if command -v nvidia-smi >/dev/null; then
  timeout 20 nvidia-smi
  timeout 20 nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,utilization.gpu --format=csv
else
  echo "no nvidia-smi here"
fi
timeout 60 "$PY" -c "
import jax, jaxlib, flax, optax, numpy, torch, platform
try:
    import ott; o = ott.__version__
except ImportError as e:
    o = f'missing ({e})'
print('python', platform.python_version(), 'jax', jax.__version__, 'jaxlib', jaxlib.__version__,
      'flax', flax.__version__, 'optax', optax.__version__, 'ott-jax', o, 'numpy', numpy.__version__,
      'torch', torch.__version__, 'cuda' if torch.cuda.is_available() else 'no cuda')
print('jax devices:', jax.devices())"
source_env=$(timeout 30 "$PY" -m benchmarks.gpu_source check .gpu-data/source.json) && eval "$source_env"
echo "code: ${OTARENA_CODE_COMMIT:-commit unknown unless this copy has its .git}"
rm -rf "$STORE" && mkdir -p "$STORE"
# The committed records, under names the store reads (records*.jsonl, metaot-sinkhorn*.jsonl),
# so finished cells are skipped; new records go to records.jsonl and metaot-sinkhorn.jsonl.
for kind in records metaot-sinkhorn; do
  for f in results/"$kind"*.jsonl; do
    [ -f "$f" ] && cp "$f" "$STORE/$kind-committed-$(basename "$f")"
  done
done
if [ -f .gpu-data/checkpoints.tar.gz ]; then
  tar -xzf .gpu-data/checkpoints.tar.gz -C "$STORE"
  timeout 30 "$PY" -c "
import pickle, sys
for p in sys.argv[1:]:
    head, _, body = open(p, 'rb').read().partition(b'\n')  # otarena.runtime's digest line
    s = pickle.loads(body)
    print('resume:', p.split('/')[-1], 'at iteration', s['done'], 'seconds', {k: round(v) for k, v in s.get('seconds', {}).items()})
" "$STORE"/.checkpoints/*.pkl
fi
echo "## setup done, $(left) s left"

# -- (a) throughput and sampling, compile apart --------------------------------------------
if wants throughput; then
  step throughput "$CAP_THROUGHPUT" "$PY" -m benchmarks.throughput ${ROWS:+--rows "$ROWS"} \
    $THROUGHPUT_ARGS --json "$OUT/throughput.json"
fi
if wants sampling; then
  step sampling "$CAP_SAMPLING" "$PY" -m benchmarks.sampling_speed $SAMPLING_ARGS \
    --json "$OUT/sampling.json"
fi

# -- (b) the fidelity cells at the paper budget, 10 vmapped seeds --------------------------
if wants fidelity; then
  step fidelity "$CAP_FIDELITY" "$PY" -m otarena.cli run --pairs "$FIDELITY_PAIRS" \
    --solvers "$FIDELITY_SOLVERS" $CELL_ARGS --vmap-seeds --results "$STORE"
  collect
fi

# -- (c) Meta OT records -------------------------------------------------------------------
if wants metaot; then
  step metaot "$(left)" "$PY" -m otarena.cli run --suite metaot-sinkhorn $METAOT_ARGS --results "$STORE" \
    --artifacts "$WORK/artifacts" --quiet
  collect
fi

# -- what comes back -----------------------------------------------------------------------
if [ -f "$OUT/throughput.json" ]; then
  timeout 30 "$PY" -m benchmarks.throughput --report "$OUT/throughput.json"
fi
collect
echo "## done in $(($(date +%s) - START)) s; in $OUT:"
ls -l "$OUT" | tail -n +2
count=$(find "$OUT" -type f | wc -l)
[ "$count" -le 8 ] || echo "## WARNING: $count files in $OUT; the device tool brings back 8"
