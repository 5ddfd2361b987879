"""asv: compiling one HD training program cold (empty persistent cache) and warm (the cache
filled by an earlier process), each in a fresh Python process, as a user's first and second
runs of a cell are.

``track_*`` benchmarks return seconds, so asv records the compile times themselves.
``python -m benchmarks.compile SOLVER`` prints one such measurement (the cache folder is
``$OTARENA_COMPILATION_CACHE``, as for every otarena process).
"""

import os
import subprocess
import sys
import tempfile
import time

from otarena import compilation
from otarena.plugins import repo_root


def compile_seconds(solver_name: str) -> float:
    """Seconds to compile the training-chunk program of ``solver_name`` on hd-2, one seed
    (the program ``otarena run`` runs), in this process."""
    import jax

    from benchmarks.throughput import engine_solvers
    from otarena import pairs
    from otarena.budgets import Budget
    from otarena.dual import engine_for

    engine = engine_for(pairs.load("hd-2"), engine_solvers()[solver_name],
                        Budget("smoke", iterations=100, eval_every=50))
    states = jax.eval_shape(lambda k: engine.init_states(k, 1), jax.random.key(0)[None])
    lowered = engine.run_chunk.lower(states, 0, 100)
    start = time.perf_counter()
    lowered.compile()
    return time.perf_counter() - start


def _in_fresh_process(solver_name: str, cache: str) -> float:
    done = subprocess.run([sys.executable, "-m", "benchmarks.compile", solver_name],
                          env={**os.environ, compilation.ENV: cache}, cwd=repo_root(),
                          capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


class CompileTrainingChunk:
    params = ["W2", "mlp-objective"]
    param_names = ["solver"]
    number = 1
    repeat = 1
    timeout = 900

    def track_cold_seconds(self, solver_name):
        with tempfile.TemporaryDirectory() as cache:
            return _in_fresh_process(solver_name, cache)

    def track_warm_seconds(self, solver_name):
        with tempfile.TemporaryDirectory() as cache:
            _in_fresh_process(solver_name, cache)  # fills the cache
            return _in_fresh_process(solver_name, cache)

    track_cold_seconds.unit = "seconds"
    track_warm_seconds.unit = "seconds"


if __name__ == "__main__":
    print(f"{compile_seconds(sys.argv[1]):.4f}")
