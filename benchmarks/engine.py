"""asv: the training engine's hot paths (one compiled chunk of iterations; a conjugate solve)."""

import jax

from benchmarks.throughput import engine_solvers

CHUNK = 20


class TrainingChunk:
    """``CHUNK`` training iterations of a solver on hd-16, 1 seed and 4 vmapped seeds."""

    params = (["W2", "icnn-objective-lbfgs-high-precision", "mlp-regression-adam"], [1, 4])
    param_names = ["solver", "seeds"]
    warmup_time = 0.0
    number = 1
    repeat = 3
    timeout = 600

    def setup(self, solver, seeds):
        from otarena import pairs
        from otarena.budgets import Budget
        from otarena.dual import engine_for

        # short pretraining; the chunk program is the same at every budget
        self.engine = engine_for(pairs.load("hd-16"), engine_solvers()[solver],
                                 Budget("smoke", iterations=10**9, eval_every=CHUNK))
        keys = jax.numpy.stack([jax.random.key(s) for s in range(seeds)])
        self.states = self.engine.init_states(keys, self.engine.pretrain_steps)
        jax.block_until_ready(self.engine.run_chunk(self.states, 0, 10**9))  # compile

    def time_chunk(self, solver, seeds):
        jax.block_until_ready(self.engine.run_chunk(self.states, CHUNK, 10**9))


class ConjugateSolve:
    """Fine-tuning 1024 conjugate points of a random ICNN on hd-16 from the identity."""

    params = ["lbfgs", "lbfgs-high-precision", "adam"]
    param_names = ["solver"]
    number = 1
    repeat = 5
    timeout = 300

    def setup(self, name):
        from otarena import conjugate, pairs
        from otarena.models import networks

        pair = pairs.load("hd-16")
        model = networks.build("icnn", 16)
        y = pair.sample_target(jax.random.key(0), 1024)
        params = model.init(jax.random.key(1), y)
        solver = conjugate.SETTINGS[name]
        self.solve = jax.jit(lambda y: solver.solve_batch(lambda x: model.apply(params, x), y, y).x)
        self.y = y
        jax.block_until_ready(self.solve(y))

    def time_solve(self, name):
        jax.block_until_ready(self.solve(self.y))
