"""Training throughput, compile apart: steady-state time per iteration of the engine's
programs, side by side with OTT-JAX's ``W2NeuralDual`` training step.

    python -m benchmarks.throughput [--rows W2@hd-16x1,W2@hd-16x10,...] [--chunk N]
        [--repeats 3] [--pretrain-steps N] [--ott-steps 20] [--json out.json]

A row is ``SOLVER@PAIRxSEEDS`` (``ott-w2neuraldual@PAIR`` for OTT's step). Each engine row
builds the program ``otarena run --budget paper`` trains with (same chunk length, same
matmul precision, so the compile cache carries it over to a paper run), then:

1. compiles ahead of time (``.lower(...).compile()``) the state initialization (identity
   pretraining) and the training chunk, each timed apart (``compile_s``);
2. pretrains (``--pretrain-steps``, default the paper's) and runs one warm chunk;
3. times ``--repeats`` chunks of ``--chunk`` iterations with ``block_until_ready``.

``ms_per_iteration`` is the median chunk over its length: a steady-state rate, with no
compilation, pretraining or evaluation in it. OTT's row compiles its jitted step the same
way and times ``--ott-steps`` steps per repeat, each on a fresh batch drawn beforehand
(``ms_per_step``) and as OTT's own loop runs them, drawing each batch just before its
step (``ms_per_step_with_sampling``). Ratios printed: N vmapped seeds against one (goal
<= 2x the time of one), OTT's step against the L-BFGS rows (goal >= 100x). The JSON file
is rewritten after every row, so a run cut off by a deadline keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import jax
import numpy as np

from otarena.budgets import Budget

ROOT = Path(__file__).resolve().parent.parent
if not os.environ.get("OTARENA_DATA") and (ROOT.parent / "shared" / "data").is_dir():
    os.environ["OTARENA_DATA"] = str(ROOT.parent / "shared" / "data")

KOROTIN_W2_HD16_ITS = 22.5  # papers.md §1.8: [W2] HD D=16, 250,001 iterations in 3 h 05 min
HD_DIMS = (2, 4, 8, 16, 32, 64, 128, 256)
OTT = "ott-w2neuraldual"
OTT_BATCH = 1024  # solvers/ott_peers.py; the engine rows train on batches of 1024 too
# In order of value: the two ratios of runtime issue first, then the programs of the GPU
# session's paper cells (their compiled code is reused from the compile cache there).
DEFAULT_ROWS = ("W2@hd-16x1,W2@hd-16x10,icnn-regression-lbfgs-high-precision@hd-16x1,"
                f"{OTT}@hd-16,icnn-regression-lbfgs@hd-16x1,"
                "W2@hd-8x10,icnn-regression-lbfgs-high-precision@hd-8x10,"
                "icnn-regression-lbfgs-high-precision@hd-16x10")
GOALS = {"vmap_ratio_max": 2.0, "ott_ratio_min": 100.0}
METHOD = ("ahead-of-time compile (lower, compile) timed apart; identity pretraining; one warm "
          "call; then the median of `repeats` timed calls with block_until_ready. Engine rows: "
          "chunks of `chunk` iterations of the paper-budget program; OTT: `steps` jitted "
          "training steps per call on batches drawn beforehand (ms_per_step) or drawn per "
          "step as OTT's loop does (ms_per_step_with_sampling).")


def engine_solvers():
    """Engine configurations by solver name ([MMv1] trains two such engines, one per
    direction: its rate per run is half the one measured here)."""
    from otarena import solver

    return {s.name: s.engine_spec for s in solver.registry().values() if s.engine_spec is not None}


def parse_rows(text: str) -> list[tuple[str, str, int]]:
    """``SOLVER@PAIRxSEEDS,...`` -> [(solver, pair, seeds)]; seeds default 1."""
    rows = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        solver, at, rest = item.partition("@")
        pair, _, seeds = rest.rpartition("x")
        if not seeds.isdigit():  # no xSEEDS suffix
            pair, seeds = rest, "1"
        if not at or not solver or not pair or int(seeds) < 1:
            raise SystemExit(f"bad row {item!r}: write SOLVER@PAIR or SOLVER@PAIRxSEEDS, "
                             f"e.g. W2@hd-16x10")
        rows.append((solver, pair, int(seeds)))
    return rows


def check_rows(todo) -> None:
    """Unknown solvers and pairs whose data is missing fail before anything is measured."""
    from otarena import pairs

    specs = engine_solvers()
    for name, pair_name, _ in todo:
        if name != OTT and name not in specs:
            raise SystemExit(f"{name!r} is not an engine solver; choose from "
                             f"{', '.join(sorted(specs))} or {OTT}")
        problem = pairs.problem(pair_name) if pair_name in pairs.names() else "unknown pair"
        if problem:
            raise SystemExit(problem if problem.startswith(pair_name) else f"{pair_name}: {problem}")


def _cache_files() -> set[str] | None:
    from otarena import compilation

    folder = compilation.cache_dir()
    if folder is None or not jax.config.jax_enable_compilation_cache:
        return None
    return {p.name for p in folder.glob("*")} if folder.is_dir() else set()


def compile_ahead(fn, *args) -> tuple:
    """(compiled, seconds to trace and lower, seconds to compile, whether the persistent
    compile cache already held it: 'hit', 'miss' (it wrote an entry) or 'off')."""
    before = _cache_files()
    start = time.perf_counter()
    lowered = fn.lower(*args)
    lowered_at = time.perf_counter()
    compiled = lowered.compile()
    done = time.perf_counter()
    cache = "off" if before is None else ("miss" if _cache_files() - before else "hit")
    return compiled, lowered_at - start, done - lowered_at, cache


def _timed(fn, *args):
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - start


def measure_engine(name: str, pair_name: str, seeds: int, chunk: int | None, repeats: int,
                   pretrain_steps: int | None) -> dict:
    from otarena import pairs
    from otarena.dual import engine_for

    spec = engine_solvers()[name]
    budget = Budget("paper", eval_every=chunk)  # chunk None: the paper's evaluation period
    engine = engine_for(pairs.load(pair_name), spec, budget)
    steps = engine.pretrain_steps if pretrain_steps is None else pretrain_steps
    keys = jax.numpy.stack([jax.random.key(s) for s in range(seeds)])
    total = engine.iterations  # a Python int, as otarena.dual.train passes it
    row = {"solver": name, "pair": pair_name, "seeds": seeds, "chunk": engine.eval_every,
           "matmul_precision": budget.matmul_precision, "pretrain_steps": steps,
           "paper_iterations": spec.iterations["paper"], "batch_size": engine.batch_size}
    with jax.default_matmul_precision(budget.matmul_precision):
        init, row["init_lower_s"], row["init_compile_s"], row["init_cache"] = compile_ahead(
            engine.init_states, keys, steps)
        states, row["pretrain_s"] = _timed(init, keys, steps)
        run, row["lower_s"], row["compile_s"], row["cache"] = compile_ahead(
            engine.run_chunk, states, 0, total)
    (states, _), row["first_chunk_s"] = _timed(run, states, 0, total)
    times, conjugate = [], []
    for i in range(repeats):
        (states, logs), seconds = _timed(run, states, (i + 1) * engine.eval_every, total)
        times.append(seconds)
        conjugate.append(float(np.mean(np.asarray(logs["conjugate_iterations"]))))
    row["chunk_seconds"] = times
    row["ms_per_iteration"] = 1e3 * statistics.median(times) / engine.eval_every
    row["ms_per_iteration_min"] = 1e3 * min(times) / engine.eval_every
    row["program_its"] = 1e3 / row["ms_per_iteration"]
    row["per_seed_its"] = row["program_its"] * seeds
    row["mean_conjugate_iterations"] = float(np.mean(conjugate))
    # a stopped seed (w2ot's rule) skips its steps and would flatter the rate
    row["stopped_seeds"] = int(np.sum(np.asarray(states["stopped_at"]) >= 0))
    return row


def _ott_module():
    from otarena import plugins

    return next(m for m in plugins.load_folder("solvers") if m.__name__.endswith(".ott_peers"))


def measure_ott(pair_name: str, steps: int, repeats: int, precision: str) -> dict:
    """OTT-JAX's W2NeuralDual training step (the configuration of solvers/ott_peers.py)."""
    import ott

    from otarena import pairs

    pair = pairs.load(pair_name)
    solver = _ott_module().w2neuraldual(pair, jax.random.key(0), iterations=2)
    draw_x = jax.jit(lambda k: pair.sample_source(k, OTT_BATCH))
    draw_y = jax.jit(lambda k: pair.sample_target(k, OTT_BATCH))
    k_x, k_y = jax.random.split(jax.random.key(1))
    drawn = iter(range(10**9))

    def batch():  # what ott_peers' loaders yield: a fresh pair of batches per step
        i = next(drawn)
        return {"source": draw_x(jax.random.fold_in(k_x, i)),
                "target": draw_y(jax.random.fold_in(k_y, i))}

    row = {"solver": OTT, "pair": pair_name, "seeds": 1, "batch_size": OTT_BATCH,
           "matmul_precision": precision, "ott_version": ott.__version__, "steps": steps}
    f, g = solver.state_f, solver.state_g
    with jax.default_matmul_precision(precision):
        step, row["lower_s"], row["compile_s"], row["cache"] = compile_ahead(
            solver.train_step_parallel, f, g, batch())
    (f, g, *_), row["first_step_s"] = _timed(step, f, g, batch())
    alone, looped = [], []
    for _ in range(repeats):
        batches = jax.block_until_ready([batch() for _ in range(steps)])
        start = time.perf_counter()
        for b in batches:
            f, g, *_ = step(f, g, b)
        jax.block_until_ready((f, g))
        alone.append((time.perf_counter() - start) / steps)
        start = time.perf_counter()
        for _ in range(steps):
            f, g, *_ = step(f, g, batch())
        jax.block_until_ready((f, g))
        looped.append((time.perf_counter() - start) / steps)
    row["ms_per_step"] = 1e3 * statistics.median(alone)
    row["ms_per_step_with_sampling"] = 1e3 * statistics.median(looped)
    return row


def ratios(rows: list[dict]) -> list[dict]:
    """Vmapped seeds against one seed, and OTT's step against each 1-seed engine row."""
    found = []
    ok = [r for r in rows if "error" not in r]
    singles = {(r["solver"], r["pair"]): r for r in ok if r["seeds"] == 1 and r["solver"] != OTT}
    for r in ok:
        one = singles.get((r["solver"], r["pair"]))
        if r["seeds"] > 1 and one:
            value = r["ms_per_iteration"] / one["ms_per_iteration"]
            found.append({"kind": "vmap", "solver": r["solver"], "pair": r["pair"],
                          "seeds": r["seeds"], "ratio": value,
                          "goal": f"<= {GOALS['vmap_ratio_max']}",
                          "met": value <= GOALS["vmap_ratio_max"]})
    for o in (r for r in ok if r["solver"] == OTT):
        for (solver, pair), one in singles.items():
            if pair == o["pair"] and "lbfgs" in solver:
                value = o["ms_per_step"] / one["ms_per_iteration"]
                found.append({"kind": "ott", "solver": solver, "pair": pair, "ratio": value,
                              "ott_ms_per_step": o["ms_per_step"],
                              "ms_per_iteration": one["ms_per_iteration"],
                              "goal": f">= {GOALS['ott_ratio_min']}",
                              "met": value >= GOALS["ott_ratio_min"]})
    return found


def project(rows: list[dict], paper_seeds: int = 10, matrix_rows: int = 20) -> dict:
    """Device-hours of the paper-budget HD matrix (8 dims x ``paper_seeds`` seeds) for the
    measured solvers, from steady-state rates only; compilation is its own column (one
    program per solver, dimension and number of seeds)."""
    engine_rows = [r for r in rows if "error" not in r and r["solver"] != OTT]
    by: dict[tuple[str, int], list[dict]] = {}
    for r in engine_rows:
        by.setdefault((r["solver"], int(r["pair"].split("-")[1])), []).append(r)
    solvers, train_total, compile_total = {}, 0.0, 0.0
    for solver in sorted({s for s, _ in by}):
        measured = sorted(d for s, d in by if s == solver)
        train_h = compile_h = 0.0
        for dim in HD_DIMS:
            near = next((d for d in measured if d >= dim), measured[-1])
            best = max(by[(solver, near)], key=lambda r: r["per_seed_its"])
            programs = -(-paper_seeds // best["seeds"])  # vmapped programs to cover the seeds
            train_h += programs * best["paper_iterations"] * best["ms_per_iteration"] / 3.6e6
            compile_h += (best["compile_s"] + best["init_compile_s"]) / 3600
        solvers[solver] = {"train_hours": train_h, "compile_hours": compile_h,
                           "dims_measured": measured}
        train_total += train_h
        compile_total += compile_h
    scaled = train_total * matrix_rows / len(solvers) if solvers else None
    return {"basis": "steady-state ms/iteration of the rows measured; the rate of the nearest "
                     "measured dimension at or above each dim (the largest measured above it); "
                     "pretraining and evaluation left out; compile is its own column",
            "paper_seeds": paper_seeds, "per_solver": solvers, "train_hours": train_total,
            "compile_hours": compile_total,
            "matrix_rows": matrix_rows,
            "train_hours_scaled_to_matrix": scaled,
            "scaled_assumes": "every unmeasured row of the matrix costs the mean measured row"}


def environment() -> dict:
    from otarena import provenance

    for optional in ("ott", "torch"):  # provenance.versions() names those imported
        try:
            __import__(optional)
        except ImportError:
            pass
    found = {"device": provenance.device_description(), "versions": provenance.versions(),
             "git": provenance.git_state(), "host_cpus": os.cpu_count(),
             "machine": platform.machine()}
    from otarena import compilation

    found["compile_cache"] = (str(compilation.cache_dir())
                              if jax.config.jax_enable_compilation_cache else None)
    return found


def describe(row: dict) -> str:
    if "error" in row:
        return f"{row['solver']:<38} {row['pair']:<7} FAILED: {row['error']}"
    if row["solver"] == OTT:
        return (f"{OTT:<38} {row['pair']:<7} seeds=1   {row['ms_per_step']:8.3f} ms/step "
                f"({row['ms_per_step_with_sampling']:.3f} with OTT's batch draws); "
                f"compile {row['compile_s']:.1f} s [{row['cache']}]")
    return (f"{row['solver']:<38} {row['pair']:<7} seeds={row['seeds']:<3} "
            f"{row['ms_per_iteration']:8.3f} ms/it = {row['per_seed_its']:9.1f} it/s per seed; "
            f"compile {row['compile_s']:.1f} s + init {row['init_compile_s']:.1f} s "
            f"[{row['cache']}], conjugate its {row['mean_conjugate_iterations']:.1f}")


def summary(rows, found_ratios, projection) -> list[str]:
    lines = []
    for q in found_ratios:
        if q["kind"] == "vmap":
            lines.append(f"{q['solver']} {q['pair']}: {q['seeds']} vmapped seeds take "
                         f"{q['ratio']:.2f}x the time of one (goal {q['goal']}: "
                         f"{'met' if q['met'] else 'not met'})")
        else:
            lines.append(f"{q['solver']} {q['pair']}: OTT W2NeuralDual step "
                         f"{q['ott_ms_per_step']:.3f} ms / {q['ms_per_iteration']:.3f} ms = "
                         f"{q['ratio']:.1f}x (goal {q['goal']}: {'met' if q['met'] else 'not met'})")
    w2 = [r for r in rows if r["solver"] == "W2" and r["pair"] == "hd-16" and "error" not in r]
    if w2:
        best = max(w2, key=lambda r: r["per_seed_its"])
        lines.append(f"W2 hd-16: {best['per_seed_its']:.0f} it/s per seed = "
                     f"{best['per_seed_its'] / KOROTIN_W2_HD16_ITS:.0f}x Korotin's 22.5 it/s")
    if projection["per_solver"]:
        lines.append(
            f"paper-budget HD matrix, {len(projection['per_solver'])} measured rows x 8 dims x "
            f"{projection['paper_seeds']} seeds, from STEADY-STATE rates: "
            f"{projection['train_hours']:.2f} device-hours training + "
            f"{projection['compile_hours']:.3f} h compile (cold, one program per row and dim); "
            f"scaled to {projection['matrix_rows']} rows: "
            f"{projection['train_hours_scaled_to_matrix']:.1f} h")
    return lines


def report(payload: dict) -> None:
    device = payload.get("device", {})
    print(f"{code_line(payload)}device: {device.get('platform')}: {device.get('kind')}; "
          f"{len(payload['rows'])} rows{'' if payload.get('complete') else ' (cut off before the end)'}")
    for row in payload["rows"]:
        print(describe(row))
    for line in summary(payload["rows"], payload.get("ratios", []), payload["projection"]):
        print(line)


def code_line(payload: dict) -> str:
    git = payload.get("git") or {}
    return f"code {(git.get('commit') or 'unknown')[:12]}{' (dirty)' if git.get('dirty') else ''}; "


def _write(path: str | None, payload: dict) -> None:
    if path:
        tmp = Path(f"{path}.tmp")
        tmp.write_text(json.dumps(payload, indent=1) + "\n")
        tmp.replace(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default=DEFAULT_ROWS, help="SOLVER@PAIRxSEEDS,... in order")
    parser.add_argument("--chunk", type=int, help="iterations per timed chunk (default: the "
                        "solver's paper evaluation period, the program a paper run compiles)")
    parser.add_argument("--repeats", type=int, default=3, help="timed chunks per row")
    parser.add_argument("--pretrain-steps", type=int, help="identity pretraining before timing "
                        "(default: the paper's)")
    parser.add_argument("--ott-steps", type=int, default=20, help="OTT steps per timed repeat")
    parser.add_argument("--paper-seeds", type=int, default=10)
    parser.add_argument("--matrix-rows", type=int, default=20,
                        help="rows of the full HD matrix, for the scaled projection")
    parser.add_argument("--json", help="write every row, the ratios, the projection, the "
                        "device and the versions here (rewritten after each row)")
    parser.add_argument("--report", metavar="JSON", help="print the rows and ratios of a file "
                        "written by --json (e.g. one a GPU session brought back), then exit")
    args = parser.parse_args(argv)
    if args.report:
        return report(json.loads(Path(args.report).read_text()))
    todo = parse_rows(args.rows)
    check_rows(todo)
    env = environment()
    print(f"device: {env['device']['platform']}: {env['device']['kind']}; "
          f"versions: {env['versions']}", flush=True)
    rows: list[dict] = []
    payload = {"method": METHOD, **env, "rows": rows, "complete": False}
    for name, pair_name, seeds in todo:
        try:
            if name == OTT:
                row = measure_ott(pair_name, args.ott_steps, args.repeats,
                                  Budget("paper").matmul_precision)
            else:
                row = measure_engine(name, pair_name, seeds, args.chunk, args.repeats,
                                     args.pretrain_steps)
        except (ImportError, RuntimeError, ValueError, OSError) as e:  # keep the other rows
            row = {"solver": name, "pair": pair_name, "seeds": seeds,
                   "error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
        rows.append(row)
        print(describe(row), flush=True)
        payload.update(ratios=ratios(rows), projection=project(rows, args.paper_seeds,
                                                               args.matrix_rows))
        _write(args.json, payload)
    payload["complete"] = True
    _write(args.json, payload)
    for line in summary(rows, payload["ratios"], payload["projection"]):
        print(line)


if __name__ == "__main__":
    main()
