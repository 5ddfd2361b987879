"""The asv suite runs (every benchmark's setup and timed method, once, on its first params),
and the throughput benchmark's rows, ratios and projection."""

import importlib
import inspect
import itertools

import pytest

MODULES = ["benchmarks.hd_sampling", "benchmarks.engine", "benchmarks.sinkhorn",
           "benchmarks.compile"]


# Run by another case already: track_warm_seconds fills its cache by the very measurement of
# track_cold_seconds (a fresh process compiling into an empty cache), then measures again.
COVERED = {"compile.CompileTrainingChunk.track_cold_seconds"}


def cases():
    for name in MODULES:
        module = importlib.import_module(name)
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != name:
                continue
            for method in [m for m in dir(cls) if m.startswith(("time_", "track_"))]:
                case = f"{name.split('.')[-1]}.{cls_name}.{method}"
                if case not in COVERED:
                    yield pytest.param(cls, method, id=case)


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


def _row(solver, seeds, ms, pair="hd-16", compile_s=2.0):
    return {"solver": solver, "pair": pair, "seeds": seeds, "ms_per_iteration": ms,
            "per_seed_its": 1e3 / ms * seeds, "paper_iterations": 250_000,
            "compile_s": compile_s, "init_compile_s": 1.0}


def test_throughput_rows_parse_and_ratios_follow_the_goals():
    from benchmarks import throughput

    assert throughput.parse_rows("W2@hd-16x10, ott-w2neuraldual@hd-16") == [
        ("W2", "hd-16", 10), ("ott-w2neuraldual", "hd-16", 1)]
    with pytest.raises(SystemExit, match="bad row"):
        throughput.parse_rows("W2-hd-16")
    rows = [_row("W2", 1, 0.5), _row("W2", 10, 1.5), _row("icnn-regression-lbfgs", 1, 0.25),
            {"solver": throughput.OTT, "pair": "hd-16", "seeds": 1, "ms_per_step": 30.0}]
    found = {(q["kind"], q["solver"]): q for q in throughput.ratios(rows)}
    assert found["vmap", "W2"]["ratio"] == pytest.approx(3.0) and not found["vmap", "W2"]["met"]
    assert found["ott", "icnn-regression-lbfgs"]["ratio"] == pytest.approx(120.0)
    assert found["ott", "icnn-regression-lbfgs"]["met"]


def test_throughput_projection_uses_steady_rates_and_keeps_compile_apart():
    from benchmarks import throughput

    rows = [_row("W2", 1, 0.5), _row("W2", 10, 1.0)]
    projection = throughput.project(rows, paper_seeds=10, matrix_rows=4)
    # 10 seeds in one vmapped program at 1 ms/it, 250k iterations, 8 dims
    assert projection["train_hours"] == pytest.approx(8 * 250_000 * 1e-3 / 3600)
    assert projection["compile_hours"] == pytest.approx(8 * 3.0 / 3600)
    assert projection["train_hours_scaled_to_matrix"] == pytest.approx(4 * projection["train_hours"])


@pytest.mark.slow
def test_throughput_measures_a_row_with_compile_apart(tmp_path):
    import json

    from benchmarks import throughput

    out = tmp_path / "t.json"
    throughput.main(["--rows", "W2@hd-2x1", "--chunk", "2", "--repeats", "1",
                     "--pretrain-steps", "1", "--json", str(out)])
    payload = json.loads(out.read_text())
    row, = payload["rows"]
    assert payload["complete"] and row["chunk"] == 2 and row["matmul_precision"] == "float32"
    assert row["compile_s"] > 0 and row["init_compile_s"] > 0 and row["ms_per_iteration"] > 0
    assert row["cache"] in ("hit", "miss", "off") and payload["device"]["platform"] == "cpu"


def test_ab_conjugate_times_two_revisions_of_the_solver_on_a_cell(capsys):
    from benchmarks import ab_conjugate

    ab_conjugate.main(["HEAD", "--solver", "mlp-objective-lbfgs", "--pair", "hd-2",
                       "--warmup", "4", "--pretrain-steps", "5", "--chunk", "2", "--repeats", "1"])
    out = capsys.readouterr().out
    assert "from iteration 4" in out and "ratio HEAD / this checkout" in out
    assert "conjugate steps per solve" in out
