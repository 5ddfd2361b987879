"""A/B of the conjugate solvers: this checkout's ``otarena/conjugate.py`` against the same
file at another git revision, side by side in one process, on the training program of a
paper-budget cell.

    python -m benchmarks.ab_conjugate REV [--solver mlp-objective-lbfgs] [--pair hd-4]
        [--setting lbfgs] [--checkpoint PATH] [--warmup 2000] [--pretrain-steps N]
        [--chunk 50] [--repeats 5]

Both engines are the cell's (``--budget paper``, full fp32), with the conjugate solver
``--setting`` (default: the cell's) taken from this checkout's module or REV's. They start
from the same state: a checkpoint of ``otarena run`` for that cell (``--checkpoint``, mid
training, which is where solves take their typical number of steps) or ``--warmup``
iterations of this checkout's engine after identity pretraining (``--pretrain-steps``,
default the paper's). Then ``--repeats`` chunks of
``--chunk`` iterations each, alternating A and B (compile apart); printed: the median ms per
iteration of each, their ratio, and how far apart the two chunks' states end (the solvers
should take the same steps, so only float rounding may separate them).
"""

from __future__ import annotations

import argparse
import importlib.util
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def module_at(rev: str):
    """``otarena/conjugate.py`` as it is at git revision ``rev``, imported under another name."""
    text = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:otarena/conjugate.py"],
                          check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "conjugate_at_rev.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("conjugate_at_rev", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rev")
    parser.add_argument("--solver", default="mlp-objective-lbfgs")
    parser.add_argument("--pair", default="hd-4")
    parser.add_argument("--setting", default=None, help="conjugate solver setting (default: the cell's)")
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument("--pretrain-steps", type=int, default=None)
    parser.add_argument("--chunk", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    from otarena import conjugate, pairs
    from otarena import solver as solvers
    from otarena.budgets import Budget
    from otarena.dual.engine import Engine

    spec = solvers.get(args.solver).engine_spec
    setting = args.setting or spec.conjugate_solver
    pair = pairs.load(args.pair)
    budget = Budget("paper", eval_every=args.chunk)
    before = module_at(args.rev)
    with jax.default_matmul_precision("float32"):
        engines = {"this checkout": Engine(pair, spec, budget), args.rev: Engine(pair, spec, budget)}
        engines["this checkout"].solver = conjugate.named(setting)
        engines[args.rev].solver = before.named(setting)
        total = engines["this checkout"].iterations
        if args.checkpoint:
            payload = pickle.loads(args.checkpoint.read_bytes().partition(b"\n")[2])
            states, done = jax.tree.map(jnp.asarray, payload["states"]), payload["done"]
        else:
            engine = engines["this checkout"]
            steps = engine.pretrain_steps if args.pretrain_steps is None else args.pretrain_steps
            states = engine.init_states(jnp.stack([jax.random.key(0)]), steps)
            done = 0
            while done < args.warmup:
                states, _ = engine.run_chunk(states, done, total)
                done += args.chunk
        print(f"{args.solver} on {args.pair}, setting {setting}, from iteration {done}, "
              f"{args.chunk}-iteration chunks, {jax.devices()[0].device_kind}", flush=True)
        ends, times = {}, {name: [] for name in engines}
        for name, engine in engines.items():  # compile apart
            ends[name] = jax.block_until_ready(engine.run_chunk(states, done, total))
        for _ in range(args.repeats):
            for name, engine in engines.items():
                start = time.perf_counter()
                jax.block_until_ready(engine.run_chunk(states, done, total))
                times[name].append((time.perf_counter() - start) / args.chunk * 1e3)
    for name, t in times.items():
        print(f"  {name:>14}: {statistics.median(t):8.2f} ms/iteration (median of {len(t)}: "
              + ", ".join(f"{v:.1f}" for v in t) + ")")
    a, b = (statistics.median(times[n]) for n in engines)
    print(f"  ratio {args.rev} / this checkout: {b / a:.2f}")
    (sa, la), (sb, lb) = ends.values()
    gap = max(float(np.max(np.abs(np.asarray(u, np.float64) - np.asarray(v, np.float64))))
              for u, v in zip(jax.tree.leaves(sa), jax.tree.leaves(sb))
              if jnp.issubdtype(u.dtype, jnp.floating))
    print(f"  states after one chunk: largest difference {gap:.3g}; conjugate steps per solve "
          f"{float(la['conjugate_iterations'][0]):.4f} vs {float(lb['conjugate_iterations'][0]):.4f}")


if __name__ == "__main__":
    sys.exit(main())
