"""Initializers of Sinkhorn's dual potentials, by name (the rows of Table 1):

* ``zeros``: f = g = 0 (OTT's default initializer);
* ``gaussian``: OTT's ``GaussianInitializer`` (Thornton & Cuturi), on the atoms' point
  clouds in R^d (for the spherical family: the unit vectors in R^3, as in the paper);
* ``meta-ot``: f from the Meta OT MLP, g from f by one exact half-step (otarena's training);
* ``ott-meta``: OTT-JAX's own ``MetaInitializer``, trained on the same batches (a peer row).

Zero weights get -inf potentials, as OTT's initializers give them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from ott.geometry import pointcloud
from ott.initializers.linear import initializers
from ott.problems.linear import linear_problem

from otarena.errors import UnknownNameError
from otarena.sinkhorn import metaot
from otarena.sinkhorn.config import INITIALIZERS



@jax.tree_util.register_pytree_node_class
class MetaOTInitializer(initializers.DefaultInitializer):
    """f from the Meta OT model, g from f by one exact Sinkhorn half-step (as the paper)."""

    def __init__(self, model: metaot.MetaMLP, params):
        super().__init__()
        self.model, self.params = model, params

    def init_fu(self, ot_prob, lse_mode, rng=None):
        f = metaot.predict_f(self.model, self.params, ot_prob.a, ot_prob.b)
        return f if lse_mode else ot_prob.geom.scaling_from_potential(f)

    def __call__(self, ot_prob, lse_mode, rng=None):
        assert lse_mode, "the benchmark runs log-domain Sinkhorn only"
        f = jnp.where(ot_prob.a > 0, self.init_fu(ot_prob, True), -jnp.inf)
        g = metaot.g_from_f(ot_prob.geom, f, ot_prob.b)
        return f, jnp.where(ot_prob.b > 0, g, -jnp.inf)

    def tree_flatten(self):
        return [self.params], {"model": self.model}

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(aux["model"], children[0])


@jax.tree_util.register_pytree_node_class
class GaussianOnAtoms(initializers.DefaultInitializer):
    """OTT's ``GaussianInitializer`` on the point clouds of the atoms.

    The benchmark solves on a dense cost matrix (the spherical cost is not a point-cloud
    cost OTT knows), so the Gaussian fit is taken on the atoms in R^d, exactly as the
    paper applied it to the spherical problem's unit vectors.
    """

    def __init__(self, x: jax.Array, y: jax.Array):
        super().__init__()
        self.x, self.y = x, y

    def init_fu(self, ot_prob, lse_mode, rng=None):
        cloud = pointcloud.PointCloud(self.x, self.y, epsilon=ot_prob.geom.epsilon)
        problem = linear_problem.LinearProblem(cloud, a=ot_prob.a, b=ot_prob.b)
        return initializers.GaussianInitializer().init_fu(problem, lse_mode=lse_mode)

    def tree_flatten(self):
        return [self.x, self.y], {}


def ott_meta_initializer(geom, model: metaot.MetaMLP, params):
    """OTT-JAX's ``MetaInitializer`` holding trained parameters (built inside a trace)."""
    import optax
    from flax.training import train_state
    from ott.initializers.neural import meta_initializer

    state = train_state.TrainState.create(apply_fn=model.apply, params=params,
                                          tx=optax.identity())
    return meta_initializer.MetaInitializer(geom, meta_model=model, state=state)


def initializer_args(name: str, x: jax.Array, y: jax.Array, params=None):
    """The arrays the initializer ``name`` needs besides (cost, a, b): its solve's last argument."""
    if name not in INITIALIZERS:
        raise UnknownNameError(f"unknown initializer {name!r}; known: {', '.join(INITIALIZERS)}")
    return {"zeros": (), "gaussian": (x, y)}.get(name, params)


def make_initializer(name: str, init_args, geom, model=None):
    """The OTT initializer ``name`` from its traced arrays (see ``initializer_args``)."""
    if name == "zeros":
        return initializers.DefaultInitializer()
    if name == "gaussian":
        return GaussianOnAtoms(*init_args)
    if name == "meta-ot":
        return MetaOTInitializer(model, init_args)
    if name == "ott-meta":
        return ott_meta_initializer(geom, model, init_args)
    raise UnknownNameError(f"unknown initializer {name!r}; known: {', '.join(INITIALIZERS)}")
