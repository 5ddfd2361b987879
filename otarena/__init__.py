"""otarena: a benchmark suite for neural optimal-transport solvers."""

__version__ = "0.1.0"
