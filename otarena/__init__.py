"""otarena: a benchmark suite for neural optimal-transport solvers."""

from otarena import compilation as _compilation

__version__ = "0.1.0"

_compilation.enable()
