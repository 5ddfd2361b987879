"""How the amortization model H learns, and where the conjugate solve starts: strategies
as objects, chosen by name in a :class:`~otarena.dual.spec.DualSpec`.

An amortization loss (squared errors are means over batch and coordinates, as in both
papers' code; w is the cycle weight):

    objective       E_y [psi(H(y)) - <H(y), y>]              psi frozen
    regression      E |H(y) - x_hat_solver(y)|^2              toward the fine-tuned point
    cycle           w E|grad psi(H(y)) - y|^2 + w E|H(grad psi(x)) - x|^2   (W2GN; also trains psi)
    cycle-finetune  w E|grad psi(H(y)) - y|^2                 psi frozen, no x-side term
    none            H stays at its identity pretraining

A new strategy is a class with a ``name`` and a ``loss``; registering it in
:data:`AMORTIZATIONS` lets specs name it. The name, not the object, is what a solver's
configuration (and so its run ids) records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import jax
import jax.numpy as jnp


def keys_of(key, count):
    """Independent keys for the training-mode forwards of one loss (dropout masks)."""
    return [jax.random.fold_in(key, i) for i in range(1, count + 1)]


class Forwards:
    """The network calls of an amortization loss: training-mode forwards, each with its own
    key (three, split from the loss's key), or eval-mode forwards when there is no key."""

    def __init__(self, key):
        self.keys = keys_of(jax.random.key(0) if key is None else key, 3)
        self.train = key is not None

    def value(self, model, params, v, i: int):
        """model(v): the i-th forward of the loss."""
        return model.apply_train(params, v, self.keys[i]) if self.train else model.apply(params, v)

    def push(self, model, params, v, i: int):
        """The map of ``model`` at v: the i-th forward of the loss."""
        return model.push_train(params, v, self.keys[i]) if self.train else model.push(params, v)


class Amortization:
    """A loss for H. ``engine`` provides ``psi``, ``h`` (the networks) and ``cycle_weight``;
    ``prediction`` is H(y), ``x_hat`` the (detached) conjugate point the dual used."""

    name: ClassVar[str]
    needs_solver: ClassVar[bool] = False  # x_hat must come from a conjugate solver

    def loss(self, engine: Any, psi_params, h_params, prediction, x_hat, x, y,
             forwards: Forwards) -> jax.Array:
        raise NotImplementedError


@dataclass(frozen=True)
class NoAmortization(Amortization):
    name: ClassVar[str] = "none"

    def loss(self, engine, psi_params, h_params, prediction, x_hat, x, y, forwards):
        return jnp.zeros(())


@dataclass(frozen=True)
class Objective(Amortization):
    name: ClassVar[str] = "objective"

    def loss(self, engine, psi_params, h_params, prediction, x_hat, x, y, forwards):
        frozen = jax.lax.stop_gradient(psi_params)
        return jnp.mean(forwards.value(engine.psi, frozen, prediction, 0)
                        - jnp.sum(prediction * y, axis=1))


@dataclass(frozen=True)
class Regression(Amortization):
    name: ClassVar[str] = "regression"
    needs_solver: ClassVar[bool] = True

    def loss(self, engine, psi_params, h_params, prediction, x_hat, x, y, forwards):
        return jnp.mean((prediction - x_hat) ** 2)


@dataclass(frozen=True)
class Cycle(Amortization):
    """W2GN: both directions of the cycle, training psi too."""

    name: ClassVar[str] = "cycle"

    def loss(self, engine, psi_params, h_params, prediction, x_hat, x, y, forwards):
        back = forwards.push(engine.psi, psi_params, prediction, 0)
        there = forwards.push(engine.h, h_params, forwards.push(engine.psi, psi_params, x, 1), 2)
        return engine.cycle_weight * (jnp.mean((back - y) ** 2) + jnp.mean((there - x) ** 2))


@dataclass(frozen=True)
class CycleFinetune(Amortization):
    """A fine-tuned cycle row (w2ot's w2gn_finetune): H alone, the y side only."""

    name: ClassVar[str] = "cycle-finetune"

    def loss(self, engine, psi_params, h_params, prediction, x_hat, x, y, forwards):
        back = forwards.push(engine.psi, jax.lax.stop_gradient(psi_params), prediction, 0)
        return engine.cycle_weight * jnp.mean((back - y) ** 2)


AMORTIZATIONS: dict[str, Amortization] = {a.name: a for a in (
    Objective(), Regression(), Cycle(), CycleFinetune(), NoAmortization())}


def _by_name(value, table: dict, kind: type, what: str):
    """``value`` if it already is a ``kind``, else the entry of ``table`` of that name."""
    if isinstance(value, kind):
        return value
    if value not in table:
        raise ValueError(f"unknown {what} {value!r}; known: {', '.join(table)}")
    return table[value]


def named(strategy: str | Amortization) -> Amortization:
    """The strategy of a name (or the strategy itself)."""
    return _by_name(strategy, AMORTIZATIONS, Amortization, "amortization")


# -- where the conjugate solve starts ---------------------------------------------------------

class Start:
    """The point a conjugate solve (or, without a solver, x_hat itself) starts from."""

    name: ClassVar[str]

    def point(self, prediction, y, key) -> jax.Array:
        raise NotImplementedError


@dataclass(frozen=True)
class FromAmortizer(Start):
    name: ClassVar[str] = "amortizer"

    def point(self, prediction, y, key):
        return prediction


@dataclass(frozen=True)
class FromTarget(Start):
    name: ClassVar[str] = "target"

    def point(self, prediction, y, key):
        return y


@dataclass(frozen=True)
class Uniform01(Start):
    """U[0, 1) per point ([MMv1]: Taghvaei & Jalali's start as run by Korotin et al.)."""

    name: ClassVar[str] = "uniform01"

    def point(self, prediction, y, key):
        return jax.random.uniform(key, y.shape)


STARTS: dict[str, Start] = {s.name: s for s in (FromAmortizer(), FromTarget(), Uniform01())}


def start_named(start: str | Start) -> Start:
    """The start of a name (or the start itself)."""
    return _by_name(start, STARTS, Start, "conjugate start")
