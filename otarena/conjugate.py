"""Conjugate solvers: x_hat(y) = argmin_x J(x; y) = psi(x) - <x, y>, warm-started.

Each per-point solver solves every point of a batch on its own (``PerPoint``: the batch is
stepped in phases that leave out most of the points already stopped).

The L-BFGS solver is w2ot's (Amos 2023, ``w2ot/external/jax_lbfgs.py``, itself JAX's
``_minimize_lbfgs`` with Armijo line searches) step for step: the first direction is the
full negative gradient (inverse-Hessian scale gamma = 1, then s'y / y'y), the loop always
takes at least one step (convergence is tested after a step), and a solve stops when
|grad J|_inf < gtol, when the decrease falls under ftol, when the line search finds no
step, on NaN, or after max_iter + 1 steps (w2ot tests ``k >= max_iter`` before counting
the step). Two named settings are w2ot's two configurations (``SETTINGS``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

Scalar = Callable[[jax.Array], jax.Array]  # one point -> psi(point)


def _dot(a, b):
    # w2ot's L-BFGS takes its inner products at the highest precision (no TF32).
    return jnp.dot(a, b, precision=jax.lax.Precision.HIGHEST)


class Solution(NamedTuple):
    x: jax.Array
    iterations: jax.Array


def lanes_per_phase(n: int) -> tuple[int, ...]:
    """How many rows each phase of a batched solve steps: the batch, then an eighth, then a
    sixty-fourth (at least one row each)."""
    sizes = [n]
    for fraction in (8, 64):
        size = max(1, -(-n // fraction))
        if size < sizes[-1]:
            sizes.append(size)
    return tuple(sizes)


class PerPoint:
    """Batched solves: one independent solve per row.

    A subclass defines one point's solve as a loop: ``_start`` (its state), ``_running``,
    ``_step`` and ``_solution``. A vmapped ``while_loop`` would step every row of the batch
    until the slowest has stopped (stopped rows are stepped and their result discarded),
    and the slowest row takes several times the mean number of steps. So the batch is solved
    in phases (``lanes_per_phase``): all rows while more than an eighth of them still run,
    then only the running rows, gathered into an eighth of the batch, while more than a
    sixty-fourth run, then into a sixty-fourth until none runs. Every row takes the same
    steps as in its own loop; the phases change only which stopped rows are stepped in vain.
    """

    def solve_batch(self, psi_batch: Callable[[jax.Array], jax.Array], y: jax.Array,
                    x0: jax.Array) -> Solution:
        """Solve for every row of ``y`` from the rows of ``x0``; ``psi_batch``: (n, D) -> (n,)."""
        def psi_one(x):
            return psi_batch(x[None])[0]

        running = jax.vmap(self._running)
        step = jax.vmap(lambda yi, state: self._step(psi_one, yi, state))

        def stepped(rows_y, state):  # a step of the running rows; the stopped ones are kept
            keep = running(state)
            new = step(rows_y, state)
            return jax.tree.map(
                lambda a, b: jnp.where(keep.reshape(keep.shape + (1,) * (a.ndim - 1)), a, b),
                new, state)

        state = jax.vmap(lambda yi, xi: self._start(psi_one, yi, xi))(y, x0)
        sizes = lanes_per_phase(y.shape[0])
        for size, later in zip(sizes, sizes[1:] + (0,)):
            # the running rows first (a stable order); at most `size` of them run here
            rows = jnp.argsort(jnp.where(running(state), 0, 1), stable=True)[:size]
            rows_y = y[rows]
            phase = jax.lax.while_loop(lambda s, later=later: jnp.sum(running(s)) > later,
                                       lambda s, rows_y=rows_y: stepped(rows_y, s),
                                       jax.tree.map(lambda a, rows=rows: a[rows], state))
            state = jax.tree.map(lambda a, b, rows=rows: a.at[rows].set(b), state, phase)
        return jax.vmap(self._solution)(state)


class _Step(NamedTuple):
    """What an Armijo line search returns: the step taken, J and grad J after it."""

    failed: jax.Array
    step: jax.Array
    value: jax.Array
    grad: jax.Array


class _LBFGSState(NamedTuple):
    converged: jax.Array
    failed: jax.Array
    k: jax.Array
    x: jax.Array
    value: jax.Array
    grad: jax.Array
    s_history: jax.Array
    y_history: jax.Array
    rho_history: jax.Array
    gamma: jax.Array
    direction: jax.Array  # the quasi-Newton direction of the step under way
    trial: jax.Array  # backtracking: the exponent of the step size it tries next


@dataclass(frozen=True)
class LBFGS(PerPoint):
    """L-BFGS with an Armijo line search along the full quasi-Newton step.

    ``line_search="parallel"`` evaluates J at the ``ls_evaluations`` steps 1.5^-k at once
    and takes the largest that satisfies Armijo; ``"backtracking"`` tries 1, 1, 1/1.5,
    1/1.5^2, ... one after the other (w2ot's loop evaluates the unit step twice) until one
    does, at most ``ls_evaluations`` times.

    A backtracking solve advances by one step size tried per ``_step``, not one L-BFGS step:
    in a batch, a row whose search fails tries 30 sizes, and stepping whole L-BFGS steps
    would make every row of the batch wait for it at that step (most steps of a
    gtol-1e-3 batch have such a row). One size at a time, the rows that search long are
    the long tail the phases of ``PerPoint`` gather. The unit step's second evaluation is
    skipped: it is the first one again.
    """

    gtol: float = 0.1
    max_iter: int = 100
    memory: int = 10
    line_search: str = "parallel"  # parallel | backtracking
    ls_evaluations: int = 10
    ls_base: float = 1.5
    armijo: float = 1e-4
    ftol: float = 2.220446049250313e-09

    def __post_init__(self):
        if self.line_search not in ("parallel", "backtracking"):
            raise ValueError(f"unknown line search {self.line_search!r}")

    # -- w2ot's armijo_line_search_parallel ------------------------------------------------
    def _parallel(self, objective, x, direction, value, grad) -> _Step:
        steps = self.ls_base ** -jnp.flip(jnp.arange(self.ls_evaluations, dtype=x.dtype))
        proposed = steps[:, None] * direction[None]
        values = jax.vmap(objective)(x + proposed)
        satisfied = values < value + self.armijo * steps * grad.dot(direction)
        failed = ~jnp.any(satisfied)
        best = jnp.argmax(steps * satisfied)  # the largest step that satisfies Armijo
        kept = 1 - failed  # w2ot masks by arithmetic; kept as is (NaN behaviour included)
        step = kept * proposed[best]
        return _Step(failed, step, kept * values[best] + failed * value,
                     kept * jax.grad(objective)(x + step) + failed * grad)

    # -- the solve ------------------------------------------------------------------------
    def _direction(self, state: _LBFGSState) -> jax.Array:
        """The two-loop recursion: -H grad with the last min(k, memory) pairs."""
        size = self.memory
        used = jnp.minimum(state.k, size)
        q = -state.grad
        alphas = jnp.zeros_like(state.rho_history)

        def newest_first(j, carry):
            q, alphas = carry
            i = size - 1 - j
            a = state.rho_history[i] * _dot(state.s_history[i], q)
            return q - a * state.y_history[i], alphas.at[i].set(a)

        q, alphas = jax.lax.fori_loop(0, used, newest_first, (q, alphas))
        q = state.gamma * q

        def oldest_first(j, q):
            i = size - used + j
            b = state.rho_history[i] * _dot(state.y_history[i], q)
            return q + (alphas[i] - b) * state.s_history[i]

        return jax.lax.fori_loop(0, used, oldest_first, q)

    def _start(self, psi: Scalar, y: jax.Array, x0: jax.Array) -> _LBFGSState:
        value, grad = jax.value_and_grad(lambda x: psi(x) - x.dot(y))(x0)
        dim, dtype = x0.shape[0], x0.dtype
        state = _LBFGSState(
            converged=jnp.zeros((), bool), failed=jnp.zeros((), bool),
            k=jnp.zeros((), jnp.int32), x=x0, value=value, grad=grad,
            s_history=jnp.zeros((self.memory, dim), dtype),
            y_history=jnp.zeros((self.memory, dim), dtype),
            rho_history=jnp.zeros((self.memory,), dtype), gamma=jnp.ones((), dtype),
            direction=grad, trial=jnp.zeros((), jnp.int32))
        return state._replace(direction=self._direction(state))

    def _running(self, state: _LBFGSState) -> jax.Array:
        return ~state.converged & ~state.failed

    def _step(self, psi: Scalar, y: jax.Array, state: _LBFGSState) -> _LBFGSState:
        def objective(x):
            return psi(x) - x.dot(y)

        if self.line_search == "parallel":
            return self._update(state, self._parallel(objective, state.x, state.direction,
                                                      state.value, state.grad))
        # w2ot's armijo_line_search_backtracking, one step size per call: 1 (its initial
        # evaluation; its loop's first, 1.5^-0, is the same point), then 1.5^-1, 1.5^-2, ...
        # until Armijo holds or 1.5^-(ls_evaluations - 1) has been tried.
        size = self.ls_base ** -state.trial.astype(state.x.dtype)
        tried = size * state.direction
        value, grad = jax.value_and_grad(objective)(state.x + tried)
        satisfied = value < state.value + self.armijo * size * state.grad.dot(state.direction)
        last = state.trial >= max(self.ls_evaluations - 1, 0)
        failed = ~satisfied
        kept = 1 - failed  # w2ot's arithmetic masks, as in _parallel
        # a failed search: w2ot takes grad J at x + 0 (= state.grad) and its value at the
        # last size tried
        grad = jnp.where(failed, state.grad, grad)
        done = self._update(state, _Step(failed, kept * tried, kept * value + failed * state.value,
                                         kept * grad + failed * state.grad))
        searching = state._replace(trial=state.trial + 1)
        return jax.tree.map(lambda a, b: jnp.where(satisfied | last, a, b), done, searching)

    def _update(self, state: _LBFGSState, ls: _Step) -> _LBFGSState:
        """The L-BFGS step once its line search has ended; the next step's direction."""
        x_new = state.x + ls.step
        y_k = ls.grad - state.grad
        rho_inv = _dot(y_k, ls.step)
        gamma = rho_inv / _dot(y_k, y_k)
        stop = ((state.value - ls.value < self.ftol) | (state.k >= self.max_iter)
                | ls.failed | jnp.isnan(gamma.sum()) | jnp.isnan(x_new.sum()))
        x_new = jnp.where(jnp.isnan(x_new.sum()), state.x, x_new)
        converged = jnp.max(jnp.abs(ls.grad)) < self.gtol
        new = _LBFGSState(
            converged=converged, failed=stop & ~converged, k=state.k + 1, x=x_new,
            value=ls.value, grad=ls.grad,
            s_history=jnp.roll(state.s_history, -1, axis=0).at[-1].set(ls.step),
            y_history=jnp.roll(state.y_history, -1, axis=0).at[-1].set(y_k),
            rho_history=jnp.roll(state.rho_history, -1).at[-1].set(1.0 / rho_inv),
            gamma=gamma, direction=state.direction, trial=jnp.zeros((), jnp.int32))
        return new._replace(direction=self._direction(new))

    def _solution(self, state: _LBFGSState) -> Solution:
        return Solution(state.x, state.k)


@dataclass(frozen=True)
class Adam(PerPoint):
    """w2ot's Adam solver: (0.9, 0.999), cosine learning rate from 0.1 down to 0.1 * 1e-4
    over ``max_iter`` steps; stops when |grad J|_inf <= gtol (tested before each step, so
    a start within tolerance takes no step)."""

    max_iter: int = 100
    gtol: float = 0.1
    lr: float = 0.1
    final_lr_fraction: float = 1e-4

    def _optimizer(self):
        schedule = optax.cosine_decay_schedule(self.lr, self.max_iter, self.final_lr_fraction)
        return optax.adam(schedule, b1=0.9, b2=0.999)

    def _start(self, psi: Scalar, y: jax.Array, x0: jax.Array):
        grad = jax.grad(lambda x: psi(x) - jnp.dot(x, y))(x0)
        return x0, grad, self._optimizer().init(x0), jnp.zeros((), jnp.int32)

    def _running(self, state) -> jax.Array:
        _, grad, _, k = state
        return (k < self.max_iter) & (jnp.max(jnp.abs(grad)) > self.gtol)

    def _step(self, psi: Scalar, y: jax.Array, state):
        x, grad, opt_state, k = state
        updates, opt_state = self._optimizer().update(grad, opt_state, x)
        x = optax.apply_updates(x, updates)
        return x, jax.grad(lambda x: psi(x) - jnp.dot(x, y))(x), opt_state, k + 1

    def _solution(self, state) -> Solution:
        x, _, _, k = state
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


Solver = LBFGS | Adam | BatchAdam

# The named settings. "lbfgs" and "lbfgs-high-precision" are w2ot's config/conjugate_solver
# lbfgs.yaml and lbfgs_high_precision.yaml (the latter is w2ot's default in train.yaml);
# "adam" is adam.yaml; "batch-adam" is Korotin et al.'s [MMv1] inversion.
SETTINGS: dict[str, Solver] = {
    "lbfgs": LBFGS(),
    "lbfgs-high-precision": LBFGS(gtol=1e-3, line_search="backtracking", ls_evaluations=30),
    "adam": Adam(),
    "batch-adam": BatchAdam(),
}


def named(solver: str | Solver | None) -> Solver | None:
    """A solver from its setting name (or the solver itself)."""
    if solver is None or not isinstance(solver, str):
        return solver
    if solver not in SETTINGS:
        raise ValueError(f"unknown conjugate solver {solver!r}; known: {', '.join(SETTINGS)}")
    return SETTINGS[solver]


def describe(solver: Solver | None) -> dict | None:
    """The solver as configuration data (its class and settings), for run identities."""
    if solver is None:
        return None
    from dataclasses import asdict
    return {"algorithm": type(solver).__name__, **asdict(solver)}
