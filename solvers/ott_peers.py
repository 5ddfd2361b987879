"""Peers from OTT-JAX: ``W2NeuralDual`` (Amos 2023's method as packaged in OTT).

ICNN potentials f and g (OTT's ICNN, the benchmark's widths [2b, 2b, b]), OTT's default
conjugate solver (L-BFGS), regression amortization, OTT's default optimizers and loop;
batches come from the pair on device. It trains in OTT's own Python loop, one jitted
step per iteration, which is what users of OTT get.
"""

import itertools

import jax
import jax.numpy as jnp

from otarena.models.networks import amos_hidden_sizes
from otarena.solver import Fitted, Solver

ITERATIONS = {"smoke": 100, "quick": 6000, "paper": 250_000}
BATCH = 1024


def _batches(pair, key, sample):
    draw = jax.jit(lambda k: sample(k, BATCH))
    return (draw(jax.random.fold_in(key, i)) for i in itertools.count())


def w2neuraldual(pair, key, iterations):
    """The configured OTT solver (``benchmarks.throughput`` times its training step)."""
    from ott.neural.methods.neuraldual import W2NeuralDual
    from ott.neural.networks.icnn import ICNN

    # pos_weights=True is what W2NeuralDual sets on its networks anyway (after a warning)
    f, g = (ICNN(dim_data=pair.dim, dim_hidden=amos_hidden_sizes(pair.dim), pos_weights=True)
            for _ in range(2))
    return W2NeuralDual(
        dim_data=pair.dim, neural_f=f, neural_g=g, num_train_iters=iterations,
        valid_freq=max(iterations, 2), rng=key, amortization_loss="regression")


def fit(pair, key, budget):
    iterations = budget.pick(ITERATIONS)
    k_net, k_src, k_tgt, k_val = jax.random.split(key, 4)
    solver = w2neuraldual(pair, k_net, iterations)
    potentials = solver(_batches(pair, k_src, pair.sample_source),
                        _batches(pair, k_tgt, pair.sample_target),
                        _batches(pair, k_val, pair.sample_source),
                        _batches(pair, jax.random.fold_in(k_val, 1), pair.sample_target))
    forward = jax.jit(lambda x: potentials.transport(x, forward=True))
    inverse = jax.jit(lambda y: potentials.transport(y, forward=False))
    return Fitted(forward=forward, inverse=inverse, iterations=iterations,
                  diverged=not bool(jnp.all(jnp.isfinite(forward(pair.sample_source(key, 8))))))


SOLVERS = [Solver("ott-w2neuraldual", fit,
                  config={"package": "ott-jax", "method": "W2NeuralDual",
                          "networks": "ICNN f and g, widths [2b, 2b, b]",
                          "conjugate_solver": "OTT default (L-BFGS)",
                          "amortization": "regression", "iterations": ITERATIONS},
                  label="OTT W2NeuralDual", description="peer: OTT-JAX's W2NeuralDual")]
