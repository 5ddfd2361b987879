"""The training loop of the engine: chunks of compiled iterations, evaluations between
them, checkpoints through the runner's runtime context, and the :class:`Fitted` maps.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from otarena import metrics, runtime
from otarena.budgets import Budget
from otarena.dual.engine import Engine, engine_for
from otarena.dual.spec import DualSpec
from otarena.pairs import Pair
from otarena.solver import Fitted, Solver
from otarena.store import run_id


def _seed(tree, n):
    return jax.tree.map(lambda a: a[n], tree)


def _to_host(states):
    """States as NumPy arrays (PRNG keys as their raw data), for a checkpoint."""
    return jax.device_get({**states, "key": jax.random.key_data(states["key"])})


def _from_host(saved):
    states = jax.tree.map(jnp.asarray, saved)
    return {**states, "key": jax.random.wrap_key_data(states["key"])}


class _Clock:
    """Seconds spent per phase (compile, pretraining, training, evaluation)."""

    def __init__(self, spent: Mapping[str, float] | None = None):
        self.spent = dict(spent or {})

    def time(self, phase, fn, *args):
        start = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        self.spent[phase] = self.spent.get(phase, 0.0) + time.perf_counter() - start
        return out

    def compiled(self, engine: Engine, name: str, *args):
        """The engine's program ``name`` compiled ahead of time for arguments shaped like
        ``args`` (once per engine and shapes); compiling is a phase of its own."""
        shapes = tuple((np.shape(a), str(getattr(a, "dtype", type(a))))
                       for a in jax.tree.leaves(args))
        cache = engine.__dict__.setdefault("_compiled", {})
        if (name, shapes) not in cache:
            cache[name, shapes] = self.time(
                "compile", lambda: getattr(engine, name).lower(*args).compile())
        return cache[name, shapes]


def train(pair: Pair, spec: DualSpec, keys: jax.Array, budget: Budget,
          eval_size: int = metrics.DEFAULT_EVAL_SIZE) -> list[Fitted]:
    """Train one run per key (vmapped) and return one :class:`Fitted` per key.

    Under a :mod:`otarena.runtime` context the state is checkpointed every few minutes and
    a killed run resumes from its last checkpoint, giving the same result.

    Args:
        pair: the benchmark pair; batches are drawn from it inside the compiled step.
        spec: the solver's configuration.
        keys: one PRNG key per seed, stacked (shape (seeds,)): the seeds train together.
        budget: the budget profile and its overrides (iterations, evaluation period).
        eval_size: points of the evaluations during training (``spec.eval_size``, when
            set, takes precedence).

    Returns:
        One :class:`~otarena.solver.Fitted` per key: the reported iterate's maps, the
        curve, the timing split and the training information.
    """
    engine = engine_for(pair, spec, budget)
    if spec.eval_size is not None:
        eval_size = budget.of(spec.eval_size)
    context = runtime.current()
    signature = run_id({"pair": pair.label, "spec": spec.config(), "budget": budget.as_dict(),
                        "keys": np.asarray(jax.random.key_data(keys)).tolist(),
                        "eval_size": eval_size})
    checkpoint = (context.checkpoint.with_name(f"{context.checkpoint.stem}-{signature}.pkl")
                  if context.checkpoint else None)
    saved = runtime.load_checkpoint(checkpoint, signature, planned=engine.iterations)
    total, steps = engine.iterations, engine.pretrain_steps
    x_eval, y_eval = metrics.evaluation_sample(pair, eval_size)
    if saved is None:
        clock = _Clock()
        init = clock.compiled(engine, "init_states", keys, steps)
        states, done = clock.time("pretrain", init, keys, steps), 0
        curve: list[list[dict]] = [[] for _ in range(len(keys))]
    else:
        clock = _Clock(saved.get("seconds"))
        states, done, curve = _from_host(saved["states"]), saved["done"], saved["curve"]
    run_chunk = clock.compiled(engine, "run_chunk", states, done, total)
    scores = clock.compiled(engine, "scores", states, x_eval, y_eval)
    last_save = time.monotonic()
    while done < total and not bool(np.all(np.asarray(states["stopped_at"]) >= 0)):
        states, logs = clock.time("train", run_chunk, states, done, total)
        done = min(done + engine.eval_every, total)
        evals = jax.device_get({**clock.time("evaluate", scores, states, x_eval, y_eval),
                                **logs})
        stopped = np.asarray(states["stopped_at"])
        for i in range(len(keys)):
            if curve[i] and curve[i][-1].get("stopped"):
                continue  # a stopped seed's curve ends at its last logged evaluation
            curve[i].append({"iteration": int(stopped[i]) if stopped[i] >= 0 else done,
                             "stopped": bool(stopped[i] >= 0),
                             **{k: float(v[i]) for k, v in evals.items()}})
        if checkpoint and time.monotonic() - last_save >= context.checkpoint_every:
            runtime.save_checkpoint(checkpoint, {"signature": signature, "done": done,
                                                 "curve": curve, "seconds": clock.spent,
                                                 "states": _to_host(states)})
            last_save = time.monotonic()
        if context.progress:
            context.progress(done, total)

    host = jax.device_get({k: states[k] for k in ("pretrain_loss", "pretrain_steps",
                                                  "stopped_at", "nonfinite")})
    timing = {"compile_seconds": clock.spent.get("compile", 0.0),
              "pretrain_seconds": clock.spent.get("pretrain", 0.0),
              "train_seconds": clock.spent.get("train", 0.0),
              "curve_eval_seconds": clock.spent.get("evaluate", 0.0),
              "iterations_timed": done, "seeds_in_program": len(keys)}
    timing["seconds_per_iteration"] = timing["train_seconds"] / done if done else None
    forward, inverse = engine.forward_map, engine.inverse_map
    best_host = jax.device_get(states["best"]) if spec.best_iterate is not None else None
    fitted = []
    for i in range(len(keys)):
        state = _seed(states, i)
        stopped_at = int(host["stopped_at"][i])
        info = {"pretrain_final_loss": float(host["pretrain_loss"][i]),
                "pretrain_steps": int(host["pretrain_steps"][i]),
                "pretrain_steps_planned": steps,
                "iterations_planned": total, "eval_every": engine.eval_every,
                "nonfinite_loss_seen": bool(host["nonfinite"][i]),
                "stop_rule": None if spec.stop is None else asdict(spec.stop),
                "timing": timing}
        alternatives = {}
        if best_host is not None:
            best = state["best"]
            info["best_iterate"] = {
                "rule": {"every": spec.best_iterate.every, "size": engine.best_size},
                "forward_at": int(best_host["fwd_at"][i]),
                "inverse_at": int(best_host["inv_at"][i]),
                "l2_uvp_fwd_fresh": float(best_host["fwd"][i]),
                "l2_uvp_inv_fresh": float(best_host["inv"][i])}
            best_state = {**state, "psi": best["psi"], **({"h": best["h"]} if "h" in best else {})}
            alternatives["final"] = (partial(forward, state["psi"]), partial(inverse, state))
            chosen = (partial(forward, best["psi"]), partial(inverse, best_state))
        else:
            chosen = (partial(forward, state["psi"]), partial(inverse, state))
        fitted.append(Fitted(
            forward=chosen[0], inverse=chosen[1],
            iterations=stopped_at if stopped_at >= 0 else done,
            diverged=stopped_at >= 0,
            curve=tuple(curve[i]), info=info,
            reported_iterate="best" if best_host is not None else "final",
            alternatives=alternatives))
    return fitted


def solver(name: str, spec: DualSpec, label: str = "", description: str = "") -> Solver:
    """A :class:`Solver` that trains ``spec`` with the engine (one seed or several vmapped)."""
    def fit_seeds(pair, keys, budget):
        return train(pair, spec, keys, budget)

    def fit(pair, key, budget):
        return fit_seeds(pair, key[None], budget)[0]

    config = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in spec.config().items()}
    return Solver(name=name, fit=fit, config=config, label=label, description=description,
                  fit_seeds=fit_seeds, engine_spec=spec)
