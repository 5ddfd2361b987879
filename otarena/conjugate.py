"""Conjugate solvers: x_hat(y) = argmin_x J(x; y) = psi(x) - <x, y>, warm-started.

Each solver works on one point and is vmapped over a batch (a batched ``while_loop`` runs
until every point has stopped; stopped points keep their value). Settings are those of
Amos 2023 (w2ot's ``lbfgs`` and ``adam`` configs): at most 100 iterations, stop when
|grad J|_inf < 0.1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

Scalar = Callable[[jax.Array], jax.Array]  # one point -> psi(point)


class Solution(NamedTuple):
    x: jax.Array
    iterations: jax.Array


class PerPoint:
    """Batched solves: one independent solve per row (vmapped)."""

    def solve_batch(self, psi_batch: Callable[[jax.Array], jax.Array], y: jax.Array,
                    x0: jax.Array) -> Solution:
        """Solve for every row of ``y`` from the rows of ``x0``; ``psi_batch``: (n, D) -> (n,)."""
        def psi_one(x):
            return psi_batch(x[None])[0]

        return jax.vmap(lambda yi, xi: self.solve(psi_one, yi, xi))(y, x0)


@dataclass(frozen=True)
class LBFGS(PerPoint):
    """L-BFGS (history 10) with w2ot's parallel Armijo line search.

    The line search evaluates J at the 10 steps 1.5^-k (k = 0..9) at once and takes the
    largest that decreases J by at least 1e-4 * step * <grad, direction>; if none does,
    the point stays where it is and its solve stops. A solve also stops when the
    decrease falls under ``ftol`` or on NaN.
    """

    max_iter: int = 100
    gtol: float = 0.1
    memory: int = 10
    ls_steps: int = 10
    ls_base: float = 1.5
    armijo: float = 1e-4
    ftol: float = 2.220446049250313e-09

    def solve(self, psi: Scalar, y: jax.Array, x0: jax.Array) -> Solution:
        def objective(x):
            return psi(x) - jnp.dot(x, y)

        value_and_grad = jax.value_and_grad(objective)
        direction_of = optax.scale_by_lbfgs(memory_size=self.memory)
        steps = self.ls_base ** -jnp.arange(self.ls_steps, dtype=y.dtype)  # 1, 1/1.5, ...

        def body(carry):
            x, value, grad, state, k, _ = carry
            direction, state = direction_of.update(grad, state, x)
            candidates = x[None] - steps[:, None] * direction[None]
            values = jax.vmap(objective)(candidates)
            slope = jnp.dot(grad, direction)
            accepted = values <= value - self.armijo * steps * slope
            found = jnp.any(accepted)
            best = jnp.argmax(accepted)  # steps are decreasing: the first is the largest
            x_new = jnp.where(found, candidates[best], x)
            value_new, grad_new = value_and_grad(x_new)
            stalled = (~found) | (value - value_new < self.ftol) | jnp.isnan(value_new)
            x_new = jnp.where(jnp.isnan(value_new), x, x_new)
            return x_new, value_new, grad_new, state, k + 1, stalled

        def keep_going(carry):
            _, _, grad, _, k, stalled = carry
            return (k < self.max_iter) & (jnp.max(jnp.abs(grad)) >= self.gtol) & ~stalled

        value, grad = value_and_grad(x0)
        init = (x0, value, grad, direction_of.init(x0), jnp.zeros((), jnp.int32),
                jnp.zeros((), bool))
        x, _, _, _, k, _ = jax.lax.while_loop(keep_going, body, init)
        return Solution(x, k)


@dataclass(frozen=True)
class Adam(PerPoint):
    """Adam (0.9, 0.999) with a cosine learning rate from 0.1 down to 0.1 * 1e-4."""

    max_iter: int = 100
    gtol: float = 0.1
    lr: float = 0.1
    final_lr_fraction: float = 1e-4

    def solve(self, psi: Scalar, y: jax.Array, x0: jax.Array) -> Solution:
        grad_of = jax.grad(lambda x: psi(x) - jnp.dot(x, y))
        schedule = optax.cosine_decay_schedule(self.lr, self.max_iter, self.final_lr_fraction)
        opt = optax.adam(schedule, b1=0.9, b2=0.999)

        def body(carry):
            x, grad, state, k = carry
            updates, state = opt.update(grad, state, x)
            x = optax.apply_updates(x, updates)
            return x, grad_of(x), state, k + 1

        def keep_going(carry):
            _, grad, _, k = carry
            return (k < self.max_iter) & (jnp.max(jnp.abs(grad)) > self.gtol)

        init = (x0, grad_of(x0), opt.init(x0), jnp.zeros((), jnp.int32))
        x, _, _, k = jax.lax.while_loop(keep_going, body, init)
        return Solution(x, k)


@dataclass(frozen=True)
class BatchAdam:
    """[MMv1]'s solve (Taghvaei & Jalali as run by Korotin et al.): Adam with a constant
    learning rate 0.1 on the whole batch, at most 1000 steps, stopped when the batch mean of
    the per-point RMS gradient falls under 1e-3 (checked before each step)."""

    max_iter: int = 1000
    tol: float = 1e-3
    lr: float = 0.1

    def solve_batch(self, psi_batch, y, x0) -> Solution:
        grad_of = jax.grad(lambda x: jnp.sum(psi_batch(x) - jnp.sum(x * y, axis=1)))
        opt = optax.adam(self.lr)

        def keep_going(carry):
            x, _, k = carry
            rms = jnp.sqrt(jnp.mean(grad_of(x) ** 2, axis=1))
            return (k < self.max_iter) & (jnp.mean(rms) >= self.tol)

        def body(carry):
            x, state, k = carry
            updates, state = opt.update(grad_of(x), state, x)
            return optax.apply_updates(x, updates), state, k + 1

        x, _, k = jax.lax.while_loop(keep_going, body, (x0, opt.init(x0), jnp.zeros((), jnp.int32)))
        return Solution(x, jnp.broadcast_to(k, y.shape[:1]))


SOLVERS = {"lbfgs": LBFGS(), "adam": Adam(), "batch-adam": BatchAdam()}
