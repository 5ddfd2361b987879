"""The asv suite runs: every benchmark's setup and timed method, once, on its first params."""

import importlib
import inspect
import itertools

import pytest

MODULES = ["benchmarks.hd_sampling", "benchmarks.engine", "benchmarks.sinkhorn"]


def cases():
    for name in MODULES:
        module = importlib.import_module(name)
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != name:
                continue
            for method in [m for m in dir(cls) if m.startswith(("time_", "track_"))]:
                yield pytest.param(cls, method, id=f"{name.split('.')[-1]}.{cls_name}.{method}")


def first_params(cls) -> tuple:
    params = getattr(cls, "params", None)
    if params is None:
        return ()
    if getattr(cls, "param_names", None) and len(cls.param_names) > 1:
        return next(itertools.product(*params))
    return (params[0],)


@pytest.mark.parametrize("cls,method", list(cases()))
def test_benchmark_runs(cls, method):
    bench, args = cls(), first_params(cls)
    if hasattr(bench, "setup"):
        bench.setup(*args)
    getattr(bench, method)(*args)
