"""Training throughput of the engine's solvers: iterations per second, 1 seed and vmapped.

    python -m benchmarks.throughput --pairs hd-16,hd-128 --seeds 1,10 [--solvers ...]
        [--chunk 200] [--repeats 3] [--json out.json]

For each (solver, pair, number of seeds) it compiles one chunk of ``--chunk`` iterations
(the same program ``otarena run`` uses), runs it once to warm up, then times ``--repeats``
chunks with ``block_until_ready``. It prints iterations/s of the program (all seeds
together) and per seed, and a projection of the full HD matrix at paper budget (8 dims x
the rows measured x 10 seeds), using the rate of the nearest measured dimension at or
above each dim (the largest measured one for dims above it).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import jax

ROOT = Path(__file__).resolve().parent.parent
if not os.environ.get("OTARENA_DATA") and (ROOT.parent / "shared" / "data").is_dir():
    os.environ["OTARENA_DATA"] = str(ROOT.parent / "shared" / "data")

KOROTIN_W2_HD16_ITS = 22.5  # papers.md §1.8: [W2] HD D=16, 250,001 iterations in 3 h 05 min
HD_DIMS = (2, 4, 8, 16, 32, 64, 128, 256)


def engine_solvers():
    """Engine configurations by solver name ([MMv1] trains two such engines, one per
    direction: its rate per run is half the one measured here)."""
    from otarena import solver

    return {s.name: s.engine_spec for s in solver.registry().values() if s.engine_spec is not None}


def spec_of(spec):
    return spec


def measure(name: str, pair_name: str, seeds: int, chunk: int, repeats: int) -> dict:
    from otarena import pairs
    from otarena.budgets import Budget
    from otarena.dual import engine_for

    spec = spec_of(engine_solvers()[name])
    pair = pairs.load(pair_name)
    # The smoke budget only shortens the identity pretraining of init_states; the timed
    # program is the same training chunk at every budget.
    engine = engine_for(pair, spec, Budget("smoke", iterations=10**9, eval_every=chunk))
    keys = jax.numpy.stack([jax.random.key(s) for s in range(seeds)])
    states = engine.init_states(keys, engine.pretrain_steps)
    start = time.perf_counter()
    states, logs = engine.run_chunk(states, 0, engine.iterations)
    jax.block_until_ready(states)
    compile_and_first = time.perf_counter() - start
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        states, logs = engine.run_chunk(states, (i + 1) * chunk, engine.iterations)
        jax.block_until_ready(states)
        times.append(time.perf_counter() - start)
    best = min(times)
    return {"solver": name, "pair": pair_name, "seeds": seeds, "chunk": chunk,
            "program_its": chunk / best, "per_seed_its": chunk * seeds / best,
            "ms_per_iteration": 1e3 * best / chunk, "first_chunk_s": compile_and_first,
            "paper_iterations": spec.iterations["paper"]}


def project(rows: list[dict], paper_seeds: int = 10) -> dict:
    """Hours for every measured solver on the 8 HD dims x ``paper_seeds`` seeds."""
    by = {}
    for r in rows:
        key = (r["solver"], int(r["pair"].split("-")[1]))
        by.setdefault(key, []).append(r)
    total, detail = 0.0, {}
    for solver in sorted({r["solver"] for r in rows}):
        measured = sorted(d for (s, d) in by if s == solver)
        hours = 0.0
        for dim in HD_DIMS:
            near = next((d for d in measured if d >= dim), measured[-1])
            best = max(by[(solver, near)], key=lambda r: r["per_seed_its"])
            programs = -(-paper_seeds // best["seeds"])  # vmapped programs needed
            hours += programs * best["paper_iterations"] / best["program_its"] / 3600
        detail[solver] = hours
        total += hours
    return {"hours_per_solver": detail, "total_hours": total}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--solvers", help="comma-separated (default: every engine solver)")
    parser.add_argument("--pairs", default="hd-16,hd-128")
    parser.add_argument("--seeds", default="1,10")
    parser.add_argument("--chunk", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the rows and the projection here")
    args = parser.parse_args(argv)
    names = args.solvers.split(",") if args.solvers else sorted(engine_solvers())
    rows = []
    for name in names:
        for pair_name in args.pairs.split(","):
            for seeds in (int(s) for s in args.seeds.split(",")):
                row = measure(name, pair_name, seeds, args.chunk, args.repeats)
                rows.append(row)
                print(f"{name:<24} {pair_name:<7} seeds={seeds:<3} {row['program_its']:9.1f} it/s "
                      f"program, {row['per_seed_its']:9.1f} it/s per seed, "
                      f"{row['ms_per_iteration']:.3f} ms/it", flush=True)
    projection = project(rows)
    w2 = [r for r in rows if r["solver"] == "W2" and r["pair"] == "hd-16"]
    device = f"{jax.devices()[0].platform}: {jax.devices()[0].device_kind}"
    print(f"device: {device}")
    if w2:
        best = max(w2, key=lambda r: r["per_seed_its"])
        print(f"W2 on hd-16: {best['per_seed_its']:.0f} it/s per seed = "
              f"{best['per_seed_its'] / KOROTIN_W2_HD16_ITS:.0f}x Korotin's 22.5 it/s")
    print(f"projected paper-budget HD matrix ({len(projection['hours_per_solver'])} rows x "
          f"8 dims x 10 seeds): {projection['total_hours']:.1f} device-hours")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device, "rows": rows,
                                               "projection": projection}, indent=1) + "\n")


if __name__ == "__main__":
    main()
