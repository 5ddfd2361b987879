#!/usr/bin/env bash
# Paper-budget cells in the background on a CPU machine, one queue per core: the way the
# records of results/records-paper-cpu.jsonl were made.
#
#   benchmarks/paper_cells.sh WORKDIR CORE CELLS_FILE
#
# CELLS_FILE has one cell per line, "SOLVERS PAIRS SEEDS" as `otarena run` takes them
# (e.g. "icnn-regression-lbfgs hd-2 0"); lines appended while the queue runs are run too.
# The code is frozen first, as a detached worktree of HEAD at WORKDIR/code-<commit>: commits
# made while the cells train do not change the code they run, and every record names that
# commit (clean). Records and checkpoints go to WORKDIR/store-core<CORE>, which keeps that
# commit in its file `commit`: a queue started again runs the same code, resumes its
# unfinished cell from its checkpoint and skips the finished ones. The
# queue is pinned to CORE (XLA's float32 results depend on its thread count) and niced, so
# the machine stays usable. Start it with nohup; its log is WORKDIR/queue-core<CORE>.log.
# $OTARENA_BUDGET (default paper) is for trying the queue out at the smoke budget.
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 WORKDIR CORE CELLS_FILE" >&2; exit 2; }
repo="$(cd "$(dirname "$0")/.." && pwd)"
workdir="$(mkdir -p "$1" && cd "$1" && pwd)"
core="$2"
cells="$(cd "$(dirname "$3")" && pwd)/$(basename "$3")"
budget="${OTARENA_BUDGET:-paper}"
python="${OTARENA_PYTHON:-$repo/.venv/bin/python}"
[ -n "${OTARENA_DATA:-}" ] || export OTARENA_DATA="$(cd "$repo/../shared/data" && pwd)"

store="$workdir/store-core$core"
log="$workdir/queue-core$core.log"
# A store remembers the commit it was started with: resumed (on this machine, or on another
# from a carried copy, see README) it runs the same code, which its checkpoints were made by.
mkdir -p "$store"
exec 2>>"$log"  # a queue started with nohup ... >/dev/null still says why it stopped
[ -s "$store/commit" ] || git -C "$repo" rev-parse --short HEAD >"$store/commit"
commit="$(cat "$store/commit")"
code="$workdir/code-$commit"
# queues started together make the worktree once (git's lock fails the second `add`)
exec 9>"$workdir/.worktree.lock"
flock 9
[ -d "$code" ] || git -C "$repo" worktree add -q --detach "$code" "$commit"
flock -u 9

# `read` takes the file line by line, so cells appended meanwhile are seen
while read -r solvers pairs seeds; do
  case "$solvers" in ""|\#*) continue ;; esac
  echo "$(date -u +%FT%TZ) start $solvers $pairs $seeds ($budget, code $commit, core $core)" >>"$log"
  status=0
  (cd "$code" && taskset -c "$core" nice -n 5 "$python" -m otarena.cli run --budget "$budget" \
     --solvers "$solvers" --pairs "$pairs" --seeds "$seeds" --results "$store") >>"$log" 2>&1 \
     || status=$?
  echo "$(date -u +%FT%TZ) end $solvers $pairs $seeds: exit $status" >>"$log"
done <"$cells"
