"""The compiled programs of an engine: initialization, a chunk of training iterations,
the evaluations and the maps. One set per engine (engines are cached by configuration);
the iteration count and the learning-rate schedule's length are arguments, not constants,
so one program serves every budget and every chunk.

One chunk runs ``lax.scan`` over the iteration index with ``vmap`` over seeds inside,
sampling on device.
"""

from __future__ import annotations

from functools import cached_property

import jax
import jax.numpy as jnp

LOGGED = ("loss", "dual", "amortization", "conjugate_iterations")


class Programs:
    """Mixed into :class:`~otarena.dual.engine.Engine`: programs over its per-seed methods
    (``init_state``, ``train_step``, ``track_best``, ``forward_scores``, ``push_forward``,
    ``inverse``)."""

    @cached_property
    def init_states(self):
        """(keys, pretraining steps) -> states of every seed."""
        return jax.jit(jax.vmap(self.init_state, in_axes=(0, None)))

    @cached_property
    def run_chunk(self):
        """(states, first iteration, total iterations) -> (states, mean logs per seed).

        Runs iterations first .. first + eval_every - 1 of every seed; iterations at or past
        ``total`` are skipped, so the last, shorter chunk is the same program.
        """
        length = self.eval_every
        best = self.spec.best_iterate

        def run(states, first, total):
            states = {**states, "decay_steps": jnp.broadcast_to(
                jnp.asarray(total + 1, jnp.int32), states["decay_steps"].shape)}
            zeros = {k: jnp.zeros(states["step"].shape, jnp.float32) for k in LOGGED}

            def body(carry, t):
                states, sums = carry

                def active(states):
                    new, logs = jax.vmap(self.train_step, in_axes=(0, None))(states, t)
                    return new, {k: logs[k].astype(jnp.float32) for k in LOGGED}

                states, logs = jax.lax.cond(t < total, active, lambda s: (s, zeros), states)
                if best is not None:
                    states = jax.lax.cond((t < total) & (t % best.every == 0),
                                          jax.vmap(self.track_best, in_axes=(0, None)),
                                          lambda s, _: s, states, t)
                return (states, {k: sums[k] + logs[k] for k in LOGGED}), None

            steps = first + jnp.arange(length, dtype=jnp.int32)
            (states, sums), _ = jax.lax.scan(body, (states, zeros), steps)
            count = jnp.maximum(jnp.minimum(total - first, length), 1).astype(jnp.float32)
            return states, {k: v / count for k, v in sums.items()}

        return jax.jit(run)

    @cached_property
    def scores(self):
        return jax.jit(jax.vmap(self.forward_scores, in_axes=(0, None, None)))

    @cached_property
    def forward_map(self):
        return jax.jit(self.push_forward)

    @cached_property
    def inverse_map(self):
        return jax.jit(self.inverse)
