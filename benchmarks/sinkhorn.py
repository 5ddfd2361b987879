"""asv: the Meta OT Sinkhorn hot paths on the MNIST family (784 x 784, float32).

A solve of a fixed number of iterations from zeros and from a Meta OT prediction (the
per-iteration cost of OTT's log-domain Sinkhorn, plus each initializer's own cost), for
one test instance and for the 10 test instances in one vmapped call, and the Meta OT
prediction alone. The model is untrained: a fixed-length solve costs the same whatever
the prediction. Each timed function is the one the runtime table times.
"""

import jax
import jax.numpy as jnp

ITERATIONS = 100


def _mnist():
    from otarena.sinkhorn import family as sinkhorn_family
    from otarena.sinkhorn import metaot

    family = sinkhorn_family.load_family("mnist")
    a, b, _ = family.test_instances(10)
    x, y = family.points()
    model = metaot.MetaMLP(n_out=len(family.x))
    params = model.init(jax.random.key(0), jnp.zeros(len(family.x) + len(family.y)))["params"]
    return family, model, family.cost_matrix(), (x, y), params, a, b


class MnistSolve:
    params = (["zeros", "meta-ot"], [1, 10])
    param_names = ["initializer", "instances"]
    number = 1
    repeat = 10
    timeout = 300

    def setup(self, name, instances):
        from otarena.sinkhorn import initializers as sinkhorn_initializers
        from otarena.sinkhorn import solve as sinkhorn_solve

        family, model, cost, (x, y), params, a, b = _mnist()
        init_args = sinkhorn_initializers.initializer_args(name, x, y, params)
        solve = sinkhorn_solve.make_solve(name, family.epsilon, model, threshold=-1.0,
                              max_iterations=ITERATIONS)
        if instances == 1:
            self.fn, self.args = jax.jit(solve), (cost, a[0], b[0], init_args)
        else:
            self.fn = jax.jit(jax.vmap(solve, in_axes=(None, 0, 0, None)))
            self.args = (cost, a[:instances], b[:instances], init_args)
        jax.block_until_ready(self.fn(*self.args))

    def time_solve(self, name, instances):
        jax.block_until_ready(self.fn(*self.args))


class MetaPrediction:
    """The Meta OT MLP forward on one instance (what the paper's caption times)."""

    number = 10
    repeat = 10

    def setup(self):
        from otarena.sinkhorn import solve as sinkhorn_solve

        family, model, cost, _, params, a, b = _mnist()
        self.fn = jax.jit(sinkhorn_solve.make_predict(model))
        self.args = (params, a[0], b[0])
        jax.block_until_ready(self.fn(*self.args))

    def time_predict(self):
        jax.block_until_ready(self.fn(*self.args))
